"""predict() with K draws: their median as the image, their spread beside it.

Most tests use stand-ins on the scene of tests/test_predict_clear.py (10
tiles of 32 px: 3 clear, 2 with no clear pixel on any date, 5 to the
models): `Noisy` draws the mosaic plus noise from the seed it is given, one
row a draw, so its draws depend only on the seed, the row and the clear
pixels, as the models' do. One test runs real tiny models (random weights).
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
import rasterio

from jobs import predict
from jobs import predict_models
from jobs import predict_workdir
from rasters import geotiff
from rasters import radiometry
from rasters import reader
from rasters import stac_item
from rasters import tiling
from tests import model_helpers
from tests import raster_helpers as rh
from tests import test_predict_clear as scenes
from utils import colormaps
from utils.errors import DataError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRAWS = 3
NOISE = 20
FILES = ('image', 'fill', 'quicklook', 'spread', 'spread_quicklook')


class Noisy:
  """The mosaic stand-in, plus with `seed` noise of +-NOISE drawn from the
  seed, each row its own; records the seeds it gets."""

  def __init__(self):
    self.seeds = []

  def __call__(self, rgb, clear, seed=None):
    mosaic = scenes.mosaic(rgb, clear)
    if seed is None:
      return mosaic
    self.seeds.append(tuple(seed))
    # Keys are tile indices or -1 (the tiles that see nothing).
    rng = np.random.default_rng([seed[0], seed[1] + 1])
    noise = rng.integers(-NOISE, NOISE + 1, mosaic.shape)
    return np.clip(mosaic + noise, 0, 255).astype(np.uint8)


def same_draws(rgb, clear, seed=None):
  """A stand-in whose draws are all the same: the mosaic, whatever the
  seed."""
  del seed
  return scenes.mosaic(rgb, clear)


class Failing:
  """Runs `predictor` for `calls` calls, then fails like a killed job."""

  def __init__(self, predictor, calls):
    self.predictor, self.calls = predictor, calls

  def __call__(self, rgb, clear, seed=None):
    if self.calls == 0:
      raise KeyboardInterrupt('killed')
    self.calls -= 1
    return self.predictor(rgb, clear, seed=seed)


@pytest.fixture(scope='module')
def partly(tmp_path_factory):
  return scenes.write_scene(tmp_path_factory.mktemp('partly'),
                            *scenes.cloudy_maps())


def digests(names, keys=FILES):
  out = {}
  for key in keys:
    with open(names[key], 'rb') as f:
      out[key] = hashlib.sha256(f.read()).hexdigest()
  return out


def read(path):
  with rasterio.open(path) as src:
    return np.moveaxis(src.read(), 0, -1), src.profile


@pytest.fixture(scope='module')
def drawn(partly, tmp_path_factory):
  """The names and digests of one run of K = DRAWS `Noisy` draws."""
  names = scenes.run(partly, tmp_path_factory.mktemp('drawn') / 'out.tif',
                     Noisy(), draws=DRAWS)
  return names, digests(names)


def test_one_draw_is_the_argmax_output(partly, tmp_path):
  """K = 1: the predictor is called as before (no seed: `scenes.mosaic`
  takes none), the same bytes as without the option, and no spread."""
  one = scenes.run(partly, tmp_path / 'one' / 'out.tif', scenes.mosaic,
                   draws=1)
  default = scenes.run(partly, tmp_path / 'default' / 'out.tif',
                       scenes.mosaic)
  keys = ('image', 'fill', 'quicklook')
  assert digests(one, keys) == digests(default, keys)
  assert sorted(one) == ['fill', 'image', 'item', 'quicklook']
  assert sorted(os.listdir(tmp_path / 'one')) == [
      'out.png', 'out.stac.json', 'out.tif', 'out_fill.tif']


def test_draws_are_reproducible_across_reruns_resumes_and_shards(
    partly, drawn, tmp_path):
  names, whole = drawn
  assert set(names) == {*FILES, 'item'}
  assert digests(scenes.run(partly, tmp_path / 'again.tif', Noisy(),
                            draws=DRAWS)) == whole
  killed = tmp_path / 'killed.tif'
  with pytest.raises(KeyboardInterrupt):
    scenes.run(partly, killed, Failing(Noisy(), 2), draws=DRAWS)
  work = predict_workdir.work_dir(str(killed))
  assert sum(n.endswith('.npz') for n in os.listdir(work)) == 2
  assert digests(scenes.run(partly, killed, Noisy(), draws=DRAWS)) == whole
  sharded = tmp_path / 'sharded.tif'
  assert scenes.run(partly, sharded, Noisy(), draws=DRAWS,
                    shard=(1, 2)) is None
  assert digests(scenes.run(partly, sharded, Noisy(), draws=DRAWS,
                            shard=(0, 2))) == whole
  other_seed = digests(scenes.run(partly, tmp_path / 'seed.tif', Noisy(),
                                  draws=DRAWS, seed=1))
  assert other_seed['image'] != whole['image']
  assert other_seed['spread'] != whole['spread']


def test_tiles_that_see_nothing_share_draws_seeded_alike(partly, drawn,
                                                         tmp_path):
  """Each model tile is one call of K draws seeded [seed, tile index]; the
  first of the tiles with no clear date is seeded [seed, -1], and running
  every tile (each of those drawn on its own) gives the same bytes."""
  noisy = Noisy()
  scenes.run(partly, tmp_path / 'out.tif', noisy, draws=DRAWS)
  assert noisy.seeds == [(0, i) for i in scenes.MODEL_TILES] + [(0, -1)]
  every = Noisy()
  names = scenes.run(partly, tmp_path / 'every.tif', every, draws=DRAWS,
                     every_tile=True)
  assert scenes.UNOBSERVED_TILES == (8, 9)
  assert every.seeds == [(0, i) for i in range(8)] + [(0, -1)] * 2
  assert digests(names) == drawn[1]


def test_spread_is_zero_on_kept_pixels_and_for_draws_that_agree(
    partly, drawn, tmp_path):
  names = drawn[0]
  spread, profile = read(names['spread'])
  fill = read(names['fill'])[0][..., 0]
  assert profile['dtype'] == 'float32' and profile['count'] == 3
  with rasterio.open(names['spread']) as src:
    assert src.tags(ns='IMAGE_STRUCTURE')['LAYOUT'] == 'COG'
  kept = fill == geotiff.FILL_KEPT
  assert 0 < kept.sum() < kept.size
  assert (spread[kept] == 0).all()
  assert np.mean(spread[~kept] > 0) > 0.9
  assert spread.max() <= NOISE
  agreeing = scenes.run(partly, tmp_path / 'same.tif', same_draws,
                        draws=DRAWS)
  assert (read(agreeing['spread'])[0] == 0).all()
  argmax = scenes.run(partly, tmp_path / 'argmax.tif', scenes.mosaic)
  keys = ('image', 'fill', 'quicklook')
  assert digests(agreeing, keys) == digests(argmax, keys)


def test_each_pixel_is_the_median_and_spread_of_its_tiles_draws(
    partly, tmp_path):
  """Without overlap every pixel comes from one tile: the output is the
  per-value median of that tile's K draws, and the spread their standard
  deviation (up to the work directory's float16)."""
  noisy = Noisy()
  names = scenes.run(partly, tmp_path / 'out.tif', noisy, draws=DRAWS,
                     overlap=0)
  image, spread = read(names['image'])[0], read(names['spread'])[0]
  filled = read(names['fill'])[0][..., 0] != geotiff.FILL_KEPT
  images, masks = partly
  with reader.open_series(images, masks=masks) as series:
    slots = predict.slot_dates(series, scenes.TIMELINE)
    tiles = tiling.grid(series.grid.height, series.grid.width,
                        scenes.TILE, 0)
    keys = []
    for tile in tiles:
      rgb, clear, no_clear = predict._read_tile(series, tile, slots,
                                                scenes.TILE)
      area = (slice(tile.top, tile.top + tile.height),
              slice(tile.left, tile.left + tile.width))
      if not filled[area].any():
        continue
      key = -1 if no_clear.all() else tile.index
      draws = noisy(np.repeat(rgb[None], DRAWS, 0),
                    np.repeat(clear[None], DRAWS, 0), seed=(0, key))
      draws = draws[:, :tile.height, :tile.width].astype(np.float64)
      here = filled[area]
      np.testing.assert_array_equal(
          image[area][here], np.rint(np.median(draws, axis=0))[here])
      np.testing.assert_allclose(spread[area][here],
                                 np.std(draws, axis=0)[here], rtol=1e-3)
      keys.append(key)
  # At this tiling tile 7 (rows 32.., columns 96..) sees nothing.
  assert keys == [0, 2, 3, 6, -1]


def test_reflectance_spread_is_in_digital_numbers(partly, drawn, tmp_path):
  names = scenes.run(partly, tmp_path / 'dn.tif', Noisy(), draws=DRAWS,
                     output_reflectance=True)
  image, profile = read(names['image'])
  spread, spread_profile = read(names['spread'])
  assert profile['dtype'] == 'uint16' and spread_profile['dtype'] == 'float32'
  step = radiometry.step(np.uint16)
  assert 11 < step < 12
  np.testing.assert_allclose(spread, read(drawn[0]['spread'])[0] * step,
                             rtol=1e-6)


def test_spread_quicklook_and_stac_item(drawn):
  """The quicklook's inferno colours, read back as levels 0..255, are the
  spread GeoTIFF's band mean on a scale whose top, 255, is SPREAD_LOOK_MAX:
  dark where the draws agree, brighter where they spread more."""
  names = drawn[0]
  look = np.asarray(Image.open(names['spread_quicklook']))
  spread = read(names['spread'])[0]
  assert look.shape == spread.shape
  palette = {tuple(c): level for level, c in enumerate(colormaps.INFERNO)}
  assert len(palette) == 256
  levels = np.array([[palette[tuple(c)] for c in row] for row in look])
  mean = spread.mean(axis=-1)
  np.testing.assert_allclose(levels, mean * 255 / geotiff.SPREAD_LOOK_MAX,
                             atol=0.5 + 1e-3)
  assert levels[mean == 0].max() == 0 and levels.max() > 100
  with open(stac_item.path(names['image'])) as f:
    item = json.load(f)
  assert item['assets']['spread']['href'] == './out_spread.tif'
  assert item['assets']['spread_quicklook']['href'] == './out_spread.png'
  assert item['properties']['cloudtran:models'] == {'draws': DRAWS,
                                                    'seed': 0}


def test_a_work_directory_of_other_draws_is_refused(partly, tmp_path):
  out = tmp_path / 'out.tif'
  with pytest.raises(KeyboardInterrupt):
    scenes.run(partly, out, Failing(Noisy(), 1), draws=DRAWS)
  with pytest.raises(DataError, match=rf'different draws \({DRAWS} → '
                     rf'{DRAWS + 1}\) — '):
    scenes.run(partly, out, Noisy(), draws=DRAWS + 1)
  with pytest.raises(DataError, match=r'different seed \(0 → 7\) — '):
    scenes.run(partly, out, Noisy(), draws=DRAWS, seed=7)
  # One draw has no seed: only the draws changed.
  with pytest.raises(DataError, match=rf'different draws \({DRAWS} → 1\) — '
                     'rerun with the same settings, or use --overwrite'):
    scenes.run(partly, out, scenes.mosaic)


@pytest.mark.parametrize('seed', [-3, 2**31])
def test_a_seed_out_of_int32_is_refused(seed):
  with pytest.raises(DataError, match=f'--seed={seed}: give a seed between '
                     f'0 and {2**31 - 1}'):
    predict.Options(tile_size=32, timeline=4, draws=2, seed=seed)


def predict_cli(*args):
  return subprocess.run(
      [sys.executable, os.path.join(ROOT, 'predict.py'), *args],
      cwd=ROOT, capture_output=True, text=True, timeout=600,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))


@pytest.mark.parametrize('flags,message', [
    (['--draws=0'], r'--draws=0: give 1 \(the argmax fill\) or more'),
    (['--draws=4', '--only_parallel'],
     r'--draws=4 with --only_parallel: the parallel head gives one '
     r'deterministic output, .* — drop --only_parallel'),
])
def test_bad_draws_are_one_error_line(flags, message, tmp_path):
  """Refused before the models or the inputs are read (neither exists)."""
  done = predict_cli(
      '--core_config=configs/cloudtran_core_test.py:tiny',
      '--upsampler_config=configs/upsampler_test.py:tiny',
      f'--core_logdir={tmp_path}/core', f'--upsampler_logdir={tmp_path}/up',
      f'--inputs={tmp_path}/none/*.tif', f'--masks={tmp_path}/none/*.tif',
      f'--out={tmp_path}/o.tif', *flags)
  assert done.returncode == 2, done.stderr[-2000:]
  lines = [l for l in done.stderr.splitlines() if l.startswith('error: ')]
  assert len(lines) == 1 and 'Traceback' not in done.stderr, done.stderr
  assert re.search(message, lines[0]), lines[0]


def test_tiny_models_draw_the_same_bytes_whole_and_in_shards(tmp_path):
  """Real models (the :tiny core at 8x8, random weights; the autoregressive
  core, as the parallel head cannot draw), 16 px tiles: the draws differ,
  and two shards give the bytes of one run."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import models  # pylint: disable=g-import-not-at-top
  core_config = model_helpers.core_config()
  upsampler_config = model_helpers.upsampler_config()
  tf.keras.utils.set_random_seed(0)
  predictor = predict_models.ModelPredictor(
      models.build(core_config), models.build(upsampler_config), core_config,
      upsampler_config, only_parallel=False)
  height, width = 24, 28
  cloudy = np.zeros((height, width), bool)
  cloudy[4:12, 6:20] = True
  patterns = rh.write_series(tmp_path / 'scene', {
      f'2024-07-0{d}': (rh.ramp_image(height, width, seed=d),
                        (cloudy & (d == 4)).astype(np.uint8))
      for d in range(1, 5)})
  size = upsampler_config.resolution[0]

  def run(out, **kwargs):
    options = predict.Options(tile_size=size, timeline=core_config.timeline,
                              overlap=4, draws=2, **kwargs)
    with reader.open_series(patterns[0], masks=patterns[1]) as series:
      return predict.predict(series, predictor, str(tmp_path / out), options)

  whole = run('whole.tif')
  assert run('shards.tif', shard=(1, 2)) is None
  assert digests(run('shards.tif', shard=(0, 2))) == digests(whole)
  spread = read(whole['spread'])[0]
  assert (spread[~cloudy] == 0).all() and (spread[cloudy] > 0).any()


def test_a_lost_image_is_written_again_and_other_draws_replace_the_spread(
    partly, drawn, tmp_path):
  names, whole = drawn
  out = tmp_path / 'clear.tif'
  for name in os.listdir(os.path.dirname(names['image'])):
    shutil.copy(os.path.join(os.path.dirname(names['image']), name),
                tmp_path / name.replace('out', 'clear'))
  os.remove(out)
  # The record (in the STAC Item) is the same: the image is written again.
  again = scenes.run(partly, out, Noisy(), draws=DRAWS)
  assert digests(again) == whole
  os.remove(out)
  with pytest.raises(DataError, match=rf'clear\.tif was made with different '
                     rf'draws \({DRAWS} → 1\) — .* use --overwrite'):
    scenes.run(partly, out, scenes.mosaic)
  assert os.path.exists(again['spread'])
  one = scenes.run(partly, out, scenes.mosaic, overwrite=True)
  assert sorted(os.listdir(tmp_path)) == [
      'clear.png', 'clear.stac.json', 'clear.tif', 'clear_fill.tif']
  assert stac_item.read_record(one['item'])['draws'] == 1
