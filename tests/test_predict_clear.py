"""predict() sends only the tiles whose output is needed through the models.

A tile whose target is clear is committed without the models; the tiles with
no clear pixel on any of the model's dates share one prediction. Each test
compares the output bytes with those of `every_tile=True`, the models run on
every tile (clear pixels kept as always).

The scene: 50x118 px, tiles of 32 px overlapping by 8 (2 rows of 5 tiles,
the last column 22 px wide). The target is cloudy in a small square of tile
0 and in the block of rows 24.. and columns 72.., which no date sees: tiles
8 and 9 hold only that block (no clear pixel on any date), tiles 2, 3, 4
and 7 part of it; tiles 1, 5 and 6 are clear.
"""

import hashlib
import os

import numpy as np
import pytest

from bench import predict as bench_predict
from jobs import predict
from jobs import predict_models
from jobs import predict_workdir
from rasters import reader
from rasters import tiling
from tests import raster_helpers as rh
from tools import synthetic_geotiff
from utils.errors import DataError

TILE, OVERLAP, TIMELINE = 32, 8, 4
HEIGHT, WIDTH = 50, 118
MASK_VALUE = 40
CLEAR_TILES, UNOBSERVED_TILES, MODEL_TILES = (1, 5, 6), (8, 9), (0, 2, 3, 4, 7)


def mosaic(rgb, clear):
  """A stand-in that reads only clear pixels, as the models do: per pixel
  the newest clear date (MASK_VALUE where none is), mirrored left-right so
  that every tile's output depends on where it lies."""
  newest = np.full(rgb.shape[:1] + rgb.shape[2:], MASK_VALUE, np.uint8)
  for t in range(rgb.shape[1]):
    newest = np.where(clear[:, t, ..., None], rgb[:, t], newest)
  return newest[:, :, ::-1].copy()


class Counting:
  """Records every batch a predictor gets (dates and masks)."""

  def __init__(self, predictor, calls_left=None):
    self.predictor, self.calls_left = predictor, calls_left
    self.batches = []

  def __call__(self, rgb, clear):
    if self.calls_left == 0:
      raise KeyboardInterrupt('killed')
    if self.calls_left is not None:
      self.calls_left -= 1
    self.batches.append((rgb.copy(), clear.copy()))
    return self.predictor(rgb, clear)

  def tiles(self):
    """The distinct tiles of all batches (a partial batch repeats its last),
    as (dates, masks) pairs."""
    seen = {}
    for rgb, clear in self.batches:
      for pair in zip(rgb, clear):
        seen.setdefault(pair[0].tobytes() + pair[1].tobytes(), pair)
    return list(seen.values())


def write_scene(root, target_cloudy, unobserved):
  """4 dates of random uint16 DN on the 50x118 grid; the target is cloudy
  where `target_cloudy`, every date where `unobserved`."""
  dates = {}
  for d in range(1, 5):
    cloudy = unobserved | (target_cloudy if d == 4 else False)
    dates[f'2024-07-0{d}'] = (rh.ramp_image(HEIGHT, WIDTH, seed=d),
                              cloudy.astype(np.uint8))
  return rh.write_series(root, dates)


def cloudy_maps(square=True, block=True):
  """(target cloudy, cloudy on every date) of the scene in the module doc."""
  target = np.zeros((HEIGHT, WIDTH), bool)
  unobserved = np.zeros((HEIGHT, WIDTH), bool)
  if square:
    target[2:6, 2:6] = True
  if block:
    unobserved[24:, 72:] = True
  return target, unobserved


@pytest.fixture(scope='module')
def partly(tmp_path_factory):
  return write_scene(tmp_path_factory.mktemp('partly'), *cloudy_maps())


@pytest.fixture(scope='module')
def clear_target(tmp_path_factory):
  return write_scene(tmp_path_factory.mktemp('clear'),
                     *cloudy_maps(square=False, block=False))


def run(patterns, out, predictor, **kwargs):
  images, masks = patterns
  options = predict.Options(**{'tile_size': TILE, 'timeline': TIMELINE,
                               'overlap': OVERLAP, 'batch_size': 2,
                               **kwargs})
  with reader.open_series(images, masks=masks) as series:
    return predict.predict(series, predictor, str(out), options)


def digests(names):
  out = {}
  for key in ('image', 'fill', 'quicklook'):
    with open(names[key], 'rb') as f:
      out[key] = hashlib.sha256(f.read()).hexdigest()
  return out


@pytest.fixture(scope='module')
def every_tile(partly, clear_target, tmp_path_factory):
  """The output digests of both scenes with the models on every tile."""
  tmp = tmp_path_factory.mktemp('every')
  return {name: digests(run(scene, tmp / f'{name}.tif', mosaic,
                            every_tile=True))
          for name, scene in (('partly', partly), ('clear', clear_target))}


def test_the_scene_has_the_tiles_the_module_doc_names():
  tiles = tiling.grid(HEIGHT, WIDTH, TILE, OVERLAP)
  target, unobserved = cloudy_maps()
  cloudy = target | unobserved
  kinds = {}
  for t in tiles:
    area = (slice(t.top, t.top + t.height), slice(t.left, t.left + t.width))
    kinds[t.index] = ('unobserved' if unobserved[area].all() else
                      'model' if cloudy[area].any() else 'clear')
  assert kinds == {**{i: 'clear' for i in CLEAR_TILES},
                   **{i: 'unobserved' for i in UNOBSERVED_TILES},
                   **{i: 'model' for i in MODEL_TILES}}


def test_a_clear_target_runs_no_model(clear_target, every_tile, tmp_path,
                                      caplog):
  caplog.set_level('INFO')
  counting = Counting(mosaic)
  names = run(clear_target, tmp_path / 'out.tif', counting)
  assert counting.batches == []
  assert digests(names) == every_tile['clear']
  assert ('0 tile(s) sent to the models, 10 skipped: 10 with a clear target, '
          '0 with no clear pixel') in caplog.text


def test_only_cloudy_tiles_fill_the_batches(partly, every_tile, tmp_path,
                                            caplog):
  caplog.set_level('INFO')
  counting = Counting(mosaic)
  names = run(partly, tmp_path / 'out.tif', counting, batch_size=6)
  assert digests(names) == every_tile['partly']
  # One full batch: the 5 cloudy tiles and one of the 2 that see nothing.
  assert len(counting.batches) == 1
  tiles = counting.tiles()
  assert len(tiles) == 6
  assert all(not clear[-1].all() for _, clear in tiles)
  assert sum(not clear.any() for _, clear in tiles) == 1
  assert ('6 tile(s) sent to the models, 4 skipped: 3 with a clear target, 1 '
          'with no clear pixel') in caplog.text


def test_the_forced_run_sends_every_tile(partly, tmp_path):
  counting = Counting(mosaic)
  run(partly, tmp_path / 'out.tif', counting, every_tile=True, batch_size=10)
  assert len(counting.tiles()) == 10


def test_replace_all_runs_the_clear_tiles(clear_target, tmp_path):
  counting = Counting(mosaic)
  names = run(clear_target, tmp_path / 'out.tif', counting, replace_all=True,
              batch_size=10)
  assert len(counting.tiles()) == 10
  assert digests(names) != digests(run(clear_target, tmp_path / 'kept.tif',
                                       mosaic))


def test_resume_after_a_partial_run_gives_the_same_bytes(partly, every_tile,
                                                         tmp_path):
  out = tmp_path / 'out.tif'
  with pytest.raises(KeyboardInterrupt):
    run(partly, out, Counting(mosaic, calls_left=1))
  work = predict_workdir.work_dir(str(out))
  assert sorted(n for n in os.listdir(work) if n.startswith('tile_')) == [
      'tile_000000.npz', 'tile_000001.clear', 'tile_000002.npz',
      'tile_000005.clear', 'tile_000006.clear']
  counting = Counting(mosaic)
  names = run(partly, out, counting)
  # Tiles 3 and 4, then 7 and 8, whose prediction tile 9 shares.
  assert len(counting.batches) == 2 and len(counting.tiles()) == 4
  assert digests(names) == every_tile['partly']


def test_shards_share_the_unobserved_prediction(partly, every_tile,
                                                tmp_path):
  out = tmp_path / 'out.tif'
  second = Counting(mosaic)
  assert run(partly, out, second, shard=(1, 2)) is None
  # Shard 1 (tiles 1, 3, 5, 7, 9) runs 3, 7 and 9; shard 0 (0, 2, 4, 6, 8)
  # runs 0, 2 and 4: tile 8 takes tile 9's prediction.
  assert len(second.tiles()) == 3
  first = Counting(mosaic)
  names = run(partly, out, first, shard=(0, 2))
  assert len(first.tiles()) == 3 and len(first.batches) == 2
  assert digests(names) == every_tile['partly']


def test_a_work_directory_of_skipped_tiles_is_not_resumed_with_replace_all(
    partly, tmp_path):
  out = tmp_path / 'out.tif'
  with pytest.raises(KeyboardInterrupt):
    run(partly, out, Counting(mosaic, calls_left=0))
  with pytest.raises(DataError, match='skip_clear_tiles'):
    run(partly, out, mosaic, replace_all=True)


def test_blend_leaves_pixels_that_are_not_needed_uncovered():
  tiles = tiling.grid(32, 56, 32, 8)
  part = [(tiles[0], np.full((32, 32, 3), 9, np.uint8))]
  needed = np.zeros((32, 56), bool)
  needed[:, :32] = True
  out = tiling.blend((0, 0, 32, 56), part, 32, 8, needed)
  assert (out[:, :32] == 9).all() and (out[:, 32:] == 0).all()
  needed[0, 40] = True
  with pytest.raises(ValueError, match='not covered'):
    tiling.blend((0, 0, 32, 56), part, 32, 8, needed)


@pytest.mark.parametrize('cover, low, high', [(0, 0, 0), (30, 25, 35),
                                              (100, 100, 100)])
def test_synthetic_scenes_of_a_target_cover(cover, low, high, tmp_path):
  """The scenes of `bench/predict.py --covers`."""
  written = synthetic_geotiff.write_scene(str(tmp_path), width=64, height=64,
                                          dates=3, target_cover=cover)
  assert low <= written[-1][2] <= high
  assert written[-1][1] == ('clear' if cover == 0 else f'{cover} %')


@pytest.fixture(scope='module')
def tiny_predictor(tmp_path_factory):
  """A ModelPredictor of the tiny configs, random weights, parallel head."""
  core, upsampler = bench_predict.save_random_models(
      str(tmp_path_factory.mktemp('m')), 'tiny')
  core_config, upsampler_config = bench_predict.configs('tiny')
  return predict_models.load_predictor(core_config, core, upsampler_config,
                                upsampler, only_parallel=True)[0]


def test_tiny_models_write_the_same_bytes_as_on_every_tile(
    partly, tiny_predictor, tmp_path):
  """The real models (the core's parallel head, quick to compile): other
  batches, the shared prediction of the unobserved tiles, and the same
  bytes."""
  counting = Counting(tiny_predictor)
  skipped = run(partly, tmp_path / 'skipped.tif', counting, batch_size=4)
  assert len(counting.tiles()) == 6
  forced = run(partly, tmp_path / 'forced.tif', tiny_predictor,
               batch_size=4, every_tile=True)
  assert digests(skipped) == digests(forced)
