"""make reproduce-small's stages: what runs on which data, and finished
stages skipped (`make -n`: nothing is executed; its commands are parsed)."""

import os
import pathlib
import re
import shlex
import shutil
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
STAGES = ['small-data', 'small-train-core', 'small-train-upsampler',
          'small-sample', 'small-evaluate', 'small-sheets', 'small-curve']
# The Makefile's default training steps (SMALL_CORE_STEPS, SMALL_UP_STEPS).
CORE, UP = '300', '1000'
# Stamps in the order the stages make them, at the default steps.
STAMPS = ['data', f'train-core-{CORE}', f'train-upsampler-{UP}'] + [
    f'{stage}-{CORE}-{UP}' for stage in (
        'sample-valid', 'sample-holdout', 'evaluate-valid', 'evaluate-holdout',
        'sheets', 'curve')]
# The banners of the nine stages, by number.
BANNERS = {1: 'benchmark dataset', 2: 'train core to step',
           3: 'train upsampler to step', 4: 'sample the valid split',
           5: 'sample the holdout split', 6: 'results of the valid split',
           7: 'results of the holdout split',
           8: 'contact sheets of the holdout split',
           9: 'learning curves on the valid split'}

pytestmark = pytest.mark.skipif(shutil.which('make') is None,
                                reason='needs make')


def dry_run(tmp_path, *targets, steps=()):
  """{stage number (an extra stage: its banner): [(program, {flag:
  [values]}, [positional])]} of the Python commands `make -n` prints, stage
  by stage."""
  venv = tmp_path / 'venv'
  venv.mkdir(exist_ok=True)
  (venv / 'installed').touch()
  result = subprocess.run(
      ['make', '-n', '--no-print-directory', f'SMALL={tmp_path}/small',
       f'VENV={venv}', *steps, *targets], cwd=ROOT, capture_output=True,
      text=True, check=True)
  stages, stage = {}, None
  for line in result.stdout.replace('\\\n', ' ').splitlines():
    banner = re.search(r'==> reproduce-small \[(?:(\d)/9|extra) ([^]]*)\]',
                       line)
    if banner and banner.group(1):
      stage = int(banner.group(1))
      assert banner.group(2).startswith(BANNERS[stage]), line
      stages[stage] = []
    elif banner:    # an extra stage, by its banner
      stage = banner.group(2)
      stages[stage] = []
    elif line.startswith(f'{venv}/bin/python '):
      stages[stage].append(parse(shlex.split(line)[1:]))
  return stages


def parse(argv):
  """(program, {flag: [values]}, [positional]) of `python <argv>`."""
  program, rest = ((argv[1], argv[2:]) if argv[0] == '-m'
                   else (argv[0], argv[1:]))
  flags, positional, i = {}, [], 0
  while i < len(rest):
    word = rest[i]
    if word.startswith('--'):
      name, equals, value = word[2:].partition('=')
      if not equals and i + 1 < len(rest) and not rest[i + 1].startswith('-'):
        i, value = i + 1, rest[i + 1]
      flags.setdefault(name, []).append(value if equals or value else True)
    else:
      positional.append(word)
    i += 1
  return program, flags, positional


def flag(flags, name):
  (value,) = flags[name]
  return value


def split_data(tmp_path, split, prefix='config'):
  """The data flags of a split of the benchmark dataset, as written by
  hand: train and valid from its root, holdout from holdout/."""
  root, name = {'train': ('data', 'trainset'), 'valid': ('data', 'testset'),
                'holdout': ('data/holdout', 'testset')}[split]
  root = f'{tmp_path}/small/{root}'
  return {f'{prefix}.data_dir': f'{root}/videos_final_{name}',
          f'{prefix}.mask_dir': f'{root}/masks_final_{name}',
          f'{prefix}.jsonf': f'{root}/{name}.json'}


def data_of(flags, prefix='config'):
  return {k: flag(flags, k) for k in (f'{prefix}.data_dir',
                                      f'{prefix}.mask_dir', f'{prefix}.jsonf')}


def samples_dir(flags):
  """Where a sample.py command writes: its logdir's log_dir, with
  `_parallel` for the parallel head."""
  out = os.path.join(flag(flags, 'logdir'),
                     flag(flags, 'config.sample.log_dir'))
  parallel = flags.get('config.sample.only_parallel', ['False'])[0]
  return out + '_parallel' if parallel == 'True' else out


def sampled(stages, stage):
  """{sample directory: its sample.py flags} of one sampling stage."""
  jobs = {}
  for program, flags, _ in stages[stage]:
    assert program == 'sample.py'
    jobs[samples_dir(flags)] = flags
  return jobs


def check_held_out_wiring(tmp_path, stages, steps=CORE):
  """Each held-out split is sampled from its own data (core parallel, core
  autoregressive, the upsampler on the latter) and scored against the
  same data; the contact sheets show the holdout, the curves the valid."""
  core, up = f'{tmp_path}/small/core', f'{tmp_path}/small/upsampler'
  for split, sample_stage, evaluate_stage in (('valid', 4, 6),
                                              ('holdout', 5, 7)):
    data = split_data(tmp_path, split)
    jobs = sampled(stages, sample_stage)
    core_dir = f'{core}/samples_core_{split}_{steps}'
    up_dir = f'{up}/samples_sup_{split}_{steps}-{UP}'
    assert sorted(jobs) == sorted([core_dir, core_dir + '_parallel', up_dir])
    for out, flags in jobs.items():
      assert data_of(flags) == data, (split, out)
      assert flag(flags, 'mode') == 'sample_valid'
    chained = {out: flags.get('config.sample.gen_data_dir')
               for out, flags in jobs.items()}
    assert chained == {core_dir: None, core_dir + '_parallel': None,
                       up_dir: [core_dir]}
    ((program, flags, _),) = stages[evaluate_stage]
    assert program == 'evaluate.py'
    assert data_of(flags) == data, split
    assert flag(flags, 'out') == f'{tmp_path}/small/eval_{split}'
    scored = [s.split('=', 1)[1] for s in flags['samples']]
    assert sorted(scored) == sorted(jobs), split
  ((program, flags, _),) = stages[8]
  assert program == 'tools.contact_sheet'
  assert data_of(flags) == split_data(tmp_path, 'holdout')
  assert flag(flags, 'core') == f'{core}/samples_core_holdout_{steps}'
  assert flag(flags, 'upsampled') == f'{up}/samples_sup_holdout_{steps}-{UP}'
  ((program, flags, _),) = stages[9]
  assert program == 'tools.learning_curve'
  for run, logdir in (('core', core), ('upsampler', up)):
    assert data_of(flags, f'{run}_config') == split_data(
        tmp_path, 'valid', f'{run}_config')
    assert flag(flags, f'{run}_logdir') == logdir


def test_a_fresh_run_does_every_stage_on_the_right_data(tmp_path):
  stages = dry_run(tmp_path, *STAGES)
  assert sorted(stages) == list(range(1, 10))
  ((maker, _, positional),) = stages[1]
  assert maker.startswith('tools.') and positional == [
      f'{tmp_path}/small/data']
  train = split_data(tmp_path, 'train')
  for stage, (config, logdir, steps) in (
      (2, ('cloudtran_core_train', 'core', CORE)),
      (3, ('upsampler_train', 'upsampler', UP))):
    ((program, flags, _),) = stages[stage]
    assert program == 'run.py' and flag(flags, 'mode') == 'train'
    assert flag(flags, 'config') == f'configs/{config}.py:small'
    assert flag(flags, 'logdir') == f'{tmp_path}/small/{logdir}'
    assert data_of(flags) == train
    assert flag(flags, 'config.max_train_steps') == steps
  assert split_data(tmp_path, 'valid') != split_data(tmp_path, 'holdout')
  check_held_out_wiring(tmp_path, stages)


def test_finished_stages_are_skipped(tmp_path):
  stamp(tmp_path, STAMPS)
  assert not dry_run(tmp_path, *STAGES)


def stamp(tmp_path, names):
  done = tmp_path / 'small' / '.done'
  done.mkdir(parents=True, exist_ok=True)
  now = time.time()
  for i, name in enumerate(names):
    (done / name).touch()
    os.utime(done / name, (now + i, now + i))


def test_a_newer_input_redoes_what_reads_it(tmp_path):
  stamp(tmp_path, STAMPS + [f'train-upsampler-{UP}'])   # trained again
  stages = dry_run(tmp_path, *STAGES)
  assert sorted(stages) == [4, 5, 6, 7, 8, 9]
  check_held_out_wiring(tmp_path, stages)


def test_more_core_steps_continue_training_and_sample_anew(tmp_path):
  stamp(tmp_path, STAMPS)
  stages = dry_run(tmp_path, *STAGES, steps=['SMALL_CORE_STEPS=3000'])
  assert sorted(stages) == [2, 4, 5, 6, 7, 8, 9]
  ((program, flags, _),) = stages[2]
  assert program == 'run.py'
  assert flag(flags, 'logdir') == f'{tmp_path}/small/core'   # resumed
  assert flag(flags, 'config.max_train_steps') == '3000'
  check_held_out_wiring(tmp_path, stages, steps='3000')


def test_the_version_1_holdout_is_its_own_data_scored_by_the_same_models(
    tmp_path):
  stamp(tmp_path, STAMPS)
  stages = dry_run(tmp_path, 'small-holdout-v1')
  assert sorted(stages) == ['benchmark dataset version 1',
                            'results of the holdout_v1 split',
                            'sample the holdout_v1 split']
  ((maker, flags, positional),) = stages['benchmark dataset version 1']
  root = f'{tmp_path}/small/data_v1'
  assert maker == 'tools.recipe_dataset' and positional == [root]
  assert flag(flags, 'version') == '1' and flag(flags, 'seed') == '1'
  data = {key: value.replace(f'{tmp_path}/small/data/', f'{root}/')
          for key, value in split_data(tmp_path, 'holdout').items()}
  jobs = sampled(stages, 'sample the holdout_v1 split')
  core = f'{tmp_path}/small/core/samples_core_holdout_v1_{CORE}'
  assert sorted(jobs) == sorted(
      [core, core + '_parallel',
       f'{tmp_path}/small/upsampler/samples_sup_holdout_v1_{CORE}-{UP}'])
  for out, job in jobs.items():
    assert data_of(job) == data, out
    assert flag(job, 'logdir') in (f'{tmp_path}/small/core',
                                   f'{tmp_path}/small/upsampler')
  ((program, flags, _),) = stages['results of the holdout_v1 split']
  assert program == 'evaluate.py' and data_of(flags) == data
  assert sorted(s.split('=', 1)[1] for s in flags['samples']) == sorted(jobs)
