"""The layout of the project, read with `ast` (README "Layout").

A module may import its own package and the packages of lower floors, never
a higher one; `utils/` imports nothing of the project; no modules import
each other in a cycle; commands (`if __name__ == '__main__'`, a module-level
`app.run`/`cli.run`) live only in `tools/`, `bench/` and the top-level
modules (the entry points); only a module with a command, or one in
`commands/` (the flags several commands share), defines or reads absl flags;
no package keeps a list of its modules by hand.
"""

import ast
import importlib
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The floor of each folder. Every top-level module (run.py, sample.py, ...)
# is an entry point, on ENTRY_FLOOR.
FLOORS = {
    'utils': 0, 'configs': 0,
    'datasets': 1, 'rasters': 1,
    'models': 2, 'evaluation': 2,
    'jobs': 3,
    'tools': 4, 'commands': 4,
    'bench': 5,
    'tests': 6,
}
ENTRY_FLOOR = 5
# Folders that hold commands, besides the top-level modules.
COMMAND_FOLDERS = ('tools', 'bench')
# The folder of the flags several commands share: it touches flags, but
# holds no command, and only commands (floor 4 and up) import it.
FLAG_FOLDERS = ('commands',)
# Modules without a command, outside FLAG_FOLDERS, that touch absl flags,
# each with why; remove an entry once its module no longer touches flags.
FLAG_EXCEPTIONS = {
    'utils/cli.py': 'the flag parsing and error lines every command shares',
}
# A package docstring naming this many of its modules is a list kept by
# hand, which drifts when a module is added.
LISTED = 3


def floor_of(root, name):
  """The floor of a top-level name of the project, None if it is none."""
  if name in FLOORS:
    return FLOORS[name]
  return ENTRY_FLOOR if os.path.isfile(os.path.join(root, name + '.py')) else (
      None)


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
  return [(line, m) for line, m in found
          if floor_of(root, m.split('.')[0]) is not None]


def is_command(node):
  """A module-level `if __name__ == '__main__'` or `app.run(...)` call."""
  if isinstance(node, ast.If):
    test = ast.unparse(node.test).replace('"', "'")
    return test == "__name__ == '__main__'"
  return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
          and ast.unparse(node.value.func) in ('app.run', 'cli.run'))


def flag_uses(tree):
  """(line, what) of each absl flags import, definition or FLAGS use."""
  found = []
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module in (
        'absl', 'ml_collections'):
      found += [(node.lineno, f'from {node.module} import {a.name}')
                for a in node.names if a.name in ('flags', 'config_flags')]
    elif isinstance(node, ast.Import):
      found += [(node.lineno, f'import {a.name}') for a in node.names
                if a.name in ('absl.flags', 'ml_collections.config_flags')]
    elif isinstance(node, ast.Attribute) and (
        node.attr.startswith('DEFINE') or node.attr == 'FLAGS'):
      found.append((node.lineno, ast.unparse(node)))
    elif isinstance(node, ast.Name) and node.id == 'FLAGS':
      found.append((node.lineno, 'FLAGS'))
  return sorted(set(found))


def module_lists(root, path, tree):
  """Lists kept by hand: `__all__` in any module, or an `__init__.py` whose
  docstring names LISTED or more of its package's modules."""
  problems = []
  for node in ast.walk(tree):
    targets = (node.targets if isinstance(node, ast.Assign) else
               [node.target] if isinstance(node, ast.AnnAssign) else [])
    if any(isinstance(t, ast.Name) and t.id == '__all__' for t in targets):
      problems.append(f'{path}:{node.lineno}: __all__ is a list kept by '
                      'hand; drop it.')
  if os.path.basename(path) == '__init__.py':
    folder = os.path.join(root, os.path.dirname(path))
    modules = {f[:-3] for f in os.listdir(folder)
               if f.endswith('.py') and f != '__init__.py'}
    words = set(re.findall(r'\w+', ast.get_docstring(tree) or ''))
    named = sorted(modules & words)
    if len(named) >= LISTED:
      problems.append(
          f'{path}: its docstring lists {len(named)} of its {len(modules)} '
          f'modules by hand ({", ".join(named)}); drop the list: each '
          "module's docstring says what it does.")
  return problems


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


def violations(root, flag_exceptions=()):
  """Every broken rule, one line each, naming the file and line."""
  problems, graph = [], {}
  for path in product_files(root):
    package = path.split(os.sep)[0].removesuffix('.py')
    floor = floor_of(root, package)
    if floor is None:
      problems.append(f'{path}: folder {package}/ has no floor; add it to '
                      'README "Layout" and FLOORS in tests/test_layout.py.')
      continue
    tree = ast.parse(open(os.path.join(root, path)).read(), path)
    commands = [node for node in tree.body if is_command(node)]
    if commands and os.sep in path and package not in COMMAND_FOLDERS:
      problems.append(f'{path}:{commands[0].lineno}: a command in {package}/; '
                      'commands live in tools/, bench/ and the entry points.')
    if not commands and package not in FLAG_FOLDERS and (
        path not in flag_exceptions):
      problems += [f'{path}:{line}: {what} in a module without a command; '
                   'only commands touch flags: give the library plain values '
                   'or a dataclass' for line, what in flag_uses(tree)]
    problems += module_lists(root, path, tree)
    me = module_name(path)
    for line, target in imports(root, path):
      graph.setdefault(me, set()).add(target)
      other = floor_of(root, target.split('.')[0])
      if package == 'utils' and target.split('.')[0] != 'utils':
        problems.append(f'{path}:{line}: utils/ imports {target}; utils/ is '
                        'the ground floor and imports nothing of the project.')
      elif other > floor:
        problems.append(
            f'{path}:{line}: {package}/ (floor {floor}) imports '
            f'{target} (floor {other}), a higher floor; move what it '
            'needs down to the lowest floor that uses it.')
  for cycle in cycles(graph):
    problems.append('import cycle: ' + ' -> '.join(cycle))
  return problems


def test_the_project_keeps_its_layout():
  problems = violations(ROOT, FLAG_EXCEPTIONS)
  assert not problems, '\n'.join(problems)


@pytest.mark.parametrize('path', sorted(FLAG_EXCEPTIONS))
def test_each_flag_exception_still_touches_flags(path):
  with open(os.path.join(ROOT, path)) as f:
    tree = ast.parse(f.read(), path)
  assert flag_uses(tree), (f'{path} no longer touches flags: remove it from '
                           'FLAG_EXCEPTIONS in tests/test_layout.py.')


# The packages whose README "Layout" row names their modules (configs/'s
# row describes its variants instead).
LISTED_PACKAGES = sorted(
    folder for folder in FLOORS if folder != 'configs'
    and os.path.isfile(os.path.join(ROOT, folder, '__init__.py')))


@pytest.mark.parametrize('folder', LISTED_PACKAGES)
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
    ({'models/x.py': 'from absl import flags\n'},
     'models/x.py:1: from absl import flags in a module without a command'),
    ({'jobs/x.py': 'def f(FLAGS):\n  return FLAGS.out\n'},
     'jobs/x.py:2: FLAGS in a module without a command'),
    ({'jobs/predict.py': 'from commands import series_flags\n',
      'commands/series_flags.py': ''},
     'jobs/predict.py:1: jobs/ (floor 3) imports commands.series_flags '
     '(floor 4), a higher floor'),
    ({'tools/scenes.py': "flags.DEFINE_string('x', None, 'y')\n"},
     'tools/scenes.py:1: flags.DEFINE_string in a module without a command'),
    ({'datasets/__init__.py': '"""Modules: a, b and c."""\n',
      'datasets/a.py': '', 'datasets/b.py': '', 'datasets/c.py': '',
      'datasets/d.py': ''},
     'datasets/__init__.py: its docstring lists 3 of its 4 modules by hand '
     '(a, b, c)'),
    ({'utils/x.py': "__all__ = ['y']\n"},
     'utils/x.py:1: __all__ is a list kept by hand'),
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
      'tools/prepare.py': ("from absl import flags\nFLAGS = flags.FLAGS\n"
                           "if __name__ == '__main__':\n  cli.run(main)\n"),
      'run.py': 'from jobs import train\nfrom commands import shared\n',
      'commands/shared.py': ("from absl import flags\n"
                             "flags.DEFINE_string('x', None, 'y')\n"
                             "def f(FLAGS):\n  return FLAGS.x\n"),
      'export.py': ("from tools import prepare\n"
                    "flags.DEFINE_string('out', None, 'x')\ncli.run(main)\n"),
      'datasets/__init__.py': '"""The pipeline, and its keys."""\n',
      'datasets/keys.py': '', 'datasets/scan.py': ''})
  assert not violations(str(tmp_path))


def test_the_slowest_first_order_names_test_files():
  """tests/conftest.py's SLOWEST_FIRST names files that exist, once each."""
  from conftest import SLOWEST_FIRST  # pylint: disable=g-import-not-at-top
  assert len(set(SLOWEST_FIRST)) == len(SLOWEST_FIRST)
  for name in SLOWEST_FIRST:
    assert os.path.isfile(os.path.join(ROOT, 'tests', name)), name


def test_every_tool_imports_beside_the_others():
  """No two tools define a flag of one name when imported (tests import
  several into one process; a clash fails whichever comes second)."""
  for name in sorted(os.listdir(os.path.join(ROOT, 'tools'))):
    if name.endswith('.py') and name != '__init__.py':
      importlib.import_module(f'tools.{name[:-3]}')
