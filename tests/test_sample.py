"""jobs/sample.py, datasets/sample_outputs.py and sample.py: outputs, chain,
resume, numbering, job identity."""

import copy
import csv
import glob
import json
import os
import re
import subprocess
import sys

import numpy as np
from PIL import Image
import ml_collections
import pytest
import tensorflow as tf

from datasets import tfrecords
from jobs import checkpoints
from jobs import sample
from datasets import sample_outputs
from jobs import train
from tools import contact_sheet
from utils import colormaps
from utils import distribute

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def save_untrained(config, logdir, step=0):
  """A checkpoint of a randomly initialised model, named for `step`."""
  state = train.TrainState(config, distribute.make_strategy('CPU', 1))
  checkpoints.make_manager(state.checkpoint, state.strategy,
                           str(logdir)).save(checkpoint_number=step)


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
  # Unenhanced PNGs hold the values themselves, read back as the truth.
  config.sample.png_brightness = config.sample.png_contrast = 1.0
  logdir = tmp_path_factory.mktemp('core')
  save_untrained(config, logdir)
  result = sample.sample(config, str(logdir), 'sample_valid')
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
  # As upstream: the truth enlarged twice over, coverage as a palette image.
  assert Image.open(os.path.join(out, '00000_gt.png')).size == (
      h * factor * factor,) * 2
  with Image.open(os.path.join(out, '00000_cov.png')) as cov:
    assert cov.mode == 'P' and cov.size == (h * factor,) * 2
    levels = config.timeline
    assert np.asarray(cov).max() < levels
    np.testing.assert_array_equal(
        np.reshape(cov.getpalette()[:3 * levels], (levels, 3)),
        colormaps.inferno(levels))
  images = records(os.path.join(out, 'gen0.tfrecords'), (h, h, 3))
  assert len(images) == 4 and all(0 <= im.min() <= im.max() < 256
                                  for im in images)
  assert not os.path.exists(os.path.join(out, 'gen0.parts'))
  with open(os.path.join(out, 'gen0.job.json')) as f:
    job = json.load(f)
  assert job['subset'] == 'valid' and job['checkpoint'] == 'model-0'
  assert job['config']['sample']['num_outputs'] == 4


def summary_tags(directory):
  """{tag: number of events} of the TensorBoard files in `directory`."""
  tags = {}
  for path in glob.glob(os.path.join(directory, 'events.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        tags[value.tag] = tags.get(value.tag, 0) + 1
  return tags


def test_sampling_writes_image_summaries(core_run):
  _, logdir, _ = core_run
  tags = summary_tags(os.path.join(logdir, 'sample_valid'))
  for tag in ('truth_gen', 'input_gen', 'output_gen', 'psnr_gen',
              'cloudy_rmse_gen', 'clear_sam_gen', 'all_ssim01_gen'):
    assert tags.get(tag) == 4, tags
  assert tags.get('average_cloudy_psnr01_gen') == 1, tags


def test_metrics_csv_matches_outputs(core_run):
  config, logdir, _ = core_run
  with open(os.path.join(logdir, 'samples_core_valid', 'metrics.csv')) as f:
    rows = list(csv.DictReader(f))
  assert [int(r['output']) for r in rows] == [0, 1, 2, 3]
  assert set(rows[0]) == set(sample.METRIC_FIELDS)
  assert all(0 < float(r['mse']) and -1 <= float(r['ssim']) <= 1
             for r in rows)
  del config


def test_metrics_csv_and_evaluate_score_the_files_written(core_run, tmp_path):
  """The MSE of each output computed here from the files read back (the
  outputs' TFRecord, the truth in its `_gt` PNG) is metrics.csv's `mse`,
  `all_rmse` and `psnr`, and evaluate.py's table holds their means."""
  from evaluation import metrics  # pylint: disable=g-import-not-at-top
  from jobs import evaluate  # pylint: disable=g-import-not-at-top
  config, logdir, _ = core_run
  samples = os.path.join(logdir, 'samples_core_valid')
  h = config.downsample_res
  outputs = np.array(records(os.path.join(samples, 'gen0.tfrecords'),
                             (h, h, 3)), np.float64)
  times = config.sample.upsample_factor ** 2
  truth = np.array([np.asarray(Image.open(
      os.path.join(samples, f'{i:05d}_gt.png')))[::times, ::times]
                    for i in range(len(outputs))], np.float64)
  mse = np.mean((outputs - truth) ** 2, axis=(1, 2, 3))
  assert (mse > 0).all()
  expected = {'mse': mse, 'all_rmse': np.sqrt(mse) / 255,
              'psnr': 10 * np.log10(255 ** 2 / mse)}
  with open(os.path.join(samples, 'metrics.csv')) as f:
    rows = list(csv.DictReader(f))
  for key, values in expected.items():
    np.testing.assert_allclose([float(r[key]) for r in rows], values,
                               rtol=1e-6, err_msg=key)
  evaluate.evaluate(config, 'valid', {'core': samples}, str(tmp_path))
  with open(tmp_path / 'results.csv', newline='') as f:
    table = next(r for r in csv.DictReader(f) if r['method'] == 'core'
                 and r['coverage'] == 'all' and r['pixels'] == 'all')
  headers = {c.key: c.header for c in metrics.COLUMNS}
  for key, values in expected.items():
    assert float(table[headers[key]]) == pytest.approx(np.mean(values),
                                                       rel=1e-6), key


def test_finished_job_is_not_redone(core_run):
  config, logdir, _ = core_run
  again = sample.sample(config, str(logdir), 'sample_valid')
  assert again['outputs'] is None


def test_upsampler_reads_core_tfrecords(core_run, synthetic_data, tmp_path):
  from conftest import tiny_config_at  # pylint: disable=g-import-not-at-top
  core_config, core_logdir, _ = core_run
  config = small_job(tiny_config_at(synthetic_data, 'upsampler_test'))
  config.sample.gen_data_dir = os.path.join(core_logdir, 'samples_core_valid')
  save_untrained(config, tmp_path)
  result = sample.sample(config, str(tmp_path), 'sample_valid')
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
  with open(tmp_path / 'sheets' / 'scores.csv') as f:
    rows = list(csv.DictReader(f))
  assert [r['sheet'] for r in rows] == [os.path.basename(p) for p in sheets]
  gains = [float(r['gain']) for r in rows]
  for r, gain in zip(rows, gains):
    assert gain == pytest.approx(float(r['upsampled_psnr']) - float(
        r['similar-pixel_corrected_mosaic_psnr']), abs=2e-3)
  # Untrained models lose to the classical fill everywhere.
  assert max(gains) < 0
  for name, pick in (('most_gain.png', max), ('most_loss.png', min)):
    best = sheets[gains.index(pick(gains))]
    with open(tmp_path / 'sheets' / name, 'rb') as a, open(best, 'rb') as b:
      assert a.read() == b.read()


def test_core_only_parallel_on_the_test_subset(synthetic_data, tmp_path):
  from conftest import tiny_config_at  # pylint: disable=g-import-not-at-top
  config = small_job(tiny_config_at(synthetic_data, 'cloudtran_core_test'),
                     outputs=2)
  config.sample.only_parallel = True
  save_untrained(config, tmp_path)
  sample.sample(config, str(tmp_path), 'sample_test')
  out = os.path.join(tmp_path, 'samples_core_test_parallel')
  assert '00001_sam.png' in pngs(out)
  assert not os.path.exists(os.path.join(out, 'metrics.csv'))  # test: no truth


def sample_killed_at_batch(monkeypatch, config, logdir, index):
  """Runs a `sample_valid` job killed while committing batch `index`."""
  real_commit = sample.Parts.commit

  def dying_commit(self, batch, outputs, rows):
    if batch == index:
      raise KeyboardInterrupt
    real_commit(self, batch, outputs, rows)

  monkeypatch.setattr(sample.Parts, 'commit', dying_commit)
  with pytest.raises(KeyboardInterrupt):
    sample.sample(config, logdir, 'sample_valid')
  monkeypatch.setattr(sample.Parts, 'commit', real_commit)


def test_killed_job_resumes_with_every_output_once(synthetic_data, tmp_path,
                                                   monkeypatch):
  from conftest import tiny_config_at  # pylint: disable=g-import-not-at-top
  config = small_job(tiny_config_at(synthetic_data, 'upsampler_test'),
                     outputs=5, batch=2)
  save_untrained(config, tmp_path)
  # Killed while finishing the second batch.
  sample_killed_at_batch(monkeypatch, config, str(tmp_path), 1)
  result = sample.sample(config, str(tmp_path), 'sample_valid')
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
  result = sample.sample(config, str(tmp_path), 'sample_valid')
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
    result = sample.sample(config, str(tmp_path), 'sample_valid')
    draws.append(records(os.path.join(result['dir'], f'{name}.tfrecords'),
                         (side, side, 3)))
  np.testing.assert_array_equal(draws[0], draws[1])
  assert not np.array_equal(draws[0], draws[2])


def test_missing_checkpoint_and_bad_sample_keys(synthetic_data, tmp_path):
  from conftest import tiny_config_at  # pylint: disable=g-import-not-at-top
  config = tiny_config_at(synthetic_data, 'upsampler_test')
  with pytest.raises(FileNotFoundError, match='No checkpoint'):
    sample.sample(config, str(tmp_path), 'sample_valid')
  config.sample.mode = 'greedy'
  with pytest.raises(ValueError, match='config.sample.mode'):
    sample.sample(config, str(tmp_path), 'sample_valid')


def test_sample_py_command_line(core_run, synthetic_data, tmp_path):
  config, core_logdir, _ = core_run
  h = config.downsample_res
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', CUDA_VISIBLE_DEVICES='')
  split = 'testset'
  command = [
      sys.executable, os.path.join(ROOT, 'sample.py'),
      f'--config={ROOT}/configs/cloudtran_core_test.py:tiny',
      f'--logdir={core_logdir}', '--mode=sample_test',
      f'--config.data_dir={synthetic_data}/videos_final_{split}',
      f'--config.mask_dir={synthetic_data}/masks_final_{split}',
      f'--config.jsonf={synthetic_data}/{split}.json',
      '--config.sample.num_outputs=2', '--config.sample.batch_size=2',
      '--config.sample.log_dir=cli', '--config.sample.im_outputs=False']
  done = subprocess.run(command, env=env, capture_output=True, text=True,
                        check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  assert 'ETA' in done.stderr
  assert os.path.exists(os.path.join(core_logdir, 'cli', 'gen0.tfrecords'))
  # Twice the outputs in batches of the same size: the same compiled sampler.
  refused = subprocess.run(command + ['--config.sample.num_outputs=4'],
                           env=env, capture_output=True, text=True,
                           check=False)
  assert refused.returncode != 0
  assert 'config.sample.num_outputs was 2, now 4' in refused.stderr
  restarted = subprocess.run(
      command + ['--config.sample.num_outputs=4', '--restart'], env=env,
      capture_output=True, text=True, check=False)
  assert restarted.returncode == 0, restarted.stderr[-3000:]
  assert len(records(os.path.join(core_logdir, 'cli', 'gen0.tfrecords'),
                     (h, h, 3))) == 4


def test_readme_sequence_gives_each_subset_its_own_outputs(core_run,
                                                           synthetic_data,
                                                           tmp_path):
  """sample_valid, then sample_test with the defaults, then the upsampler."""
  from conftest import tiny_config_at  # pylint: disable=g-import-not-at-top
  config, logdir, _ = core_run
  config = copy.deepcopy(config)
  config.sample.num_outputs = 2
  config.sample.im_outputs = False
  result = sample.sample(config, str(logdir), 'sample_test')
  assert result['dir'] == os.path.join(logdir, 'samples_core_test')
  assert result['outputs'] == 2
  job = sample_outputs.read(os.path.join(result['dir'], 'gen0.job.json'))
  assert job['subset'] == 'test'

  up = small_job(tiny_config_at(synthetic_data, 'upsampler_test'), outputs=2)
  up.sample.gen_data_dir = os.path.join(logdir, 'samples_core_valid')
  save_untrained(up, tmp_path)
  with pytest.raises(sample_outputs.JobMismatch,
                     match='outputs of the valid subset but this job '
                     'samples test'):
    sample.sample(up, str(tmp_path), 'sample_test')
  assert not os.path.exists(tmp_path / 'samples_sup_test')
  up.sample.gen_data_dir = result['dir']
  up.sample.im_outputs = False
  done = sample.sample(up, str(tmp_path), 'sample_test')
  assert done['dir'] == os.path.join(tmp_path, 'samples_sup_test')
  job = sample_outputs.read(os.path.join(done['dir'],
                                         'gen0_sup_test.job.json'))
  assert job['inputs'] == [{'file': 'gen0.tfrecords', 'outputs': 2,
                            'subset': 'test', 'checkpoint': 'model-0',
                            'first_output': 0, 'num_samples': 1}]


def upsampler_job(synthetic_data, logdir, outputs=4):
  from conftest import tiny_config_at  # pylint: disable=g-import-not-at-top
  config = small_job(tiny_config_at(synthetic_data, 'upsampler_test'),
                     outputs=outputs)
  save_untrained(config, logdir)
  return config


def test_resumed_job_refuses_a_newer_checkpoint_or_restarts(
    synthetic_data, tmp_path, monkeypatch):
  config = upsampler_job(synthetic_data, tmp_path)
  sample_killed_at_batch(monkeypatch, config, str(tmp_path), 1)
  out = os.path.join(tmp_path, 'samples_sup_valid')
  assert '00001_sam_up.png' in pngs(out)
  save_untrained(config, tmp_path, step=7)
  with pytest.raises(sample_outputs.JobMismatch,
                     match='come from checkpoint model-0, the newest '
                     'checkpoint now is model-7.*--restart'):
    sample.sample(config, str(tmp_path), 'sample_valid')

  config.sample.num_outputs = 2
  result = sample.sample(config, str(tmp_path), 'sample_valid',
                         restart=True)
  assert result['outputs'] == 2
  assert sample_outputs.read(os.path.join(
      out, 'gen0_sup_valid.job.json'))['checkpoint'] == 'model-7'
  # The first job's outputs are gone: no PNG beyond the new job's two.
  assert sorted({f[:5] for f in pngs(out)}) == ['00000', '00001']
  # A complete job is refused the same way.
  save_untrained(config, tmp_path, step=9)
  with pytest.raises(sample_outputs.JobMismatch, match='model-9'):
    sample.sample(config, str(tmp_path), 'sample_valid')


def test_resume_with_another_config_or_unrecorded_outputs_is_refused(
    synthetic_data, tmp_path):
  config = upsampler_job(synthetic_data, tmp_path, outputs=2)
  config.sample.im_outputs = False
  result = sample.sample(config, str(tmp_path), 'sample_valid')
  changed = copy.deepcopy(config)
  changed.sample.seed = 3
  with pytest.raises(sample_outputs.JobMismatch,
                     match='config.sample.seed was 0, now 3'):
    sample.sample(changed, str(tmp_path), 'sample_valid')
  again = sample.sample(config, str(tmp_path), 'sample_valid')
  assert again['outputs'] is None           # the same job: complete
  os.remove(os.path.join(result['dir'], 'gen0_sup_valid.job.json'))
  with pytest.raises(sample_outputs.JobMismatch, match='no gen0_sup_valid.job'):
    sample.sample(config, str(tmp_path), 'sample_valid')
  # Explicit names shared by two subsets: the second job is refused.
  config.sample.log_dir = 'shared'
  config.sample.gen_file = 'gen0'
  sample.sample(config, str(tmp_path), 'sample_valid')
  with pytest.raises(sample_outputs.JobMismatch,
                     match='outputs of the valid subset, this job samples '
                     'test'):
    sample.sample(config, str(tmp_path), 'sample_test')


def test_num_samples_writes_draws_side_by_side_and_numbered(synthetic_data,
                                                            tmp_path):
  config = upsampler_job(synthetic_data, tmp_path, outputs=2)
  config.sample.mode = 'sample'
  one = sample.sample(config, str(tmp_path), 'sample_valid')
  config.sample.num_samples = 3
  config.sample.log_dir = 'three'
  three = sample.sample(config, str(tmp_path), 'sample_valid')
  side = config.resolution[0]
  single = records(os.path.join(one['dir'], 'gen0_sup_valid.tfrecords'),
                   (side, side, 3))
  wide = records(os.path.join(three['dir'], 'gen0_sup_valid.tfrecords'),
                 (side, 3 * side, 3))
  assert len(wide) == 2
  draws = [w[:, k * side:(k + 1) * side] for w in wide for k in range(3)]
  np.testing.assert_array_equal(draws[0], single[0])   # draw 0: same seed
  assert not np.array_equal(draws[0], draws[1])
  names = pngs(three['dir'])
  for name in ('00001_sam_up.png', '00001_sam_1_up.png', '00001_sam_2_up.png'):
    assert name in names
  with open(os.path.join(three['dir'], 'metrics.csv')) as f:
    rows = [(int(r['output']), int(r['draw'])) for r in csv.DictReader(f)]
  assert rows == [(o, k) for o in (0, 1) for k in range(3)]

  # A chained model reads one draw per input.
  from conftest import tiny_config_at  # pylint: disable=g-import-not-at-top
  chained = tiny_config_at(synthetic_data, 'upsampler_test')
  chained.sample.gen_data_dir = three['dir']
  with pytest.raises(sample_outputs.JobMismatch, match='num_samples=1'):
    sample.sample(chained, str(tmp_path), 'sample_valid')


def test_chain_needs_every_output_from_zero(synthetic_data, tmp_path):
  config = upsampler_job(synthetic_data, tmp_path, outputs=2)
  config.sample.im_outputs = False
  config.sample.skip_batches = 1
  config.sample.log_dir = 'late'
  late = sample.sample(config, str(tmp_path), 'sample_valid')
  chained = copy.deepcopy(config)
  chained.sample.skip_batches = 0
  chained.sample.log_dir = 'chained'
  chained.sample.gen_data_dir = late['dir']
  with pytest.raises(sample_outputs.JobMismatch, match='starts at output 2'):
    sample.sample(chained, str(tmp_path), 'sample_valid')


def test_metrics_csv_leaves_out_pixels_without_truth(tmp_path):
  """A pixel cloudy in the truth's own mask (slot 0) is in no split of
  metrics.csv: scores equal those of the same batch without that pixel."""
  config = ml_collections.ConfigDict(
      {'n_channels': 1, 'resolution': (16, 16), 'downsample': False,
       'downsample_res': 16})
  rng = np.random.default_rng(0)
  truth = rng.integers(0, 256, (1, 16, 16, 1))
  output = truth.copy()
  output[0, :4] = 255 - output[0, :4]             # wrong rows, no truth
  output[0, 8:, 8:] += 3                          # wrong, scored
  mask = np.ones((1, 16, 16, 3), np.int32)
  mask[0, :, :, -1] = 0                           # target cloudy everywhere
  known = mask.copy()
  known[0, :4, :, 0] = 0                          # truth cloudy in rows 0-3
  writer = tf.summary.create_noop_writer()

  def rmse(mask_cube):
    batch = {'targets': tf.constant(np.concatenate([truth] * 3, -1)),
             'image': tf.constant(np.concatenate([truth] * 3, -1)),
             'mask': tf.constant(mask_cube), 'tile': tf.constant([0]),
             'coverage': tf.constant([100.])}
    views = sample.Views(batch, config, 16)
    row = sample.score_rows(0, views, output[None], 'x', writer)[0]
    return row[4 + sample.METRIC_KEYS.index('cloudy_rmse')]

  scored = np.sqrt(np.mean(9 * np.ones((8, 8))) * 64 / 192) / 255.
  assert rmse(known) == pytest.approx(scored)
  assert rmse(mask) > 2 * scored
