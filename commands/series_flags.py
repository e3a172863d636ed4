"""Command-line flags of a dated raster series, shared by `predict.py`,
`python -m tools.prepare` and `python -m tools.selfcheck`: the inputs (files, or STAC Items from a file or
an API search), their bands, the cloud masks and the reflectance offset
(see `rasters.reader.open_series` and `rasters.stac`).

Every value, and which flags go together, is checked as the flags are
parsed (`utils.cli.check_flags`), before any work. The search flags
(--datetime, --bbox, --max_cloud, --collection) filter --stac_items as they
filter a --stac_api search (`stac.select`); with --inputs files they are
refused, but --bbox, which crops the grid of every source.
"""

from absl import flags

from rasters import cloudmasks
from rasters import reader
from rasters import stac
from utils import cli
from utils.errors import DataError

SOURCES = ('inputs', 'stac_items', 'stac_api')
# Flags of file inputs only; with STAC Items the bands and the mask are
# assets.
FILE_ONLY = ('bands', 'band_files', 'masks', 'scl', 'cloud_prob')
# Flags of STAC Items only.
STAC_ONLY = ('datetime', 'max_cloud', 'collection', 'assets', 'mask_asset',
             'tile')
BBOX_EXAMPLE = '11.2,46.0,11.4,46.1'


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
  flags.DEFINE_list('bbox', None, 'W,S,E,N (degrees; W > E for an area '
                    "across the antimeridian): the target date's grid is "
                    'cropped to its whole pixels, and the STAC Items kept '
                    'are those whose bbox meets it.')
  flags.DEFINE_string('datetime', None, 'START/END (e.g. 2024-05-01/'
                      '2024-07-31, .. for open): the STAC Items kept, those '
                      'of --stac_items too; required with --stac_api.')
  flags.DEFINE_string('collection', None, 'Collection of the STAC Items '
                      f'kept; default {stac.COLLECTION} with --stac_api, any '
                      'with --stac_items.')
  flags.DEFINE_float('max_cloud', None, 'Keep the STAC Items with '
                     f'eo:cloud_cover below this (percent); default '
                     f'{stac.MAX_CLOUD:g} with --stac_api, none with '
                     '--stac_items.')
  flags.DEFINE_list('assets', None, 'STAC asset keys of red, green, blue; '
                    'default B04,B03,B02 or red,green,blue.')
  flags.DEFINE_string('mask_asset', None, 'STAC asset key of the L2A scene '
                      'classification; default SCL or scl.')
  flags.DEFINE_string('tile', None, 'Keep the STAC Items of this MGRS tile '
                      '(e.g. 32TQM) when several share a date.')
  flags.DEFINE_string(date_flag, None, date_help)
  cli.check_range('cloud_threshold', 0, 100, 'a percentage')
  cli.check_range('max_cloud', 0, 100, 'a percentage')
  cli.check_range('offset', 0, None, 'a DN offset')
  cli.check_flags(['bbox'], lambda v: v and bbox(v))
  cli.check_flags(['bands'], _bands)
  cli.check_flags(['assets'], _assets)
  cli.check_flags(['datetime'], lambda v: v and stac.interval(v))
  names = SOURCES + FILE_ONLY + STAC_ONLY + ('bbox',)
  cli.check_flags(names, lambda *v: _check_sources(dict(zip(names, v))))


def _given(values, names):
  return [f'--{name}' for name in names if values[name]]


def _are(names):
  return f'{", ".join(names)} {"is" if len(names) == 1 else "are"}'


def _check_sources(values):
  """DataError unless one source is given, with only flags that apply."""
  given = _given(values, SOURCES)
  if len(given) != 1:
    raise DataError(f'{", ".join(given) or "No input"}: give exactly one of '
                    '--inputs, --stac_items, --stac_api — the files, a STAC '
                    'file or a STAC API.')
  if values['inputs']:
    misplaced = _given(values, STAC_ONLY)
    if misplaced:
      raise DataError(f'{_are(misplaced)} for STAC Items, not --inputs '
                      f'files — drop {"it" if len(misplaced) == 1 else "them"}'
                      ' (narrow the --inputs pattern to choose dates).')
    return
  misplaced = _given(values, FILE_ONLY)
  if misplaced:
    raise DataError(f'{_are(misplaced)} for --inputs files — with STAC '
                    'Items the bands and the SCL mask are assets: use '
                    '--assets and --mask_asset.')
  if values['stac_api'] and not (values['bbox'] and values['datetime']):
    raise DataError('--stac_api needs --bbox W,S,E,N and --datetime '
                    f'START/END — e.g. --bbox={BBOX_EXAMPLE} '
                    '--datetime=2024-05-01/2024-07-31.')


def open_series(values, date_flag):
  """The Series of the flag values `values` (absl FLAGS, checked by the
  validators of `define`): from files (`rasters.reader.open_series`) or STAC
  Items (`rasters.stac`)."""
  area = bbox(values.bbox) if values.bbox else None
  if values.inputs:
    return _open_files(values, date_flag, area)
  if values.stac_items:
    items = stac.select(stac.read_items(values.stac_items), values.datetime,
                        area, values.max_cloud, values.collection)
  else:
    items = stac.search(values.stac_api, area, values.datetime,
                        values.collection or stac.COLLECTION,
                        stac.MAX_CLOUD if values.max_cloud is None
                        else values.max_cloud)
  return stac.open_series(items, assets=values.assets,
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
    numbers = [int(v) for v in values]
  except ValueError:
    numbers = []
  if len(numbers) != 3 or min(numbers) < 1:
    raise DataError(f'--bands={",".join(values)}: give three 1-based band '
                    'numbers — e.g. 4,3,2.')
  return numbers


def bbox(values):
  """[W, S, E, N] of the --bbox values, in degrees; W > E is an area across
  the antimeridian (at most 180 degrees wide).

  Raises:
    DataError: not four finite numbers, a latitude or longitude out of
      range, S >= N, W == E, or W > E for an area wider than 180 degrees (a
      swapped W,E).
  """
  text = f'--bbox={",".join(values)}'
  try:
    west, south, east, north = (float(v) for v in values)
  except ValueError:
    raise DataError(f'{text}: give W,S,E,N in degrees — e.g. '
                    f'{BBOX_EXAMPLE}.') from None
  if not all(-180 <= v <= 180 for v in (west, east)):
    raise DataError(f'{text}: longitudes W and E are from -180 to 180 — '
                    'give W,S,E,N in degrees.')
  if not all(-90 <= v <= 90 for v in (south, north)):
    raise DataError(f'{text}: latitudes S and N are from -90 to 90 — give '
                    'W,S,E,N in degrees (longitude first).')
  if south >= north:
    raise DataError(f'{text}: south {south:g} is not below north {north:g} '
                    '— give W,S,E,N (south first).')
  if west == east:
    raise DataError(f'{text}: west = east, an area of no width — give '
                    'W,S,E,N with W < E.')
  if west > east and east + 360 - west > 180:
    raise DataError(f'{text}: west {west:g} > east {east:g} is an area '
                    f'across the antimeridian {east + 360 - west:g} degrees '
                    'wide — give W < E (W > E only for an area across '
                    '180 degrees).')
  return [west, south, east, north]


def _assets(values):
  if values is not None and len(values) != 3:
    raise DataError(f'--assets={",".join(values)}: give the three asset keys '
                    'of red, green, blue — e.g. red,green,blue.')
