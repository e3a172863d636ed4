"""Command-line flags of a dated raster series, shared by `predict.py` and
`python -m tools.prepare`: the inputs (files, or STAC Items from a file or
an API search), their bands, the cloud masks and the reflectance offset
(see `rasters.reader.open_series` and `rasters.stac`)."""

from absl import flags

from rasters import cloudmasks
from rasters import reader
from rasters import stac
from utils.errors import DataError

SOURCES = ('inputs', 'stac_items', 'stac_api')
# Flags of file inputs only; with STAC Items the bands and the mask are
# assets.
FILE_ONLY = ('bands', 'band_files', 'masks', 'scl', 'cloud_prob')


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
  flags.DEFINE_string('stac_items', None, 'STAC ItemCollection, Item or '
                      'static catalogue (JSON), one Item per date, instead '
                      'of --inputs.')
  flags.DEFINE_string('stac_api', None, 'STAC API URL to search (with --bbox '
                      'and --datetime) instead of --inputs.')
  flags.DEFINE_list('bbox', None, 'W,S,E,N (degrees): the area; the target '
                    "date's grid is cropped to its whole pixels (and "
                    '--stac_api searches it).')
  flags.DEFINE_string('datetime', None, 'START/END of the --stac_api search '
                      '(e.g. 2024-05-01/2024-07-31).')
  flags.DEFINE_string('collection', stac.COLLECTION, 'Collection of the '
                      '--stac_api search.')
  flags.DEFINE_float('max_cloud', stac.MAX_CLOUD, 'The --stac_api search '
                     'keeps Items with eo:cloud_cover below this (percent).')
  flags.DEFINE_list('assets', None, 'STAC asset keys of red, green, blue; '
                    'default B04,B03,B02 or red,green,blue.')
  flags.DEFINE_string('mask_asset', None, 'STAC asset key of the L2A scene '
                      'classification; default SCL or scl.')
  flags.DEFINE_string('tile', None, 'Keep the STAC Items of this MGRS tile '
                      '(e.g. 32TQM) when several share a date.')
  flags.DEFINE_string(date_flag, None, date_help)


def open_series(values, date_flag):
  """The Series of the flag values `values` (absl FLAGS): from files
  (`rasters.reader.open_series`) or STAC Items (`rasters.stac`)."""
  given = [name for name in SOURCES if values[name].value]
  if len(given) != 1:
    raise DataError(f'Give exactly one of --inputs, --stac_items, --stac_api '
                    f'(got {", ".join("--" + g for g in given) or "none"}).')
  area = _bbox(values.bbox) if values.bbox else None
  if given[0] == 'inputs':
    return _open_files(values, date_flag, area)
  misplaced = [f'--{name}' for name in FILE_ONLY if values[name].value]
  if misplaced:
    raise DataError(f'{", ".join(misplaced)} apply to --inputs files; with '
                    'STAC Items the bands and the SCL mask are assets: use '
                    '--assets and --mask_asset.')
  if given[0] == 'stac_items':
    items = stac.read_items(values.stac_items)
  else:
    items = stac.search(values.stac_api, _bbox(values.bbox), _datetime(
        values.datetime), values.collection, values.max_cloud)
  return stac.open_series(items, assets=_assets(values.assets),
                          mask_asset=values.mask_asset,
                          target=values[date_flag].value,
                          offset=values.offset, tile=values.tile, area=area)


def _open_files(values, date_flag, area):
  return reader.open_series(
      values.inputs, bands=_bands(values.bands), band_files=values.band_files,
      masks=values.masks, scl=values.scl, cloud_prob=values.cloud_prob,
      cloud_threshold=values.cloud_threshold, target=values[date_flag].value,
      offset=values.offset, area=area)


def _bands(values):
  if values is None:
    return None
  try:
    return [int(v) for v in values]
  except ValueError:
    raise DataError(f'--bands={",".join(values)}: give three 1-based band '
                    'numbers, e.g. 4,3,2.') from None


def _bbox(values):
  if not values:
    raise DataError('--stac_api needs --bbox W,S,E,N in degrees, e.g. '
                    '11.2,46.0,11.4,46.1.')
  try:
    west, south, east, north = (float(v) for v in values)
  except ValueError:
    raise DataError(f'--bbox={",".join(values)}: give W,S,E,N in '
                    'degrees, e.g. 11.2,46.0,11.4,46.1.') from None
  return [west, south, east, north]


def _datetime(value):
  if not value:
    raise DataError('--stac_api needs --datetime START/END, e.g. '
                    '2024-05-01/2024-07-31.')
  return value


def _assets(values):
  if values is not None and len(values) != 3:
    raise DataError(f'--assets={",".join(values)}: give the three asset keys '
                    'of red, green, blue, e.g. red,green,blue.')
  return values
