"""make reproduce-small's stages: what runs, and finished stages skipped
(`make -n`: nothing is executed)."""

import os
import pathlib
import shutil
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
STAGES = ['small-data', 'small-train-core', 'small-train-upsampler',
          'small-sample', 'small-evaluate', 'small-sheets', 'small-curve']
# Stamps in the order the stages make them, at the default 2,000 steps.
STAMPS = ['data', 'train-core-2000', 'train-upsampler-2000'] + [
    f'{stage}-2000-2000' for stage in (
        'sample-valid', 'sample-holdout', 'evaluate-valid', 'evaluate-holdout',
        'sheets', 'curve')]

pytestmark = pytest.mark.skipif(shutil.which('make') is None,
                                reason='needs make')


def dry_run(tmp_path, *targets, steps=()):
  venv = tmp_path / 'venv'
  venv.mkdir(exist_ok=True)
  (venv / 'installed').touch()
  result = subprocess.run(
      ['make', '-n', '--no-print-directory', f'SMALL={tmp_path}/small',
       f'VENV={venv}', *steps, *targets], cwd=ROOT, capture_output=True, text=True,
      check=True)
  return result.stdout


def stamp(tmp_path, names):
  done = tmp_path / 'small' / '.done'
  done.mkdir(parents=True, exist_ok=True)
  now = time.time()
  for i, name in enumerate(names):
    (done / name).touch()
    os.utime(done / name, (now + i, now + i))


def test_a_fresh_run_does_every_stage_on_both_held_out_splits(tmp_path):
  out = dry_run(tmp_path, *STAGES)
  for command in ('-m tools.recipe_dataset', 'run.py', 'sample.py',
                  'evaluate.py', '-m tools.contact_sheet',
                  '-m tools.learning_curve'):
    assert command in out, command
  assert out.count('sample.py') == 6
  assert out.count('evaluate.py') == 2
  assert f'{tmp_path}/small/data/holdout/videos_final_testset' in out
  assert 'configs/cloudtran_core_train.py:small' in out
  assert f'--out {tmp_path}/small/eval_holdout' in out


def test_finished_stages_are_skipped(tmp_path):
  stamp(tmp_path, STAMPS)
  out = dry_run(tmp_path, *STAGES)
  assert 'python' not in out


def test_a_newer_input_redoes_what_reads_it(tmp_path):
  stamp(tmp_path, STAMPS + ['train-upsampler-2000'])   # trained again
  out = dry_run(tmp_path, *STAGES)
  for done in ('tools.recipe_dataset', 'run.py'):
    assert done not in out
  assert out.count('sample.py') == 6
  assert out.count('evaluate.py') == 2
  assert 'learning_curve' in out


def test_more_core_steps_continue_training_and_sample_anew(tmp_path):
  stamp(tmp_path, STAMPS)
  out = dry_run(tmp_path, *STAGES, steps=['SMALL_CORE_STEPS=3000'])
  assert out.count('run.py') == 1
  assert '--config.max_train_steps=3000' in out
  assert out.count('sample.py') == 6
  assert 'samples_core_valid_3000' in out
  assert 'samples_sup_holdout_3000-2000' in out
