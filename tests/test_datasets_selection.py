"""Keep/drop rules on the hand-made split of `tests.ondisk_helpers`.

  tile  d0      d1     d2 (reference)   train/valid       test
  0     BOTTOM  clear  clear            keep              drop: category
  1     clear   clear  TOP              drop: category    keep
  2     clear   FULL   FULL             drop: category    drop: uncovered
  3     clear   FULL   clear            valid: uncovered  drop: category

The moderate pool is {tile 0 d0 (BOTTOM), tile 1 d2 (TOP)}.
"""

import os
from unittest import mock

from absl import logging
from PIL import Image
import pytest

from datasets import selection
from datasets import subsets
from tests import ondisk_helpers
from utils.errors import DataError

SIZE = ondisk_helpers.SIZE
MASKS = ondisk_helpers.KNOWN_MASKS
write_known_split = ondisk_helpers.write_known_split
known_config = ondisk_helpers.known_config
image = ondisk_helpers.known_image


@pytest.fixture
def config(tmp_path):
  return known_config(write_known_split(str(tmp_path)))


def tiles(chosen):
  return [e.tile for e in chosen.examples]


@pytest.mark.parametrize('subset, kept, dropped', [
    ('train', [0, 3], {selection.RULE_CATEGORY: 2,
                       selection.RULE_UNCOVERED: 0}),
    ('eval_train', [0], {selection.RULE_CATEGORY: 2,
                         selection.RULE_UNCOVERED: 1}),
    ('valid', [0], {selection.RULE_CATEGORY: 2,
                    selection.RULE_UNCOVERED: 1}),
    ('test', [1], {selection.RULE_CATEGORY: 2,
                   selection.RULE_UNCOVERED: 1}),
])
def test_keep_drop_rules(config, subset, kept, dropped):
  chosen = selection.select(config, subset)
  assert tiles(chosen) == kept
  assert chosen.dropped == dropped


def test_pool_is_sorted_moderate_masks(config):
  pool = selection.select(config, 'valid').pool
  assert [os.path.relpath(p, config.mask_dir) for p in pool] == [
      os.path.join('00000', 'T0_20200101_000.png'),
      os.path.join('00001', 'T1_20200103_000.png')]
  assert selection.select(config, 'test').pool == []


def test_valid_synthetic_mask_seeded_by_tile(config):
  first = selection.select(config, 'valid').examples
  second = selection.select(config, 'valid').examples
  assert first == second and first[0].synthetic
  assert all(e.synthetic == '' for e in selection.select(
      config, 'train').examples)


def test_drop_counts_are_logged(config):
  with mock.patch.object(logging, 'info') as info:
    selection.select(config, 'test')
  message = info.call_args_list[0].args[0] % info.call_args_list[0].args[1:]
  assert ("dropped 2 by 'reference category', 1 by 'a pixel cloudy in "
          "every input slot'; 1 examples") in message


def test_empty_split_says_which_rules(tmp_path):
  root = write_known_split(str(tmp_path), {0: MASKS[0], 3: MASKS[3]})
  with pytest.raises(DataError, match=r"Subset 'test' .* is empty: of 2 "
                     r"tiles, 2 by 'reference category', 0 by 'a pixel"):
    selection.select(known_config(root), 'test')


def test_no_moderate_mask_for_the_pool(tmp_path):
  root = write_known_split(str(tmp_path), {2: MASKS[2], 3: MASKS[3]})
  with pytest.raises(DataError, match='No moderate mask'):
    selection.select(known_config(root), 'valid')


def test_procedural_valid_clouds_need_no_pool_and_apply_rule_2(tmp_path):
  config = known_config(write_known_split(
      str(tmp_path), ondisk_helpers.NO_MODERATE_MASKS))
  config.synthetic_clouds = 'procedural'
  chosen = selection.select(config, 'valid')
  assert tiles(chosen) == [0, 1] and chosen.pool == []
  assert chosen.dropped == {selection.RULE_CATEGORY: 0,
                            selection.RULE_UNCOVERED: 1}
  assert all(e.synthetic == '' for e in chosen.examples)
  assert tiles(selection.select(config, 'train')) == [0, 1, 2]


def test_mask_size_differs_from_image(tmp_path):
  masks = dict(MASKS)
  root = write_known_split(str(tmp_path), masks)
  path = os.path.join(root, 'videos_final_testset', '00000',
                      'T0_20200102_000.png')
  Image.fromarray(image(0, 1)[:, :6]).save(path)
  with pytest.raises(DataError, match=r'T0_20200102_000\.png is 8x6 but its '
                     'mask is 8x8'):
    selection.select(known_config(root), 'valid')


def test_truncated_image_is_reported(tmp_path):
  root = write_known_split(str(tmp_path))
  path = os.path.join(root, 'videos_final_testset', '00001',
                      'T1_20200103_000.png')
  data = open(path, 'rb').read()
  open(path, 'wb').write(data[:-20])
  with pytest.raises(DataError, match=r'Cannot read image .*00001.*'
                     r'T1_20200103_000\.png'):
    selection.select(known_config(root), 'test')


def test_too_few_dates_and_tile_smaller_than_resolution(config):
  config.ref_index = 5
  with pytest.raises(DataError, match='Tile 00000 has too few dates'):
    selection.select(config, 'valid')
  config.ref_index, config.resolution = 2, (16, 16)
  with pytest.raises(DataError, match='Tile 00000 is 8x8, smaller than '
                     r'config.resolution=16'):
    selection.select(config, 'valid')


def test_unknown_subset(config):
  with pytest.raises(ValueError, match="subset must be one of"):
    selection.select(config, 'validation')


def test_subsets_table_gives_the_command_modes():
  assert subsets.modes('eval') == {
      'eval_train': subsets.SUBSETS['eval_train'],
      'eval_valid': subsets.SUBSETS['valid'],
      'eval_test': subsets.SUBSETS['test']}
  assert subsets.WITH_TRUTH == ('train', 'valid')
  assert [s.json_key for s in subsets.SUBSETS.values()] == [
      'index', 'index', 'val_index', 'test_index']
  with pytest.raises(ValueError, match='subset must be one of'):
    subsets.get('validation')
