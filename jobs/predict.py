"""Cloud-free prediction of a whole scene, tile by tile: what `predict.py`
runs.

`predict(series, predictor, out, options)` cuts the target date's grid into
overlapping tiles of the upsampler's resolution (`rasters.tiling`), and for
each batch of tiles reads the model's dates (the T-2 dates before the target
and the target itself), runs `predictor` and commits every tile to the work
directory beside `out` (`jobs.predict_workdir`). Only tiles whose output is
needed go through the models: a tile whose target pixels are all clear is
committed without output (those pixels are kept), and the tiles with no
clear pixel on any of the model's dates share the prediction of the first of
them (they give the models the same input); the output is the same as if
every tile had been run. With `shard=(i, n)` only every n-th tile is done.
With `draws` = K > 1 each of these tiles gets the median of K draws of the
models and their spread instead (`jobs.predict_draws`).
When every tile is done (by this job or by others), the output is assembled
in 256 px blocks: overlapping tiles are blended, the target's clear pixels
are kept bit for bit (unless `replace_all`), and the image, its fill map and
a quicklook are written (`rasters.geotiff`); with K draws also the spread,
its tiles blended with the image's weights (the blend of the tiles' spreads
stands for the spread of the blended draws: exact where one tile covers a
pixel, an upper bound of it elsewhere). A scene whose output would be
invented (masks short of the grid, no clear pixel on any date) is refused
first; the shares of the fill codes are logged at the end.
A killed job started again skips the committed tiles and writes the same
bytes; SIGTERM or SIGINT stops a job after its current batch of tiles.

The predictor is a `jobs.predict_models.ModelPredictor` (the core and the
upsampler, or given a seed the core's draws); tests swap in any callable
with its signature. With a classical method (`jobs.classical`) there is no
predictor and no tile: the fill is computed block by block as the output
is written.
"""

import collections
import dataclasses
import os
import time

from absl import logging
import numpy as np

from jobs import classical
from jobs import predict_draws
from jobs import predict_workdir
from jobs import records
from rasters import geotiff
from rasters import radiometry
from rasters import stac_item
from rasters import tiling
from utils import progress
from utils import runlock
from utils import stop
from utils.errors import DataError

# Tiles kept in memory while blocks are assembled.
TILE_CACHE = 64
# Seconds between progress lines.
PROGRESS_SECS = 10
# Percent of the scene with no clear date above which predict warns.
MAX_NO_CLEAR = 50
# Bands of the output (RGB, as `check_configs` requires of the models).
CHANNELS = 3


def slot_dates(series, timeline):
  """Date indices of slots 1..T-1: the T-2 dates before the target, oldest
  first, then the target.

  Raises:
    DataError: fewer than T-2 dates before the target.
  """
  need, target = timeline - 2, series.target_index
  if target < need:
    raise DataError(
        f'The models take {timeline} slots ({need} dates before the target), '
        f'but the inputs have {target} date(s) before {series.target}; add '
        'earlier dates or choose a later --target.')
  return list(range(target - need, target)) + [target]


def _read_tile(series, tile, slots, size):
  """One tile's (T-1, S, S, C) uint8 dates and (T-1, S, S) clear masks,
  padded to S, and its (h, w) map of pixels clear on none of the dates."""
  rgb, cloudy, _ = series.read(geotiff.window(*tile[3:]), slots)
  clear = ~cloudy
  pad = lambda a: np.moveaxis(tiling.pad_to(np.moveaxis(a, 0, 2), size), 2, 0)
  return pad(rgb), pad(clear), ~clear.any(axis=0)


class Ticker:
  """Logs '<name> [###...] done/total rate/s ETA' every PROGRESS_SECS and at
  the end. The rate counts from the first update, after the first batch
  (which compiles the models)."""

  def __init__(self, name, total):
    self.name = name
    self.total = total
    self.tracker = None
    self.last = -PROGRESS_SECS

  def update(self, done):
    if self.tracker is None:
      self.tracker = progress.Progress(self.total, done=done)
    self.tracker.update(done)
    now = time.monotonic()
    if now - self.last >= PROGRESS_SECS or done == self.total:
      logging.info('%s %s', self.name, self.tracker.bar())
      self.last = now


def run_tiles(series, predictor, work, tiles, slots, size, batch_size,
              share_unobserved=False, draws=None):
  """Predicts and commits `tiles` in batches, with a progress line; returns
  how many went through the models. With `share_unobserved` (for a
  predictor that reads only the clear pixels, as `ModelPredictor`), the
  tiles with no clear pixel on any of the model's dates share one
  prediction (`model_batches`). With `draws` (a `predict_draws.Draws`),
  each tile is one model call of its K draws and commits their median and
  spread. On SIGTERM or SIGINT stops after the current batch
  (`stop.Stopped`)."""
  with stop.requests() as request:
    return _run_tiles(series, predictor, work, tiles, slots, size,
                      batch_size, share_unobserved, draws, request)


def _run_tiles(series, predictor, work, tiles, slots, size, batch_size,
               share_unobserved, draws, request):
  """`run_tiles` with its stop `request`."""
  ticker = Ticker('tiles', len(tiles))
  sent = done = 0
  for done, batch in model_batches(series, work, tiles, slots, size,
                                   batch_size if draws is None else 1,
                                   share_unobserved):
    chunk = [tile for tile, _ in batch]
    reads = [read for _, read in batch]
    if draws is None:
      records = _argmax_records(predictor, reads, batch_size)
    else:
      records = [_draw_record(predictor, draws, tile, read)
                 for tile, read in batch]
    for tile, (prediction, spread), read in zip(chunk, records, reads):
      crop = (slice(tile.height), slice(tile.width))
      work.save(tile.index, prediction[crop], read[2],
                None if spread is None else spread[crop])
      if share_unobserved and read[2].all():
        work.save_unobserved(prediction, spread)
    sent += len(chunk)
    ticker.update(done)
    if request.signal:
      request.stop(f'stopped on {request.name} with {done} of {len(tiles)} '
                   f'tiles of this job done in {work.dir} — run the same '
                   'command again to resume')
  if done < len(tiles):
    ticker.update(len(tiles))
  return sent


def _argmax_records(predictor, reads, batch_size):
  """[(prediction, None)] of a batch's reads, in one model call."""
  # Full batches only, so the models keep one compiled shape.
  padded = reads + reads[-1:] * (batch_size - len(reads))
  predictions = predictor(np.stack([r[0] for r in padded]),
                          np.stack([r[1] for r in padded]))
  return [(p, None) for p in predictions[:len(reads)]]


def _draw_record(predictor, draws, tile, read):
  """(median, spread) of one tile's draws; the tiles with no clear pixel
  on any date share one seed key (`predict_draws`)."""
  key = predict_draws.UNOBSERVED_KEY if read[2].all() else tile.index
  return draws.tile(predictor, read[0], read[1], key)


def model_batches(series, work, tiles, slots, size, batch_size,
                  share_unobserved):
  """Yields (tiles of `tiles` read so far, [(tile, `_read_tile`)]): batches
  of at most `batch_size` tiles to run through the models.

  With `share_unobserved`, a tile with no clear pixel on any of the model's
  dates gives the models the same input as any other such tile: the first
  one is batched (its caller keeps its prediction, `save_unobserved`), the
  others are marked UNOBSERVED in `work` once that prediction is there.
  """
  batch, waiting, first_queued = [], [], False
  for n, tile in enumerate(tiles, 1):
    read = _read_tile(series, tile, slots, size)
    if share_unobserved and read[2].all():
      if work.has_unobserved():
        work.mark(tile.index, predict_workdir.UNOBSERVED)
        continue
      if first_queued:
        waiting.append(tile)
        continue
      first_queued = True
    batch.append((tile, read))
    if len(batch) == batch_size:
      yield n, batch
      batch = []
  if batch:
    yield len(tiles), batch
  for tile in waiting:
    work.mark(tile.index, predict_workdir.UNOBSERVED)


def clear_tiles(series, tiles, candidates, size, overlap):
  """The tiles of `candidates` (some of `tiles`, the grid) whose target
  pixels are all clear, read block by block as `assemble` reads them, so
  the two agree on every pixel."""
  open_, cloudy = {t.index for t in candidates}, set()
  for block, win in geotiff.block_windows(series.grid):
    pending = [t for t in tiling.covering(tiles, block, size, overlap)
               if t.index in open_ and t.index not in cloudy]
    if not pending:
      continue
    target_cloudy = series.read(win, [series.target_index])[1][0]
    for t in pending:
      if target_cloudy[tiling.shared(t, block)[0]].any():
        cloudy.add(t.index)
  return [t for t in candidates if t.index not in cloudy]


class TileCache:
  """Loads committed tiles, keeping the most recent ones."""

  def __init__(self, work):
    self.work = work
    self.items = collections.OrderedDict()

  def __getitem__(self, index):
    """`WorkDir.load(index)`: a `predict_workdir.Record`, or None."""
    if index in self.items:
      self.items.move_to_end(index)
    else:
      self.items[index] = self.work.load(index)
      if len(self.items) > TILE_CACHE:
        self.items.popitem(last=False)
    return self.items[index]


def check_observed(series, slots, allow_unobserved):
  """Refuses a scene whose output would be invented: a mask raster of the
  model's dates that does not cover the grid, or no pixel clear on any of
  them (unless `allow_unobserved`, which only logs it).

  Raises:
    DataError: naming the file or the dates, and the fix.
  """
  grid = series.grid
  uncovered = np.zeros(len(slots), np.int64)
  any_clear = False
  for _, win in geotiff.block_windows(grid):
    for i, t in enumerate(slots):
      uncovered[i] += series.mask_outside(win, t).sum()
    any_clear = any_clear or not series.read(win, slots)[1].all()
  pixels = grid.height * grid.width
  problems = [f'the mask {series.mask_paths[t]} covers only '
              f'{100 * (1 - n / pixels):.0f} % of the target\'s grid (the '
              'rest counts as cloudy) — give masks that cover the whole scene'
              for t, n in zip(slots, uncovered) if n]
  if not any_clear:
    problems.append(
        'no pixel of the scene is clear on any of the model\'s dates ('
        f'{_dates(series, slots)}): the whole output would be invented — '
        'check the inputs\' no-data and the masks, or add clear dates')
  if not problems:
    return
  if not allow_unobserved:
    raise DataError(f'{problems[0]}, or pass --allow_unobserved')
  for problem in problems:
    logging.warning('%s; going on (--allow_unobserved).', problem)


def _dates(series, slots):
  return ', '.join(str(series.dates[t]) for t in slots)


def report_fill(counts, series, slots, filler='the model'):
  """Logs the shares of the fill codes, naming the `filler` (the model or
  a classical method); warns when over MAX_NO_CLEAR % of the scene had no
  clear date among the model's."""
  total = counts.sum()
  share = lambda code: 100 * counts[code] / total
  logging.info('%.1f %% of the pixels filled by %s, %.1f %% with no '
               'clear date (fill code %d).',
               share(geotiff.FILL_MODEL) + share(geotiff.FILL_NO_CLEAR),
               filler, share(geotiff.FILL_NO_CLEAR), geotiff.FILL_NO_CLEAR)
  if share(geotiff.FILL_NO_CLEAR) > MAX_NO_CLEAR:
    logging.warning(
        '%.0f %% of the scene had no clear pixel on any of the model\'s dates '
        '(%s): its fill is invented. Add clearer dates among the %d before '
        '%s, or choose another --target.', share(geotiff.FILL_NO_CLEAR),
        _dates(series, slots), len(slots) - 1, series.target)


def blended(area, tiles, cache, size, overlap, needed=None, spread=False):
  """(model, no_clear, spread) over `area` (top, left, h, w), from the
  tiles of `cache` (a `TileCache`) that cover it: the blended model output
  (h, w, C) uint8, the (h, w) map of pixels with no clear date and, if
  `spread`, the tiles' (h, w, C) float32 spreads blended with the same
  weights (else None). Tiles committed without output (clear) are left out:
  the `needed` pixels (default all) must be covered by the others; the rest
  may be 0."""
  height, width = area[2:]
  covering = tiling.covering(tiles, area, size, overlap)
  parts = [(t, cache[t.index]) for t in covering]
  parts = [(t, record) for t, record in parts if record is not None]
  no_clear = np.zeros((height, width), bool)
  spreads = np.zeros((height, width, CHANNELS), np.float32) if spread else None
  if not parts and needed is not None and not needed.any():
    return np.zeros((height, width, CHANNELS), np.uint8), no_clear, spreads
  model = tiling.blend(area, [(t, record[0]) for t, record in parts], size,
                       overlap, needed)
  if spread:
    spreads = tiling.blend_mean(area, [(t, record[2]) for t, record in parts],
                                size, overlap, needed).astype(np.float32)
  for t, record in parts:
    ours, theirs = tiling.shared(t, area)
    no_clear[ours] = record[1][theirs]
  return model, no_clear, spreads


def assemble(series, scratch, filled, out, replace_all, output_reflectance,
             spread=False):
  """Writes the output files block by block from `filled(block, needed)`,
  which returns a block's (fill (h, w, C) uint8, no_clear (h, w) bool,
  spread (h, w, C) float32 or None) with the `needed` pixels filled (as
  `blended`); with `spread`, the spread too: in the image's units, 0 where
  the target is kept. Returns the files' paths and the pixel count of each
  fill code."""
  grid = series.grid
  dtype = series.dtype if output_reflectance else np.uint8
  unit = radiometry.step(dtype)
  writer = geotiff.Writer(scratch, grid, CHANNELS, dtype,
                          unit if spread else None)
  target = series.target_index
  blocks = geotiff.block_windows(grid)
  ticker = Ticker('assembly', len(blocks))
  counts = np.zeros(3, np.int64)
  for b, (block, win) in enumerate(blocks):
    rgb, cloudy, _ = series.read(win, [target])
    clear = ~cloudy[0]
    keep = np.zeros_like(clear) if replace_all else clear
    model, no_clear, spreads = filled(block, ~keep)
    fill = np.where(clear, geotiff.FILL_KEPT,
                    np.where(no_clear, geotiff.FILL_NO_CLEAR,
                             geotiff.FILL_MODEL)).astype(np.uint8)
    counts += np.bincount(fill.ravel(), minlength=3)
    rgb8 = np.where(keep[..., None], rgb[0], model)
    image = rgb8
    if output_reflectance:
      model_dn = radiometry.from_uint8(model, series.offsets[target], dtype)
      image = np.where(keep[..., None], series.read_reflectance(win),
                       model_dn)
    if spread:
      spreads = np.where(keep[..., None], 0, spreads * unit)
    writer.write(block, image, fill, rgb8, spreads)
    ticker.update(b + 1)
  return writer.finish(out), counts


@dataclasses.dataclass(frozen=True)
class Tiling:
  """How a scene is cut into the models' tiles.

  tile_size: side of the model's tiles (the upsampler resolution).
  timeline: the models' `config.timeline`.
  overlap: pixels shared by neighbouring tiles; None: an eighth of the
    tile.
  batch_size: tiles per model call.
  """
  tile_size: int | None
  timeline: int | None
  overlap: int | None = None
  batch_size: int = 4

  def __post_init__(self):
    if self.tile_size is None:  # no model
      return
    if self.overlap is None:
      object.__setattr__(self, 'overlap', self.tile_size // 8)
    tiling.check_overlap(self.tile_size, self.overlap)


@dataclasses.dataclass(frozen=True)
class Options(Tiling):
  """How `predict` tiles, shards and writes a scene (predict.py's flags):
  `Tiling`, and

  shard: (i, n): do the tiles whose index is i modulo n; checked here.
  merge: only assemble (every tile must be done).
  replace_all: use the model's output for clear pixels too.
  output_reflectance: write reflectance in the inputs' dtype, not uint8.
  allow_unobserved: go on (with a warning) when masks do not cover the grid
    or no pixel is clear on any of the model's dates (`check_observed`).
  every_tile: run the models on every tile, even where their output is not
    needed or is shared (the output is the same: for checking that).
  draws: K; above 1, each tile's output is the median of K draws of the
    models, and their spread is written too (`predict_draws`).
  seed: the seed of the draws (with the tile's index).
  method: 'model', or one of `jobs.classical.METHODS` (no model: the tiling
    fields are None and there are no draws, shards or merges).
  overwrite: replace an output made otherwise (`jobs.records.claim`).
  """
  shard: tuple[int, int] = (0, 1)
  merge: bool = False
  replace_all: bool = False
  output_reflectance: bool = False
  allow_unobserved: bool = False
  every_tile: bool = False
  draws: int = 1
  seed: int = 0
  method: str = 'model'
  overwrite: bool = False

  def __post_init__(self):
    super().__post_init__()
    index, count = self.shard
    if not 0 <= index < count:
      raise DataError(f'--shard={index}/{count}: need 0 <= i < n.')
    predict_draws.check(self.draws, self.seed)
    if self.method not in ('model', *classical.METHODS):
      raise DataError(f'--method={self.method}: give model or one of '
                      f'{", ".join(classical.METHODS)}.')
    unused = [flag for flag, used in (
        (f'--draws={self.draws}', self.draws == 1),
        (f'--shard={index}/{count}', count == 1), ('--merge', not self.merge))
              if not used]
    if self.method != 'model' and unused:
      raise DataError(f'{unused[0]} with --method={self.method}: a classical '
                      'fill takes seconds in one job and has no draws — drop '
                      f'{unused[0].split("=")[0]}.')


def run_model_tiles(series, predictor, work, tiles, mine, slots, options,
                    skip_clear):
  """Commits the tiles of `mine` (some of `tiles`, the grid): the clear
  ones (`skip_clear`) without the models, the others by `run_tiles`; logs
  how many went through the models."""
  size = options.tile_size
  clear = (clear_tiles(series, tiles, mine, size, options.overlap)
           if skip_clear else [])
  for tile in clear:
    work.mark(tile.index, predict_workdir.CLEAR)
  clear_indices = {t.index for t in clear}
  cloudy = [t for t in mine if t.index not in clear_indices]
  draws = None
  if options.draws > 1:
    draws = predict_draws.Draws(options.draws, options.seed)
  sent = run_tiles(series, predictor, work, cloudy, slots, size,
                   options.batch_size, not options.every_tile, draws)
  logging.info('%d tile(s) sent to the models%s, %d skipped: %d with a '
               'clear target, %d with no clear pixel on any of the model\'s '
               'dates (sharing one prediction).', sent,
               f' ({options.draws} draws each, seed {options.seed})'
               if draws else '', len(mine) - sent, len(clear),
               len(cloudy) - sent)


def predict(series, predictor, out, options, identity=None):
  """Predicts the target date of `series` into `out` (see the module doc).

  Args:
    series: a `rasters.reader.Series`.
    predictor: callable as `ModelPredictor`; like it, its output may depend
      on the dates' values only where they are clear (the tiles with no
      clear pixel share one prediction).
    out: the output GeoTIFF path.
    options: an `Options`.
    identity: JSON-ready description of the models, part of the output's
      record (`record`): an output or work directory of another record is
      refused (`jobs.records.claim`).

  Returns:
    {'image', 'fill', 'quicklook', 'item'} paths once assembled (the item
    is the STAC Item, `rasters.stac_item`; with K draws also 'spread' and
    'spread_quicklook'), else None (other shards still have tiles to do).
  """
  if options.method != 'model':
    return predict_classical(series, out, options)
  index, count = options.shard
  tile_size, overlap = options.tile_size, options.overlap
  skip_clear = not (options.replace_all or options.every_tile)
  slots = slot_dates(series, options.timeline)
  grid = series.grid
  tiles = tiling.grid(grid.height, grid.width, tile_size, overlap)
  drawn = options.draws > 1
  sampling = {'draws': options.draws}
  if drawn:
    sampling['seed'] = options.seed
  manifest = output_record(series, options, identity, method='model',
                           skip_clear_tiles=skip_clear,
                           tile_size=tile_size, overlap=overlap,
                           **sampling)
  names = geotiff.paths(out, drawn)
  if claim_output(out, manifest, names, options.overwrite):
    return {**names, 'item': stac_item.path(out)}
  if not options.merge:
    check_observed(series, slots, options.allow_unobserved)
  work = predict_workdir.WorkDir(out, manifest)
  logging.info('%dx%d px, %d tiles of %d px (overlap %d); dates %s.',
               grid.width, grid.height, len(tiles), tile_size, overlap,
               ', '.join(str(series.dates[t]) for t in slots))
  if not options.merge:
    with work.lock(f'shard_{index}_of_{count}'):
      mine = [t for t in tiles[index::count] if not work.done(t.index)]
      skipped = len(tiles[index::count]) - len(mine)
      if skipped:
        logging.info('Resuming: %d tile(s) of this shard already done.',
                     skipped)
      run_model_tiles(series, predictor, work, tiles, mine, slots, options,
                      skip_clear)
  left = sum(not work.done(t.index) for t in tiles)
  if left:
    if options.merge:
      raise DataError(f'{left} of {len(tiles)} tiles are not done yet in '
                      f'{work.dir}; run the remaining --shard jobs first.')
    logging.info('%d tile(s) of other shards remain; the last shard to '
                 'finish (or --merge) writes %s.', left, out)
    return None
  cache = TileCache(work)
  filled = lambda block, needed: blended(block, tiles, cache, tile_size,
                                         overlap, needed, drawn)
  try:
    with work.lock('assemble'):
      names, counts = assemble(series, work.scratch, filled, out,
                               options.replace_all,
                               options.output_reflectance, drawn)
  except runlock.LockHeld:
    if options.merge:
      raise
    logging.info('Another job is assembling %s.', out)
    return None
  models = {**(identity or {}), **sampling} if drawn else identity
  return _finish(series, work, out, names, counts, slots, models, manifest)


def predict_classical(series, out, options):
  """`predict` with a classical method (`jobs.classical`): its scene-wide
  fit, then the output block by block, in one job."""
  indices = classical.dates(series)
  manifest = output_record(series, options, None, method=options.method)
  names = geotiff.paths(out)
  if claim_output(out, manifest, names, options.overwrite):
    return {**names, 'item': stac_item.path(out)}
  check_observed(series, indices, options.allow_unobserved)
  work = predict_workdir.WorkDir(out, manifest)
  logging.info('%dx%d px, %s on the dates %s.', series.grid.width,
               series.grid.height, options.method, _dates(series, indices))
  with work.lock('assemble'):
    scene = classical.fit(series, indices)
    filled = lambda block, needed: (*classical.fill(
        series, options.method, indices, scene, block), None)
    names, counts = assemble(series, work.scratch, filled, out,
                             options.replace_all, options.output_reflectance)
  return _finish(series, work, out, names, counts, indices,
                 {'method': options.method}, manifest)


def _finish(series, work, out, names, counts, slots, models, manifest):
  """Writes the output's STAC Item, removes the work directory, logs the
  fill codes; returns the output's paths."""
  names['item'] = stac_item.write(out, names, series, models, manifest)
  work.remove()
  report_fill(counts, series, slots,
              (models or {}).get('method', 'the model'))
  logging.info('Wrote %s.', ', '.join(names.values()))
  return names


def output_record(series, options, identity, **settings):
  """The record of a prediction (`jobs.records`): the inputs, the target,
  the models' `identity`, the flags that change the output's bytes and the
  method's `settings`."""
  return records.normalized({
      **records.series_record(series), 'target': str(series.target),
      'models': identity, 'replace_all': options.replace_all,
      'output_reflectance': options.output_reflectance, **settings})


def claim_output(out, manifest, names, overwrite):
  """True when output `out` of record `manifest` is complete; else clears
  what stands in its way (`jobs.records.claim`).

  Raises:
    DataError: `out` is a directory, or an output of another record is
      there (without `overwrite`).
  """
  if os.path.isdir(out):
    raise DataError(f'--out={out} is a directory — name the output GeoTIFF, '
                    f'e.g. --out={os.path.join(out, "clear.tif")}.')
  item = stac_item.path(out)
  companions = [*geotiff.paths(out, spread=True).values(), item]
  return records.claim(out, manifest, stac_item.read_record(item),
                       [*names.values(), item], companions,
                       predict_workdir.work_dir(out), overwrite)
