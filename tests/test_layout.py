"""The import order of the folders (README "Layout"), read with `ast`.

A module may import its own package and the packages of lower floors, never
a higher one; `utils/` imports nothing of the project; no modules import
each other in a cycle; commands (`if __name__ == '__main__'`, a module-level
`app.run`/`cli.run`) live only in `tools/`, the entrypoints and `bench/`.
"""

import ast
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLOORS = {
    'utils': 0, 'configs': 0,
    'datasets': 1, 'rasters': 1,
    'models': 2, 'evaluation': 2,
    'jobs': 3,
    'tools': 4,
    'run': 5, 'sample': 5, 'evaluate': 5, 'predict': 5, 'bench': 5,
    'tests': 6,
}
COMMAND_PLACES = ('tools', 'bench', 'run', 'sample', 'evaluate', 'predict')


def product_files(root):
  """Paths (relative to root) of every product module: not tests/."""
  paths = []
  for name in sorted(os.listdir(root)):
    path = os.path.join(root, name)
    if name.endswith('.py'):
      paths.append(name)
    elif (os.path.isdir(path) and not name.startswith('.')
          and name != 'tests'):
      paths += [os.path.join(name, f) for f in sorted(os.listdir(path))
                if f.endswith('.py')]
  return paths


def module_name(path):
  return os.path.splitext(path)[0].replace(os.sep, '.').removesuffix(
      '.__init__')


def imports(root, path):
  """(line, module) of every project import in a file, lazy ones too; a
  `from pkg import name` names pkg.name when that is a module."""
  tree = ast.parse(open(os.path.join(root, path)).read(), path)
  found = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found += [(node.lineno, a.name) for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      for a in node.names:
        sub = os.path.join(root, *node.module.split('.'), a.name + '.py')
        found.append((node.lineno, f'{node.module}.{a.name}'
                      if os.path.exists(sub) else node.module))
  return [(line, m) for line, m in found if m.split('.')[0] in FLOORS]


def is_command(node):
  """A module-level `if __name__ == '__main__'` or `app.run(...)` call."""
  if isinstance(node, ast.If):
    test = ast.unparse(node.test).replace('"', "'")
    return test == "__name__ == '__main__'"
  return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
          and ast.unparse(node.value.func) in ('app.run', 'cli.run'))


def cycles(graph):
  """Each import cycle once, as a list of modules, via depth-first search."""
  found, state = [], {}

  def visit(m, stack):
    state[m] = 'open'
    for n in sorted(graph.get(m, ())):
      if state.get(n) == 'open':
        found.append(stack[stack.index(n):] + [n])
      elif n not in state:
        visit(n, stack + [n])
    state[m] = 'done'

  for m in sorted(graph):
    if m not in state:
      visit(m, [m])
  return found


def violations(root):
  """Every broken rule, one line each, naming the file and line."""
  problems, graph = [], {}
  for path in product_files(root):
    package = path.split(os.sep)[0].removesuffix('.py')
    if package not in FLOORS:
      problems.append(f'{path}: folder {package}/ has no floor; add it to '
                      'README "Layout" and FLOORS in tests/test_layout.py.')
      continue
    tree = ast.parse(open(os.path.join(root, path)).read(), path)
    for node in tree.body:
      if is_command(node) and package not in COMMAND_PLACES:
        problems.append(f'{path}:{node.lineno}: a command in {package}/; '
                        'commands live in tools/, the entrypoints and bench/.')
    me = module_name(path)
    for line, target in imports(root, path):
      graph.setdefault(me, set()).add(target)
      other = target.split('.')[0]
      if package == 'utils' and other != 'utils':
        problems.append(f'{path}:{line}: utils/ imports {target}; utils/ is '
                        'the ground floor and imports nothing of the project.')
      elif FLOORS[other] > FLOORS[package]:
        problems.append(
            f'{path}:{line}: {package}/ (floor {FLOORS[package]}) imports '
            f'{target} (floor {FLOORS[other]}), a higher floor; move what it '
            'needs down to the lowest floor that uses it.')
  for cycle in cycles(graph):
    problems.append('import cycle: ' + ' -> '.join(cycle))
  return problems


def test_the_project_keeps_its_layout():
  problems = violations(ROOT)
  assert not problems, '\n'.join(problems)


@pytest.mark.parametrize('folder', ['utils', 'datasets', 'rasters', 'models',
                                    'evaluation', 'jobs', 'tools'])
def test_the_readme_layout_names_every_module(folder):
  with open(os.path.join(ROOT, 'README.md')) as f:
    readme = f.read()
  table = readme[readme.index('## Layout'):].split('\n\n')[2]
  row = next(line for line in table.splitlines() if f'| `{folder}/` |' in line)
  named = set(re.findall(r'`(\w+)`', row.split('|')[3]))
  modules = {f[:-3] for f in os.listdir(os.path.join(ROOT, folder))
             if f.endswith('.py') and f != '__init__.py'}
  assert modules <= named, f'README "Layout" misses {sorted(modules - named)}'


def write(root, files):
  for path, text in files.items():
    os.makedirs(os.path.join(root, os.path.dirname(path)), exist_ok=True)
    with open(os.path.join(root, path), 'w') as f:
      f.write(text)


@pytest.mark.parametrize('files, message', [
    ({'datasets/pipeline.py': 'from jobs import train\n',
      'jobs/train.py': ''},
     'datasets/pipeline.py:1: datasets/ (floor 1) imports jobs.train '
     '(floor 3), a higher floor'),
    ({'utils/images.py': 'import os\nfrom datasets import keys\n',
      'datasets/keys.py': ''},
     'utils/images.py:2: utils/ imports datasets.keys; utils/ is the ground '
     'floor'),
    ({'models/core.py': "def f():\n  from tools import synthetic\n",
      'tools/synthetic.py': ''},
     'models/core.py:2: models/ (floor 2) imports tools.synthetic'),
    ({'datasets/prepare.py': "if __name__ == '__main__':\n  main()\n"},
     'datasets/prepare.py:1: a command in datasets/'),
    ({'models/import_original.py': 'cli.run(main)\n'},
     'models/import_original.py:1: a command in models/'),
    ({'datasets/a.py': 'from datasets import b\n',
      'datasets/b.py': 'from datasets import a\n'},
     'import cycle: datasets.a -> datasets.b -> datasets.a'),
    ({'scripts/x.py': ''}, 'scripts/x.py: folder scripts/ has no floor'),
])
def test_a_broken_rule_is_named(tmp_path, files, message):
  write(str(tmp_path), files)
  assert any(p.startswith(message) for p in violations(str(tmp_path))), (
      violations(str(tmp_path)))


def test_downward_imports_and_commands_in_place_pass(tmp_path):
  write(str(tmp_path), {
      'utils/images.py': 'from utils import colormaps\n',
      'utils/colormaps.py': '',
      'jobs/train.py': 'from datasets import pipeline\nimport models\n',
      'datasets/pipeline.py': '',
      'models/__init__.py': '',
      'tools/prepare.py': "if __name__ == '__main__':\n  cli.run(main)\n",
      'run.py': 'from jobs import train\n'})
  assert not violations(str(tmp_path))
