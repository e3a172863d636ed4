"""On-disk layout: namings, date order, pairing, JSON indexing, mask scans."""

import json
import os

import numpy as np
from PIL import Image
import pytest

from datasets import indexing
from datasets import ondisk
from datasets import scan
from datasets import subsets
from tests import ondisk_helpers
from utils.errors import DataError

SIZE = 8
GREY = ondisk_helpers.constant_image(SIZE, (90, 100, 110))
CLEAR = np.zeros((SIZE, SIZE), np.uint8)


def write(tmp_path, stems, image_ext='.png', folder='00003'):
  root = ondisk_helpers.write_split(
      tmp_path, 'trainset', {folder: [(s, GREY, CLEAR) for s in stems]},
      image_ext)
  image_dir, mask_dir = ondisk_helpers.split_dirs(root, 'trainset')
  return os.path.join(image_dir, folder), os.path.join(mask_dir, folder)


def stems(tile):
  return [(d.index, d.stem) for d in tile.dates]


def test_l2a_dates_ordered_by_name(tmp_path):
  names = ['T31TCJ_20200315_00003', 'T31TCJ_20200101_00003',
           'T31TCJ_20200210_00003']
  tile = ondisk.read_tile(*write(tmp_path, names))
  assert tile.number == 3 and tile.name == 'T31TCJ'
  assert stems(tile) == [(0, names[1]), (1, names[2]), (2, names[0])]


def test_inhouse_jpeg_images_pair_with_png_masks(tmp_path):
  names = ['20200105_003', '20191230_003']
  tile = ondisk.read_tile(*write(tmp_path, names, image_ext='.jpeg'))
  assert stems(tile) == [(0, '20191230_003'), (1, '20200105_003')]
  assert tile.dates[0].image.endswith('.jpeg')
  assert tile.dates[0].mask.endswith('20191230_003.png')
  with pytest.raises(DataError, match='in-house naming has no tile name'):
    _ = tile.name


def test_l1c_indexed_by_time_numerically(tmp_path):
  names = [f'ROIs1158_rgb_{t}' for t in (10, 2, 9, 3)]
  tile = ondisk.read_tile(*write(tmp_path, names))
  assert stems(tile) == [(2, 'ROIs1158_rgb_2'), (3, 'ROIs1158_rgb_3'),
                         (9, 'ROIs1158_rgb_9'), (10, 'ROIs1158_rgb_10')]
  assert tile.date(9).stem == 'ROIs1158_rgb_9' and tile.date(4) is None
  assert tile.name == 'ROIs1158'


def test_l1c_mixed_with_other_names_fails(tmp_path):
  with pytest.raises(DataError, match='00003 mixes L1C names'):
    ondisk.read_tile(*write(tmp_path, ['p_rgb_1', 'T1_20200101_000']))


def test_missing_mask_names_tile_and_file(tmp_path):
  image_dir, mask_dir = write(tmp_path, ['a_1', 'a_2'])
  os.remove(os.path.join(mask_dir, 'a_2.png'))
  with pytest.raises(DataError, match=r'Tile 00003: image .*a_2\.png has no '
                     r'mask a_2\.png'):
    ondisk.read_tile(image_dir, mask_dir)


def test_missing_image_names_tile_and_file(tmp_path):
  image_dir, mask_dir = write(tmp_path, ['a_1', 'a_2'])
  os.remove(os.path.join(image_dir, 'a_1.png'))
  with pytest.raises(DataError, match=r"Tile 00003: mask .*a_1\.png has no "
                     r"image with the stem 'a_1'"):
    ondisk.read_tile(image_dir, mask_dir)


def test_missing_mask_folder_and_extra_mask_folder(tmp_path):
  image_dir, mask_dir = write(tmp_path, ['a_1'])
  os.rename(mask_dir, mask_dir + '9')
  with pytest.raises(DataError, match='Mask folder .*000039 has no image'):
    ondisk.list_tiles(os.path.dirname(image_dir), os.path.dirname(mask_dir))
  with pytest.raises(DataError, match='Tile 00003: mask folder .* missing'):
    ondisk.read_tile(image_dir, mask_dir)


def test_unnumbered_folder_and_stray_file(tmp_path):
  with pytest.raises(DataError, match='not numbered'):
    ondisk.read_tile(*write(tmp_path, ['a_1'], folder='tileA'))
  image_dir, mask_dir = write(tmp_path, ['a_1'])
  open(os.path.join(image_dir, 'notes.txt'), 'w').close()
  with pytest.raises(DataError, match='notes.txt: tile folders hold only'):
    ondisk.read_tile(image_dir, mask_dir)


def test_missing_data_dir_names_config_key(tmp_path):
  with pytest.raises(DataError, match='config.data_dir'):
    ondisk.list_tiles(str(tmp_path / 'nope'), str(tmp_path))


def test_json_indexing_per_subset(tmp_path):
  tile = ondisk.read_tile(*write(
      tmp_path, [f'T31TCJ_2020010{d}_00003' for d in range(1, 9)]))
  jsonf = tmp_path / 'testset.json'
  jsonf.write_text(json.dumps(
      {'T31TCJ': {'index': '5', 'val_index': 6, 'test_index': '7'}}))
  table = indexing.load_table(str(jsonf))
  got = {s: indexing.reference_index(tile, s, 99, table, str(jsonf))
         for s in subsets.SUBSETS}
  assert got == {'train': 5, 'eval_train': 5, 'valid': 6, 'test': 7}
  assert indexing.reference_index(tile, 'valid', 4, None) == 4
  dates = indexing.slot_dates(tile, 6, timeline=4)
  assert [d.index for d in dates] == [4, 5, 6]


def test_json_without_the_tile(tmp_path):
  tile = ondisk.read_tile(*write(tmp_path, ['T31TCJ_20200101_00003']))
  jsonf = tmp_path / 'trainset.json'
  jsonf.write_text(json.dumps({'T32ABC': {'index': '1'}}))
  table = indexing.load_table(str(jsonf))
  with pytest.raises(DataError, match=r"Tile 'T31TCJ' \(folder 00003\) is "
                     r'not in config.jsonf'):
    indexing.reference_index(tile, 'train', 0, table, str(jsonf))


def test_json_bad_value_and_bad_file(tmp_path):
  tile = ondisk.read_tile(*write(tmp_path, ['T31TCJ_20200101_00003']))
  table = {'T31TCJ': {'index': 'x'}}
  with pytest.raises(DataError, match='needs an integer "val_index"'):
    indexing.reference_index(tile, 'valid', 0, table)
  bad = tmp_path / 'bad.json'
  bad.write_text('{')
  with pytest.raises(DataError, match='not valid JSON'):
    indexing.load_table(str(bad))


def test_too_few_dates_for_reference(tmp_path):
  tile = ondisk.read_tile(*write(tmp_path, ['a_1', 'a_2', 'a_3']))
  with pytest.raises(DataError, match=r'Tile 00003 has too few dates.*'
                     r'needs indices 0\.\.3.*\[3\] are missing'):
    indexing.slot_dates(tile, 3, timeline=5)


def test_mask_coverage_category_and_flip(tmp_path):
  mask = ondisk_helpers.rows_mask(SIZE, [0, 1])          # rows 0-1 cloudy
  path = str(tmp_path / 'm.png')
  Image.fromarray(mask).save(path)
  clear = scan.read_clear_mask(path, flip=False)
  assert clear.shape == (SIZE, SIZE) and not clear[0].any() and clear[2].all()
  assert scan.coverage(clear, SIZE) == 25.0
  assert scan.coverage(clear, 4) == 0.0           # central 4x4 is clear
  assert scan.coverage(scan.read_clear_mask(path, flip=True), SIZE) == 75.0
  assert [scan.category(c, 30) for c in (5.0, 5.1, 30.0, 30.1)] == [
      'clear', 'moderate', 'moderate', 'severe']


def test_truncated_mask_and_image(tmp_path):
  image_dir, mask_dir = write(tmp_path, ['a_1'])
  for path in (os.path.join(mask_dir, 'a_1.png'),
               os.path.join(image_dir, 'a_1.png')):
    data = open(path, 'rb').read()
    open(path, 'wb').write(data[:len(data) // 2])
  with pytest.raises(DataError, match=r'Cannot read mask .*a_1\.png'):
    scan.read_clear_mask(os.path.join(mask_dir, 'a_1.png'), False)
  with pytest.raises(DataError, match=r'Cannot read image .*a_1\.png.*'
                     'truncated'):
    scan.check_image(os.path.join(image_dir, 'a_1.png'), (SIZE, SIZE))


def test_image_size_must_match_mask(tmp_path):
  image_dir, _ = write(tmp_path, ['a_1'])
  with pytest.raises(DataError, match='is 8x8 but its mask is 8x6'):
    scan.check_image(os.path.join(image_dir, 'a_1.png'), (8, 6))


def test_cloudy_everywhere():
  top, bottom = np.ones((2, 4, 4), bool)
  top[0], bottom[3] = False, False
  assert not scan.cloudy_everywhere([top, bottom])
  assert scan.cloudy_everywhere([top, top])


def test_parallel_map_keeps_order_and_raises():
  def square(x):
    if x == 7:
      raise DataError('bad 7')
    return x * x
  assert scan.parallel_map(square, range(7)) == [x * x for x in range(7)]
  with pytest.raises(DataError, match='bad 7'):
    scan.parallel_map(square, range(20))
