"""Output files of `predict.py`: a COG-friendly GeoTIFF, its fill map and a
PNG quicklook; with K draws also their spread and its quicklook.

The image, the fill map and the spread are first written block by block
(each internal 256 px tile once) into plain tiled GeoTIFFs in the work
directory, then copied by GDAL's COG driver (deflate, internal tiles,
overviews) to their final names through a temporary file, so a finished
name is always a whole file. The quicklooks are decimated from the 8-bit
image and from the spread's colours (`spread_colours`) as blocks go by.
An error writing a file (a full disk, a denied permission) is an OSError
naming it (`utils.errors.writing`).
"""

import math
import os

import numpy as np
from PIL import Image
import rasterio
from rasterio import shutil as rio_shutil
from rasterio._err import CPLE_BaseError
from rasterio.windows import Window

from rasters import tiling
from utils import colormaps
from utils.errors import writing

BLOCK = 256
QUICKLOOK_SIDE = 1024
# Values of the fill map.
FILL_KEPT, FILL_MODEL, FILL_NO_CLEAR = 0, 1, 2
# The spread (8-bit values) shown brightest in its quicklook; above it too.
SPREAD_LOOK_MAX = 32
# What GDAL raises when it cannot write a file.
GDAL_ERRORS = (rasterio.errors.RasterioError, CPLE_BaseError)


def window(top, left, height, width):
  """The rasterio Window of the area (top, left, height, width)."""
  return Window(left, top, width, height)


def block_windows(grid):
  """[(block (top, left, h, w), its Window)]: the output blocks of BLOCK px
  of `grid` (a `rasters.reader.Grid`), row-major (`tiling.blocks`)."""
  return [(block, window(*block))
          for block in tiling.blocks(grid.height, grid.width, BLOCK)]


def grown(area, grid, margin):
  """`area` (top, left, h, w) grown by `margin` px on each side, inside
  `grid`, and the area's (rows, cols) slices in it."""
  top, left, height, width = area
  t, l = max(0, top - margin), max(0, left - margin)
  b = min(grid.height, top + height + margin)
  r = min(grid.width, left + width + margin)
  return (t, l, b - t, r - l), (slice(top - t, top - t + height),
                                slice(left - l, left - l + width))


def paths(out, spread=False):
  """{'image', 'fill', 'quicklook'} file names of output `out`, and with
  `spread` {'spread', 'spread_quicklook'}."""
  stem = os.path.splitext(out)[0]
  names = {'image': out, 'fill': stem + '_fill.tif',
           'quicklook': stem + '.png'}
  if spread:
    names.update(spread=stem + '_spread.tif',
                 spread_quicklook=stem + '_spread.png')
  return names


def spread_colours(spread8):
  """(h, w, 3) uint8 inferno colours of a (h, w, C) spread in 8-bit values:
  its mean over the bands, 0 darkest, SPREAD_LOOK_MAX and above brightest."""
  level = np.mean(spread8, axis=-1) * (255 / SPREAD_LOOK_MAX)
  return colormaps.INFERNO[np.clip(np.round(level), 0, 255).astype(np.int64)]


class Quicklook:
  """A (h, w, 3) uint8 image of at most `side` px a side, decimated (every
  `factor`-th pixel) from the windows of a height x width grid as they go
  by."""

  def __init__(self, height, width, side=QUICKLOOK_SIDE):
    self.factor = max(1, math.ceil(max(height, width) / side))
    self.image = np.zeros((math.ceil(height / self.factor),
                           math.ceil(width / self.factor), 3), np.uint8)

  def add(self, window, rgb8):
    """Samples (h, w, 3) uint8 `rgb8` at window (top, left, h, w)."""
    top, left = window[:2]
    f = self.factor
    rows, cols = (-top) % f, (-left) % f
    sample = rgb8[rows::f, cols::f]
    r0, c0 = (top + rows) // f, (left + cols) // f
    self.image[r0:r0 + sample.shape[0], c0:c0 + sample.shape[1]] = sample


class Writer:
  """Writes an image and its fill map on a target grid, window by window;
  with `spread_unit` (the image's units per 8-bit value, e.g.
  `radiometry.step`) also a float32 spread of `count` bands."""

  def __init__(self, scratch, grid, count, dtype, spread_unit=None):
    self.grid = grid
    self.scratch = scratch
    self.spread_unit = spread_unit
    common = dict(driver='GTiff', width=grid.width, height=grid.height,
                  crs=grid.crs, transform=grid.transform, tiled=True,
                  blockxsize=BLOCK, blockysize=BLOCK, compress='deflate')
    self.image = _create(scratch('image.tif'), count=count, dtype=dtype,
                         **common)
    self.fill = _create(scratch('fill.tif'), count=1, dtype='uint8',
                        **common)
    self.fill.update_tags(1, FILL=f'{FILL_KEPT} = clear target pixel kept, '
                          f'{FILL_MODEL} = filled by the model, '
                          f'{FILL_NO_CLEAR} = filled, no clear date among '
                          'the model inputs')
    self.quicklook = Quicklook(grid.height, grid.width)
    self.spread = self.spread_quicklook = None
    if spread_unit is not None:
      self.spread = _create(scratch('spread.tif'), count=count,
                            dtype='float32', **common)
      self.spread_quicklook = Quicklook(grid.height, grid.width)

  def write(self, window, image, fill, rgb8, spread=None):
    """Writes (h, w, C) `image` and (h, w) `fill` at window (top, left, h,
    w); `rgb8` is the 8-bit image for the quicklook. With a spread file,
    (h, w, C) `spread` in the image's units too."""
    top, left, height, width = window
    win = Window(left, top, width, height)
    _write(self.image, np.moveaxis(image, -1, 0), win)
    _write(self.fill, fill[None], win)
    self.quicklook.add(window, rgb8)
    if self.spread is not None:
      _write(self.spread, np.moveaxis(spread, -1, 0).astype(np.float32), win)
      self.spread_quicklook.add(
          window, spread_colours(spread / self.spread_unit))

  def finish(self, out):
    """Closes the scratch files and copies them to their final names."""
    files = [('image', 'AVERAGE', self.image),
             ('fill', 'NEAREST', self.fill)]
    looks = [('quicklook', self.quicklook)]
    if self.spread is not None:
      files.append(('spread', 'AVERAGE', self.spread))
      looks.append(('spread_quicklook', self.spread_quicklook))
    names = paths(out, self.spread is not None)
    for key, resampling, dataset in files:
      with writing(dataset.name, GDAL_ERRORS):
        dataset.close()
      tmp = names[key] + '.tmp'
      with writing(names[key], GDAL_ERRORS):
        rio_shutil.copy(self.scratch(f'{key}.tif'), tmp, driver='COG',
                        COMPRESS='DEFLATE', BLOCKSIZE=str(BLOCK),
                        OVERVIEW_RESAMPLING=resampling)
      os.replace(tmp, names[key])
    for key, look in looks:
      tmp = names[key] + '.tmp'
      with writing(names[key]):
        Image.fromarray(look.image).save(tmp, format='PNG')
      os.replace(tmp, names[key])
    return names


def _create(path, **profile):
  """A GeoTIFF opened for writing."""
  with writing(path, GDAL_ERRORS):
    return rasterio.open(path, 'w', **profile)


def _write(dataset, values, window):
  with writing(dataset.name, GDAL_ERRORS):
    dataset.write(values, window=window)
