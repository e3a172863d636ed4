"""Writes the benchmark dataset of `make reproduce-small`.

  python -m tools.benchmark OUT --seed 1

Unlike the demo's `tools.synthetic`, whose tiles are independent scenes,
the tiles are cut from ONE synthetic landscape (crop parcels sharing the
region's crop calendar, lakes, forests, roads), split by region: train from
the west, then valid, then holdout in the east, each region separated by
a guard band wider than a parcel, so no pixel and no parcel is shared.

What makes the per-pixel mosaic of the latest clear date wrong, as on real
imagery, and what a model can learn from the target's clear pixels:
  - phenology: crops sown, growing, ripening and harvested per crop type;
    deciduous forest and grass following the season;
  - field changes: some parcels are ploughed or mown on a day of their own
    and stay bare for a while;
  - seasonal light: each date has a brightness that follows the sun's
    season and a colour drift of its own (per channel), plus haze;
  - clouds of fractal noise with soft edges and shadows offset from them.

Layout (the upstream one, so every command reads it unchanged):
  OUT/videos_final_trainset, masks_final_trainset, trainset.json   train
  OUT/videos_final_testset, masks_final_testset, testset.json      valid
      (val_index: a clear reference, truth-bearing; test_index: cloudy)
  OUT/holdout/videos_final_testset, ..., holdout/testset.json      holdout
      (the same kind as valid; its val_index subset is the final table's
      split, never used for choices)
  OUT/benchmark.json: the arguments and every tile's window in the landscape.
"""

import concurrent.futures
import dataclasses
import datetime
import json
import math
import multiprocessing
import os

import numpy as np

from tools import scenes
from tools import synthetic
from utils import cli
from utils import cloud_shapes
from utils import images

# Region -> (dataset root under OUT, split folder of the upstream layout).
REGIONS = {'train': ('', 'trainset'), 'valid': ('', 'testset'),
           'holdout': ('holdout', 'testset')}
# Landscape features are sized as in a tile of this many pixels.
FEATURE_PERIOD = 256
# Guard band between regions, in pixels (parcels are at most ~112 px long).
GUARD_PX = 128
# Field changes: share of crop/grass parcels with one, and how long (year
# fraction) the field stays bare after it.
CHANGE_SHARE, CHANGE_DURATION = 0.35, 0.2
# Seasonal light: brightness amplitude (summer brighter), per-date colour
# drift (standard deviation of the per-channel gain) and haze range.
SEASON_GAIN, COLOUR_DRIFT, HAZE = 0.15, 0.03, (0.0, 14.0)
# Days between a tile's dates (uniform, end excluded).
DATE_GAP = (8, 40)
# Cloud draws per date until one is in its coverage range (small tiles need
# more than cloud_shapes.make_clouds' default).
CLOUD_TRIES = 200


@dataclasses.dataclass(frozen=True)
class Tile:
  region: str
  number: int    # folder number within its split
  serial: int    # unique over the dataset (tile name)
  top: int
  left: int


def layout(counts, size):
  """Places the tiles: one column strip of the landscape per region.

  Args:
    counts: {region: number of tiles}, in REGIONS order.
    size: tile side.

  Returns:
    (tiles, side): the Tile list and the (square) landscape side.
  """
  rows = max(1, math.ceil(math.sqrt(sum(counts.values()))))
  guard = math.ceil(GUARD_PX / size)
  tiles, column, serial = [], 0, 0
  for region in REGIONS:
    for number in range(counts[region]):
      tiles.append(Tile(region, number, serial,
                        (number % rows) * size,
                        (column + number // rows) * size))
      serial += 1
    column += math.ceil(counts[region] / rows) + guard
  side = max(rows, column - guard) * size
  return tiles, side


def crop(land, top, left, size):
  """The window of `land` at (top, left): per-pixel arrays cut, parcels'
  attributes kept whole (labels stay the landscape's parcel ids)."""
  cut = lambda a: a[top:top + size, left:left + size]
  return dataclasses.replace(
      land, labels=cut(land.labels), forest=cut(land.forest),
      water=cut(land.water), road=cut(land.road), margin=cut(land.margin),
      texture=cut(land.texture))


def make_region(seed, counts, size):
  """(landscape, per-parcel field-change day or NaN, tiles), from `seed`."""
  tiles, side = layout(counts, size)
  rng = np.random.default_rng([seed, 0])
  land = scenes.make_landscape(rng, side, FEATURE_PERIOD)
  changes = np.where((land.kind < 2) & (rng.random(land.kind.size) <
                                        CHANGE_SHARE),
                     rng.random(land.kind.size), np.nan)
  return land, changes, tiles


def ground(land, changes, day):
  """(S, S, 3) float32 ground on `day` (year fraction), with field changes:
  a changed parcel is bare soil for CHANGE_DURATION after its day."""
  colours = scenes.render(land, day)
  since = (day - changes) % 1.0                      # NaN for no change
  bare = (since < CHANGE_DURATION)[land.labels] & ~(
      land.forest | land.water | land.road)
  colours[bare] = scenes.WET_SOIL + land.texture[bare, None]
  return colours


def light(rng, day):
  """(gain per channel, haze) of a date on `day` (year fraction)."""
  season = np.cos(2 * np.pi * (day - 0.5))          # 1 in early July
  gain = (1.0 + SEASON_GAIN * season) * (
      1.0 + rng.normal(0.0, COLOUR_DRIFT, 3))
  return gain.astype(np.float32), rng.uniform(*HAZE)


def write_tile(out, tile, land, changes, plan, seed, size):
  """Renders and writes every date of one tile; returns its tile name."""
  refs, categories = plan
  root, split = REGIONS[tile.region]
  rng = np.random.default_rng([seed, 1, tile.serial])
  name = synthetic.tile_name('l2a', tile.serial)
  day = synthetic.FIRST_DAY + datetime.timedelta(days=int(rng.integers(365)))
  folder = f'{tile.number:05d}'
  image_dir = os.path.join(out, root, f'videos_final_{split}', folder)
  mask_dir = os.path.join(out, root, f'masks_final_{split}', folder)
  os.makedirs(image_dir, exist_ok=True)
  os.makedirs(mask_dir, exist_ok=True)
  for category in categories:
    clouds = (cloud_shapes.make_clouds(
        rng, size, *synthetic.COVERAGE[category], tries=CLOUD_TRIES)
              if category != 'clear' else None)
    year_fraction = day.timetuple().tm_yday / 365.0
    gain, haze = light(rng, year_fraction)
    image = scenes.compose(ground(land, changes, year_fraction), clouds, rng,
                           gain=gain, haze=haze)
    mask = (np.zeros((size, size), np.uint8) if clouds is None
            else clouds.mask.astype(np.uint8) * 255)
    stem = synthetic.file_stem('l2a', name, tile.number, day, None)
    images.save(os.path.join(image_dir, stem + '.png'), image, fast=True)
    images.save(os.path.join(mask_dir, stem + '.png'), mask, fast=True)
    day += datetime.timedelta(days=int(rng.integers(*DATE_GAP)))
  return name


def plan_region(seed, region, count, args):
  """Reference dates and categories of a region's tiles."""
  rng = np.random.default_rng([seed, 2, list(REGIONS).index(region)])
  first = synthetic.first_reference(args.timeline)
  plans = [synthetic.plan_tile(rng, REGIONS[region][1], args.dates, first,
                               False, args.mix) for _ in range(count)]
  synthetic.ensure_moderate(plans)
  return plans


def make_benchmark(out, args):
  """Writes every region; returns {region: [(name, refs, categories)]}."""
  counts = {'train': args.train, 'valid': args.valid,
            'holdout': args.holdout}
  land, changes, tiles = make_region(args.seed, counts, args.size)
  plans = {region: plan_region(args.seed, region, counts[region], args)
           for region in REGIONS}
  jobs = [(out, t, crop(land, t.top, t.left, args.size), changes,
           plans[t.region][t.number], args.seed, args.size)
          for t in tiles]
  # Spawned, not forked: the caller may hold TensorFlow's threads.
  with concurrent.futures.ProcessPoolExecutor(
      os.cpu_count(), mp_context=multiprocessing.get_context('spawn')) as pool:
    names = list(pool.map(write_tile, *zip(*jobs)))
  written = {region: [] for region in REGIONS}
  for tile, name in zip(tiles, names):
    refs, categories = plans[tile.region][tile.number]
    written[tile.region].append((name, refs, categories))
  for region, (root, split) in REGIONS.items():
    table = {name: {k: str(v) for k, v in refs.items()}
             for name, refs, _ in written[region]}
    with open(os.path.join(out, root, f'{split}.json'), 'w') as f:
      json.dump(table, f, indent=1)
  with open(os.path.join(out, 'benchmark.json'), 'w') as f:
    json.dump({'args': {k: v for k, v in vars(args).items() if k != 'out'},
               'guard_px': GUARD_PX,
               'tiles': [dataclasses.asdict(t) | {'name': n}
                         for t, n in zip(tiles, names)]}, f, indent=1)
  return written


def summary(out, args, written):
  lines = [f'Benchmark dataset in {out} (seed {args.seed}): {args.dates} '
           f'dates of {args.size}x{args.size} per tile, regions of one '
           f'landscape {GUARD_PX} px apart.']
  for region, (root, split) in REGIONS.items():
    where = os.path.join(out, root, f'videos_final_{split}')
    lines.append(f'  {region}: {len(written[region])} tiles in {where}')
  return '\n'.join(lines)


def parser():
  p = cli.ArgumentParser(
      prog='python -m tools.benchmark',
      description='Writes the benchmark dataset of make reproduce-small: '
                  'train / valid / holdout tiles from disjoint regions of one '
                  'synthetic landscape, in the upstream layout.')
  p.add_argument('out', help='output directory')
  p.add_argument('--train', type=int, default=240, help='train tiles')
  p.add_argument('--valid', type=int, default=48, help='valid tiles')
  p.add_argument('--holdout', type=int, default=48, help='holdout tiles')
  p.add_argument('--dates', type=int, default=8, help='dates per tile')
  p.add_argument('--size', type=int, default=72, help='tile side (pixels)')
  synthetic.add_plan_arguments(p, seed=1)
  return p


def main(argv=None):
  p = parser()
  args = p.parse_args(argv)
  synthetic.check_arguments(
      p, args, min(args.train, args.valid, args.holdout) >= 1 and
      args.size >= 16, '--train, --valid, --holdout >= 1, --size >= 16')
  written = make_benchmark(args.out, args)
  print(summary(args.out, args, written))
  return written


if __name__ == '__main__':
  cli.guard(main)
