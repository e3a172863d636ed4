"""Small dated GeoTIFF series for tests (rasters written with rasterio).

    images, masks = write_series(tmp_path, {'2024-07-01': (dn, mask), ...})
    series = rasters.open_series(images, masks=masks)

Images are (3, H, W) uint16 reflectance DN (or uint8) on GRID_TRANSFORM, a
10 m grid in UTM zone 32N; masks (H, W) on the same grid unless given
another transform.
"""

import os

import numpy as np
import rasterio

from rasters import radiometry
from tools import synthetic_geotiff

CRS = synthetic_geotiff.CRS
LEFT, TOP, PIXEL = 600000.0, 5100000.0, 10.0
north_up = synthetic_geotiff.north_up
GRID_TRANSFORM = north_up(LEFT, TOP, PIXEL)


def write(path, values, transform=GRID_TRANSFORM, crs=CRS, **kwargs):
  """Writes (C, H, W) or (H, W) `values` as a GeoTIFF; returns its path."""
  return synthetic_geotiff.write_geotiff(str(path), values, transform, crs,
                                         **kwargs)


def write_jp2(path, values, transform=GRID_TRANSFORM, crs=CRS):
  """Writes (H, W) `values` as a lossless JPEG 2000 (an L2A band file)."""
  values = np.asarray(values)
  with rasterio.open(path, 'w', driver='JP2OpenJPEG', width=values.shape[1],
                     height=values.shape[0], count=1, dtype=values.dtype.name,
                     crs=crs, transform=transform, QUALITY=100,
                     REVERSIBLE='YES') as dst:
    dst.write(values, 1)
  return str(path)


def dn_image(values8, height, width, offset=1000):
  """(3, H, W) uint16 DN whose 8-bit values are `values8[c]` everywhere."""
  values = np.broadcast_to(np.asarray(values8, np.uint8)[:, None, None],
                           (3, height, width))
  return radiometry.from_uint8(values, offset)


def ramp_image(height, width, offset=1000, seed=0):
  """(3, H, W) uint16 DN of random 8-bit values 1..255 (never no data)."""
  rng = np.random.default_rng(seed)
  return radiometry.from_uint8(rng.integers(1, 256, (3, height, width)),
                               offset)


def write_series(root, dates, kind='masks', image_kwargs=None,
                 mask_kwargs=None):
  """Writes `{'YYYY-MM-DD': (image, mask)}` under root/images and root/<kind>.

  Args:
    root: a directory.
    dates: date string -> ((C, H, W) image, (h, w) mask raster values).
    kind: the mask folder name (masks, scl, cloud_prob).
    image_kwargs, mask_kwargs: extra arguments of `write` for every file.

  Returns:
    (image glob pattern, mask glob pattern).
  """
  for date, (image, mask) in dates.items():
    write(os.path.join(root, 'images', f'{date}.tif'), image,
          **(image_kwargs or {}))
    write(os.path.join(root, kind, f'{date}_{kind}.tif'), mask,
          **(mask_kwargs or {}))
  return (os.path.join(str(root), 'images', '*.tif'),
          os.path.join(str(root), kind, '*.tif'))
