"""The recipe's dataset maker: seeded, regions disjoint, dates that differ,
version 1 as published, version 2 cloudy and lit as real series are."""

import hashlib
import json
import os

import numpy as np
from PIL import Image
import pytest

from configs import cloudtran_core_test
from configs import common
from datasets import ondisk
from datasets import pipeline
from tests import ondisk_helpers
from tools import recipe_dataset
from utils import cloud_shapes

SMALL = ['--train', '5', '--valid', '3', '--holdout', '3', '--dates', '6',
         '--size', '32']
# `ondisk_helpers.dataset_digest` of the SMALL dataset with seed 3 without
# its benchmark.json, as `python -m tools.benchmark` wrote it before version 2
# (commit 0301619): every image, mask and reference table.
V1_DIGEST = (
    'd5fb6220cc2e09fe6d8f79c83fb17a954f524754040b87ee57e261768602ec3c')


def make(out, *extra):
  return str(out), recipe_dataset.main([str(out)] + SMALL + list(extra))


@pytest.fixture(scope='module')
def made(tmp_path_factory):
  return make(tmp_path_factory.mktemp('bench') / 'data', '--seed', '3')


def digest(root):
  """sha256 of every file under `root`, by relative path."""
  sums = {}
  for folder, _, files in os.walk(root):
    for name in files:
      path = os.path.join(folder, name)
      with open(path, 'rb') as f:
        sums[os.path.relpath(path, root)] = hashlib.sha256(
            f.read()).hexdigest()
  return sums


def test_layout_one_root_per_truth_bearing_split(made):
  out, written = made
  assert sorted(os.listdir(out)) == [
      'benchmark.json', 'holdout', 'masks_final_testset',
      'masks_final_trainset', 'testset.json', 'trainset.json',
      'videos_final_testset', 'videos_final_trainset']
  assert sorted(os.listdir(os.path.join(out, 'holdout'))) == [
      'masks_final_testset', 'testset.json', 'videos_final_testset']
  for region, (root, split) in recipe_dataset.REGIONS.items():
    table = json.load(open(os.path.join(out, root, f'{split}.json')))
    assert set(table) == {name for name, _, _ in written[region]}
    tiles = ondisk.list_tiles(
        os.path.join(out, root, f'videos_final_{split}'),
        os.path.join(out, root, f'masks_final_{split}'))
    assert len(tiles) == len(written[region])
    assert all(len(t.dates) == 6 for t in tiles)
  names = [n for region in written.values() for n, _, _ in region]
  assert len(set(names)) == len(names)


def test_same_seed_same_bytes_other_seed_other_bytes(made, tmp_path):
  out, _ = made
  again, _ = make(tmp_path / 'again', '--seed', '3')
  other, _ = make(tmp_path / 'other', '--seed', '4')
  assert digest(out) == digest(again)
  ours = digest(out)
  theirs = digest(other)
  images = [p for p in ours if p.endswith('.png') and 'videos' in p]
  assert not any(ours[p] == theirs.get(p) for p in images)


def test_version_1_is_the_published_dataset(tmp_path):
  out, _ = make(tmp_path / 'v1', '--seed', '3', '--version', '1')
  record = os.path.join(out, 'benchmark.json')
  assert json.load(open(record))['args']['version'] == 1
  os.remove(record)
  assert ondisk_helpers.dataset_digest(out) == V1_DIGEST


def test_regions_share_no_pixel_and_no_parcel(made):
  out, _ = made
  record = json.load(open(os.path.join(out, 'benchmark.json')))
  size = record['args']['size']
  counts = {r: record['args'][r] for r in recipe_dataset.REGIONS}
  land, _, tiles = recipe_dataset.make_region(record['args']['seed'], counts,
                                              size)
  assert [t['top'] for t in record['tiles']] == [t.top for t in tiles]
  assert [t['left'] for t in record['tiles']] == [t.left for t in tiles]
  columns = {r: {t.left for t in tiles if t.region == r}
             for r in recipe_dataset.REGIONS}
  parcels = {r: set() for r in recipe_dataset.REGIONS}
  for t in tiles:
    window = recipe_dataset.crop(land, t.top, t.left, size)
    assert window.labels.shape == (size, size)
    parcels[t.region] |= set(np.unique(window.labels).tolist())
  order = list(recipe_dataset.REGIONS)
  for west, east in zip(order, order[1:]):
    # Whole tiles of guard between the last column of one and the next.
    assert min(columns[east]) - (max(columns[west]) + size) >= (
        recipe_dataset.GUARD_PX)
    assert not parcels[west] & parcels[east]
  assert not parcels['train'] & parcels['holdout']
  boxes = {(t.top, t.left) for t in tiles}
  assert len(boxes) == len(tiles)


def read(path):
  return np.asarray(Image.open(path), np.float32)


def region_tiles(out, region):
  root, split = recipe_dataset.REGIONS[region]
  return ondisk.list_tiles(os.path.join(out, root, f'videos_final_{split}'),
                           os.path.join(out, root, f'masks_final_{split}'))


def test_the_latest_clear_input_is_not_the_truth(made):
  """Where the clear reference and the latest earlier date are both clear,
  they differ beyond sensor noise: light, phenology and field changes."""
  out, written = made
  for region in ('valid', 'holdout'):
    for tile, (_, refs, _) in zip(region_tiles(out, region),
                                  written[region]):
      val = refs['val_index']
      for before in tile.dates[val - 1::-1]:
        both = read(before.mask) == 0
        if both.any():
          break
      change = np.abs(read(tile.dates[val].image) -
                      read(before.image))[both].mean()
      assert change > 4.0, (tile.folder, change)


def test_references_keep_their_meaning_and_inputs_see_every_pixel(made):
  """Clear references have no cloud pixel, test references are cloudier
  than the pipeline's clear limit on every crop, and every pixel is clear
  in some input date of every reference; the covers returned are the
  masks'."""
  out, written = made
  timeline = json.load(open(os.path.join(out, 'benchmark.json')))['args'][
      'timeline']
  for region in recipe_dataset.REGIONS:
    for tile, (_, refs, covers) in zip(region_tiles(out, region),
                                       written[region]):
      cloudy = [read(d.mask) > 0 for d in tile.dates]
      assert covers == pytest.approx([100 * c.mean() for c in cloudy])
      for key, ref in refs.items():
        seen = np.zeros_like(cloudy[ref])
        for t in range(ref - timeline + 2, ref):
          seen |= ~cloudy[t]
        if key == 'test_index':
          assert min(cloud_shapes.crop_coverages(cloudy[ref])) > (
              recipe_dataset.CLEAR_LIMIT)
          seen |= ~cloudy[ref]
        else:
          assert not cloudy[ref].any()
        assert seen.all(), (region, tile.folder, key)


def test_no_input_date_is_guaranteed_clear(made):
  """Dates before a clear reference range from clear to overcast."""
  _, written = made
  before = [covers[ref - 1] for region in written.values()
            for _, refs, covers in region
            for ref in recipe_dataset.clear_references(refs)]
  assert min(before) == 0 and max(before) > 50


def test_cover_mixture_shares():
  """Draws follow COVER_MIXTURE: 20 % exactly clear; above half covered,
  half of the broken component and 1 - 0.5^8 of the mostly cloudy one."""
  rng = np.random.default_rng(0)
  covers = np.array([recipe_dataset.draw_cover(rng) for _ in range(20000)])
  assert np.mean(covers == 0) == pytest.approx(0.20, abs=0.01)
  assert np.mean(covers > 0.5) == pytest.approx(
      0.20 * 0.5 + 0.35 * (1 - 0.5 ** 8), abs=0.015)


def test_cover_histogram_bins():
  assert recipe_dataset.cover_bins()[:3] == ['0', '0-5', '5-30']
  shares = recipe_dataset.cover_histogram([0, 0, 5, 5.1, 100])
  assert shares == [40, 20, 20, 0, 0, 0, 20]


def test_sun_at_noon_on_the_equinox(monkeypatch):
  """With the hour angle 0, the equinox sun is due south at a zenith of
  the latitude."""
  monkeypatch.setattr(recipe_dataset, 'HOUR_ANGLE', 0.0)
  zenith, azimuth = recipe_dataset.sun(80 / 365)
  assert np.degrees(zenith) == pytest.approx(recipe_dataset.LATITUDE)
  assert np.degrees(azimuth) == pytest.approx(180.0)
  summer, _ = recipe_dataset.sun(172 / 365)
  assert np.degrees(summer) == pytest.approx(
      recipe_dataset.LATITUDE - 23.44, abs=0.01)


def test_holdout_is_a_valid_subset_for_the_pipeline(made):
  """Every holdout tile makes an example at the dataset's --timeline."""
  out, written = made
  config = cloudtran_core_test.get_config('tiny')
  common.use_dataset(config, os.path.join(out, 'holdout'), 'testset')
  config.timeline = 6
  batch = next(pipeline.get_dataset(config, 8, 'valid').as_numpy_iterator())
  assert batch['tile'].shape[0] == len(written['holdout'])


@pytest.mark.parametrize('argv', [['--valid', '0'],
                                  ['--timeline', '2', '--dates', '3']])
def test_bad_arguments_exit_2_with_one_line(argv, capsys):
  with pytest.raises(SystemExit) as stopped:
    recipe_dataset.main(['/tmp/unused'] + argv)
  assert stopped.value.code == 2
  error = capsys.readouterr().err
  assert error.startswith('error: need --train, --valid, --holdout >= 1')
  assert error.count('\n') == 1
