"""Which tiles of a split make examples (docs/design.md, Keep and drop rules).

Rules, applied in this order and logged with the number of tiles each drops:
  1. reference category: a subset with `clear_reference` (train, eval_train,
     valid) keeps a tile only if its reference mask is clear; the others
     (test) only if it is not clear.
  2. nothing to recover from: a tile is dropped when some pixel is cloudy in
     all of slots 1..T-1 (own masks, and with 'fixed' clouds (valid,
     eval_train) the tile's deterministic synthetic cloud).

Both rules are decided here, once, per tile. Train's random clouds (drawn
anew each epoch) are augmentation of the kept tiles and are not re-checked:
upstream re-applied rule 2 to every draw, which on the synthetic data drops
60-100 % of the training examples (and all of them on tiny splits).

The synthetic clouds come from `config.synthetic_clouds`: 'dataset' draws
the split's moderate masks (the pool, upstream's rule); 'procedural' draws
fractal clouds with a cover in the same band (`procedural_clear_masks`).
"""

import dataclasses
import random

from absl import logging

from datasets import indexing
from datasets import ondisk
from datasets import scan
from datasets import subsets
from utils import cloud_shapes
from utils.errors import DataError

RULE_CATEGORY = 'reference category'
RULE_UNCOVERED = 'a pixel cloudy in every input slot'


@dataclasses.dataclass(frozen=True)
class Example:
  """One tile's example before decoding.

  tile: the folder number. dates: the T-1 distinct dates, oldest first,
  reference last. synthetic: the mask multiplied into slot T-1 for valid and
  eval_train ('' for train, which draws it at random, for test, and with
  procedural clouds, drawn from the tile number).
  """
  tile: int
  dates: tuple
  synthetic: str = ''


@dataclasses.dataclass(frozen=True)
class Selection:
  """The examples of a subset, the moderate-mask pool and the drop counts."""
  examples: list
  pool: list
  dropped: dict


def _moderate_pool(tiles, stats, config):
  """Sorted paths of every moderate mask of the split, all of one size."""
  masks = sorted(d.mask for t in tiles for d in t.dates)
  shapes = {stats[m][1] for m in masks}
  if len(shapes) > 1:
    raise DataError(
        f'Masks of {config.mask_dir} have different sizes {sorted(shapes)}; '
        'synthetic clouds are drawn from every mask of the split, so all '
        'images and masks of a split must share one size: resize them.')
  pool = [m for m in masks
          if scan.category(stats[m][0], config.max_coverage) == 'moderate']
  if not pool:
    raise DataError(
        f'No moderate mask (5 < coverage <= config.max_coverage='
        f'{config.max_coverage}) in {config.mask_dir} to draw synthetic clouds '
        'from — draw procedural clouds instead '
        '(--config.synthetic_clouds=procedural), or raise '
        'config.max_coverage, or add partly cloudy dates.')
  return pool


def procedural_clear_masks(seed, count, shape, config):
  """`count` (H, W) bool clear-masks of procedural clouds drawn from `seed`
  (`cloud_shapes.clear_masks`): (count, H, W), each with a cover above
  CLEAR_MAX and at most config.max_coverage % in its central
  config.resolution crop, the band of the moderate masks."""
  return cloud_shapes.clear_masks(seed, count, tuple(shape),
                                  config.resolution[0], scan.CLEAR_MAX,
                                  config.max_coverage)


def fixed_procedural_mask(tile, shape, config):
  """The (H, W) procedural clear-mask of a tile in valid and eval_train:
  seeded by the tile number alone, as the dataset rule's fixed choice is, so
  every pass and every run sees the same clouds."""
  return procedural_clear_masks(tile, 1, shape, config)[0]


def _check_tile(example, config, cache, procedural_cloud):
  """Decodes the images of an example; True if rule 2 drops it.

  `procedural_cloud`: slot T-1 gets the tile's `fixed_procedural_mask`.
  """
  resolution, flip = config.resolution[0], config.flip_masks
  clear = [scan.read_clear_mask(d.mask, flip) for d in example.dates]
  for date, mask in zip(example.dates, clear):
    scan.check_image(date.image, mask.shape, config.n_channels, cache)
  height, width = clear[0].shape
  if height == width < resolution:
    raise DataError(
        f'Tile {example.tile:05d} is {height}x{width}, smaller than '
        f'config.resolution={resolution}; lower config.resolution.')
  if example.synthetic:
    clear[-1] = clear[-1] & scan.read_clear_mask(example.synthetic, flip)
  elif procedural_cloud:
    clear[-1] = clear[-1] & fixed_procedural_mask(example.tile,
                                                  clear[-1].shape, config)
  return scan.cloudy_everywhere(clear)


def _keep_category(kind, name):
  """Rule 1: whether a reference mask of category `name` keeps its tile."""
  return (name == 'clear') == kind.clear_reference


def _log_and_check(subset, config, total, kept, dropped):
  counts = ', '.join(f'{n} by {rule!r}' for rule, n in dropped.items())
  logging.info('%s (%s): %d tiles, dropped %s; %d examples.', subset,
               config.data_dir, total, counts, kept)
  if not kept:
    want = 'clear' if subsets.get(subset).clear_reference else 'not clear'
    raise DataError(
        f'Subset {subset!r} of {config.data_dir} is empty: of {total} tiles, '
        f'{counts}. Each tile needs a {want} reference mask (coverage <= 5 % '
        f'inside the central config.resolution crop) and, in every pixel, a '
        'clear input slot; check config.ref_index / config.jsonf, '
        'config.flip_masks and config.max_coverage.')


def select(config, subset):
  """Lists the tiles of a split and applies the keep/drop rules.

  Args:
    config: reads data_dir, mask_dir, jsonf, ref_index, timeline, resolution,
      max_coverage, flip_masks, n_channels, synthetic_clouds.
    subset: a name of `subsets.SUBSETS` (which says the JSON key of its
      reference index, its clouds and its keep rule).

  Returns:
    A `Selection`.
  """
  kind = subsets.get(subset)
  tiles = ondisk.list_tiles(config.data_dir, config.mask_dir)
  table = indexing.load_table(config.jsonf) if config.jsonf else None
  examples = [
      Example(t.number, indexing.slot_dates(
          t, indexing.reference_index(t, subset, config.ref_index, table,
                                      config.jsonf), config.timeline))
      for t in tiles]
  size, flip = config.resolution[0], config.flip_masks
  procedural = config.synthetic_clouds == 'procedural'
  from_pool = bool(kind.clouds) and not procedural
  if from_pool:
    masks = sorted(d.mask for t in tiles for d in t.dates)
  else:
    masks = [e.dates[-1].mask for e in examples]
  stats = dict(zip(masks, scan.parallel_map(
      lambda m: scan.mask_stats(m, flip, size), masks)))
  pool = _moderate_pool(tiles, stats, config) if from_pool else []

  kept = [e for e in examples if _keep_category(
      kind, scan.category(stats[e.dates[-1].mask][0], config.max_coverage))]
  if from_pool and kind.clouds == 'fixed':
    kept = [dataclasses.replace(e, synthetic=random.Random(e.tile).choice(pool))
            for e in kept]
  procedural_cloud = procedural and kind.clouds == 'fixed'
  cache = scan.ImageCache(config.data_dir)
  try:
    uncovered = scan.parallel_map(
        lambda e: _check_tile(e, config, cache, procedural_cloud), kept)
  finally:
    cache.save()
  final = [e for e, drop in zip(kept, uncovered) if not drop]
  dropped = {RULE_CATEGORY: len(examples) - len(kept),
             RULE_UNCOVERED: len(kept) - len(final)}
  _log_and_check(subset, config, len(tiles), len(final), dropped)
  return Selection(final, pool, dropped)
