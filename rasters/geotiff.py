"""Output files of `predict.py`: a COG-friendly GeoTIFF, its fill map and a
PNG quicklook.

The image and the fill map are first written block by block (each internal
256 px tile once) into plain tiled GeoTIFFs in the work directory, then
copied by GDAL's COG driver (deflate, internal tiles, overviews) to their
final names through a temporary file, so a finished name is always a whole
file. The quicklook is decimated from the 8-bit image as blocks go by.
"""

import math
import os

import numpy as np
from PIL import Image
import rasterio
from rasterio import shutil as rio_shutil
from rasterio.windows import Window

BLOCK = 256
QUICKLOOK_SIDE = 1024
# Values of the fill map.
FILL_KEPT, FILL_MODEL, FILL_NO_CLEAR = 0, 1, 2


def paths(out):
  """{'image', 'fill', 'quicklook'} file names of output `out`."""
  stem = os.path.splitext(out)[0]
  return {'image': out, 'fill': stem + '_fill.tif',
          'quicklook': stem + '.png'}


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
  """Writes an image and its fill map on a target grid, window by window."""

  def __init__(self, scratch, grid, count, dtype):
    self.grid = grid
    self.scratch = scratch
    common = dict(driver='GTiff', width=grid.width, height=grid.height,
                  crs=grid.crs, transform=grid.transform, tiled=True,
                  blockxsize=BLOCK, blockysize=BLOCK, compress='deflate')
    self.image = rasterio.open(scratch('image.tif'), 'w', count=count,
                               dtype=dtype, **common)
    self.fill = rasterio.open(scratch('fill.tif'), 'w', count=1,
                              dtype='uint8', **common)
    self.fill.update_tags(1, FILL=f'{FILL_KEPT} = clear target pixel kept, '
                          f'{FILL_MODEL} = filled by the model, '
                          f'{FILL_NO_CLEAR} = filled, no clear date among '
                          'the model inputs')
    self.quicklook = Quicklook(grid.height, grid.width)

  def write(self, window, image, fill, rgb8):
    """Writes (h, w, C) `image` and (h, w) `fill` at window (top, left, h,
    w); `rgb8` is the 8-bit image for the quicklook."""
    top, left, height, width = window
    win = Window(left, top, width, height)
    self.image.write(np.moveaxis(image, -1, 0), window=win)
    self.fill.write(fill[None], window=win)
    self.quicklook.add(window, rgb8)

  def finish(self, out):
    """Closes the scratch files and copies them to their final names."""
    self.image.close()
    self.fill.close()
    names = paths(out)
    for key, resampling in (('image', 'AVERAGE'), ('fill', 'NEAREST')):
      tmp = names[key] + '.tmp'
      rio_shutil.copy(self.scratch(f'{key}.tif'), tmp, driver='COG',
                      COMPRESS='DEFLATE', BLOCKSIZE=str(BLOCK),
                      OVERVIEW_RESAMPLING=resampling)
      os.replace(tmp, names[key])
    tmp = names['quicklook'] + '.tmp'
    Image.fromarray(self.quicklook.image).save(tmp, format='PNG')
    os.replace(tmp, names['quicklook'])
    return names
