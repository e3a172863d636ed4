"""A dated series of rasters read on one grid, window by window.

    series = rasters.open_series('aoi/*.tif', scl='aoi/*_SCL.tif',
                                 target='2024-07-14')
    with series:
      rgb, cloudy, missing = series.read(Window(0, 0, 256, 256))

One file per date (or, with `band_files`, one file per band and date in the
L2A layout `*_B04_10m.jp2`, `*_B03_10m.jp2`, `*_B02_10m.jp2`); the dates
come from `rasters.dates`, the 8-bit values from `rasters.radiometry` and
the cloudy pixels from `rasters.cloudmasks`. Every file is read on the grid
of the target date (default the last; with `area`, cropped to the whole
pixels of that area): a file whose own grid holds it, pixel for pixel, is
read as it is; a file on another grid (CRS, pixel size or alignment) is
warped with `rasterio.vrt.WarpedVRT` (images bilinear, masks nearest),
which is logged once per file. Only the requested window is ever read. A
Series keeps its files open until `close()` and is not thread-safe. GDAL's
block cache is capped at BLOCK_CACHE_MB.
"""

import dataclasses
import datetime
import glob
import math
import os
import re

from absl import logging
from affine import Affine
import numpy as np
import rasterio
from rasterio import warp
from rasterio import windows
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT

from rasters import cloudmasks
from rasters import dates as dates_lib
from rasters import radiometry
from utils.errors import DataError

# Default RGB bands (1-based) of a multi-band file, by its band count: a
# Sentinel-2 stack of 13 (L1C) or 12 (L2A, no B10) bands in band order.
DEFAULT_BANDS = {3: (1, 2, 3), 12: (4, 3, 2), 13: (4, 3, 2)}
DEFAULT_BAND_FILES = ('B04', 'B03', 'B02')
BAND_NAME = re.compile(r'(?<![A-Za-z0-9])(B\d{2}|B8A)(?![A-Za-z0-9])')
# GDAL keeps decoded blocks in a process-wide cache of 5 % of the RAM by
# default, which fills as a scene is read; this cap (MB) keeps the memory of
# a windowed pass independent of the scene size. GDAL_CACHEMAX in the
# environment takes precedence.
BLOCK_CACHE_MB = 64


@dataclasses.dataclass(frozen=True)
class Grid:
  """The target's pixel grid: CRS, affine transform and size."""
  crs: object
  transform: object
  width: int
  height: int

  @classmethod
  def of(cls, src):
    return cls(src.crs, src.transform, src.width, src.height)

  @property
  def shape(self):
    return (self.height, self.width)

  @property
  def window(self):
    """The whole grid as a Window."""
    return windows.Window(0, 0, self.width, self.height)

  def bounds(self, window=None):
    """(left, bottom, right, top) of `window` (default the grid) in the
    grid's CRS."""
    window = window or self.window
    corners = ((window.col_off, window.row_off),
               (window.col_off + window.width, window.row_off + window.height))
    xs, ys = zip(*(self.transform @ corner for corner in corners))
    return min(xs), min(ys), max(xs), max(ys)

  def origin_in(self, src):
    """(col, row) of the grid's first pixel in `src` when the grid is a
    whole-pixel window of src's own grid, inside it; else None."""
    if src.crs != self.crs:
      return None
    col, row = (round(v) for v in ~src.transform @ (self.transform.c,
                                                    self.transform.f))
    inside = (col >= 0 and row >= 0 and col + self.width <= src.width and
              row + self.height <= src.height)
    aligned = (self.transform @ Affine.translation(-col, -row)).almost_equals(
        src.transform)
    return (col, row) if inside and aligned else None

  def crop(self, area):
    """The whole pixels of the grid that `area` (W, S, E, N in degrees)
    touches.

    Raises:
      DataError: the grid has no CRS, or the area is off the grid.
    """
    if self.crs is None:
      raise DataError(f'--bbox {",".join(map(str, area))}: the target date '
                      'has no CRS — georeference it or drop --bbox.')
    window = windows.from_bounds(*warp.transform_bounds(
        'EPSG:4326', self.crs, *area, densify_pts=21), self.transform)
    col0 = max(0, math.floor(window.col_off))
    row0 = max(0, math.floor(window.row_off))
    col1 = min(self.width, math.ceil(window.col_off + window.width))
    row1 = min(self.height, math.ceil(window.row_off + window.height))
    if col1 <= col0 or row1 <= row0:
      west, south, east, north = warp.transform_bounds(
          self.crs, 'EPSG:4326', *self.bounds())
      raise DataError(f'--bbox {",".join(map(str, area))} is off the target '
                      f'date\'s grid ({west:.4f},{south:.4f},{east:.4f},'
                      f'{north:.4f}) — give W,S,E,N inside it.')
    return Grid(self.crs, self.transform @ Affine.translation(col0, row0),
                col1 - col0, row1 - row0)

  def to_dict(self):
    """JSON-ready: CRS as WKT/EPSG string, the 6 affine coefficients."""
    return {'crs': self.crs.to_string() if self.crs else None,
            'transform': list(self.transform)[:6],
            'width': self.width, 'height': self.height}


def _open(path, what):
  try:
    return rasterio.open(path)
  except rasterio.errors.RasterioIOError as e:
    raise DataError(f'Cannot read {what} {path} ({e}); it is unreadable or '
                    'not a raster: replace or remove it.') from None


def _overlaps(src, grid):
  left, bottom, right, top = warp.transform_bounds(src.crs, grid.crs,
                                                   *src.bounds)
  g_left, g_bottom, g_right, g_top = grid.bounds()
  return left < g_right and right > g_left and bottom < g_top and top > g_bottom


class OnGrid:
  """One raster file read on `grid`, warped when its own grid differs.

  Attributes:
    path, count, dtype, nodata, tags: of the file.
    warped: whether reads go through a WarpedVRT.
  """

  def __init__(self, path, grid, resampling, what):
    self.path = path
    self._src = _open(path, what)
    src = self._src
    self.count, self.nodata = src.count, src.nodata
    self.dtype = np.dtype(src.dtypes[0])
    self.tags = src.tags()
    self._origin = grid.origin_in(src)
    self.warped = self._origin is None
    self._grid = grid
    self._reader = src
    if self.warped:
      if src.crs is None or grid.crs is None:
        self.close()
        raise DataError(
            f'{what} {path} is not on the grid of the target date and '
            f'{"it" if src.crs is None else "the target"} has no coordinate '
            'reference system, so it cannot be warped; georeference it.')
      if not _overlaps(src, grid):
        self.close()
        raise DataError(
            f'{what} {path} does not overlap the target date\'s grid '
            f'({grid.crs}, bounds {tuple(round(b) for b in grid.bounds())}); '
            'remove it or choose inputs over the same area.')
      logging.info('Warping %s %s (%s, %gx%g m pixels, %dx%d) to the target '
                   'grid (%s, %gx%g, %dx%d), %s resampling.', what, path,
                   src.crs, src.res[0], src.res[1], src.width, src.height,
                   grid.crs, abs(grid.transform.a), abs(grid.transform.e),
                   grid.width, grid.height, resampling.name)
      nodata = src.nodata
      if nodata is None and resampling != Resampling.nearest:
        nodata = 0  # zeros are no data: keep them out of the interpolation
      self._reader = WarpedVRT(
          src, crs=grid.crs, transform=grid.transform, width=grid.width,
          height=grid.height, resampling=resampling, src_nodata=nodata,
          add_alpha=True)

  def read(self, indexes, window):
    """(values (len(indexes), h, w) of self.dtype, outside (h, w) bool).

    `window` may extend past the grid; `outside` marks the pixels beyond the
    grid or the file's footprint (their values are 0).
    """
    height, width = int(window.height), int(window.width)
    values = np.zeros((len(indexes), height, width), self.dtype)
    outside = np.ones((height, width), bool)
    try:
      inner = windows.intersection(window, self._grid.window)
    except rasterio.errors.WindowError:
      return values, outside
    rows = slice(int(inner.row_off - window.row_off),
                 int(inner.row_off - window.row_off + inner.height))
    cols = slice(int(inner.col_off - window.col_off),
                 int(inner.col_off - window.col_off + inner.width))
    source = inner
    if not self.warped:
      col, row = self._origin
      source = windows.Window(inner.col_off + col, inner.row_off + row,
                              inner.width, inner.height)
    try:
      values[:, rows, cols] = self._reader.read(list(indexes), window=source)
      if self.warped:
        outside[rows, cols] = self._reader.read_masks(1, window=inner) == 0
      else:
        outside[rows, cols] = False
    except rasterio.errors.RasterioIOError as e:
      raise DataError(f'Cannot read {self.path} ({e}); it is truncated or '
                      'corrupt: replace or remove it.') from None
    return values, outside

  def close(self):
    if self._reader is not self._src:
      self._reader.close()
    self._src.close()


@dataclasses.dataclass
class Series:
  """The dates of an area on the target's grid.

  Attributes:
    dates: sorted datetime.date list.
    paths: per date, the image file (or the tuple of band files).
    mask_paths: per date, the mask file.
    mask_kind: one of cloudmasks.KINDS.
    target_index: index of the target date in `dates`.
    grid: the target's Grid.
    dtype: numpy dtype of the image values (uint8 or the reflectance DN's).
    offsets: per date, the DN offset of `radiometry` (0 for 8-bit inputs).
    bands: the RGB band indexes (1-based) of multi-band files, or the band
      names of `band_files` (the asset keys of STAC Items).
    items: per date, the pystac.Item the files come from, or None.
  """
  dates: list
  paths: list
  mask_paths: list
  mask_kind: str
  target_index: int
  grid: Grid
  dtype: np.dtype
  offsets: list
  bands: tuple
  cloud_threshold: float
  _images: list  # per date [(OnGrid, band indexes)]
  _masks: list   # per date OnGrid
  items: list = None

  @property
  def target(self):
    return self.dates[self.target_index]

  def _raw(self, t, window):
    parts = [layer.read(indexes, window) for layer, indexes in self._images[t]]
    values = np.concatenate([v for v, _ in parts])
    outside = np.logical_or.reduce([o for _, o in parts])
    missing = outside | cloudmasks.image_missing(
        values, self._images[t][0][0].nodata)
    return values, missing

  def read_reflectance(self, window, index=None):
    """(h, w, 3) image values of date `index` (default the target) as stored,
    in `dtype`; 0 where the file has no data."""
    t = self.target_index if index is None else index
    values, _ = self._raw(t, window)
    return values.transpose(1, 2, 0)

  def read(self, window, indices=None):
    """The dates `indices` (default all, T of them) in `window` of the grid.

    Returns:
      rgb: (T, h, w, 3) uint8 model values (radiometry.to_uint8).
      cloudy: (T, h, w) bool, True = cloudy or missing.
      missing: (T, h, w) bool, True = no data (image nodata or zeros, mask
        no-data, or outside the file's footprint).
    """
    height, width = int(window.height), int(window.width)
    indices = range(len(self.dates)) if indices is None else list(indices)
    rgb = np.empty((len(indices), height, width, 3), np.uint8)
    cloudy = np.empty((len(indices), height, width), bool)
    missing = np.empty((len(indices), height, width), bool)
    for i, t in enumerate(indices):
      values, image_missing = self._raw(t, window)
      rgb[i] = radiometry.to_uint8(values, self.offsets[t]).transpose(1, 2, 0)
      mask = self._masks[t]
      mask_values, outside = mask.read((1,), window)
      mask_cloudy, mask_missing = cloudmasks.classify(
          self.mask_kind, mask_values[0], mask.nodata, self.cloud_threshold)
      missing[i] = image_missing | mask_missing | outside
      cloudy[i] = mask_cloudy | missing[i]
    return rgb, cloudy, missing

  def mask_outside(self, window, index):
    """(h, w) bool: pixels of `window` that date `index`'s mask raster does
    not cover (beyond its footprint or the grid)."""
    return self._masks[index].read((1,), window)[1]

  def close(self):
    for layers in self._images:
      for layer, _ in layers:
        layer.close()
    for mask in self._masks:
      mask.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def expand(patterns, flag):
  """Sorted file paths of a glob pattern or a list of paths/patterns.

  Raises:
    DataError: nothing matches (naming `flag` and the pattern).
  """
  if isinstance(patterns, str):
    patterns = [patterns]
  paths = set()
  for pattern in patterns:
    found = glob.glob(str(pattern), recursive=True)
    if not found:
      raise DataError(f'No file matches {flag}={str(pattern)!r}; check the '
                      'path or quote the pattern so the shell does not '
                      'expand it.')
    paths.update(found)
  return sorted(paths)


def _band_file_groups(paths, bands):
  """{date: tuple of paths in `bands` order} of L2A one-file-per-band paths."""
  table = {}
  for path in paths:
    match = BAND_NAME.search(path.rsplit('/', 1)[-1])
    if not match or match[1] not in bands:
      continue
    slot = table.setdefault(dates_lib.date_of(path), {})
    if match[1] in slot:
      raise DataError(
          f'{slot[match[1]]} and {path} are both band {match[1]} of '
          f'{dates_lib.date_of(path)}; narrow --inputs to one resolution '
          '(for example *_10m.jp2).')
    slot[match[1]] = path
  if not table:
    raise DataError(f'No file of --inputs is named like a band of {bands} '
                    f'(for example T32TQM_20240714T103031_{bands[0]}_10m.jp2).')
  for date, slot in sorted(table.items()):
    lacking = [b for b in bands if b not in slot]
    if lacking:
      raise DataError(f'Date {date} has no band file {lacking} beside '
                      f'{sorted(slot.values())}; add them or remove the date.')
  return {d: tuple(s[b] for b in bands) for d, s in sorted(table.items())}


def _rgb_indexes(layer, bands):
  if bands is None:
    if layer.count not in DEFAULT_BANDS:
      raise DataError(
          f'{layer.path} has {layer.count} band(s); without --bands only 3 '
          '(RGB) or a 12/13-band Sentinel-2 stack are understood: pass '
          '--bands R,G,B (1-based) or --band_files.')
    return DEFAULT_BANDS[layer.count]
  if len(bands) != 3 or min(bands) < 1 or max(bands) > layer.count:
    raise DataError(f'{layer.path} has {layer.count} band(s), which does not '
                    f'fit --bands {",".join(map(str, bands))} (three 1-based '
                    'band indexes).')
  return tuple(bands)


def _parse_target(target, dates):
  if target is None:
    return len(dates) - 1
  day = target if isinstance(target, datetime.date) else (
      dates_lib.date_in_name(str(target)))
  if day is None:
    raise DataError(f'Target date {target!r} is not a date; write it '
                    'YYYY-MM-DD.')
  if day not in dates:
    raise DataError(f'Target date {day} is not among the input dates '
                    f'({", ".join(map(str, dates))}); choose one of them.')
  return dates.index(day)


def _mask_source(masks, scl, cloud_prob):
  given = [(kind, pattern) for kind, pattern in
           zip(cloudmasks.KINDS, (masks, scl, cloud_prob)) if pattern]
  if len(given) != 1:
    raise DataError('Give exactly one cloud mask source: --masks, --scl or '
                    f'--cloud_prob (got {[k for k, _ in given] or "none"}).')
  return given[0]


def _offset(layer, offset, default=None):
  if layer.dtype == np.uint8:
    return 0
  if offset is not None:
    return int(offset)
  try:
    found = radiometry.offset_from_metadata(layer.tags, layer.path)
  except ValueError as e:
    raise DataError(f'{layer.path}: unreadable offset metadata ({e}); set '
                    '--offset (1000 for processing baseline >= 04.00, else '
                    '0).') from None
  if found is None and default is not None:
    return default
  if found is None:
    logging.info('No processing baseline in the metadata of %s: offset 0 '
                 '(set --offset 1000 for baseline >= 04.00 products).',
                 layer.path)
    return 0
  return found


def open_series(inputs, bands=None, band_files=None, masks=None, scl=None,
                cloud_prob=None, cloud_threshold=cloudmasks.DEFAULT_THRESHOLD,
                target=None, offset=None, area=None):
  """Opens a dated series on the grid of its target date.

  Args:
    inputs: glob pattern or list of the image files (one per date, or one
      per band and date with `band_files`).
    bands: three 1-based RGB band indexes of multi-band files, or None for
      DEFAULT_BANDS.
    band_files: None, True (DEFAULT_BAND_FILES) or three band names: read
      one file per band, named like `*_B04_10m.jp2`.
    masks, scl, cloud_prob: glob pattern or list of the mask files; exactly
      one is given (see `rasters.cloudmasks`). Masks are matched to images
      by date.
    cloud_threshold: percent above which `cloud_prob` is cloudy.
    target: the target date (datetime.date or 'YYYY-MM-DD'); None = last.
    offset: the DN offset for every date, or None to read it from each
      file's metadata (0 when it says nothing).
    area: (W, S, E, N) in degrees: crop the target's grid to it
      (`Grid.crop`); None = the whole grid.

  Returns:
    A `Series` (close it, or use it as a context manager).

  Raises:
    DataError: no file, a file without date or two with one date, a date
      without mask, a wrong band count, an unreadable file, a file off the
      target's grid, a target date not among the inputs.
  """
  input_paths = expand(inputs, '--inputs')
  kind, pattern = _mask_source(masks, scl, cloud_prob)
  mask_paths = expand(pattern, f'--{kind}')
  by_date, names = _image_files(inputs, input_paths, band_files, mask_paths,
                                kind)
  mask_by_date = _mask_files(kind, pattern, mask_paths, by_date)
  return open_dated(by_date, kind, mask_by_date, bands=bands,
                    band_names=names, cloud_threshold=cloud_threshold,
                    target=target, offset=offset, area=area)


def open_dated(by_date, kind, mask_by_date, bands=None, band_names=None,
               band_indexes=None,
               cloud_threshold=cloudmasks.DEFAULT_THRESHOLD, target=None,
               offset=None, area=None, default_offsets=None, items=None):
  """Opens a series of files already matched to their dates (see
  `open_series`; `rasters.stac` gives the hrefs of STAC Items).

  Args:
    by_date: {date: image file}, or {date: tuple of band files} with
      `band_names`, in date order. A file is a path GDAL opens (local, or
      /vsicurl/, /vsis3/...).
    kind, mask_by_date: one of cloudmasks.KINDS and {date: mask file}.
    bands: as `open_series`, for multi-band files.
    band_names: the names of the band files (Series.bands), or None.
    band_indexes: {date: tuple of the 1-based band index in each band
      file, None for a one-band file}; None: all one-band files.
    cloud_threshold, target, offset, area: as `open_series`.
    default_offsets: {date: offset} used when a file's metadata says
      nothing (and `offset` is None).
    items: per date, the STAC Item the files come from (Series.items).
  """
  if 'GDAL_CACHEMAX' not in os.environ:
    rasterio.env.set_gdal_config('GDAL_CACHEMAX', BLOCK_CACHE_MB)
  days = list(by_date)
  target_index = _parse_target(target, days)
  first = by_date[days[target_index]]
  with _open(first[0] if band_names else first, 'input') as src:
    grid = Grid.of(src)
  if area:
    grid = grid.crop(area)
  defaults = default_offsets or {}
  opened = []
  try:
    images, mask_layers = _open_layers(by_date, mask_by_date, kind, grid,
                                       bands, band_names, band_indexes or {},
                                       opened)
    return Series(
        dates=days, paths=[by_date[d] for d in days],
        mask_paths=[mask_by_date[d] for d in days], mask_kind=kind,
        target_index=target_index, grid=grid, dtype=_dtype(images),
        offsets=[_offset(layers[0][0], offset, defaults.get(day))
                 for day, layers in zip(days, images)],
        bands=band_names if band_names else images[0][0][1],
        cloud_threshold=cloud_threshold, _images=images, _masks=mask_layers,
        items=items)
  except BaseException:
    for layer in opened:
      layer.close()
    raise


def _image_files(inputs, input_paths, band_files, mask_paths, kind):
  """{date: file (or tuple of band files)} of the `input_paths` (matched by
  `inputs`) that are not mask files (`--inputs 'scenes/*.tif'` beside
  `--scl 'scenes/*_SCL*.tif'`), and the band names (None without
  `band_files`)."""
  masks = set(mask_paths)
  paths = [p for p in input_paths if p not in masks]
  if not paths:
    raise DataError(f'--inputs={inputs!r} matches only the --{kind} files; '
                    'point it at the images.')
  if not band_files:
    return dates_lib.by_date(paths, 'input'), None
  names = DEFAULT_BAND_FILES if band_files is True else tuple(band_files)
  if len(names) != 3:
    raise DataError(f'--band_files needs three band names, got {names}.')
  return _band_file_groups(paths, names), names


def _mask_files(kind, pattern, mask_paths, by_date):
  """{date: mask file} of the `kind` files `mask_paths` (matched by
  `pattern`), with a mask for every date of `by_date`."""
  mask_by_date = dates_lib.by_date(mask_paths, kind)
  for day in by_date:
    if day not in mask_by_date:
      raise DataError(f'No --{kind} file for {day} (input {by_date[day]}) '
                      f'among {pattern!r}; add it (same date in its name).')
  return mask_by_date


def _band_layers(files, indexes, names, on_grid):
  """[(OnGrid, band indexes)] of band files: band `indexes[i]` (None: the
  only band) of `files[i]`, band `names[i]`; a file that follows itself is
  opened once and read for its bands together."""
  layers = []
  for path, index, name in zip(files, indexes, names):
    if not layers or layers[-1][0].path != path:
      layers.append((on_grid(path, Resampling.bilinear, 'input'), ()))
    layer, taken = layers[-1]
    if index is None and layer.count > 1:
      raise DataError(
          f'{path} has {layer.count} bands and is read as the one band '
          f'{name} — say which band it is in the STAC asset\'s band metadata '
          '(bands or eo:bands), or give a one-band file.')
    if index is not None and not 1 <= index <= layer.count:
      raise DataError(f'{path} has {layer.count} band(s), not band {index} '
                      f'({name}) that its band metadata names — fix the '
                      'metadata.')
    layers[-1] = (layer, taken + (index or 1,))
  return layers


def _open_layers(by_date, mask_by_date, kind, grid, bands, band_names,
                 band_indexes, opened):
  """Per date, the image layers [(OnGrid, band indexes)] and the mask
  layer, all on `grid`; each layer is also appended to `opened`."""
  images, mask_layers = [], []

  def on_grid(path, resampling, what):
    opened.append(OnGrid(path, grid, resampling, what))
    return opened[-1]

  for day, files in by_date.items():
    if band_names:
      layers = _band_layers(files, band_indexes.get(day, (None,) * len(
          files)), band_names, on_grid)
    else:
      layer = on_grid(files, Resampling.bilinear, 'input')
      layers = [(layer, _rgb_indexes(layer, bands))]
    images.append(layers)
    mask_layers.append(on_grid(mask_by_date[day], Resampling.nearest, kind))
  return images, mask_layers


def _dtype(images):
  """The one integer value type of the image layers."""
  dtypes = {layer.dtype for layers in images for layer, _ in layers}
  if len(dtypes) > 1:
    raise DataError(f'The inputs mix value types {sorted(map(str, dtypes))}'
                    '; convert them to one (uint16 reflectance or uint8).')
  if not np.issubdtype(next(iter(dtypes)), np.integer):
    raise DataError(f'{images[0][0][0].path} holds {dtypes.pop()} values; '
                    'inputs are integer reflectance numbers (uint16 DN = '
                    'reflectance x 10000, plus the offset) or uint8.')
  return dtypes.pop()
