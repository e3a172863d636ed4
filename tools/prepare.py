r"""Cuts dated rasters of one area into the training layout.

  python -m tools.prepare OUT --inputs 'aoi/*.tif' --scl 'aoi/*_SCL*.tif' \
      --patch 256 --stride 256 --test_fraction 0.2 --seed 0

The rasters (files, or STAC Items with `--stac_items` / `--stac_api`),
their dates, bands, cloud masks and 8-bit values are read by
`rasters.reader` (the same code as `predict.py`) on the grid of one date
(`--grid_date`, default the last, cropped to `--bbox`). The grid is cut
into patches of `--patch` pixels every `--stride`; each patch becomes a tile
of the upstream layout:

  OUT/videos_final_<split>/NNNNN/PNNNNN_YYYYMMDD_NNNNN.png   RGB, one a date
  OUT/masks_final_<split>/NNNNN/PNNNNN_YYYYMMDD_NNNNN.png    0 clear, 255 cloud
  OUT/trainset.json  {"PNNNNN": {"index": "r"}}
  OUT/testset.json   {"PNNNNN": {"val_index": "v", "test_index": "t"}}
  OUT/prepare.json   inputs, dates, grid, every patch's window (pixels
                     col, row, width, height) and bounds (left, bottom,
                     right, top in the grid's CRS), split, reference
                     dates or skip reason, and the counts

NNNNN is the patch number (row-major on the grid). The split is spatial:
blocks of `--block` x `--block` patches go to test (a seeded draw of
`--test_fraction` of the blocks) and train patches that touch a test patch
are dropped, so no train pixel borders a test pixel. A patch's reference
dates are chosen from its masks, as the pipeline will judge them
(`datasets.scan`, coverage inside the central `--resolution` crop): train
`index` and test `val_index` are the latest clear dates (<= 5 % cloud),
`test_index` the latest cloudy one, each with `--timeline` - 2 earlier dates
that together see every pixel clear (so the pipeline drops none of them). A
patch without such dates is skipped and counted by reason. Missing pixels
(zeros or the nodata value of a raster, outside a footprint) are cloudy.

No patch kept is an error naming the skip reasons, with nothing written; an
empty split, or a train split without the partly cloudy masks training
draws its synthetic clouds from by default, is a warning with the fixes.
"""

import dataclasses
import json
import os

from absl import app
from absl import flags
from absl import logging
import numpy as np
from PIL import Image
from rasterio.windows import Window

from commands import series_flags
from datasets import scan
from utils import cli
from utils.errors import DataError

SPLITS = ('trainset', 'testset')
NO_CLEAR = 'no clear date after timeline-2 earlier dates'
NO_CLOUDY = 'no cloudy date after timeline-2 earlier dates'
UNCOVERED = 'a pixel cloudy in all timeline-2 earlier dates'
BUFFER = 'train patch touching a test patch'
HISTOGRAM_BINS = (0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100)


@dataclasses.dataclass(frozen=True)
class Options:
  """How the grid is cut and the references chosen (see the flags)."""
  patch: int = 256
  stride: int = 256
  test_fraction: float = 0.2
  seed: int = 0
  block: int = 4
  timeline: int = 6
  resolution: int = 224
  max_coverage: float = 30.0

  def check(self):
    if self.patch < 8 or self.stride < 1:
      raise DataError(f'--patch must be >= 8 and --stride >= 1, got '
                      f'{self.patch} and {self.stride}.')
    if not 0 <= self.test_fraction < 1:
      raise DataError(f'--test_fraction must be in [0, 1), got '
                      f'{self.test_fraction}.')
    if not 1 <= self.resolution <= self.patch:
      raise DataError(f'--resolution must be in 1..--patch ({self.patch}), '
                      f'got {self.resolution}.')
    if self.block < 1 or self.timeline < 2:
      raise DataError(f'--block must be >= 1 and --timeline >= 2, got '
                      f'{self.block} and {self.timeline}.')


@dataclasses.dataclass
class Patch:
  number: int
  row: int        # position in the patch grid
  col: int
  window: Window
  split: str = 'trainset'
  refs: dict = None
  skipped: str = ''
  moderate: int = 0     # dates with 5 % < cover <= max_coverage

  @property
  def name(self):
    return f'P{self.number:05d}'


def patch_grid(grid, options):
  """Patches of the grid, row-major; a patch never crosses the grid edge."""
  if grid.height < options.patch or grid.width < options.patch:
    raise DataError(f'The grid ({grid.width}x{grid.height} px) is smaller '
                    f'than --patch {options.patch}; lower --patch.')
  rows = range(0, grid.height - options.patch + 1, options.stride)
  cols = range(0, grid.width - options.patch + 1, options.stride)
  return [Patch(i * len(cols) + j, i, j,
                Window(c, r, options.patch, options.patch))
          for i, r in enumerate(rows) for j, c in enumerate(cols)]


def _touch(a, b):
  """True if windows a and b overlap or share an edge or a corner."""
  return (a.col_off <= b.col_off + b.width and b.col_off <= a.col_off + a.width
          and a.row_off <= b.row_off + b.height and
          b.row_off <= a.row_off + a.height)


def spatial_split(patches, options):
  """Assigns blocks of patches to test (seeded); drops touching train ones."""
  blocks = sorted({(p.row // options.block, p.col // options.block)
                   for p in patches})
  count = round(options.test_fraction * len(blocks))
  if options.test_fraction and len(blocks) > 1:
    count = min(max(count, 1), len(blocks) - 1)
  order = np.random.default_rng(options.seed).permutation(len(blocks))
  test_blocks = {blocks[i] for i in order[:count]}
  for p in patches:
    if (p.row // options.block, p.col // options.block) in test_blocks:
      p.split = 'testset'
  tests = [p.window for p in patches if p.split == 'testset']
  for p in patches:
    if p.split == 'trainset' and any(_touch(p.window, t) for t in tests):
      p.skipped = BUFFER


def coverages(cloudy, resolution):
  """(T,) cloud % of (T, h, w) masks inside the central `resolution` crop."""
  return np.array([scan.coverage(~c, resolution) for c in cloudy])


def _latest(candidates, cloudy, earlier):
  """The latest of `candidates` whose `earlier` previous dates together see
  every pixel clear, or None."""
  for t in sorted(candidates, reverse=True):
    if not earlier or np.logical_or.reduce(~cloudy[t - earlier:t]).all():
      return t
  return None


def choose_references(cloudy, split, options):
  """({'index'} or {'val_index', 'test_index'}, '') or (None, reason).

  Args:
    cloudy: (T, h, w) bool masks of a patch, dates in order.
    split: 'trainset' or 'testset'.
    options: reads timeline, resolution, max_coverage.
  """
  earlier = options.timeline - 2
  categories = [scan.category(c, options.max_coverage)
                for c in coverages(cloudy, options.resolution)]
  dates = range(earlier, len(categories))
  clear = [t for t in dates if categories[t] == 'clear']
  cloudy_dates = [t for t in dates if categories[t] != 'clear']
  if not clear:
    return None, NO_CLEAR
  if split == 'testset' and not cloudy_dates:
    return None, NO_CLOUDY
  reference = _latest(clear, cloudy, earlier)
  if reference is None:
    return None, UNCOVERED
  if split == 'trainset':
    return {'index': reference}, ''
  test = _latest(cloudy_dates, cloudy, earlier)
  if test is None:
    return None, UNCOVERED
  return {'val_index': reference, 'test_index': test}, ''


def _write_png(array, path):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(array).save(path, compress_level=1)


def write_patch(out, patch, series, rgb, cloudy):
  """Writes every date's RGB and mask of a patch under its split."""
  folder = f'{patch.number:05d}'
  for t, day in enumerate(series.dates):
    stem = f'{patch.name}_{day:%Y%m%d}_{patch.number:05d}.png'
    _write_png(rgb[t], os.path.join(out, f'videos_final_{patch.split}',
                                    folder, stem))
    _write_png(cloudy[t].astype(np.uint8) * 255, os.path.join(
        out, f'masks_final_{patch.split}', folder, stem))


def _by_strip(patches):
  strips = {}
  for p in patches:
    strips.setdefault(p.window.row_off, []).append(p)
  return sorted(strips.items())


def prepare(out, series, options):
  """Cuts `series` into the layout under `out`; returns the prepare.json dict.

  Reads one strip of patch rows at a time (patch pixels high, the grid's
  width wide), so memory does not grow with the scene's height.
  """
  options.check()
  for split in SPLITS:
    if os.path.exists(os.path.join(out, f'videos_final_{split}')):
      raise DataError(f'{out} already holds a dataset (videos_final_{split}); '
                      'choose a new output directory.')
  patches = patch_grid(series.grid, options)
  spatial_split(patches, options)
  histogram = np.zeros(len(HISTOGRAM_BINS) - 1, int)
  strip_width = series.grid.width
  for row_off, strip in _by_strip(patches):
    rgb, cloudy, _ = series.read(Window(0, row_off, strip_width,
                                        options.patch))
    for p in strip:
      cols = slice(p.window.col_off, p.window.col_off + options.patch)
      histogram += np.histogram(
          coverages(cloudy[:, :, cols], options.resolution),
          HISTOGRAM_BINS)[0]
      if p.skipped:
        continue
      p.refs, p.skipped = choose_references(cloudy[:, :, cols], p.split,
                                            options)
      if p.refs:
        p.moderate = sum(
            scan.category(c, options.max_coverage) == 'moderate'
            for c in coverages(cloudy[:, :, cols], options.resolution))
        write_patch(out, p, series, rgb[:, :, cols], cloudy[:, :, cols])
  report = _report(series, options, patches, histogram)
  if not any(report['counts']['kept'].values()):
    reasons = ', '.join(f'{n} {reason}' for reason, n in
                        sorted(report['counts']['skipped'].items()))
    raise DataError(
        f'No patch of the {len(patches)} kept ({reasons}); nothing written '
        '— add dates with clear views, lower --timeline or --resolution, or '
        'raise --max_coverage')
  report['warnings'] = _warnings(patches, report['counts'], options)
  for warning in report['warnings']:
    logging.warning('%s', warning)
  for split in SPLITS:
    table = {p.name: {k: str(v) for k, v in p.refs.items()}
             for p in patches if p.split == split and p.refs}
    with open(os.path.join(out, f'{split}.json'), 'w') as f:
      json.dump(table, f, indent=1)
  with open(os.path.join(out, 'prepare.json'), 'w') as f:
    json.dump(report, f, indent=1)
  return report


def _warnings(patches, counts, options):
  """What the prepared data is not good for, each with its fix."""
  warnings = []
  for split, kept in counts['kept'].items():
    if not kept:
      use = ('training' if split == 'trainset' else
             'validation, sampling and evaluation')
      fix = ('lower --test_fraction' if split == 'trainset' else
             'raise --test_fraction or lower --block')
      warnings.append(f'The {split} split is empty: {use} will have no '
                      f'data — {fix}.')
  if counts['kept']['trainset'] and not any(
      p.moderate for p in patches if p.split == 'trainset' and p.refs):
    warnings.append(
        'The trainset has no partly cloudy mask (5 % < cover <= '
        f'{options.max_coverage:g} %), which training draws its synthetic '
        'clouds from by default — train with '
        '--config.synthetic_clouds=procedural (seeded fractal clouds '
        'instead), or raise --max_coverage (and config.max_coverage the '
        'same), or add dates with scattered clouds.')
  return warnings


def _report(series, options, patches, histogram):
  kept = {s: sum(1 for p in patches if p.split == s and p.refs)
          for s in SPLITS}
  skipped = {}
  for p in patches:
    if p.skipped:
      key = f'{p.split}: {p.skipped}'
      skipped[key] = skipped.get(key, 0) + 1
  return {
      'inputs': [p if isinstance(p, str) else list(p) for p in series.paths],
      'masks': list(series.mask_paths),
      'mask_kind': series.mask_kind,
      'cloud_threshold': series.cloud_threshold,
      'dates': [str(d) for d in series.dates],
      'offsets': list(series.offsets),
      'bands': list(series.bands),
      'grid': series.grid.to_dict(),
      'grid_date': str(series.target),
      'options': dataclasses.asdict(options),
      'patches': [{'number': p.number, 'tile': p.name, 'split': p.split,
                   'window': [int(p.window.col_off), int(p.window.row_off),
                              int(p.window.width), int(p.window.height)],
                   'bounds': list(series.grid.bounds(p.window)),
                   **({'refs': p.refs} if p.refs else {'skipped': p.skipped})}
                  for p in patches],
      'counts': {'patches': len(patches), 'kept': kept, 'skipped': skipped},
      'coverage_histogram': {
          f'{lo}-{hi}': int(n) for lo, hi, n in
          zip(HISTOGRAM_BINS, HISTOGRAM_BINS[1:], histogram)},
  }


def summary(out, report):
  """The printable summary table of a prepared dataset."""
  counts, options = report['counts'], report['options']
  grid = report['grid']
  lines = [
      f'Prepared {out}: {len(report["dates"])} dates '
      f'({report["dates"][0]} .. {report["dates"][-1]}), grid '
      f'{grid["width"]}x{grid["height"]} px ({grid["crs"]}), '
      f'{counts["patches"]} patches of {options["patch"]} px every '
      f'{options["stride"]} px.',
      f'  {"split":<10}{"patches":>8}',
      *(f'  {s:<10}{n:>8}' for s, n in counts['kept'].items()),
      *(f'  skipped   {n:>8}  {reason}'
        for reason, n in sorted(counts['skipped'].items())),
      f'  cloud cover of patch dates (central {options["resolution"]} px):']
  total = max(sum(report['coverage_histogram'].values()), 1)
  for span, n in report['coverage_histogram'].items():
    lines.append(f'  {span + " %":>10} {n:>7}  {"#" * round(40 * n / total)}')
  lines.append(
      f'  train: --config.data_dir={out}/videos_final_trainset '
      f'--config.mask_dir={out}/masks_final_trainset '
      f'--config.jsonf={out}/trainset.json --config.timeline='
      f'{options["timeline"]} (test: the same with testset)')
  lines += [f'  warning: {w}' for w in report.get('warnings', [])]
  return '\n'.join(lines)


def define_flags():
  """The command-line flags (defined only when run as a program, so that
  importing this module beside predict.py does not clash on --inputs)."""
  series_flags.define('grid_date', 'Date whose grid the others are warped '
                      'to (default the last).')
  flags.DEFINE_integer('patch', Options.patch, 'Patch side (px).')
  flags.DEFINE_integer('stride', Options.stride, 'Patch step (px).')
  flags.DEFINE_float('test_fraction', Options.test_fraction,
                     'Share of blocks that go to test.')
  flags.DEFINE_integer('seed', Options.seed, 'Seed of the split.')
  flags.DEFINE_integer('block', Options.block, 'Side of a split block, in '
                       'patches.')
  flags.DEFINE_integer('timeline', Options.timeline, 'config.timeline the '
                       'references must allow.')
  flags.DEFINE_integer('resolution', Options.resolution, 'config.resolution: '
                       'cloud cover is measured in this central crop (at '
                       'most --patch).')
  flags.DEFINE_float('max_coverage', Options.max_coverage,
                     'config.max_coverage.')
  for name in ('patch', 'stride', 'block', 'timeline', 'resolution'):
    cli.check_range(name, 1)
  cli.check_range('test_fraction', 0, 1, 'a share')
  cli.check_range('max_coverage', 0, 100, 'a percentage')


def main(argv):
  if len(argv) != 2:
    raise app.UsageError('Usage: python -m tools.prepare OUT --inputs ...')
  f = flags.FLAGS
  options = Options(f.patch, f.stride, f.test_fraction, f.seed, f.block,
                    f.timeline, min(f.resolution, f.patch), f.max_coverage)
  with series_flags.open_series(f, 'grid_date') as series:
    report = prepare(argv[1], series, options)
  print(summary(argv[1], report))


if __name__ == '__main__':
  define_flags()
  cli.run(main, positional=True)
