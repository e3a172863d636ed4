"""utils/sample_loop.py and sample.py: outputs, chain, resume, numbering."""

import csv
import os
import re
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from datasets import tfrecords
from utils import checkpoints
from utils import contact_sheet
from utils import distribute
from utils import sample_loop
from utils import train_loop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def save_untrained(config, logdir):
  """A step-0 checkpoint of a randomly initialised model."""
  state = train_loop.TrainState(config, distribute.make_strategy('CPU', 1))
  checkpoints.make_manager(state.checkpoint, state.strategy,
                           str(logdir)).save(checkpoint_number=0)


def small_job(config, outputs=4, batch=2):
  config.sample.num_outputs = outputs
  config.sample.batch_size = batch
  return config


def pngs(directory):
  return sorted(f for f in os.listdir(directory) if f.endswith('.png'))


def records(path, shape):
  return [r.numpy() for r in tfrecords.read_images(path, shape)]


@pytest.fixture(scope='module')
def core_run(synthetic_data, tmp_path_factory):
  """A core checkpoint and its sample_valid job: (config, logdir, result)."""
  from conftest import tiny_config_at  # pylint: disable=g-import-not-at-top
  config = small_job(tiny_config_at(synthetic_data, 'cloudtran_core_test'))
  logdir = tmp_path_factory.mktemp('core')
  save_untrained(config, logdir)
  result = sample_loop.sample(config, str(logdir), 'sample_valid')
  return config, logdir, result


def test_core_outputs_have_documented_names_and_shapes(core_run):
  config, logdir, result = core_run
  out = os.path.join(logdir, 'samples_core_valid')
  assert result['dir'] == out and result['outputs'] == 4
  expected = [f'{i:05d}_{k}.png' for i in range(4)
              for k in ('cov', 'gen', 'gt', 'tar', 'unm')]
  assert pngs(out) == sorted(expected)
  factor = config.sample.upsample_factor
  h = config.downsample_res
  with tf.io.gfile.GFile(os.path.join(out, '00000_gen.png'), 'rb') as f:
    png = tf.io.decode_png(f.read()).numpy()
  assert png.shape == (h * factor, h * factor, 3)
  images = records(os.path.join(out, 'gen0.tfrecords'), (h, h, 3))
  assert len(images) == 4 and all(0 <= im.min() <= im.max() < 256
                                  for im in images)
  assert not os.path.exists(os.path.join(out, 'gen0.parts'))


def test_metrics_csv_matches_outputs(core_run):
  config, logdir, _ = core_run
  with open(os.path.join(logdir, 'samples_core_valid', 'metrics.csv')) as f:
    rows = list(csv.DictReader(f))
  assert [int(r['output']) for r in rows] == [0, 1, 2, 3]
  assert set(rows[0]) == set(sample_loop.METRIC_FIELDS)
  assert all(0 < float(r['mse']) and -1 <= float(r['ssim']) <= 1
             for r in rows)
  del config


def test_finished_job_is_not_redone(core_run):
  config, logdir, _ = core_run
  again = sample_loop.sample(config, str(logdir), 'sample_valid')
  assert again['outputs'] is None


def test_upsampler_reads_core_tfrecords(core_run, synthetic_data, tmp_path):
  from conftest import tiny_config_at  # pylint: disable=g-import-not-at-top
  core_config, core_logdir, _ = core_run
  config = small_job(tiny_config_at(synthetic_data, 'upsampler_test'))
  config.sample.gen_data_dir = os.path.join(core_logdir, 'samples_core_valid')
  save_untrained(config, tmp_path)
  result = sample_loop.sample(config, str(tmp_path), 'sample_valid')
  assert result['outputs'] == 4
  out = os.path.join(tmp_path, 'samples_sup_valid')
  assert '00003_sam_up.png' in pngs(out)
  side = config.resolution[0]
  assert records(os.path.join(out, 'gen0_sup_valid.tfrecords'),
                 (side, side, 3))[0].shape == (side, side, 3)

  sheets = contact_sheet.make_sheets(
      config, os.path.join(core_logdir, 'samples_core_valid'), out,
      str(tmp_path / 'sheets'))
  assert [os.path.basename(p) for p in sheets] == [
      f'{i:05d}_sheet.png' for i in range(4)]
  width, height = Image.open(sheets[0]).size
  panel = side * max(1, -(-contact_sheet.MIN_PANEL // side))
  assert width > (core_config.timeline - 1) * panel and height > 3 * panel


def test_core_only_parallel_on_the_test_subset(synthetic_data, tmp_path):
  from conftest import tiny_config_at  # pylint: disable=g-import-not-at-top
  config = small_job(tiny_config_at(synthetic_data, 'cloudtran_core_test'),
                     outputs=2)
  config.sample.only_parallel = True
  save_untrained(config, tmp_path)
  sample_loop.sample(config, str(tmp_path), 'sample_test')
  out = os.path.join(tmp_path, 'samples_core_valid_parallel')
  assert '00001_sam.png' in pngs(out)
  assert not os.path.exists(os.path.join(out, 'metrics.csv'))  # test: no truth


def test_killed_job_resumes_with_every_output_once(synthetic_data, tmp_path,
                                                   monkeypatch):
  from conftest import tiny_config_at  # pylint: disable=g-import-not-at-top
  config = small_job(tiny_config_at(synthetic_data, 'upsampler_test'),
                     outputs=5, batch=2)
  save_untrained(config, tmp_path)
  calls = {'n': 0}
  real_commit = sample_loop.Parts.commit

  def dying_commit(self, index, outputs, rows):
    calls['n'] += 1
    if calls['n'] == 2:  # killed while finishing the second batch
      raise KeyboardInterrupt
    real_commit(self, index, outputs, rows)

  monkeypatch.setattr(sample_loop.Parts, 'commit', dying_commit)
  with pytest.raises(KeyboardInterrupt):
    sample_loop.sample(config, str(tmp_path), 'sample_valid')
  monkeypatch.setattr(sample_loop.Parts, 'commit', real_commit)
  result = sample_loop.sample(config, str(tmp_path), 'sample_valid')
  out = result['dir']
  side = config.resolution[0]
  assert len(records(os.path.join(out, 'gen0_sup_valid.tfrecords'),
                     (side, side, 3))) == 5
  with open(os.path.join(out, 'metrics.csv')) as f:
    assert [int(r['output']) for r in csv.DictReader(f)] == [0, 1, 2, 3, 4]
  indices = sorted({int(re.match(r'(\d+)_', f).group(1)) for f in pngs(out)})
  assert indices == [0, 1, 2, 3, 4]


def test_skip_batches_numbers_outputs_globally(synthetic_data, tmp_path):
  from conftest import tiny_config_at  # pylint: disable=g-import-not-at-top
  config = small_job(tiny_config_at(synthetic_data, 'upsampler_test'),
                     outputs=2, batch=2)
  config.sample.skip_batches = 1
  save_untrained(config, tmp_path)
  result = sample_loop.sample(config, str(tmp_path), 'sample_valid')
  with open(os.path.join(result['dir'], 'metrics.csv')) as f:
    assert [int(r['output']) for r in csv.DictReader(f)] == [2, 3]
  assert '00002_sam_up.png' in pngs(result['dir'])


def test_sample_mode_is_seeded(synthetic_data, tmp_path):
  from conftest import tiny_config_at  # pylint: disable=g-import-not-at-top
  config = small_job(tiny_config_at(synthetic_data, 'upsampler_test'),
                     outputs=2)
  config.sample.mode = 'sample'
  config.sample.im_outputs = False
  save_untrained(config, tmp_path)
  side = config.resolution[0]
  draws = []
  for seed, name in ((0, 'a'), (0, 'b'), (1, 'c')):
    config.sample.seed = seed
    config.sample.gen_file = name
    result = sample_loop.sample(config, str(tmp_path), 'sample_valid')
    draws.append(records(os.path.join(result['dir'], f'{name}.tfrecords'),
                         (side, side, 3)))
  np.testing.assert_array_equal(draws[0], draws[1])
  assert not np.array_equal(draws[0], draws[2])


def test_missing_checkpoint_and_bad_sample_keys(synthetic_data, tmp_path):
  from conftest import tiny_config_at  # pylint: disable=g-import-not-at-top
  config = tiny_config_at(synthetic_data, 'upsampler_test')
  with pytest.raises(FileNotFoundError, match='No checkpoint'):
    sample_loop.sample(config, str(tmp_path), 'sample_valid')
  config.sample.mode = 'greedy'
  with pytest.raises(ValueError, match='config.sample.mode'):
    sample_loop.sample(config, str(tmp_path), 'sample_valid')


def test_sample_py_command_line(core_run, synthetic_data, tmp_path):
  _, core_logdir, _ = core_run
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', CUDA_VISIBLE_DEVICES='')
  split = 'testset'
  done = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'sample.py'),
       f'--config={ROOT}/configs/cloudtran_core_test.py:tiny',
       f'--logdir={core_logdir}', '--mode=sample_test',
       f'--config.data_dir={synthetic_data}/videos_final_{split}',
       f'--config.mask_dir={synthetic_data}/masks_final_{split}',
       f'--config.jsonf={synthetic_data}/{split}.json',
       '--config.sample.num_outputs=2', '--config.sample.batch_size=2',
       '--config.sample.log_dir=cli', '--config.sample.im_outputs=False'],
      env=env, capture_output=True, text=True, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  assert 'ETA' in done.stderr
  assert os.path.exists(os.path.join(core_logdir, 'cli', 'gen0.tfrecords'))
