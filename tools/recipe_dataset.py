"""Writes the benchmark dataset of `make reproduce-small`.

  python -m tools.recipe_dataset OUT --seed 1 [--version 2]

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

Two versions (--version; docs/benchmark_v2.md):
  1  the published one: every date clear (no cloud), moderate (6-15 %) or
     severe (60-100 %), the date before each reference always clear, and
     the light of a date one gain and haze for the whole tile;
  2  the default: every date's cover drawn from a wide, U-shaped
     distribution (COVER_MIXTURE), no date but the clear references
     guaranteed clear, cloud fringes the masks miss, and light that varies
     within a tile: haze patches, thin veils no mask flags, and the sun's
     shading of the terrain's relief, which changes with the season.

Layout (the upstream one, so every command reads it unchanged):
  OUT/videos_final_trainset, masks_final_trainset, trainset.json   train
  OUT/videos_final_testset, masks_final_testset, testset.json      valid
      (val_index: a clear reference, truth-bearing; test_index: cloudy)
  OUT/holdout/videos_final_testset, ..., holdout/testset.json      holdout
      (the same kind as valid; its val_index subset is the final table's
      split, never used for choices)
  OUT/benchmark.json: the arguments (the version too), and every tile's
      window in the landscape and per-date cloud cover (%).
"""

import concurrent.futures
import dataclasses
import datetime
import json
import math
import multiprocessing
import os

import numpy as np

from utils import scenes
from tools import synthetic
from utils import cli
from utils import cloud_shapes
from utils import images

VERSIONS = (1, 2)
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

# Version 2 (docs/benchmark_v2.md gives each amplitude's reason).
# Per-date cloud cover (fraction of the tile under cloud or shadow): a
# mixture of (weight, Beta(a, b)), None for exactly clear. At ~720 m a tile
# is mostly all or nothing: 20 % of dates fully clear, 25 % nearly clear
# (mean 5 %), 20 % broken (spread over 10-90 %), 35 % mostly cloudy (mean
# 89 %, a third of them above 95 %): a U shape, ~40 % mean cover.
COVER_MIXTURE = ((0.20, None), (0.25, (0.6, 12.0)), (0.20, (2.0, 2.0)),
                 (0.35, (8.0, 1.0)))
# Cloud and shadow rim the masks miss (noise deviations below the mask's
# threshold): ~2 px (up to 4) of thin edge, opacity ~0.14 next to the mask,
# as 20 m cloud masks miss the thin edges of clouds and shadows.
CLOUD_FRINGE = 0.4
# The pipeline's clear limit (%): a test reference is cloudier than it on
# every central crop, and a split's first date is moderate (the synthetic
# cloud pool).
CLEAR_LIMIT = 5.0
# Draws of a tile's clouds until every pixel is clear in some date of each
# reference's window (else the pipeline would drop the tile).
WINDOW_TRIES = 200
# Haze that varies within a tile: a smooth field, its standard deviation
# per date uniform in this range (8-bit, blue), with the aerosol's
# wavelength dependence (Angstrom exponent 1.3) for red and green.
HAZE_PATCHES = (0.0, 4.0)
HAZE_SPECTRUM = np.array([0.67, 0.84, 1.0], np.float32)
# Thin veils no mask flags: share of dates (not the clear references) with
# one, and its peak opacity (uniform range) toward thin-cloud grey.
VEIL_SHARE, VEIL_OPACITY = 0.4, (0.03, 0.12)
# Terrain relief: hills RELIEF_CELLS across a FEATURE_PERIOD tile, slope
# standard deviation (rise over run) of gently rolling farmland (~2.3 deg).
RELIEF_CELLS, RELIEF_SLOPE = 2, 0.04
# Sun at the overpass: latitude (deg) and local solar time (hour angle,
# deg) of a mid-European Sentinel-2 acquisition (10:30).
LATITUDE, HOUR_ANGLE = 48.0, -22.5


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


def make_relief(seed, side):
  """(side, side, 2) terrain slopes of the landscape (version 2)."""
  rng = np.random.default_rng([seed, 3])
  cells = max(1, round(RELIEF_CELLS * side / FEATURE_PERIOD))
  return scenes.relief(rng, side, cells, RELIEF_SLOPE)


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


def sun(day):
  """(zenith, azimuth) in radians at the overpass on `day` (year
  fraction), azimuth clockwise from north."""
  declination = np.radians(23.44) * np.sin(2 * np.pi * (day - 80 / 365))
  latitude, hour = np.radians(LATITUDE), np.radians(HOUR_ANGLE)
  zenith = np.arccos(np.sin(latitude) * np.sin(declination) +
                     np.cos(latitude) * np.cos(declination) * np.cos(hour))
  azimuth = np.pi + np.arctan2(
      np.sin(hour),
      np.cos(hour) * np.sin(latitude) -
      np.tan(declination) * np.cos(latitude))
  return zenith, azimuth


def draw_cover(rng):
  """A date's cloud cover fraction from COVER_MIXTURE."""
  weights = [w for w, _ in COVER_MIXTURE]
  _, beta = COVER_MIXTURE[rng.choice(len(COVER_MIXTURE), p=weights)]
  return 0.0 if beta is None else float(rng.beta(*beta))


def clouds_where(rng, size, cover, accept):
  """`cover_clouds` of the cover `cover(rng)` (None for 0), drawn again
  until `accept(crop coverages %)`."""
  for _ in range(CLOUD_TRIES):
    fraction = cover(rng)
    clouds = (cloud_shapes.cover_clouds(rng, size, fraction, CLOUD_FRINGE)
              if fraction else None)
    mask = clouds.mask if clouds else np.zeros((size, size), bool)
    if accept(cloud_shapes.crop_coverages(mask)):
      return clouds
  raise RuntimeError(f'No cloud cover accepted in {CLOUD_TRIES} draws at '
                     f'size {size}; use a larger --size.')


def clear_references(refs):
  """Indices of the dates that are clear truths (train's, valid's)."""
  return {refs[k] for k in ('index', 'val_index') if k in refs}


def plan_clouds(rng, refs, dates, size, timeline, moderate_first):
  """Clouds (None: clear) of each date of a version 2 tile.

  Clear references stay clear; the test reference is cloudier than
  CLEAR_LIMIT on every central crop; with `moderate_first`, date 0 is as
  version 1's moderate dates (the split's synthetic-cloud pool). The draw
  is repeated until every pixel is clear in some input date of each
  reference: one of the timeline - 2 dates before it, or a cloudy
  reference itself.
  """
  clear = clear_references(refs)
  rules = {t: (draw_cover, lambda c: True) for t in range(dates)}
  if 'test_index' in refs:
    rules[refs['test_index']] = (draw_cover, lambda c: min(c) > CLEAR_LIMIT)
  if moderate_first:
    low, high = synthetic.COVERAGE['moderate']
    rules[0] = (lambda r: r.uniform(low + 2, high - 2) / 100,
                lambda c: low <= min(c) and max(c) <= high)
  for _ in range(WINDOW_TRIES):
    clouds = [None if t in clear else clouds_where(rng, size, *rules[t])
              for t in range(dates)]
    if all(_covered(clouds, range(r - timeline + 2, r + (r not in clear)),
                    size) for r in refs.values()):
      return clouds
  raise RuntimeError(f'No cloud draw in {WINDOW_TRIES} leaves every pixel '
                     'clear in some input date; raise --timeline.')


def _covered(clouds, window, size):
  """Whether every pixel is clear in some date of `window`."""
  seen = np.zeros((size, size), bool)
  for t in window:
    seen |= True if clouds[t] is None else ~clouds[t].mask
  return seen.all()


def atmosphere(rng, size, clear):
  """(haze field (S, S, 3), veil opacity (S, S) or None) of a version 2
  date; `clear` (a clear reference) has no veil."""
  patches = cloud_shapes.fractal_noise(rng, size, 1, persistence=0.35)
  haze = (rng.uniform(*HAZE_PATCHES) * patches)[..., None] * HAZE_SPECTRUM
  veil = None
  if not clear and rng.random() < VEIL_SHARE:
    shape = cloud_shapes.fractal_noise(rng, size, 2)
    veil = (rng.uniform(*VEIL_OPACITY) *
            cloud_shapes.smoothstep((shape + 1.0) / 2.5)).astype(np.float32)
  return haze.astype(np.float32), veil


def folders(out, tile):
  """(image folder, mask folder) of `tile`, created."""
  root, split = REGIONS[tile.region]
  image_dir = os.path.join(out, root, f'videos_final_{split}',
                           f'{tile.number:05d}')
  mask_dir = os.path.join(out, root, f'masks_final_{split}',
                          f'{tile.number:05d}')
  os.makedirs(image_dir, exist_ok=True)
  os.makedirs(mask_dir, exist_ok=True)
  return image_dir, mask_dir


def save_date(dirs, name, tile, day, image, clouds):
  """Writes one date's image and mask; returns its cover (%)."""
  mask = (np.zeros(image.shape[:2], np.uint8) if clouds is None
          else clouds.mask.astype(np.uint8) * 255)
  stem = synthetic.file_stem('l2a', name, tile.number, day, None)
  images.save(os.path.join(dirs[0], stem + '.png'), image, fast=True)
  images.save(os.path.join(dirs[1], stem + '.png'), mask, fast=True)
  return 100.0 * float(np.mean(mask > 0))


def start_tile(out, tile, seed, stream):
  """(Generator, tile name, first day, (image, mask) folders) of a tile;
  `stream` keeps the versions' random draws apart."""
  rng = np.random.default_rng([seed, stream, tile.serial])
  name = synthetic.tile_name('l2a', tile.serial)
  day = synthetic.FIRST_DAY + datetime.timedelta(days=int(rng.integers(365)))
  return rng, name, day, folders(out, tile)


def write_tile_v1(out, tile, land, changes, plan, seed, size):
  """Renders and writes every date of a version 1 tile; returns (tile
  name, per-date cover %)."""
  _, categories = plan
  rng, name, day, dirs = start_tile(out, tile, seed, 1)
  covers = []
  for category in categories:
    clouds = (cloud_shapes.make_clouds(
        rng, size, *synthetic.COVERAGE[category], tries=CLOUD_TRIES)
              if category != 'clear' else None)
    year_fraction = day.timetuple().tm_yday / 365.0
    gain, haze = light(rng, year_fraction)
    image = scenes.compose(ground(land, changes, year_fraction), clouds, rng,
                           gain=gain, haze=haze)
    covers.append(save_date(dirs, name, tile, day, image, clouds))
    day += datetime.timedelta(days=int(rng.integers(*DATE_GAP)))
  return name, covers


def write_tile_v2(out, tile, land, changes, plan, seed, size, slopes,
                  timeline):
  """Renders and writes every date of a version 2 tile; returns (tile
  name, per-date cover %)."""
  refs, dates = plan
  rng, name, day, dirs = start_tile(out, tile, seed, 4)
  clouds = plan_clouds(rng, refs, dates, size, timeline, tile.number == 0)
  clear = clear_references(refs)
  covers = []
  for t in range(dates):
    year_fraction = day.timetuple().tm_yday / 365.0
    gain, haze = light(rng, year_fraction)
    haze_field, veil = atmosphere(rng, size, t in clear)
    shade = scenes.shading(slopes, *sun(year_fraction))
    image = scenes.compose(ground(land, changes, year_fraction), clouds[t],
                           rng, gain=shade[..., None] * gain,
                           haze=haze + haze_field, veil=veil)
    covers.append(save_date(dirs, name, tile, day, image, clouds[t]))
    day += datetime.timedelta(days=int(rng.integers(*DATE_GAP)))
  return name, covers


def plan_region(seed, region, count, args):
  """Reference dates of a region's tiles, with (version 1) the categories
  of their dates or (version 2) their number of dates."""
  rng = np.random.default_rng([seed, 2, list(REGIONS).index(region)])
  first = synthetic.first_reference(args.timeline)
  split = REGIONS[region][1]
  if args.version == 1:
    plans = [synthetic.plan_tile(rng, split, args.dates, first, False,
                                 args.mix) for _ in range(count)]
    synthetic.ensure_moderate(plans)
    return plans
  return [(reference_dates(rng, split, args.dates, first), args.dates)
          for _ in range(count)]


def reference_dates(rng, split, dates, first):
  """{'index': r} (trainset) or distinct {'val_index', 'test_index'}, each
  from first..dates-1."""
  if split == 'trainset':
    return {'index': int(rng.integers(first, dates))}
  val, test = rng.choice(np.arange(first, dates), 2, replace=False)
  return {'val_index': int(val), 'test_index': int(test)}


def make_benchmark(out, args):
  """Writes every region; returns {region: [(name, refs, covers %)]}."""
  counts = {'train': args.train, 'valid': args.valid,
            'holdout': args.holdout}
  land, changes, tiles = make_region(args.seed, counts, args.size)
  plans = {region: plan_region(args.seed, region, counts[region], args)
           for region in REGIONS}
  jobs = [(out, t, crop(land, t.top, t.left, args.size), changes,
           plans[t.region][t.number], args.seed, args.size)
          for t in tiles]
  write = write_tile_v1
  if args.version == 2:
    slopes = make_relief(args.seed, land.labels.shape[0])
    jobs = [job + (slopes[t.top:t.top + args.size, t.left:t.left + args.size],
                   args.timeline) for job, t in zip(jobs, tiles)]
    write = write_tile_v2
  # Spawned, not forked: the caller may hold TensorFlow's threads.
  with concurrent.futures.ProcessPoolExecutor(
      os.cpu_count(), mp_context=multiprocessing.get_context('spawn')) as pool:
    results = list(pool.map(write, *zip(*jobs)))
  written = {region: [] for region in REGIONS}
  for tile, (name, covers) in zip(tiles, results):
    refs = plans[tile.region][tile.number][0]
    written[tile.region].append((name, refs, covers))
  for region, (root, split) in REGIONS.items():
    table = {name: {k: str(v) for k, v in refs.items()}
             for name, refs, _ in written[region]}
    with open(os.path.join(out, root, f'{split}.json'), 'w') as f:
      json.dump(table, f, indent=1)
  with open(os.path.join(out, 'benchmark.json'), 'w') as f:
    json.dump({'args': {k: v for k, v in vars(args).items()
                        if k not in ('out', 'cover_figure')},
               'guard_px': GUARD_PX,
               'tiles': [dataclasses.asdict(t) | {
                   'name': name, 'cover': [round(c, 3) for c in covers]}
                         for t, (name, covers) in zip(tiles, results)]},
              f, indent=1)
  return written


# Edges (%) of the cover histogram: fully clear, the pipeline's clear
# limit, the synthetic clouds' band (up to the recipe's max_coverage 30),
# then steps to overcast.
COVER_EDGES = (0.0, 5.0, 30.0, 50.0, 70.0, 95.0, 100.0)


def cover_bins():
  """Labels of the histogram's bins: '0', '0-5', ..., '95-100'."""
  return ['0'] + [f'{a:g}-{b:g}' for a, b in zip(COVER_EDGES,
                                                  COVER_EDGES[1:])]


def cover_histogram(covers):
  """Shares (%) of `covers` (%) in each bin of `cover_bins`: exactly 0,
  then (a, b] per pair of COVER_EDGES."""
  covers = np.asarray(covers, np.float64)
  counts = [np.sum(covers == 0)] + [
      np.sum((covers > a) & (covers <= b))
      for a, b in zip(COVER_EDGES, COVER_EDGES[1:])]
  return [100.0 * c / max(len(covers), 1) for c in counts]


def region_stats(written):
  """(share % of tiles whose date before the clear reference has no cloud
  pixel, covers % of every date but the clear references) of a region."""
  before, covers = [], []
  for _, refs, tile_covers in written:
    clear = clear_references(refs)
    before += [tile_covers[r - 1] == 0 for r in clear]
    covers += [c for t, c in enumerate(tile_covers) if t not in clear]
  return 100.0 * np.mean(before), covers


def summary(out, args, written):
  lines = [f'Benchmark dataset version {args.version} in {out} (seed '
           f'{args.seed}): {args.dates} dates of {args.size}x{args.size} per '
           f'tile, regions of one landscape {GUARD_PX} px apart.']
  for region, (root, split) in REGIONS.items():
    where = os.path.join(out, root, f'videos_final_{split}')
    lines.append(f'  {region}: {len(written[region])} tiles in {where}')
  lines.append('Cloud cover (%) of the dates other than the clear references '
               '(share of dates per bin):')
  lines.append(f'  {"":8} {"before ref clear":>16} ' +
               ' '.join(f'{b:>6}' for b in cover_bins()))
  for region in REGIONS:
    before, covers = region_stats(written[region])
    lines.append(f'  {region:8} {before:15.0f}% ' + ' '.join(
        f'{h:5.1f}%' for h in cover_histogram(covers)))
  return '\n'.join(lines)


def plot_covers(path, written, version):
  """Writes a PNG of every region's cover histogram."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use('Agg')
  from matplotlib import pyplot  # pylint: disable=import-outside-toplevel
  figure, axes = pyplot.subplots(figsize=(7, 3.2), dpi=100)
  labels = cover_bins()
  width = 0.8 / len(REGIONS)
  for k, region in enumerate(REGIONS):
    before, covers = region_stats(written[region])
    axes.bar(np.arange(len(labels)) + (k - 1) * width,
             cover_histogram(covers), width,
             label=f'{region} (date before the reference clear: '
                   f'{before:.0f} % of tiles)')
  axes.set_xticks(np.arange(len(labels)), labels)
  axes.set_xlabel('cloud and shadow cover of a date (%)')
  axes.set_ylabel('share of dates (%)')
  axes.set_title(f'Benchmark version {version}: per-date cloud cover '
                 '(clear references left out)', fontsize=10)
  axes.legend(fontsize=7)
  figure.tight_layout()
  figure.savefig(path)
  pyplot.close(figure)


def parser():
  p = cli.ArgumentParser(
      prog='python -m tools.recipe_dataset',
      description='Writes the benchmark dataset of make reproduce-small: '
                  'train / valid / holdout tiles from disjoint regions of one '
                  'synthetic landscape, in the upstream layout.')
  p.add_argument('out', help='output directory')
  p.add_argument('--version', type=int, choices=VERSIONS, default=2,
                 help='2 (default): covers from a wide distribution, no '
                      'date guaranteed clear, light varying within a tile; '
                      '1: the published dataset, byte for byte (--mix '
                      'applies to version 1 only)')
  p.add_argument('--train', type=int, default=240, help='train tiles')
  p.add_argument('--valid', type=int, default=48, help='valid tiles')
  p.add_argument('--holdout', type=int, default=48, help='holdout tiles')
  p.add_argument('--dates', type=int, default=8, help='dates per tile')
  p.add_argument('--size', type=int, default=72, help='tile side (pixels)')
  p.add_argument('--cover_figure', default=None,
                 help='also write a PNG of the per-date cover histogram here')
  synthetic.add_plan_arguments(p, seed=1)
  return p


def main(argv=None):
  p = parser()
  args = p.parse_args(argv)
  synthetic.check_arguments(
      p, args, min(args.train, args.valid, args.holdout) >= 1 and
      args.size >= 16 and (args.version == 1 or args.timeline >= 3),
      '--train, --valid, --holdout >= 1, --size >= 16, --timeline >= 3 '
      '(version 2)')
  written = make_benchmark(args.out, args)
  print(summary(args.out, args, written))
  if args.cover_figure:
    plot_covers(args.cover_figure, written, args.version)
  return written


if __name__ == '__main__':
  cli.guard(main)
