"""tools.prepare: dated GeoTIFFs -> the upstream training layout."""

import json
import os
import re
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
import rasterio
from rasterio.windows import Window

from configs import cloudtran_core_train
from datasets import pipeline
from rasters import radiometry
from rasters import reader
from tests import raster_helpers as rh
from tools import prepare
from tools import summary
from tools import synthetic_geotiff
from utils.errors import DataError

OPTIONS = prepare.Options(patch=32, stride=32, test_fraction=0.2, seed=0,
                          block=2, timeline=4, resolution=32)


@pytest.fixture(scope='module')
def scene(tmp_path_factory):
  root = tmp_path_factory.mktemp('scene')
  synthetic_geotiff.write_scene(root, width=200, height=136, dates=8, seed=0)
  return root


def _prepare(scene, out, options=OPTIONS, kind='scl'):
  with reader.open_series(str(scene / 'images' / '*.tif'),
                          **{kind: str(scene / kind / '*.tif')}) as series:
    return prepare.prepare(str(out), series, options)


def _read_png(path):
  with Image.open(path) as im:
    return np.asarray(im)


def _config(out, split):
  config = cloudtran_core_train.get_config('tiny')
  config.data_dir = os.path.join(out, f'videos_final_{split}')
  config.mask_dir = os.path.join(out, f'masks_final_{split}')
  config.jsonf = os.path.join(out, f'{split}.json')
  config.timeline, config.num_epochs, config.batch_size = 4, 1, 1
  return config


def _count(config, subset):
  dataset = pipeline.get_dataset(config, 1, subset)
  return sum(1 for _ in dataset.as_numpy_iterator())


def test_get_dataset_reads_every_prepared_patch(scene, tmp_path):
  report = _prepare(scene, tmp_path)
  kept = report['counts']['kept']
  assert report['counts']['patches'] == 6 * 4
  assert kept['trainset'] >= 4 and kept['testset'] >= 2
  for split, subsets in (('trainset', ('train',)),
                         ('testset', ('valid', 'test'))):
    with open(tmp_path / f'{split}.json') as f:
      table = json.load(f)
    assert len(table) == kept[split]
    assert sorted(os.listdir(tmp_path / f'videos_final_{split}')) == sorted(
        name[1:] for name in table)
    for subset in subsets:
      assert _count(_config(str(tmp_path), split), subset) == kept[split]
  text = summary.summarize(_config(str(tmp_path), 'testset'), 'valid', 1)
  assert 'valid pipeline of' in text and 'example 0: tile' in text


def test_windows_map_back_to_the_input_pixels(scene, tmp_path):
  report = _prepare(scene, tmp_path, kind='masks')
  with rasterio.open(scene / 'images' / f'{report["dates"][-1]}.tif') as src:
    assert report['grid']['transform'] == list(src.transform)[:6]
    assert report['grid']['crs'] == src.crs.to_string()
  patches = [p for p in report['patches'] if 'refs' in p]
  for patch in patches[:3] + patches[-2:]:
    col, row, width, height = patch['window']
    with rasterio.open(scene / 'scl' / f'{report["dates"][0]}_SCL_20m.tif'
                       ) as src:   # the map coordinates, on the 20 m grid
      assert src.index(*patch['bounds'][:2]) == (
          (row + height) // 2, col // 2)
    folder = f'{patch["number"]:05d}'
    for date in report['dates'][::3]:
      stem = f'{patch["tile"]}_{date.replace("-", "")}_{folder}.png'
      with rasterio.open(scene / 'images' / f'{date}.tif') as src:
        dn = src.read(window=Window(col, row, width, height))
      with rasterio.open(scene / 'masks' / f'{date}.tif') as src:
        truth = src.read(1, window=Window(col, row, width, height))
      np.testing.assert_array_equal(
          _read_png(tmp_path / f'videos_final_{patch["split"]}' / folder /
                    stem), radiometry.to_uint8(dn, 1000).transpose(1, 2, 0))
      np.testing.assert_array_equal(
          _read_png(tmp_path / f'masks_final_{patch["split"]}' / folder /
                    stem), truth * 255)


def _splits(report):
  return {p['number']: p['split'] for p in report['patches']}


def test_split_is_spatial_and_seeded(scene, tmp_path):
  first = _prepare(scene, tmp_path / 'a')
  again = _prepare(scene, tmp_path / 'b')
  assert _splits(first) == _splits(again)
  for name in ('trainset.json', 'testset.json'):
    assert (tmp_path / 'a' / name).read_text() == (
        tmp_path / 'b' / name).read_text()
  others = [_splits(_prepare(scene, tmp_path / f's{seed}', prepare.Options(
      **{**OPTIONS.__dict__, 'seed': seed}))) for seed in (1, 2, 3)]
  assert any(other != _splits(first) for other in others)
  # Whole blocks of 2x2 patches go to test; no kept train patch touches one.
  patches = first['patches']
  tests = [p for p in patches if p['split'] == 'testset']
  assert tests and len(tests) % 4 == 0
  train = [p for p in patches if p['split'] == 'trainset' and 'refs' in p]
  for p in train:
    c, r, w, h = p['window']
    for t in tests:
      tc, tr, tw, th = t['window']
      assert c > tc + tw or tc > c + w or r > tr + th or tr > r + h
  assert first['counts']['skipped'][f'trainset: {prepare.BUFFER}'] > 0


def _series(root, images, masks, kind='scl', mask_kwargs=None):
  pattern, mask_pattern = rh.write_series(
      root, dict(zip(['2024-06-01', '2024-06-11', '2024-06-21', '2024-07-01'],
                     zip(images, masks))), kind=kind, mask_kwargs=mask_kwargs)
  return reader.open_series(pattern, **{kind: mask_pattern})


def test_nodata_and_scl_are_honoured(tmp_path):
  images = [rh.ramp_image(16, 32, seed=s) for s in range(4)]
  images[1][:, :4, :6] = 0                      # no data in date 1
  scl = [np.full((8, 16), 4, np.uint8) for _ in range(4)]
  scl[2][0, 9], scl[2][3, 11] = 9, 3           # 20 m cloud and shadow
  scl[3][5, 0], scl[3][2, 12] = 0, 10          # no data, cirrus
  options = prepare.Options(patch=16, stride=16, test_fraction=0, block=1,
                            timeline=4, resolution=16)
  with _series(tmp_path, images, scl, mask_kwargs={
      'transform': rh.north_up(rh.LEFT, rh.TOP, 20)}) as series:
    report = prepare.prepare(str(tmp_path / 'out'), series, options)
  assert report['counts']['kept'] == {'trainset': 2, 'testset': 0}
  for number in (0, 1):
    for t, date in enumerate(report['dates']):
      expected = np.kron(np.isin(scl[t], [0, 3, 8, 9, 10]), np.ones((2, 2))
                         ).astype(bool)
      expected |= (images[t] == 0).all(axis=0)
      stem = f'P{number:05d}_{date.replace("-", "")}_{number:05d}.png'
      mask = _read_png(tmp_path / 'out' / 'masks_final_trainset' /
                       f'{number:05d}' / stem)
      np.testing.assert_array_equal(mask == 255,
                                    expected[:, 16 * number:16 * number + 16])


def test_too_few_clear_dates_are_skipped_and_counted(tmp_path):
  images = [rh.ramp_image(16, 48, seed=s) for s in range(4)]
  masks = [np.zeros((16, 48), np.uint8) for _ in range(4)]
  for t in (1, 2, 3):                       # patch 0: clear only at date 0
    masks[t][:, :16] = 1
  for t in (0, 1, 2):                       # patch 1: half never clear before
    masks[t][:8, 16:32] = 1                 # the clear date 3
  options = prepare.Options(patch=16, stride=16, test_fraction=0, block=1,
                            timeline=4, resolution=16)
  with _series(tmp_path, images, masks, kind='masks') as series:
    report = prepare.prepare(str(tmp_path / 'out'), series, options)
  assert report['counts']['skipped'] == {
      f'trainset: {prepare.NO_CLEAR}': 1, f'trainset: {prepare.UNCOVERED}': 1}
  assert report['counts']['kept'] == {'trainset': 1, 'testset': 0}
  assert [p.get('skipped') for p in report['patches']] == [
      prepare.NO_CLEAR, prepare.UNCOVERED, None]
  assert report['patches'][2]['refs'] == {'index': 3}


def test_bad_input(tmp_path):
  images = [rh.ramp_image(16, 16, seed=s) for s in range(4)]
  masks = [np.zeros((16, 16), np.uint8)] * 4
  with _series(tmp_path, images, masks, kind='masks') as series:
    with pytest.raises(DataError, match='smaller than --patch 32'):
      prepare.prepare(str(tmp_path / 'out'), series, OPTIONS)
    options = prepare.Options(patch=16, stride=16, test_fraction=0,
                              timeline=3, resolution=16)
    prepare.prepare(str(tmp_path / 'out'), series, options)
    with pytest.raises(DataError, match='already holds a dataset'):
      prepare.prepare(str(tmp_path / 'out'), series, options)


def test_command_prints_the_summary(scene, tmp_path):
  out = tmp_path / 'out'
  result = subprocess.run(
      [sys.executable, '-m', 'tools.prepare', str(out), '--inputs',
       str(scene / 'images' / '*.tif'), '--scl', str(scene / 'scl' / '*.tif'),
       '--patch', '32', '--stride', '32', '--test_fraction', '0.2',
       '--seed', '0', '--block', '2', '--timeline', '4'],
      capture_output=True, text=True, check=True,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  with open(out / 'prepare.json') as f:
    kept = json.load(f)['counts']['kept']
  assert re.search(rf'trainset +{kept["trainset"]}\n', result.stdout)
  assert re.search(rf'testset +{kept["testset"]}\n', result.stdout)
  assert '90-100 %' in result.stdout and '--config.jsonf=' in result.stdout


# What the output is good for.


def _masks_series(tmp_path, masks, **options):
  images = [rh.ramp_image(16, 32, seed=s) for s in range(len(masks))]
  options = prepare.Options(**{'patch': 16, 'stride': 16, 'test_fraction': 0,
                               'block': 1, 'timeline': 3, 'resolution': 16,
                               **options})
  return _series(tmp_path, images, masks, kind='masks'), options


def test_no_patch_kept_names_the_reasons_and_writes_nothing(tmp_path):
  """Before: `No such file or directory: OUT/trainset.json`."""
  cloudy = [np.ones((16, 32), np.uint8)] * 4
  series, options = _masks_series(tmp_path, cloudy)
  with series:
    with pytest.raises(DataError, match=(
        rf'^No patch of the 2 kept \(2 trainset: {prepare.NO_CLEAR}\); '
        'nothing written — add dates with clear views')):
      prepare.prepare(str(tmp_path / 'out'), series, options)
  assert not os.path.exists(tmp_path / 'out')


def test_an_empty_split_and_no_partly_cloudy_mask_are_warnings(tmp_path):
  """Clear or overcast dates only, no test split. Before: exit 0, and
  training failed later with 'No moderate mask'; the warning's first fix,
  procedural clouds, trains on it."""
  masks = [np.zeros((16, 32), np.uint8)] * 3 + [np.ones((16, 32), np.uint8)]
  series, options = _masks_series(tmp_path, masks)
  with series:
    report = prepare.prepare(str(tmp_path / 'out'), series, options)
  assert report['counts']['kept'] == {'trainset': 2, 'testset': 0}
  assert report['warnings'] == [
      'The testset split is empty: validation, sampling and evaluation will '
      'have no data — raise --test_fraction or lower --block.',
      'The trainset has no partly cloudy mask (5 % < cover <= 30 %), which '
      'training draws its synthetic clouds from by default — train with '
      '--config.synthetic_clouds=procedural (seeded fractal clouds '
      'instead), or raise --max_coverage (and config.max_coverage the '
      'same), or add dates with scattered clouds.']
  assert '  warning: The testset split is empty' in prepare.summary(
      str(tmp_path / 'out'), report)
  config = _config(str(tmp_path / 'out'), 'trainset')
  config.timeline, config.resolution = 3, (16, 16)
  with pytest.raises(DataError, match='synthetic_clouds=procedural'):
    _count(config, 'train')
  config.synthetic_clouds = 'procedural'
  assert _count(config, 'train') == 2
  half = np.zeros((16, 32), np.uint8)
  half[:4] = 1                                 # 25 %: partly cloudy
  series, options = _masks_series(tmp_path / 'b', masks[:3] + [half])
  with series:
    report = prepare.prepare(str(tmp_path / 'b' / 'out'), series, options)
  assert not any('partly cloudy' in w for w in report['warnings'])
