"""Which pixels of a date are cloudy, from one of three kinds of mask raster.

  masks       one band, 0 = clear, anything else = cloudy.
  scl         the L2A Scene Classification band: cloud shadow (3), cloud
              medium / high probability (8, 9) and thin cirrus (10) are
              cloudy; no data (0) is missing.
  cloud_prob  an s2cloudless-style cloud probability in percent (0..100):
              cloudy above `threshold`.

In every kind the raster's own nodata value is missing, and missing pixels
count as cloudy. Mask rasters are brought to the image grid with nearest
resampling (`rasters.reader`).
"""

import numpy as np

KINDS = ('masks', 'scl', 'cloud_prob')
SCL_CLOUDY = (3, 8, 9, 10)
SCL_NO_DATA = 0
DEFAULT_THRESHOLD = 40


def classify(kind, values, nodata=None, threshold=DEFAULT_THRESHOLD):
  """(cloudy, missing) bool arrays of a mask raster's values.

  Args:
    kind: one of KINDS.
    values: (h, w) values of the mask raster on the image grid.
    nodata: the raster's nodata value or None.
    threshold: cloud probability (percent) above which `cloud_prob` is cloudy.

  Returns:
    cloudy (missing included) and missing, both (h, w) bool.
  """
  values = np.asarray(values)
  missing = (np.zeros(values.shape, bool) if nodata is None
             else values == nodata)
  if kind == 'masks':
    cloudy = values != 0
  elif kind == 'scl':
    cloudy = np.isin(values, SCL_CLOUDY)
    missing |= values == SCL_NO_DATA
  elif kind == 'cloud_prob':
    cloudy = values > threshold
  else:
    raise ValueError(f'mask kind must be one of {KINDS}, got {kind!r}.')
  return cloudy | missing, missing


def image_missing(values, nodata=None):
  """(h, w) bool: pixels of (C, h, w) image values that hold no data.

  A pixel is missing when all its bands are 0 or the image's nodata value.
  """
  values = np.asarray(values)
  empty = values == 0
  if nodata is not None:
    empty |= values == nodata
  return empty.all(axis=0)
