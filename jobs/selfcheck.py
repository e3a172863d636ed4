"""Which fill works best on the user's own scene: what `python -m
tools.selfcheck` runs.

`selfcheck(series, load, out, options)` takes pairs of dates of the
series: a target date with little cloud, and the real cloud mask of another
date moved onto it (`MovedMask`). The pixels clear in the target and cloudy
in the moved mask are hidden from every method and scored against what the
target really shows there; pixels cloudy in the target itself are never
scored. Each pair is filled exactly as `predict.py` fills a date: by the
models (the same dates, tiling and blending, `jobs.predict`, but only on
the tiles that hold a hidden pixel) when they are given, and by every
classical fill of `predict.py --method` (`jobs.classical`, fitted on the
pair's scene); the report ranks them and names the best.

Passes over the scene, 256 px block by block, so memory does not grow with
the scene: a scan counts each date's cloudy pixels and, per pair of dates,
the pixels one hides in the other; the pairs are drawn (seeded); a second
pass finds their tiles; per pair, the tiles are predicted and committed,
the classical fills fitted (one pass), then the hidden pixels are scored. The work directory `<out>.work/`
(`jobs.predict_workdir`) keeps each pair's tiles and scores: a killed job
started again scans again, resumes, and gives the same report.

Scores (`evaluation.metrics.PROTOCOL`) are on the 8-bit values the models
see, / 255, for each method and the cloudy input (the hidden pixels at the
mask value). Each method's image is its values on the hidden pixels pasted
into the truth, so SSIM's window sees the real surroundings. Per pair the pixels
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
from evaluation import metrics
from jobs import classical
from jobs import predict
from jobs import predict_workdir
from jobs import records
from rasters import geotiff
from rasters import tiling
from utils import images
from utils.errors import DataError

CLOUDY_INPUT = 'cloudy_input'
# The report's metrics, in PROTOCOL's order.
METRICS = tuple(metrics.PROTOCOL)
# Pixels read around a block for SSIM: its map at a pixel depends on the
# pixels within 5 px (a Gaussian of sigma 1.5 cut at 3.5 sigma); 11 px
# keep even a 1 px edge block at least as large as the 11 px window.
SSIM_MARGIN = 11
QUICKLOOK_SIDE = 512
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
  blocks = geotiff.block_windows(series.grid)
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
  dates = series.dates
  if options.timeline is None:
    need, takes = 1, 'The classical fills take a date before the target'
  else:
    need = options.timeline - 2
    takes = (f'The models take {options.timeline} slots, so a target needs '
             f'{need} earlier dates')
  if len(dates) <= need:
    raise DataError(f'{takes} and the self-check at least {need + 1} dates; '
                    f'the inputs have {len(dates)} — add dates.')
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
  blocks = geotiff.block_windows(series.grid)
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


def methods(modelled):
  """The methods the self-check scores: the model (if any), every
  classical fill of `predict.py --method`, and the cloudy input."""
  return (('model',) if modelled else ()) + classical.METHODS + (
      CLOUDY_INPUT,)


def score_pair(series, target, mask, work, tiles, run, options):
  """The protocol's metrics of every method (`methods`, the model's with
  `work`) on the pair's hidden pixels, each classical fill with its fit on
  the pair's scene, and the pair's quicklook panels (`panels`)."""
  view = MovedMask(series, target, mask)
  indices = classical.dates(view)
  scene = classical.fit(view, indices)
  cache = None if work is None else _Committed(work, tiles, run)
  scored = methods(work is not None)
  shown = panels(work is not None)
  sums = {m: collections.Counter() for m in scored}
  pixels = 0
  grid = series.grid
  looks = [geotiff.Quicklook(grid.height, grid.width, QUICKLOOK_SIDE)
           for _ in shown]
  blocks = geotiff.block_windows(grid)
  ticker = predict.Ticker('scoring', len(blocks))
  for b, (block, _) in enumerate(blocks):
    grown, inner = geotiff.grown(block, grid, SSIM_MARGIN)
    rgb, cloudy, _ = series.read(geotiff.window(*grown), [target, mask])
    truth = rgb[0]
    hidden = ~cloudy[0] & cloudy[1]
    filled = {m: truth for m in scored}
    filled[CLOUDY_INPUT] = np.where(cloudy.any(axis=0)[..., None],
                                    transforms.MASK_VALUE, truth)
    if hidden.any():
      if cache is not None:
        filled['model'] = predict.blended(grown, tiles, cache,
                                          options.tile_size,
                                          options.overlap)[0]
      for method in classical.METHODS:
        filled[method] = classical.fill(view, method, indices, scene,
                                        grown)[0]
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
    images_of = {'truth': truth, 'masked input': filled[CLOUDY_INPUT],
                 **filled}
    for look, name in zip(looks, shown):
      look.add(block, images_of[name][inner])
    ticker.update(b + 1)
  scores = {m: _finish(sums[m], pixels) for m in scored}
  return scores, pixels, [view.dates[t] for t in indices], [
      l.image for l in looks]


def _finish(sums, pixels):
  """Pooled sums -> {metric: value} in METRICS order."""
  rmse = float(np.sqrt(sums['rmse'] / pixels))
  floor = 10. ** (-metrics.PSNR_CAP_DB / 20.)
  values = {'rmse': rmse, 'mae': sums['mae'] / pixels,
            'psnr01': float(20. * np.log10(1. / max(rmse, floor))),
            'ssim01': sums['ssim01'] / pixels, 'sam': sums['sam'] / pixels}
  return {name: float(values[name]) for name in METRICS}


def panels(modelled):
  """The panels of a pair's quicklook: the truth, the masked input, the
  model's fill (if any) and the corrected mosaic."""
  return ('truth', 'masked input', *(('model',) if modelled else ()),
          'corrected_mosaic')


def quicklook_sheet(labels, images_):
  """The pair's panels (`images_`, named by `labels`) side by side,
  labelled (PIL image)."""
  height, width = images_[0].shape[:2]
  canvas = Image.new('RGB', (len(images_) * (width + GAP) + GAP,
                             height + LABEL_HEIGHT + 2 * GAP), 'white')
  draw = ImageDraw.Draw(canvas)
  for i, (label, panel) in enumerate(zip(labels, images_)):
    x = GAP + i * (width + GAP)
    draw.text((x, GAP), label, fill='black')
    canvas.paste(Image.fromarray(panel), (x, GAP + LABEL_HEIGHT))
  return canvas


def selfcheck(series, load, out, options, identify=lambda: None):
  """Runs the self-check of `series` into directory `out` (see the module
  doc).

  Args:
    series: a `rasters.reader.Series` (its target date is not used).
    load: callable returning the predictor (as
      `jobs.predict_models.ModelPredictor`), called once the pairs are
      drawn (so bad input is reported before the models load); None: no
      model, the classical fills only (`options` then has no tiling).
    out: the report's directory.
    options: an `Options`.
    identify: callable returning the models' identity (as
      `jobs.predict_models.model_identity`), part of the report's record: a
      report or work directory of another record is refused
      (`jobs.records.claim`). Called once the pairs are drawn, as `load`.

  Returns:
    The report (what `<out>/selfcheck.json` holds).
  """
  names = report_paths(out)
  check_out(out)
  grid, dates = series.grid, series.dates
  counts = scan(series)
  pairs = draw_pairs(series, counts, options)
  identity = identify()
  manifest = report_record(series, options, identity)
  if claim_report(out, names, manifest, options.overwrite):
    with open(names['json']) as f:
      return json.load(f)
  tiles, runs, predictor = [], [[] for _ in pairs], None
  if load is not None:
    tiles = tiling.grid(grid.height, grid.width, options.tile_size,
                        options.overlap)
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
          series, predictor, work, (target, mask), k + 1, run, tiles,
          options, out)))
  report = _report(series, counts, rows, options, identity)
  report['record'] = manifest
  write_report(report, names)
  logging.info('Best on this area: %s.', report['best'])
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


def _run_pair(series, predictor, work, pair, number, run, tiles, options,
              out):
  """Predicts (with `predictor`, if any) and scores one pair (target,
  mask); writes its quicklook."""
  target, mask = pair
  view = MovedMask(series, target, mask)
  row = {'pair': number, 'target': str(series.dates[target]),
         'mask_date': str(series.dates[mask])}
  pair_work = None
  if predictor is not None:
    slots = predict.slot_dates(view, options.timeline)
    pair_work = predict_workdir.WorkDir(work.scratch(f'pair_{number}'), {})
    todo = [tiles[i] for i in run if not pair_work.done(i)]
    if len(todo) < len(run):
      logging.info('Resuming: %d tile(s) of this pair already done.',
                   len(run) - len(todo))
    predict.run_tiles(view, predictor, pair_work, todo, slots,
                      options.tile_size, options.batch_size)
    row.update(tiles=len(run),
               model_dates=[str(series.dates[t]) for t in slots])
  scores, pixels, dates, looks = score_pair(series, target, mask, pair_work,
                                            tiles, run, options)
  quicklook = os.path.join(out, f'pair_{number}.png')
  os.makedirs(out, exist_ok=True)
  images.save(quicklook, quicklook_sheet(panels(predictor is not None),
                                         looks))
  if pair_work is not None:
    shutil.rmtree(pair_work.dir)
  return {**row, 'hidden_pixels': pixels,
          'classical_dates': [str(d) for d in dates],
          'quicklook': os.path.basename(quicklook), 'scores': scores}


def _report(series, counts, rows, options, identity):
  scored = list(rows[0]['scores'])
  overall = {m: {name: metrics.average([r['scores'][m][name] for r in rows])
                 for name in METRICS} for m in scored}
  ranked = sorted((m for m in scored if m != CLOUDY_INPUT),
                  key=lambda m: -overall[m]['psnr01'])
  return {'pairs': rows, 'overall': overall, 'ranking': ranked,
          'best': ranked[0],
          'best_classical': next(m for m in ranked
                                 if m in classical.METHODS),
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
  then overall (pair 'all'), best PSNR first (the cloudy input last)."""
  rows = []
  for r in report['pairs']:
    for m in r['scores']:
      rows.append([str(r['pair']), r['target'], r['mask_date'],
                   r['hidden_pixels'], m,
                   *(r['scores'][m][n] for n in METRICS)])
  hidden = sum(r['hidden_pixels'] for r in report['pairs'])
  for m in [*report['ranking'], CLOUDY_INPUT]:
    rows.append(['all', '', '', hidden, m,
                 *(report['overall'][m][n] for n in METRICS)])
  return rows


def verdict(report):
  """The report's conclusion: the best method on this area, and the model's
  difference to the best classical fill."""
  overall = report['overall']
  psnr = lambda m: overall[m]['psnr01']
  best, classic = report['best'], report['best_classical']
  lines = [f'Best on this area: **{best}** ({psnr(best):.2f} dB PSNR on the '
           f'hidden pixels, over all pairs); fill a date with it: '
           f'`predict.py --method {best}`.']
  if 'model' in overall:
    lines.append(f'The model: {psnr("model") - psnr(classic):+.2f} dB against '
                 f'the best classical fill, {classic}.')
  return lines


def write_report(report, names):
  """Writes the Markdown table, the CSV and the JSON (atomically)."""
  headers = ['pair', 'target', 'mask date', 'hidden px', 'method',
             *(metrics.PROTOCOL[n].header for n in METRICS)]
  rows = table_rows(report)
  fmt = lambda v: f'{v:.4f}' if isinstance(v, float) else str(v)
  md = ['| ' + ' | '.join(headers) + ' |',
        '|' + '---|' * len(headers)]
  md += ['| ' + ' | '.join(fmt(v) for v in row) + ' |' for row in rows]
  md += [''] + verdict(report)
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
