"""The benchmark dataset maker: seeded, regions disjoint, dates that differ."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from configs import cloudtran_core_test
from configs import common
from datasets import ondisk
from datasets import pipeline
from tests import ondisk_helpers
from tools import benchmark

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ['--train', '5', '--valid', '3', '--holdout', '3', '--dates', '6',
         '--size', '32']
# `ondisk_helpers.dataset_digest` of the SMALL dataset with seed 3, as written
# before the cloud shapes moved to utils/cloud_shapes.py (commit e66f3ce).
SMALL_DIGEST = (
    '269c127069456b1537430055399bc2f6e9ecbdfe230659a02c4376c5d5a870f1')


def make(out, *extra):
  return str(out), benchmark.main([str(out)] + SMALL + list(extra))


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
  for region, (root, split) in benchmark.REGIONS.items():
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


def test_a_seed_draws_the_dataset_it_always_drew(made):
  out, _ = made
  assert ondisk_helpers.dataset_digest(out) == SMALL_DIGEST


def test_regions_share_no_pixel_and_no_parcel(made):
  out, _ = made
  record = json.load(open(os.path.join(out, 'benchmark.json')))
  size = record['args']['size']
  counts = {r: record['args'][r] for r in benchmark.REGIONS}
  land, _, tiles = benchmark.make_region(record['args']['seed'], counts, size)
  assert [t['top'] for t in record['tiles']] == [t.top for t in tiles]
  assert [t['left'] for t in record['tiles']] == [t.left for t in tiles]
  columns = {r: {t.left for t in tiles if t.region == r}
             for r in benchmark.REGIONS}
  parcels = {r: set() for r in benchmark.REGIONS}
  for t in tiles:
    window = benchmark.crop(land, t.top, t.left, size)
    assert window.labels.shape == (size, size)
    parcels[t.region] |= set(np.unique(window.labels).tolist())
  order = list(benchmark.REGIONS)
  for west, east in zip(order, order[1:]):
    # Whole tiles of guard between the last column of one and the next.
    assert min(columns[east]) - (max(columns[west]) + size) >= (
        benchmark.GUARD_PX)
    assert not parcels[west] & parcels[east]
  assert not parcels['train'] & parcels['holdout']
  boxes = {(t.top, t.left) for t in tiles}
  assert len(boxes) == len(tiles)


def read(path):
  return np.asarray(Image.open(path), np.float32)


def test_the_clear_date_before_the_reference_is_not_the_truth(made):
  """The mosaic's source (the latest earlier clear date) differs from the
  clear reference beyond sensor noise: light, phenology and field changes."""
  out, written = made
  for root in ('', 'holdout'):
    tiles = ondisk.list_tiles(
        os.path.join(out, root, 'videos_final_testset'),
        os.path.join(out, root, 'masks_final_testset'))
    region = 'valid' if not root else 'holdout'
    for tile, (_, refs, categories) in zip(tiles, written[region]):
      val = refs['val_index']
      assert categories[val] == categories[val - 1] == 'clear'
      change = np.abs(read(tile.dates[val].image) -
                      read(tile.dates[val - 1].image)).mean()
      assert change > 4.0, (tile.folder, change)


def test_holdout_is_a_valid_subset_for_the_pipeline(made):
  out, written = made
  config = cloudtran_core_test.get_config('tiny')
  common.use_dataset(config, os.path.join(out, 'holdout'), 'testset')
  batch = next(pipeline.get_dataset(config, 8, 'valid').as_numpy_iterator())
  assert batch['tile'].shape[0] == len(written['holdout'])


def test_cli_bad_arguments_exit_2():
  bad = subprocess.run(
      [sys.executable, '-m', 'tools.benchmark', '/tmp/unused', '--valid',
       '0'], capture_output=True, text=True, cwd=ROOT, check=False,
      env=dict(os.environ, PYTHONPATH=ROOT))
  assert bad.returncode == 2
  assert bad.stderr.startswith('error: need --train, --valid, --holdout >= 1')
