"""Writes a synthetic dataset in the upstream layout.

The layout: docs/design.md, Layout on disk.

  python -m tools.synthetic OUT --tiles 12 --dates 8 --size 48 --naming l2a

OUT/videos_final_{trainset,testset}/NNNNN/ and masks_final_{...}/NNNNN/ get
`--tiles` tiles each with `--dates` dates; OUT/trainset.json (`index`) and
OUT/testset.json (`val_index`, `test_index`) give the reference dates (the
in-house naming has no tile name, so it gets fixed indices, printed, instead).

Every reference date is clear (train, valid) or cloudy (test), and the date
before it is clear, so each split yields examples for any config.timeline up
to --timeline; the other dates are clear, moderate (6-15 % cloud) or severe
(60-100 %) in the proportions of --mix.
"""

import argparse
import concurrent.futures
import datetime
import json
import multiprocessing
import os

import numpy as np

from utils import cli
from utils import cloud_shapes
from utils import images
from utils import scenes

SPLITS = ('trainset', 'testset')
NAMINGS = ('l2a', 'inhouse', 'l1c')
CATEGORIES = ('clear', 'moderate', 'severe')
COVERAGE = {'moderate': (6.0, 15.0), 'severe': (60.0, 100.0)}
BANDS = 'CDEFGHJKLMNPQRSTUVWX'
LETTERS = 'ABCDEFGHJKLMNPQRSTUVWXYZ'
FIRST_DAY = datetime.date(2019, 1, 1)


def tile_name(naming, serial):
  """A unique tile name (the part before the first `_` of the file names)."""
  if naming == 'l1c':
    return f'ROIs{serial:04d}'
  return (f'T{1 + serial % 60:02d}{BANDS[serial // 60 % len(BANDS)]}'
          f'{LETTERS[serial // 1200 % len(LETTERS)]}'
          f'{LETTERS[serial // 28800 % len(LETTERS)]}')


def file_stem(naming, name, number, day, t):
  """The stem of date `t` (a datetime.date `day`) of tile folder `number`."""
  if naming == 'l2a':
    return f'{name}_{day:%Y%m%d}_{number:05d}'
  if naming == 'inhouse':
    return f'{day:%Y%m%d}_{number % 1000:03d}'
  return f'{name}_rgb_{t}'


def reference_pairs(dates, first, fixed):
  """Allowed (val_index, test_index) of a test tile.

  The valid date and the date before it are clear, the test date is cloudy
  and the date before it clear: so val != test and val != test + 1.
  """
  if fixed:
    return [(dates - 2, dates - 1)]
  return [(v, t) for v in range(first, dates) for t in range(first, dates)
          if v not in (t, t + 1)]


def cloudy_category(rng, mix):
  """'moderate' or 'severe' in the proportions of `mix` (moderate if none)."""
  moderate, severe = mix[1:]
  if not moderate + severe:
    return 'moderate'
  return 'severe' if rng.random() * (moderate + severe) < severe else (
      'moderate')


def plan_tile(rng, split, dates, first, fixed, mix):
  """Reference indices and per-date categories of one tile.

  Returns:
    (refs, categories): refs = {'index': r} or {'val_index', 'test_index'};
    categories a list of CATEGORIES names, one per date.
  """
  categories = [str(c) for c in rng.choice(CATEGORIES, dates, p=mix)]
  if split == 'trainset':
    ref = dates - 1 if fixed else int(rng.integers(first, dates))
    refs = {'index': ref}
    clear = (ref - 1, ref)
  else:
    pairs = reference_pairs(dates, first, fixed)
    val, test = pairs[rng.integers(len(pairs))]
    refs = {'val_index': int(val), 'test_index': int(test)}
    clear = (val - 1, val, test - 1)
    categories[test] = cloudy_category(rng, mix)
  for index in clear:
    categories[index] = 'clear'
  return refs, categories


def fixed_dates(refs):
  """Indices whose category `plan_tile` imposed."""
  if 'index' in refs:
    return {refs['index'] - 1, refs['index']}
  return {refs['val_index'] - 1, refs['val_index'], refs['test_index'] - 1,
          refs['test_index']}


def ensure_moderate(plans):
  """Makes one free date moderate if a split has none (the cloud pool)."""
  if any('moderate' in c for _, c in plans):
    return
  for refs, categories in plans:
    free = sorted(set(range(len(categories))) - fixed_dates(refs))
    if free:
      categories[free[0]] = 'moderate'
      return
  raise ValueError('No date is free to be moderate (the synthetic-cloud pool '
                   'needs one); raise --dates.')


def write_tile(out, split, number, serial, plan, args):
  """Renders and writes every date of one tile; returns its tile name."""
  refs, categories = plan
  rng = np.random.default_rng([args.seed, SPLITS.index(split), number, 1])
  name = tile_name(args.naming, serial)
  land = scenes.make_landscape(rng, args.size)
  day = FIRST_DAY + datetime.timedelta(days=int(rng.integers(0, 365)))
  folder = f'{number:05d}'
  image_dir = os.path.join(out, f'videos_final_{split}', folder)
  mask_dir = os.path.join(out, f'masks_final_{split}', folder)
  os.makedirs(image_dir, exist_ok=True)
  os.makedirs(mask_dir, exist_ok=True)
  ext = '.jpeg' if args.naming == 'inhouse' else '.png'
  for t, category in enumerate(categories):
    clouds = (cloud_shapes.make_clouds(rng, args.size, *COVERAGE[category])
              if category != 'clear' else None)
    year_fraction = day.timetuple().tm_yday / 365.0
    image = scenes.compose(scenes.render(land, year_fraction), clouds, rng,
                           gain=rng.uniform(0.93, 1.07),
                           haze=rng.uniform(0.0, 10.0))
    mask = (np.zeros(image.shape[:2], np.uint8) if clouds is None
            else clouds.mask.astype(np.uint8) * 255)
    stem = file_stem(args.naming, name, number, day, t)
    images.save(os.path.join(image_dir, stem + ext), image, fast=True)
    images.save(os.path.join(mask_dir, stem + '.png'),
                255 - mask if args.flip else mask, fast=True)
    day += datetime.timedelta(days=int(rng.integers(8, 40)))
  return name


def make_split(out, split, args, pool):
  """Plans and writes one split with the process `pool`; returns
  [(name, refs, categories)]."""
  rng = np.random.default_rng([args.seed, SPLITS.index(split)])
  first = first_reference(args.timeline)
  plans = [plan_tile(rng, split, args.dates, first, args.naming == 'inhouse',
                     args.mix) for _ in range(args.tiles)]
  ensure_moderate(plans)
  offset = SPLITS.index(split) * args.tiles
  names = list(pool.map(
      write_tile, *zip(*[(out, split, n, offset + n, plans[n], args)
                         for n in range(args.tiles)])))
  if args.naming != 'inhouse':
    table = {name: {k: str(v) for k, v in refs.items()}
             for name, (refs, _) in zip(names, plans)}
    with open(os.path.join(out, f'{split}.json'), 'w') as f:
      json.dump(table, f, indent=1)
  return [(name, refs, c) for name, (refs, c) in zip(names, plans)]


def summary(out, args, tiles):
  """Printable description of what was written and how to use it."""
  lines = [f'Synthetic dataset in {out}: naming {args.naming}, '
           f'{args.dates} dates of {args.size}x{args.size} per tile, '
           f'masks {"flipped (255 = clear)" if args.flip else "0 = clear"}.']
  for split in SPLITS:
    counts = {c: sum(cats.count(c) for _, _, cats in tiles[split])
              for c in CATEGORIES}
    lines.append(f'  {split}: {len(tiles[split])} tiles, dates ' +
                 ', '.join(f'{n} {c}' for c, n in counts.items()))
  if args.naming == 'inhouse':
    lines.append(f'  no JSON (in-house names carry no tile name): use '
                 f'--config.jsonf=None with --config.ref_index={args.dates - 1}'
                 f' for train and test, {args.dates - 2} for valid.')
  else:
    lines.append(f'  reference dates in {out}/trainset.json (index) and '
                 f'{out}/testset.json (val_index, test_index), all >= '
                 f'{first_reference(args.timeline)}: any config.timeline <= '
                 f'{args.timeline} works.')
  if args.flip:
    lines.append('  set --config.flip_masks=True.')
  return '\n'.join(lines)


def make_dataset(out, args):
  """Writes both splits; returns {split: [(name, refs, categories)]}."""
  # Worker processes are spawned, not forked: the caller may hold
  # TensorFlow's threads, which a fork does not survive safely.
  with concurrent.futures.ProcessPoolExecutor(
      os.cpu_count(), mp_context=multiprocessing.get_context('spawn')) as pool:
    return {split: make_split(out, split, args, pool) for split in SPLITS}


def parse_mix(text):
  values = [float(v) for v in text.split(',')]
  if len(values) != 3 or min(values) < 0 or not sum(values):
    raise argparse.ArgumentTypeError(
        f'--mix wants three non-negative weights clear,moderate,severe, got '
        f'{text!r}.')
  return tuple(v / sum(values) for v in values)


def parser():
  p = cli.ArgumentParser(
      prog='python -m tools.synthetic',
      description='Writes a synthetic Sentinel-2-like cloud-removal dataset '
                  'in the upstream CloudTran layout.')
  p.add_argument('out', help='output directory')
  p.add_argument('--tiles', type=int, default=12, help='tiles per split')
  p.add_argument('--dates', type=int, default=8, help='dates per tile')
  p.add_argument('--size', type=int, default=256, help='image side (pixels)')
  p.add_argument('--naming', choices=NAMINGS, default='l2a',
                 help='l2a TILE_YYYYMMDD_IDX.png, inhouse YYYYMMDD_IDX.jpeg, '
                      'l1c <patch>_rgb_<t>.png')
  p.add_argument('--flip', action='store_true',
                 help='store masks inverted (255 = clear), as L1C does')
  add_plan_arguments(p, seed=0)
  return p


def add_plan_arguments(p, seed):
  """--seed (default `seed`), --mix and --timeline: the arguments of the
  date plans (`plan_tile`), shared with tools.recipe_dataset."""
  p.add_argument('--seed', type=int, default=seed)
  p.add_argument('--mix', type=parse_mix, default=(0.35, 0.45, 0.2),
                 help='weights of clear,moderate,severe for the dates that '
                      'are not references (default 0.35,0.45,0.2)')
  p.add_argument('--timeline', type=int, default=6,
                 help='largest config.timeline the references must allow')


def first_reference(timeline):
  """The earliest reference index for `timeline`: its T-2 earlier inputs
  fit before it, and at least one date (the clear date before it)."""
  return max(timeline - 2, 1)


def check_arguments(p, args, valid, needs):
  """Exits through `p.error` unless `valid` and --dates leaves two
  reference dates after the earlier inputs of --timeline; the message
  names `needs` (the other requirements) and the --dates rule."""
  first = first_reference(args.timeline)
  if not valid or args.dates < first + 2:
    p.error(f'need {needs} and --dates >= {first + 2} (two reference dates '
            f'after the {first} earlier inputs of --timeline '
            f'{args.timeline}).')


def main(argv=None):
  p = parser()
  args = p.parse_args(argv)
  check_arguments(p, args, args.tiles >= 1 and args.size >= 8,
                  '--tiles >= 1, --size >= 8')
  tiles = make_dataset(args.out, args)
  print(summary(args.out, args, tiles))
  return tiles


if __name__ == '__main__':
  cli.guard(main)
