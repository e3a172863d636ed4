"""The synthetic dataset maker: layout, JSON, categories, every split usable."""

import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from configs import cloudtran_core_test
from configs import cloudtran_core_train
from datasets import ondisk
from datasets import pipeline
from datasets import scan
from tests import ondisk_helpers
from utils import scenes
from tools import synthetic
from utils import cloud_shapes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ['--tiles', '3', '--dates', '6', '--size', '48']
# `ondisk_helpers.dataset_digest` of the TINY dataset (seed 0), as written
# before the cloud shapes moved to utils/cloud_shapes.py (commit e66f3ce).
TINY_DIGEST = (
    '280467aba76d27d147ea8b484119761f91fa2dd4cc23a99910bfb0f7d62070bc')


def make(tmp_path, *extra):
  out = str(tmp_path / 'data')
  return out, synthetic.main([out] + TINY + list(extra))


@pytest.fixture(scope='module')
def l2a(tmp_path_factory):
  return make(tmp_path_factory.mktemp('l2a'))


def tiny_config(module, out, split, json_file=True):
  config = module.get_config('tiny')
  ondisk_helpers.point_config(config, out, split)
  config.jsonf = os.path.join(out, f'{split}.json') if json_file else None
  return config


def test_layout_and_json(l2a):
  out, tiles = l2a
  assert sorted(os.listdir(out)) == [
      'masks_final_testset', 'masks_final_trainset', 'testset.json',
      'trainset.json', 'videos_final_testset', 'videos_final_trainset']
  train = json.load(open(os.path.join(out, 'trainset.json')))
  test = json.load(open(os.path.join(out, 'testset.json')))
  assert set(train) == {name for name, _, _ in tiles['trainset']}
  assert all(set(v) == {'index'} for v in train.values())
  assert all(set(v) == {'val_index', 'test_index'} for v in test.values())
  image_dir, mask_dir = ondisk_helpers.split_dirs(out, 'trainset')
  listed = ondisk.list_tiles(image_dir, mask_dir)
  assert [t.folder for t in listed] == ['00000', '00001', '00002']
  assert all(len(t.dates) == 6 for t in listed)
  first = listed[0].dates[0]
  assert Image.open(first.image).mode == 'RGB'
  assert Image.open(first.image).size == (48, 48)
  assert Image.open(first.mask).mode == 'L'


def test_masks_match_the_planned_categories(l2a):
  out, tiles = l2a
  for split in synthetic.SPLITS:
    image_dir, mask_dir = ondisk_helpers.split_dirs(out, split)
    for tile, (_, refs, categories) in zip(
        ondisk.list_tiles(image_dir, mask_dir), tiles[split]):
      for date, category in zip(tile.dates, categories):
        cover = scan.coverage(scan.read_clear_mask(date.mask, False), 32)
        assert scan.category(cover, 30) == category
        assert scan.category(cover, 50) == category
      for key, index in refs.items():
        want = 'moderate severe' if key == 'test_index' else 'clear'
        assert categories[index] in want.split()


def test_clouds_are_white_where_the_mask_says(l2a):
  out, _ = l2a
  image_dir, mask_dir = ondisk_helpers.split_dirs(out, 'trainset')
  for tile in ondisk.list_tiles(image_dir, mask_dir):
    for date in tile.dates:
      cloud = np.asarray(Image.open(date.mask)) > 0
      bright = np.asarray(Image.open(date.image)).min(axis=-1) > 220
      assert not (bright & ~cloud).any()


@pytest.mark.parametrize('subset, module, split', [
    ('train', cloudtran_core_train, 'trainset'),
    ('eval_train', cloudtran_core_train, 'trainset'),
    ('valid', cloudtran_core_test, 'testset'),
    ('test', cloudtran_core_test, 'testset'),
])
def test_every_subset_yields_under_the_tiny_config(l2a, subset, module, split):
  out, _ = l2a
  config = tiny_config(module, out, split)
  batch = next(pipeline.get_dataset(config, 1, subset)
               .as_numpy_iterator())
  size, t = config.resolution[0], config.timeline
  assert batch['image'].shape == (1, size, size, t * config.n_channels)


def test_inhouse_naming_has_fixed_references(tmp_path, capsys):
  out, tiles = make(tmp_path, '--naming', 'inhouse', '--seed', '3')
  assert 'ref_index=5' in capsys.readouterr().out
  assert not os.path.exists(os.path.join(out, 'trainset.json'))
  image_dir, mask_dir = ondisk_helpers.split_dirs(out, 'trainset')
  tile = ondisk.list_tiles(image_dir, mask_dir)[0]
  assert all(d.image.endswith('.jpeg') and d.mask.endswith('.png')
             for d in tile.dates)
  assert all(refs == {'index': 5} for _, refs, _ in tiles['trainset'])
  assert all(refs == {'val_index': 4, 'test_index': 5}
             for _, refs, _ in tiles['testset'])
  config = tiny_config(cloudtran_core_train, out, 'trainset', json_file=False)
  config.ref_index = 5
  batch = next(pipeline.get_dataset(config, 1, 'eval_train')
               .as_numpy_iterator())
  assert batch['tile'].tolist() == [0]


def test_l1c_naming_with_flipped_masks(tmp_path):
  out, tiles = make(tmp_path, '--naming', 'l1c', '--flip')
  image_dir, mask_dir = ondisk_helpers.split_dirs(out, 'testset')
  tile = ondisk.list_tiles(image_dir, mask_dir)[0]
  assert tile.dates[3].stem == f'{tiles["testset"][0][0]}_rgb_3'
  clear_mask = tile.dates[tiles['testset'][0][1]['val_index']].mask
  assert np.asarray(Image.open(clear_mask)).min() == 255
  config = tiny_config(cloudtran_core_test, out, 'testset')
  config.flip_masks = True
  batch = next(pipeline.get_dataset(config, 4, 'valid')
               .as_numpy_iterator())
  assert batch['tile'].shape[0] == 3


def test_same_seed_same_files(tmp_path):
  a, _ = make(tmp_path / 'a', '--seed', '5')
  b, _ = make(tmp_path / 'b', '--seed', '5')
  name = os.path.join('videos_final_testset', '00001')
  first = sorted(os.listdir(os.path.join(a, name)))[2]
  np.testing.assert_array_equal(
      np.asarray(Image.open(os.path.join(a, name, first))),
      np.asarray(Image.open(os.path.join(b, name, first))))


def test_a_seed_draws_the_dataset_it_always_drew(l2a):
  out, _ = l2a
  assert ondisk_helpers.dataset_digest(out) == TINY_DIGEST


def test_make_clouds_hits_the_coverage_range():
  rng = np.random.default_rng(0)
  for low, high in synthetic.COVERAGE.values():
    clouds = cloud_shapes.make_clouds(rng, 64, low, high)
    assert low <= 100 * clouds.mask.mean() <= high
    assert (clouds.alpha[~clouds.mask] == 0).all()
    assert (clouds.shadow[~clouds.mask] == 0).all()


def test_cli_help_and_bad_arguments():
  env = dict(os.environ, PYTHONPATH=ROOT)
  run = lambda *a: subprocess.run([sys.executable, '-m', 'tools.synthetic',
                                   *a], capture_output=True, text=True,
                                  env=env, cwd=ROOT, check=False)
  helped = run('--help')
  assert helped.returncode == 0 and '--naming' in helped.stdout
  bad = run('/tmp/unused', '--dates', '3')
  assert bad.returncode == 2 and '--dates >= 6' in bad.stderr
  mix = run('/tmp/unused', '--mix', '1,2')
  assert mix.returncode == 2 and 'three non-negative weights' in mix.stderr


def test_shading_of_flat_and_tilted_ground():
  """Flat ground is lit as flat (1); a slope rising southward faces north,
  away from a southern sun: cos(incidence) / cos(zenith) by hand."""
  zenith, south = np.radians(60.0), np.pi
  flat = scenes.shading(np.zeros((4, 4, 2), np.float32), zenith, south)
  np.testing.assert_allclose(flat, 1.0, rtol=1e-6)
  rise = 0.1
  slopes = np.zeros((4, 4, 2), np.float32)
  slopes[..., 0] = rise
  expected = (np.cos(zenith) - rise * np.sin(zenith)) / (
      np.cos(zenith) * np.sqrt(1 + rise ** 2))
  np.testing.assert_allclose(scenes.shading(slopes, zenith, south),
                             expected, rtol=1e-5)


def test_relief_has_the_slope_asked_for():
  slopes = scenes.relief(np.random.default_rng(0), 64, 2, 0.04)
  assert slopes.shape == (64, 64, 2)
  assert slopes.std() == pytest.approx(0.04, rel=1e-4)


def test_a_veil_mixes_the_ground_toward_thin_cloud_grey(monkeypatch):
  monkeypatch.setattr(scenes, 'SENSOR_NOISE', np.float32(0.0))
  ground = np.full((4, 4, 3), 100.0, np.float32)
  veil = np.full((4, 4), 0.1, np.float32)
  image = scenes.compose(ground, None, np.random.default_rng(0), gain=1.0,
                         haze=0.0, veil=veil)
  grey = scenes.CLOUD - scenes.THIN_CLOUD_GREY
  np.testing.assert_array_equal(image[0, 0],
                                np.floor(100 + 0.1 * (grey - 100) + 0.5))
