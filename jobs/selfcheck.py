"""How well the models fill the user's own scene: what `python -m
tools.selfcheck` runs.

`selfcheck(series, predictor, out, options)` takes pairs of dates of the
series: a target date with little cloud, and the real cloud mask of another
date moved onto it (`MovedMask`). The pixels clear in the target and cloudy
in the moved mask are hidden from the models and scored against what the
target really shows there; pixels cloudy in the target itself are never
scored. Each pair is filled exactly as `predict.py` fills a date (the same
dates, tiling, models and blending, `jobs.predict`), but only on the tiles
that hold a hidden pixel.

Passes over the scene, 256 px block by block, so memory does not grow with
the scene: a scan counts each date's cloudy pixels and, per pair of dates,
the pixels one hides in the other; the pairs are drawn (seeded); a second
pass finds their tiles; per pair, the tiles are predicted and committed,
then the hidden pixels are scored. The work directory `<out>.work/`
(`jobs.predict_workdir`) keeps each pair's tiles and scores: a killed job
started again scans again, resumes, and gives the same report.

Scores (`evaluation.metrics.PROTOCOL`) are on the 8-bit values the models
see, / 255, for the model and the baselines of the evaluation protocol
(`evaluation.baselines`): the mosaic, the least cloudy date and the cloudy
input. Each method's image is its values on the hidden pixels pasted into
the truth, so SSIM's window sees the real surroundings. Per pair the pixels
are pooled (RMSE over every hidden pixel; PSNR from that RMSE; SSIM and SAM
averaged over them); overall is the mean over pairs, as the protocol
averages images.
"""

import collections
import dataclasses
import glob
import json
import os
import shutil

from absl import logging
import numpy as np
from PIL import Image
from PIL import ImageDraw

from datasets import transforms
from evaluation import baselines
from evaluation import metrics
from jobs import predict
from jobs import predict_workdir
from jobs import records
from rasters import geotiff
from rasters import tiling
from utils import images
from utils.errors import DataError

METHODS = ('model', 'mosaic', 'least cloudy', 'cloudy input')
# The report's metrics, in PROTOCOL's order.
METRICS = tuple(metrics.PROTOCOL)
# Pixels read around a block for SSIM: its map at a pixel depends on the
# pixels within 5 px (a Gaussian of sigma 1.5 cut at 3.5 sigma); 11 px
# keep even a 1 px edge block at least as large as the 11 px window.
SSIM_MARGIN = 11
QUICKLOOK_SIDE = 512
PANELS = ('truth', 'masked input', 'model', 'mosaic')
LABEL_HEIGHT, GAP = 12, 4
REPORT = 'selfcheck'


@dataclasses.dataclass(frozen=True)
class Options(predict.Tiling):
  """How the self-check tiles the scene (`jobs.predict.Tiling`) and draws
  pairs:

  pairs: at most this many (target, mask date) pairs.
  seed: of the draw of pairs.
  max_target_cloud: percent of cloudy pixels above which a date cannot be
    a target.
  overwrite: replace a report made otherwise (`jobs.records.claim`).
  """
  pairs: int = 4
  seed: int = 0
  max_target_cloud: float = 20.
  overwrite: bool = False

  def __post_init__(self):
    if self.pairs < 1:
      raise DataError(f'--pairs={self.pairs}: the self-check needs at least '
                      'one pair; give --pairs 1 or more.')
    super().__post_init__()


class MovedMask:
  """The series as the models see date `target` with the clouds of date
  `mask` moved onto it: what `jobs.predict.run_tiles` reads."""

  def __init__(self, series, target, mask):
    self.series, self.mask = series, mask
    self.dates, self.grid, self.target_index = (series.dates, series.grid,
                                                target)

  @property
  def target(self):
    return self.dates[self.target_index]

  def read(self, window, indices):
    """As `Series.read`; the target's pixels cloudy in `mask` are cloudy."""
    indices = list(indices)
    extra = [] if self.mask in indices else [self.mask]
    rgb, cloudy, missing = self.series.read(window, indices + extra)
    moved = cloudy[(indices + extra).index(self.mask)].copy()
    n = len(indices)
    for i, t in enumerate(indices):
      if t == self.target_index:
        cloudy[i] |= moved
    return rgb[:n], cloudy[:n], missing[:n]


def scan(series):
  """{'pixels', 'cloudy' [D], 'hidden' [D][D]}: the grid's pixel count,
  each date's cloudy pixels, and hidden[t][m], the pixels clear in date t
  and cloudy in date m."""
  dates = len(series.dates)
  cloudy_count = np.zeros(dates, np.int64)
  hidden = np.zeros((dates, dates), np.int64)
  blocks = predict.block_windows(series.grid)
  ticker = predict.Ticker('scan', len(blocks))
  for b, (_, win) in enumerate(blocks):
    cloudy = series.read(win)[1].reshape(dates, -1)
    cloudy_count += cloudy.sum(axis=1)
    # float32 counts are exact up to 2^24 pixels a block.
    hidden += np.rint((~cloudy).astype(np.float32) @
                      cloudy.T.astype(np.float32)).astype(np.int64)
    ticker.update(b + 1)
  return {'pixels': series.grid.width * series.grid.height,
          'cloudy': cloudy_count.tolist(), 'hidden': hidden.tolist()}


def draw_pairs(series, counts, options):
  """Up to `options.pairs` (target, mask) date indices, drawn with
  `options.seed` among the pairs that hide at least one pixel: each next
  pair is the first, in the seeded order, of those whose dates have served
  least (the more used of its two dates, then its mask date, then its
  target), so a mask date serves again only once every other mask date of
  a pair of as little used dates has served.

  Raises:
    DataError: too few dates for the timeline, no date clear enough to be a
      target, or no other date cloudy where a target is clear.
  """
  dates, need = series.dates, options.timeline - 2
  if len(dates) <= need:
    raise DataError(
        f'The models take {options.timeline} slots, so a target needs {need} '
        f'earlier dates and the self-check at least {need + 1} dates; the '
        f'inputs have {len(dates)} — add dates.')
  share = 100 * np.asarray(counts['cloudy']) / counts['pixels']
  eligible = range(need, len(dates))
  targets = [t for t in eligible if share[t] <= options.max_target_cloud]
  if not targets:
    best = min(eligible, key=lambda t: share[t])
    raise DataError(
        f'No date clear enough to be a target: the clearest date with {need} '
        f'earlier dates, {dates[best]}, is {share[best]:.1f} % cloudy, above '
        f'--max_target_cloud={options.max_target_cloud:g} — raise it, or add '
        'a clearer date.')
  hidden = counts['hidden']
  candidates = [(t, m) for t in targets for m in range(len(dates))
                if m != t and hidden[t][m]]
  if not candidates:
    names = ', '.join(str(dates[t]) for t in targets)
    raise DataError(
        f'No date is cloudy where a target ({names}) is clear, so there is '
        'nothing to hide and score — add cloudy dates.')
  order = [candidates[i] for i in
           np.random.default_rng(options.seed).permutation(len(candidates))]
  uses = collections.Counter()
  chosen = []
  while order and len(chosen) < options.pairs:
    # The first pair (in the seeded order) of the least used dates.
    pair = min(order, key=lambda p: (max(uses['t', p[0]], uses['m', p[1]]),
                                     uses['m', p[1]], uses['t', p[0]]))
    order.remove(pair)
    chosen.append(pair)
    uses['t', pair[0]] += 1
    uses['m', pair[1]] += 1
  return chosen


def pair_tiles(series, pairs, tiles, options):
  """Per pair, the indices of the tiles holding a hidden pixel."""
  touched = [set() for _ in pairs]
  dates = sorted({d for pair in pairs for d in pair})
  blocks = predict.block_windows(series.grid)
  ticker = predict.Ticker('tiles to run', len(blocks))
  for b, (block, win) in enumerate(blocks):
    top, left = block[:2]
    cloudy = dict(zip(dates, series.read(win, dates)[1]))
    covering = tiling.covering(tiles, block, options.tile_size,
                               options.overlap)
    for found, (target, mask) in zip(touched, pairs):
      hidden = ~cloudy[target] & cloudy[mask]
      for t in covering:
        if hidden[max(0, t.top - top):t.top + t.height - top,
                  max(0, t.left - left):t.left + t.width - left].any():
          found.add(t.index)
    ticker.update(b + 1)
  return [sorted(found) for found in touched]


class _Committed(predict.TileCache):
  """The pair's committed tiles; a tile not run (it holds no hidden pixel)
  reads as zeros, which the blend of a hidden pixel never uses."""

  def __init__(self, work, tiles, run):
    super().__init__(work)
    self.tiles, self.run = tiles, set(run)

  def __getitem__(self, index):
    if index in self.run:
      return super().__getitem__(index)
    tile = self.tiles[index]
    return (np.zeros((tile.height, tile.width, 3), np.uint8),
            np.zeros((tile.height, tile.width), bool))


def _grown(block, grid, margin):
  """`block` grown by `margin` px on each side, inside the grid, and the
  block's (rows, cols) slices in it."""
  top, left, height, width = block
  t, l = max(0, top - margin), max(0, left - margin)
  b = min(grid.height, top + height + margin)
  r = min(grid.width, left + width + margin)
  return (t, l, b - t, r - l), (slice(top - t, top - t + height),
                                slice(left - l, left - l + width))


def _least_cloudy(counts, slots, target, mask):
  """Index in `slots` of the model's date with the most clear pixels (the
  target under the moved mask), the newest of a tie."""
  clear = [counts['pixels'] - counts['cloudy'][t] for t in slots]
  clear[-1] = (counts['pixels'] - counts['cloudy'][target] -
               counts['hidden'][target][mask])
  return len(slots) - 1 - int(np.argmax(clear[::-1]))


def score_pair(series, target, mask, counts, work, tiles, run, options):
  """The protocol's metrics of every method on the pair's hidden pixels,
  and the pair's quicklook panels (PANELS)."""
  view = MovedMask(series, target, mask)
  slots = predict.slot_dates(view, options.timeline)
  least = _least_cloudy(counts, slots, target, mask)
  cache = _Committed(work, tiles, run)
  sums = {m: collections.Counter() for m in METHODS}
  pixels = 0
  grid = series.grid
  looks = [geotiff.Quicklook(grid.height, grid.width, QUICKLOOK_SIDE)
           for _ in PANELS]
  blocks = predict.block_windows(grid)
  ticker = predict.Ticker('scoring', len(blocks))
  for b, (block, _) in enumerate(blocks):
    grown, inner = _grown(block, grid, SSIM_MARGIN)
    rgb, cloudy, _ = series.read(predict.window(*grown), slots + [mask])
    hidden = ~cloudy[-2] & cloudy[-1]
    seen = ~cloudy[:-1]
    seen[-1] &= ~cloudy[-1]
    masked = np.where(seen[..., None], rgb[:-1], transforms.MASK_VALUE)
    truth = rgb[-2]
    model = truth
    if hidden.any():
      model = predict.blended(grown, tiles, cache, options.tile_size,
                              options.overlap)[0]
    cube = np.concatenate([masked[-1], *masked], axis=-1)
    clear_cube = np.stack([seen[-1], *seen], axis=-1)
    filled = {'model': model,
              'mosaic': baselines.mosaic(cube, clear_cube, 3),
              'least cloudy': masked[least],
              'cloudy input': baselines.cloudy_input(cube, 3)}
    filled = {k: np.where(hidden[..., None], v, truth)
              for k, v in filled.items()}
    own = np.zeros_like(hidden)
    own[inner] = hidden[inner]
    count = int(own.sum())
    if count:
      pixels += count
      y = metrics.to_unit(truth)
      for method, image in filled.items():
        x = metrics.to_unit(image)
        for name in ('rmse', 'mae', 'ssim01', 'sam'):
          value = float(metrics.PROTOCOL[name].fn(x, y, own))
          sums[method][name] += count * (value ** 2 if name == 'rmse'
                                         else value)
    for look, image in zip(looks, (truth, masked[-1], filled['model'],
                                   filled['mosaic'])):
      look.add(block, image[inner])
    ticker.update(b + 1)
  scores = {m: _finish(sums[m], pixels) for m in METHODS}
  return scores, pixels, series.dates[slots[least]], [l.image for l in looks]


def _finish(sums, pixels):
  """Pooled sums -> {metric: value} in METRICS order."""
  rmse = float(np.sqrt(sums['rmse'] / pixels))
  floor = 10. ** (-metrics.PSNR_CAP_DB / 20.)
  values = {'rmse': rmse, 'mae': sums['mae'] / pixels,
            'psnr01': float(20. * np.log10(1. / max(rmse, floor))),
            'ssim01': sums['ssim01'] / pixels, 'sam': sums['sam'] / pixels}
  return {name: float(values[name]) for name in METRICS}


def quicklook_sheet(panels):
  """The pair's panels side by side, labelled (PIL image)."""
  height, width = panels[0].shape[:2]
  canvas = Image.new('RGB', (len(panels) * (width + GAP) + GAP,
                             height + LABEL_HEIGHT + 2 * GAP), 'white')
  draw = ImageDraw.Draw(canvas)
  for i, (label, panel) in enumerate(zip(PANELS, panels)):
    x = GAP + i * (width + GAP)
    draw.text((x, GAP), label, fill='black')
    canvas.paste(Image.fromarray(panel), (x, GAP + LABEL_HEIGHT))
  return canvas


def selfcheck(series, load, out, options, identify=lambda: None):
  """Runs the self-check of `series` into directory `out` (see the module
  doc).

  Args:
    series: a `rasters.reader.Series` (its target date is not used).
    load: callable returning the predictor (as `jobs.predict.ModelPredictor`),
      called once the pairs are drawn (so bad input is reported before the
      models load).
    out: the report's directory.
    options: an `Options`.
    identify: callable returning the models' identity (as
      `jobs.predict.model_identity`), part of the report's record: a report
      or work directory of another record is refused (`jobs.records.claim`).
      Called once the pairs are drawn, as `load`.

  Returns:
    The report (what `<out>/selfcheck.json` holds).
  """
  names = report_paths(out)
  check_out(out)
  grid, dates = series.grid, series.dates
  tiles = tiling.grid(grid.height, grid.width, options.tile_size,
                      options.overlap)
  counts = scan(series)
  pairs = draw_pairs(series, counts, options)
  identity = identify()
  manifest = report_record(series, options, identity)
  if claim_report(out, names, manifest, options.overwrite):
    with open(names['json']) as f:
      return json.load(f)
  runs = pair_tiles(series, pairs, tiles, options)
  predictor = load()
  work = predict_workdir.WorkDir(out, manifest)
  rows = []
  with work.lock('selfcheck'):
    for k, ((target, mask), run) in enumerate(zip(pairs, runs)):
      logging.info('Pair %d/%d: %s under the clouds of %s, %d hidden px, '
                   '%d tile(s).', k + 1, len(pairs), dates[target],
                   dates[mask], counts['hidden'][target][mask], len(run))
      rows.append(_cached(work, f'pair_{k + 1}', lambda: _run_pair(
          series, predictor, work, counts, (target, mask), k + 1, run,
          tiles, options, out)))
  report = _report(series, counts, rows, options, identity)
  report['record'] = manifest
  write_report(report, names)
  work.remove()
  logging.info('Wrote %s, %s and %s.', names['md'], names['csv'],
               names['json'])
  return report


def report_record(series, options, identity):
  """The record of a report (`jobs.records`): the inputs, the models'
  `identity` and the options that change its figures."""
  settings = dataclasses.asdict(options)
  for unrecorded in ('batch_size', 'overwrite'):
    del settings[unrecorded]
  return records.normalized({**records.series_record(series), **settings,
                             'models': identity})


def check_out(out):
  """DataError when `out`, the report's directory, is a file."""
  if os.path.exists(out) and not os.path.isdir(out):
    raise DataError(f'--out={out} is a file — name a directory for the '
                    'report.')


def claim_report(out, names, manifest, overwrite):
  """True when the report in `out` of record `manifest` is complete; else
  clears what stands in its way (`jobs.records.claim`).

  Raises:
    DataError: a report of another record is there (without `overwrite`).
  """
  kept = records.read_json(names['json'])
  kept_looks = [os.path.join(out, r['quicklook'])
                for r in (kept or {}).get('pairs', [])]
  looks = glob.glob(os.path.join(glob.escape(out), 'pair_*.png'))
  return records.claim(out, manifest, (kept or {}).get('record'),
                       [*names.values(), *kept_looks],
                       [*names.values(), *looks],
                       predict_workdir.work_dir(out), overwrite)


def _cached(work, name, compute):
  """The JSON `name` of the work directory, computed once."""
  path = work.scratch(name + '.json')
  if not os.path.exists(path):
    with open(path + '.tmp', 'w') as f:
      json.dump(compute(), f)
    os.replace(path + '.tmp', path)
  with open(path) as f:
    return json.load(f)


def _run_pair(series, predictor, work, counts, pair, number, run, tiles,
              options, out):
  """Predicts and scores one pair (target, mask); writes its quicklook."""
  target, mask = pair
  view = MovedMask(series, target, mask)
  slots = predict.slot_dates(view, options.timeline)
  pair_work = predict_workdir.WorkDir(work.scratch(f'pair_{number}'), {})
  todo = [tiles[i] for i in run if not pair_work.done(i)]
  if len(todo) < len(run):
    logging.info('Resuming: %d tile(s) of this pair already done.',
                 len(run) - len(todo))
  predict.run_tiles(view, predictor, pair_work, todo, slots,
                    options.tile_size, options.batch_size)
  scores, pixels, least, panels = score_pair(
      series, target, mask, counts, pair_work, tiles, run, options)
  quicklook = os.path.join(out, f'pair_{number}.png')
  os.makedirs(out, exist_ok=True)
  images.save(quicklook, quicklook_sheet(panels))
  shutil.rmtree(pair_work.dir)
  return {'pair': number, 'target': str(series.dates[target]),
          'mask_date': str(series.dates[mask]), 'hidden_pixels': pixels,
          'tiles': len(run), 'least_cloudy_date': str(least),
          'model_dates': [str(series.dates[t]) for t in slots],
          'quicklook': os.path.basename(quicklook), 'scores': scores}


def _report(series, counts, rows, options, identity):
  overall = {m: {name: metrics.average([r['scores'][m][name] for r in rows])
                 for name in METRICS} for m in METHODS}
  return {'pairs': rows, 'overall': overall,
          'scene': {'dates': [str(d) for d in series.dates],
                    'grid': series.grid.to_dict(),
                    'cloudy_percent': [
                        round(100 * c / counts['pixels'], 2)
                        for c in counts['cloudy']]},
          'values': '8-bit model values / 255 (reflectance / 0.3)',
          'options': dataclasses.asdict(options), 'models': identity}


def report_paths(out):
  """{'md', 'csv', 'json'}: the report files in directory `out`."""
  return {ext: os.path.join(out, f'{REPORT}.{ext}')
          for ext in ('md', 'csv', 'json')}


def table_rows(report):
  """[pair, target, mask date, hidden px, method, *METRICS] rows: per pair,
  then overall (pair 'all')."""
  rows = []
  for r in report['pairs']:
    for m in METHODS:
      rows.append([str(r['pair']), r['target'], r['mask_date'],
                   r['hidden_pixels'], m,
                   *(r['scores'][m][n] for n in METRICS)])
  hidden = sum(r['hidden_pixels'] for r in report['pairs'])
  for m in METHODS:
    rows.append(['all', '', '', hidden, m,
                 *(report['overall'][m][n] for n in METRICS)])
  return rows


def write_report(report, names):
  """Writes the Markdown table, the CSV and the JSON (atomically)."""
  headers = ['pair', 'target', 'mask date', 'hidden px', 'method',
             *(metrics.PROTOCOL[n].header for n in METRICS)]
  rows = table_rows(report)
  fmt = lambda v: f'{v:.4f}' if isinstance(v, float) else str(v)
  md = ['| ' + ' | '.join(headers) + ' |',
        '|' + '---|' * len(headers)]
  md += ['| ' + ' | '.join(fmt(v) for v in row) + ' |' for row in rows]
  csv = [','.join(headers)] + [','.join(
      repr(v) if isinstance(v, float) else str(v) for v in row)
                               for row in rows]
  texts = {'md': '\n'.join(md) + '\n', 'csv': '\n'.join(csv) + '\n',
           'json': json.dumps(report, indent=1) + '\n'}
  os.makedirs(os.path.dirname(names['json']) or '.', exist_ok=True)
  for key, text in texts.items():
    with open(names[key] + '.tmp', 'w') as f:
      f.write(text)
    os.replace(names[key] + '.tmp', names[key])
