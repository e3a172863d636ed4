"""Tests of predict.py and jobs/predict.py on GeoTIFFs written here.

Most tests use stand-in predictors (a constant, or the target itself) so
blending, sharding, resuming and the kept pixels can be checked exactly;
one test runs predict.py with real tiny models.
"""

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import ml_collections
import numpy as np
import pytest
import rasterio
import rasterio.warp
from rasterio.transform import from_origin

from bench import predict as bench_predict
from datasets import pipeline
from jobs import predict
from jobs import predict_models
from jobs import predict_workdir
from rasters import geotiff
from rasters import radiometry
from rasters import reader
from tools import synthetic_geotiff
from utils import runlock
from utils.errors import DataError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TILE, OVERLAP, TIMELINE = 32, 8, 4
CONSTANT = 77
CRS = 'EPSG:32632'
TRANSFORM = from_origin(600000.0, 5100000.0, 10.0, 10.0)


def constant(rgb, clear):
  del clear
  return np.full(rgb.shape[:1] + rgb.shape[2:], CONSTANT, np.uint8)


def echo_target(rgb, clear):
  """A position-dependent stand-in: the target date itself, mirrored."""
  del clear
  return rgb[:, -1, :, ::-1].copy()


class Failing:
  """Runs `predictor` for `calls` batches, then fails like a killed job."""

  def __init__(self, predictor, calls):
    self.predictor, self.calls = predictor, calls

  def __call__(self, rgb, clear):
    if self.calls == 0:
      raise KeyboardInterrupt('killed')
    self.calls -= 1
    return self.predictor(rgb, clear)


@pytest.fixture(scope='module')
def scene(tmp_path_factory):
  """A 4-date synthetic scene, 70x50 px (6 tiles), uint16, SCL at 20 m."""
  out = str(tmp_path_factory.mktemp('scene'))
  synthetic_geotiff.write_scene(out, width=70, height=50, dates=4, seed=1)
  return out


def open_scene(root, **kwargs):
  return reader.open_series(os.path.join(root, 'images', '*.tif'),
                            scl=os.path.join(root, 'scl', '*.tif'), **kwargs)


def options(**kwargs):
  return predict.Options(**{'tile_size': TILE, 'timeline': TIMELINE,
                            'overlap': OVERLAP, **kwargs})


def run(root, out, predictor=constant, **kwargs):
  with open_scene(root) as series:
    return predict.predict(series, predictor, str(out), options(**kwargs))


def digest(path):
  with open(path, 'rb') as f:
    return hashlib.sha256(f.read()).hexdigest()


def read(path):
  with rasterio.open(path) as src:
    return src.read(), src.profile


def test_output_grid_dtype_and_kept_pixels(scene, tmp_path):
  names = run(scene, tmp_path / 'out.tif')
  image, profile = read(names['image'])
  fill = read(names['fill'])[0][0]
  with open_scene(scene) as series:
    grid = series.grid
    rgb, cloudy, _ = series.read(grid.window)
    target = series.target_index
  assert profile['crs'] == grid.crs and profile['transform'] == grid.transform
  assert (profile['height'], profile['width']) == (50, 70)
  assert profile['dtype'] == 'uint8' and profile['count'] == 3
  assert profile['tiled'] and profile['compress'] == 'deflate'
  with rasterio.open(names['image']) as src:
    assert src.tags(ns='IMAGE_STRUCTURE')['LAYOUT'] == 'COG'
  image = image.transpose(1, 2, 0)
  clear = ~cloudy[target]
  assert 0 < clear.sum() < clear.size
  np.testing.assert_array_equal(image[clear], rgb[target][clear])
  assert (image[~clear] == CONSTANT).all()
  np.testing.assert_array_equal(fill == geotiff.FILL_KEPT, clear)
  no_clear_date = ~(~cloudy[1:]).any(axis=0)
  np.testing.assert_array_equal(fill == geotiff.FILL_NO_CLEAR,
                                no_clear_date & ~clear)
  assert not os.path.exists(predict_workdir.work_dir(names['image']))
  assert read(names['image'])[0].shape == (3, 50, 70)


def test_reflectance_output_keeps_clear_digital_numbers(scene, tmp_path):
  names = run(scene, tmp_path / 'out.tif', output_reflectance=True)
  image, profile = read(names['image'])
  with open_scene(scene) as series:
    values = series.read_reflectance(series.grid.window)
    cloudy = series.read(series.grid.window)[1][series.target_index]
    offset = series.offsets[series.target_index]
  assert profile['dtype'] == 'uint16'
  image = image.transpose(1, 2, 0)
  np.testing.assert_array_equal(image[~cloudy], values[~cloudy])
  assert (image[cloudy] == radiometry.from_uint8(CONSTANT, offset)).all()


def test_constant_model_blends_exactly_each_pixel_written_once(
    scene, tmp_path, monkeypatch):
  monkeypatch.setattr(geotiff, 'BLOCK', 16)
  windows = []
  write = geotiff.Writer.write

  def recording(self, window, *args):
    windows.append(window)
    return write(self, window, *args)

  monkeypatch.setattr(geotiff.Writer, 'write', recording)
  names = run(scene, tmp_path / 'out.tif', replace_all=True)
  assert (read(names['image'])[0] == CONSTANT).all()
  written = np.zeros((50, 70), int)
  for top, left, height, width in windows:
    written[top:top + height, left:left + width] += 1
  assert (written == 1).all() and len(windows) == 4 * 5


def test_shards_together_equal_one_run(scene, tmp_path):
  whole = run(scene, tmp_path / 'whole.tif', echo_target)
  assert run(scene, tmp_path / 'sharded.tif', echo_target,
             shard=(1, 3)) is None
  assert run(scene, tmp_path / 'sharded.tif', echo_target,
             shard=(0, 3)) is None
  with pytest.raises(DataError, match='not done yet'):
    run(scene, tmp_path / 'sharded.tif', echo_target, merge=True)
  sharded = run(scene, tmp_path / 'sharded.tif', echo_target, shard=(2, 3))
  for key in ('image', 'fill', 'quicklook'):
    assert digest(whole[key]) == digest(sharded[key])


def test_a_shard_leaves_a_running_assembly_alone(scene, tmp_path):
  out = str(tmp_path / 'out.tif')
  assert run(scene, out, shard=(1, 2)) is None
  with runlock.hold(predict_workdir.work_dir(out), 'predict', 'assemble'):
    assert run(scene, out, shard=(0, 2)) is None
    assert not os.path.exists(out)
    with pytest.raises(runlock.LockHeld, match='in use by another predict'):
      run(scene, out, merge=True)
  assert run(scene, out, merge=True)['image'] == out
  assert os.path.exists(out)


def dead_pid():
  """The pid of a process that has exited."""
  proc = subprocess.Popen(['true'])
  proc.wait()
  return proc.pid


def test_killed_run_resumes_to_the_same_bytes(scene, tmp_path):
  clean = run(scene, tmp_path / 'clean.tif', echo_target, batch_size=2)
  out = tmp_path / 'killed.tif'
  with pytest.raises(KeyboardInterrupt):
    run(scene, out, Failing(echo_target, 1), batch_size=2)
  work = predict_workdir.work_dir(str(out))
  assert sorted(os.listdir(work)) == [
      'manifest.json', 'tile_000000.npz', 'tile_000001.npz']
  # A killed job leaves its lock behind: it names a process that is gone.
  with open(os.path.join(work, 'shard_0_of_1.lock'), 'w') as f:
    json.dump({'host': socket.gethostname(), 'pid': dead_pid()}, f)
  counted = Failing(echo_target, 2)
  resumed = run(scene, out, counted, batch_size=2)
  assert counted.calls == 0  # the 4 tiles left took exactly 2 batches
  for key in ('image', 'fill', 'quicklook'):
    assert digest(clean[key]) == digest(resumed[key])


def test_work_directory_of_other_settings_is_refused(scene, tmp_path):
  out = tmp_path / 'out.tif'
  with pytest.raises(KeyboardInterrupt):
    run(scene, out, Failing(constant, 0))
  with open_scene(scene) as series:
    with pytest.raises(DataError, match='overlap'):
      predict.predict(series, constant, str(out), options(overlap=4))


def test_a_live_lock_refuses_a_second_writer(tmp_path):
  work = predict_workdir.WorkDir(str(tmp_path / 'out.tif'), {'x': 1})
  with work.lock('shard_0_of_1'):
    with pytest.raises(runlock.LockHeld,
                       match=r'in use by another predict job \(pid'):
      with work.lock('shard_0_of_1'):
        pass


def small_scene(root, cloudy_target, kind, dates=4, crs=CRS, earlier=None):
  """3-band uint8 dates 2024-07-0d on a 40x36 grid; the target (last) date
  is cloudy where `cloudy_target`; mask rasters of `kind`."""
  rng = np.random.default_rng(0)
  height, width = cloudy_target.shape
  for d in range(1, dates + 1):
    name = f'2024-07-{d:02d}'
    image = rng.integers(1, 255, (3, height, width), dtype=np.uint8)
    cloud = cloudy_target if d == dates else np.zeros_like(cloudy_target)
    if kind == 'scl':
      mask = np.where(cloud, 9, 4).astype(np.uint8)
    else:
      mask = np.where(cloud, 80, 10).astype(np.uint8)
    transform = TRANSFORM
    date_crs = crs if d < dates else CRS
    if earlier and d == 1:
      date_crs, transform = earlier
    for sub, values in (('images', image), (kind, mask)):
      synthetic_geotiff.write_geotiff(
          os.path.join(root, sub, f'{name}.tif'), values, transform,
          date_crs)


@pytest.mark.parametrize('kind', ['scl', 'cloud_prob'])
def test_scl_and_probability_masks_choose_the_filled_pixels(kind, tmp_path):
  cloudy = np.zeros((36, 40), bool)
  cloudy[5:20, 8:30] = True
  small_scene(str(tmp_path), cloudy, kind)
  with reader.open_series(str(tmp_path / 'images' / '*.tif'),
                          **{kind: str(tmp_path / kind / '*.tif')},
                          cloud_threshold=40) as series:
    names = predict.predict(series, constant, str(tmp_path / 'o.tif'),
                            options())
  fill = read(names['fill'])[0][0]
  np.testing.assert_array_equal(fill == geotiff.FILL_MODEL, cloudy)
  image = read(names['image'])[0].transpose(1, 2, 0)
  assert (image[cloudy] == CONSTANT).all()


def test_a_date_in_another_crs_is_warped_to_the_target_grid(tmp_path):
  cloudy = np.zeros((36, 40), bool)
  cloudy[10:20, 10:20] = True
  xs, ys = rasterio.warp.transform(CRS, 'EPSG:32633', [TRANSFORM.c],
                                   [TRANSFORM.f])
  other = ('EPSG:32633', from_origin(xs[0] - 50, ys[0] + 50, 10.0, 10.0))
  small_scene(str(tmp_path), cloudy, 'scl', earlier=other)
  with reader.open_series(str(tmp_path / 'images' / '*.tif'),
                          scl=str(tmp_path / 'scl' / '*.tif')) as series:
    assert series.grid.crs == rasterio.crs.CRS.from_string(CRS)
    names = predict.predict(series, constant, str(tmp_path / 'o.tif'),
                            options())
  _, profile = read(names['image'])
  assert profile['crs'] == rasterio.crs.CRS.from_string(CRS)
  assert profile['transform'] == TRANSFORM
  assert (profile['height'], profile['width']) == (36, 40)


def dates_of(root):
  """The scene's dates, 'YYYY-MM-DD', in order."""
  return sorted(name[:10] for name in os.listdir(os.path.join(root, 'images')))


def test_too_few_dates_before_the_target(scene):
  second = dates_of(scene)[1]
  with open_scene(scene, target=second) as series:
    with pytest.raises(DataError, match=f'1 date.* before {second}'):
      predict.slot_dates(series, TIMELINE)


def test_model_batch_slots_masks_and_low_resolution():
  rgb = np.zeros((1, 3, 32, 32, 3), np.uint8)
  for t in range(3):
    rgb[:, t] = 10 * (t + 1)
  clear = np.ones((1, 3, 32, 32), bool)
  clear[:, 2, :16] = False
  batch = predict_models.model_batch(rgb, clear, ml_collections.ConfigDict(
      dict(downsample_res=16, context_correction='none',
           classical_prior=False)))
  targets = batch['targets'].numpy().reshape(1, 32, 32, 4, 3)
  # slot 0 and T-1 = the target (masked to 40), slots 1..2 the dates.
  assert (targets[0, 20, :, :, 0] == [30, 10, 20, 30]).all()
  assert (targets[0, 0, :, [0, 3], :] == 40).all()
  assert batch['targets_16'].shape == (1, 16, 16, 12)
  np.testing.assert_array_equal(batch['mask'].numpy()[0, 0, 0], [0, 1, 1, 0])


@pytest.mark.parametrize('correction,prior,model', [
    ('none', False, 'cloudtran_core_test'), ('local', 'local', 'cloudtran_core_test'),
    ('local', 'similar', 'upsampler_test')])
def test_model_batch_equals_the_data_pipeline(tiny_config, correction, prior,
                                              model):
  config = tiny_config(model)
  config.context_correction = correction
  config.classical_prior = bool(prior)
  config.prior_fill = prior or 'local'
  batch = next(iter(pipeline.get_dataset(config, 2, 'test')))
  size, c = config.downsample_res, config.n_channels
  image = batch['image'].numpy()
  shape = image.shape[:3] + (config.timeline, c)
  rgb = np.moveaxis(image.reshape(shape)[..., 1:, :], 3, 1).astype(np.uint8)
  clear = np.moveaxis(batch['mask'].numpy()[..., 1:], 3, 1).astype(bool)
  core = tiny_config('cloudtran_core_test')
  core.context_correction = correction
  if model == 'upsampler_test':
    ours = predict_models.model_batch(rgb, clear, core, config)
    prior_key = 'prior'
  else:
    ours = predict_models.model_batch(rgb, clear, config)
    prior_key = f'prior_{size}'
  for key in ('targets', f'targets_{size}', f'targets_{size}_up_back', 'mask',
              f'mask_{size}') + ((prior_key,) if prior else ()):
    np.testing.assert_array_equal(ours[key].numpy(), batch[key].numpy(),
                                  err_msg=key)


def predict_cli(*args):
  return subprocess.run(
      [sys.executable, os.path.join(ROOT, 'predict.py'), *args],
      cwd=ROOT, capture_output=True, text=True, timeout=600,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))


@pytest.fixture(scope='module')
def tiny_models(tmp_path_factory):
  """(core, upsampler) run directories of the tiny configs, random weights."""
  return bench_predict.save_random_models(str(tmp_path_factory.mktemp('m')),
                                         'tiny')


def predict_py_flags(scene, tiny_models):
  """The models' configs from the runs' config.yaml, the overlap from the
  tile size (32 px: 4); one tile per batch, so a kill can fall between
  tiles."""
  core, upsampler = tiny_models
  return [f'--core_logdir={core}', f'--upsampler_logdir={upsampler}',
          f'--inputs={scene}/images/*.tif', f'--scl={scene}/scl/*.tif',
          '--batch_size=1']


@pytest.fixture(scope='module')
def predicted(scene, tiny_models, tmp_path_factory):
  """predict.py run once with the tiny models: (its result, the --out)."""
  out = str(tmp_path_factory.mktemp('predicted') / 'clear.tif')
  flags = predict_py_flags(scene, tiny_models)
  return predict_cli(*flags, f'--out={out}'), out


def test_predict_py_with_tiny_models(scene, predicted):
  done, out = predicted
  assert done.returncode == 0, done.stderr[-2000:]
  assert 'tiles [' in done.stderr and '/s ETA' in done.stderr
  assert ' tiles of 32 px (overlap 4)' in done.stderr
  image, profile = read(out)
  with open_scene(scene) as series:
    assert profile['crs'] == series.grid.crs
    assert profile['transform'] == series.grid.transform
    rgb, cloudy, _ = series.read(series.grid.window)
  assert image.shape == (3, 50, 70) and image.dtype == np.uint8
  clear = ~cloudy[-1]
  np.testing.assert_array_equal(image.transpose(1, 2, 0)[clear],
                                rgb[-1][clear])
  assert os.path.exists(out[:-len('.tif')] + '.png')
  assert os.path.exists(out[:-len('.tif')] + '_fill.tif')


def test_sigkilled_predict_py_resumes_to_the_same_bytes(scene, tiny_models,
                                                        predicted, tmp_path):
  """The same command as `predicted`'s, killed after its first tile and run
  again: the bytes of the run that was not killed."""
  flags = predict_py_flags(scene, tiny_models)
  clean = predicted[1]
  assert predicted[0].returncode == 0
  out = str(tmp_path / 'killed.tif')
  work = predict_workdir.work_dir(out)
  proc = subprocess.Popen(
      [sys.executable, os.path.join(ROOT, 'predict.py'), *flags,
       f'--out={out}'], cwd=ROOT, stdout=subprocess.DEVNULL,
      stderr=subprocess.DEVNULL, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
  deadline = time.monotonic() + 300
  while not os.path.exists(os.path.join(work, 'tile_000000.npz')):
    assert proc.poll() is None and time.monotonic() < deadline
    time.sleep(0.005)
  proc.kill()
  proc.wait()
  # A tile's record: its models' output, or a marker of a clear target.
  done_before = sum(name.startswith('tile_') for name in os.listdir(work))
  assert 1 <= done_before < 6 and not os.path.exists(out)
  resumed = predict_cli(*flags, f'--out={out}')
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert 'Taking over' in resumed.stderr
  assert f'Resuming: {done_before} tile(s)' in resumed.stderr
  for key, path in geotiff.paths(out).items():
    assert digest(path) == digest(geotiff.paths(clean)[key]), key


def _unreadable(root):
  with open(os.path.join(root, 'images', dates_of(root)[1] + '.tif'),
            'wb') as f:
    f.write(b'not a tiff')


def _no_scl(root):
  os.remove(os.path.join(root, 'scl', dates_of(root)[2] + '_SCL_20m.tif'))


def _two_band(root):
  path = os.path.join(root, 'images', dates_of(root)[1] + '.tif')
  values = read(path)[0][:2]
  synthetic_geotiff.write_geotiff(path, values, TRANSFORM)


@pytest.mark.parametrize('case,flags,damage,message', [
    ('checkpoint of another config',
     ['--core_config=configs/cloudtran_core_test.py:tiny',
      '--core_config.model.hidden_size=32'], None,
     r'Checkpoint .*/cloudtran_core/model-1 does not fit the config: '
     r'model.hidden_size 16 in .*/cloudtran_core/config.yaml, 32 in the '
     r'config given \(also model.decoder.ff_size 16 vs 32\) — the run was '
     r'trained with :tiny: append it to the config path, without overrides'),
    ('missing masks', ['--masks={root}/nomasks/*.tif'], None,
     'No file matches --masks'),
    ('mask of a date missing', [], _no_scl, 'No --scl file for {third}'),
    ('wrong band count', [], _two_band, 'has 2 band'),
    ('unreadable file', [], _unreadable, 'Cannot read'),
    ('too few dates', ['--target={second}'], None,
     r'date\(s\) before {second}'),
    ('target not an input date', ['--target=2024-06-30'], None,
     'not among the input dates'),
])
def test_bad_input_is_one_error_line(case, flags, damage, message,
                                    tiny_models, tmp_path):
  del case
  root = str(tmp_path / 'scene')
  synthetic_geotiff.write_scene(root, width=40, height=36, dates=4, seed=2)
  if damage:
    damage(root)
  core, upsampler = tiny_models
  args = [f'--inputs={root}/images/*.tif', f'--core_logdir={core}',
          f'--upsampler_logdir={upsampler}', f'--out={tmp_path}/o.tif',
          '--overlap=8']
  if not any(f.startswith('--masks') for f in flags):
    args.append(f'--scl={root}/scl/*.tif')
  days = dict(root=root, second=dates_of(root)[1], third=dates_of(root)[2])
  args += [f.format(**days) for f in flags]
  done = predict_cli(*args)
  assert done.returncode == 2, done.stderr[-2000:]
  lines = [l for l in done.stderr.splitlines() if l.startswith('error: ')]
  assert len(lines) == 1 and 'Traceback' not in done.stderr, done.stderr
  assert re.search(message.format(**days), lines[0]), lines[0]


@pytest.mark.parametrize('shard', [(2, 2), (-1, 2), (0, 0)])
def test_a_shard_out_of_range_is_refused(shard):
  with pytest.raises(DataError, match=r'need 0 <= i < n'):
    options(shard=shard)


def never(rgb, clear):
  raise AssertionError('a complete output ran the models')


def test_out_naming_a_directory_or_an_unrecorded_file_is_refused(scene,
                                                                 tmp_path):
  with pytest.raises(DataError, match=r'--out=.* is a directory — name the '
                     r'output GeoTIFF, e\.g\. --out=.*clear\.tif'):
    run(scene, tmp_path)
  out = tmp_path / 'out.tif'
  out.write_bytes(b'not ours')
  with pytest.raises(DataError, match=r'out\.tif exists with no record of '
                     'what made it — use --overwrite to replace it'):
    run(scene, out)
  names = run(scene, out, overwrite=True)
  assert read(names['image'])[0].shape == (3, 50, 70)


def test_a_rerun_is_complete_only_with_the_same_record(scene, tmp_path):
  root = str(tmp_path / 'scene')
  shutil.copytree(scene, root)
  out = tmp_path / 'out.tif'
  names = run(root, out)
  before = {key: digest(path) for key, path in names.items()}
  assert run(root, out, never) == names
  with pytest.raises(DataError, match=r'was made with different overlap '
                     r'\(8 → 4\) — rerun with the same settings, or use '
                     '--overwrite'):
    run(root, out, overlap=4)
  with pytest.raises(DataError, match=r'different replace_all \(False → '
                     r'True\), skip_clear_tiles \(True → False\) — '):
    run(root, out, replace_all=True)
  image = sorted(os.listdir(os.path.join(root, 'images')))[0]
  os.utime(os.path.join(root, 'images', image), ns=(0, 0))
  with pytest.raises(DataError, match=r'different inputs — '):
    run(root, out)
  assert {key: digest(path) for key, path in names.items()} == before
  replaced = run(root, out, echo_target, overwrite=True)
  assert digest(replaced['image']) != before['image']
