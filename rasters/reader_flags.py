"""Command-line flags of a dated raster series, shared by `predict.py` and
`python -m tools.prepare`: the inputs, their bands, the cloud masks and
the reflectance offset (see `rasters.reader.open_series`)."""

from absl import flags

from rasters import cloudmasks
from rasters import reader
from utils.errors import DataError


def define(date_flag, date_help):
  """Defines the series flags, and `--<date_flag>` naming the target date."""
  flags.DEFINE_multi_string('inputs', None, 'Glob pattern(s) of the dated '
                            'image files, one per date (quote them).')
  flags.DEFINE_list('bands', None, 'RGB band numbers (1-based) of multi-band '
                    'inputs; default 4,3,2 for a 12/13-band Sentinel-2 '
                    'stack, 1,2,3 for 3 bands.')
  flags.DEFINE_bool('band_files', False, 'Inputs are L2A band files, one per '
                    'band (*_B04_10m.jp2, *_B03_10m.jp2, *_B02_10m.jp2).')
  flags.DEFINE_string('masks', None, 'Glob of cloud masks, one per date, '
                      '0 = clear.')
  flags.DEFINE_string('scl', None, 'Glob of L2A Scene Classification '
                      'rasters (3, 8, 9, 10 cloudy; 0 missing).')
  flags.DEFINE_string('cloud_prob', None, 'Glob of cloud probability rasters '
                      '(percent).')
  flags.DEFINE_float('cloud_threshold', cloudmasks.DEFAULT_THRESHOLD,
                     'Cloud probability (percent) above which a --cloud_prob '
                     'pixel is cloudy.')
  flags.DEFINE_integer('offset', None, 'DN offset of zero reflectance (1000 '
                       'for processing baseline >= 04.00); default: from '
                       "each file's metadata, else 0.")
  flags.DEFINE_string(date_flag, None, date_help)


def open_series(values, date_flag):
  """`rasters.open_series` of the flag values `values` (absl FLAGS)."""
  return reader.open_series(
      values.inputs, bands=_bands(values.bands), band_files=values.band_files,
      masks=values.masks, scl=values.scl, cloud_prob=values.cloud_prob,
      cloud_threshold=values.cloud_threshold, target=values[date_flag].value,
      offset=values.offset)


def _bands(values):
  if values is None:
    return None
  try:
    return [int(v) for v in values]
  except ValueError:
    raise DataError(f'--bands={",".join(values)}: give three 1-based band '
                    'numbers, e.g. 4,3,2.') from None
