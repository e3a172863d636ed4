"""Dated series from STAC Items: a static catalogue or an API search.

    items = stac.read_items('catalog.json')    # or stac.search(url, ...)
    series = stac.open_series(items, target='2024-07-14')

Each Item is one date (its `datetime`, in UTC) and gives three one-band
image assets, red, green, blue (default `B04,B03,B02` or `red,green,blue`,
whichever the Item has) and an L2A Scene Classification asset (`SCL` or
`scl`). Their hrefs are read by `rasters.reader` exactly like local band
files, window by window on the target date's grid: local paths as they
are, http(s) through GDAL's /vsicurl/, s3:// through /vsis3/ (public
buckets need AWS_NO_SIGN_REQUEST=YES). The DN offset comes from the
files' metadata, else from the Item: 0 when `earthsearch:boa_offset_applied`
is true, else that of `s2:processing_baseline`.

Several Items on one date (neighbouring MGRS tiles, or two orbits) are
refused: `tile` keeps the Items of one MGRS tile, and a narrower bbox or
datetime the others.
"""

import datetime
import json
import os
import urllib.parse

import pystac
import pystac_client
from pystac_client import exceptions as client_exceptions
from pystac_client import item_search
from pystac_client import warnings as client_warnings
import rasterio

from rasters import radiometry
from rasters import reader
from utils.errors import DataError

# Asset keys of red, green, blue tried in turn (Planetary Computer and CDSE
# name them by band, Earth Search by colour), and of the SCL mask.
DEFAULT_ASSETS = (('B04', 'B03', 'B02'), ('red', 'green', 'blue'))
DEFAULT_MASK_ASSETS = ('SCL', 'scl')
COLLECTION = 'sentinel-2-l2a'
MAX_CLOUD = 80.0
# GDAL settings for remote hrefs (unless set in the environment): do not
# list the remote directory of each file when opening it.
REMOTE_CONFIG = {'GDAL_DISABLE_READDIR_ON_OPEN': 'EMPTY_DIR'}


def read_items(path):
  """The Items of a JSON file: an ItemCollection, an Item, or a static
  catalogue or collection (all its Items, recursively)."""
  try:
    with open(path) as f:
      kind = json.load(f).get('type')
    if kind == 'FeatureCollection':
      items = list(pystac.ItemCollection.from_file(path))
    elif kind == 'Feature':
      items = [pystac.Item.from_file(path)]
    else:
      items = list(pystac.read_file(path).get_items(recursive=True))
  except (OSError, ValueError, AttributeError, pystac.STACError,
          pystac.STACTypeError) as e:
    raise DataError(f'--stac_items={path}: not a readable STAC file ({e}) — '
                    'give an ItemCollection, an Item or a catalogue (JSON).'
                    ) from None
  if not items:
    raise DataError(f'--stac_items={path} holds no Item — give a catalogue '
                    'or ItemCollection with one Item per date.')
  base = os.path.dirname(os.path.abspath(path))
  for item in items:
    for asset in item.assets.values():
      if item.get_self_href() is None and not _is_absolute(asset.href):
        asset.href = os.path.join(base, asset.href)
  return items


def search(url, bbox, dates, collection=COLLECTION, max_cloud=MAX_CLOUD):
  """The Items a STAC API returns for `collection` over `bbox` (W, S, E, N
  in degrees) in `dates` ('START/END'), less cloudy than `max_cloud` %."""
  _check_dates(dates)
  what = (f'{collection} over bbox {",".join(map(str, bbox))}, {dates}, '
          f'cloud < {max_cloud:g} %')
  try:
    client = pystac_client.Client.open(url)
    items = list(client.search(
        collections=[collection], bbox=bbox, datetime=dates,
        query={'eo:cloud_cover': {'lt': max_cloud}}).items())
  except (client_exceptions.APIError, client_warnings.PystacClientWarning,
          pystac.STACError, pystac.STACTypeError) as e:
    raise DataError(f'The STAC API {url} did not answer the search of {what} '
                    f'({_short(e)}) — check --stac_api and the network, or '
                    'save the Items to a file and pass --stac_items.'
                    ) from None
  if not items:
    raise DataError(f'The STAC API {url} has no Item of {what} — widen '
                    '--bbox or --datetime, raise --max_cloud, or check '
                    '--collection.')
  return items


def _check_dates(dates):
  """DataError unless pystac-client parses `dates` (START/END)."""
  try:
    item_search.ItemSearch('', datetime=dates)
  except Exception as e:  # pylint: disable=broad-except
    # pystac-client raises a bare Exception for an unreadable component.
    raise DataError(f'--datetime={dates}: {e} — write START/END as dates or '
                    'times, e.g. 2024-05-01/2024-07-31 (.. for open).'
                    ) from None


def _short(error, limit=300):
  text = ' '.join(str(error).split())
  return text if len(text) <= limit else text[:limit] + '...'


def _is_absolute(href):
  return bool(urllib.parse.urlparse(href).scheme) or os.path.isabs(href)


def gdal_path(href):
  """The path GDAL opens for an asset href."""
  scheme = urllib.parse.urlparse(href).scheme
  if scheme in ('http', 'https'):
    return '/vsicurl/' + href
  if scheme == 's3':
    return '/vsis3/' + href[len('s3://'):]
  if scheme == 'file':
    return urllib.parse.unquote(urllib.parse.urlparse(href).path)
  return href


def item_date(item):
  """The UTC date of an Item's datetime (or start_datetime)."""
  stamp = item.datetime or item.common_metadata.start_datetime
  if stamp is None:
    raise DataError(f'Item {item.id} has no datetime — give Items with a '
                    'datetime (the acquisition date).')
  if stamp.tzinfo is not None:
    stamp = stamp.astimezone(datetime.timezone.utc)
  return stamp.date()


def item_tile(item):
  """The MGRS tile of an Item ('32TQM') from `s2:mgrs_tile` or the mgrs
  extension, or None."""
  props = item.properties
  if 's2:mgrs_tile' in props:
    return str(props['s2:mgrs_tile']).removeprefix('T')
  parts = [props.get(f'mgrs:{k}')
           for k in ('utm_zone', 'latitude_band', 'grid_square')]
  if all(p is not None for p in parts):
    return f'{int(parts[0]):02d}{parts[1]}{parts[2]}'
  return None


def item_offset(item):
  """The DN offset an Item's properties give, or None."""
  props = item.properties
  if props.get('earthsearch:boa_offset_applied') is True:
    return 0
  baseline = props.get('s2:processing_baseline')
  if baseline is None:
    return None
  major, _, minor = str(baseline).partition('.')
  try:
    return radiometry.baseline_offset(int(major), int(minor or 0))
  except ValueError:
    raise DataError(f'Item {item.id}: s2:processing_baseline={baseline!r} is '
                    'not a version like 05.10 — set --offset.') from None


def by_date(items, tile=None):
  """{date: Item}, one Item per date, in date order.

  Raises:
    DataError: no Item of `tile`, or several Items on one date (naming them).
  """
  if tile:
    wanted = tile.removeprefix('T')
    items = [item for item in items if item_tile(item) == wanted]
    if not items:
      raise DataError(f'No Item is of MGRS tile {wanted} (--tile) — choose '
                      'one of the tiles the Items cover.')
  table = {}
  for item in items:
    table.setdefault(item_date(item), []).append(item)
  for day, same in table.items():
    if len(same) > 1:
      names = ', '.join(f'{i.id} (tile {item_tile(i) or "?"})' for i in same)
      raise DataError(
          f'{len(same)} Items on {day}: {names} — one Item per date is read: '
          'pass --tile with one MGRS tile, or narrow --bbox/--datetime or '
          'the catalogue to one tile and orbit.')
  return {day: same[0] for day, same in sorted(table.items())}


def _keys(item, choices, flag, what):
  """The first tuple of asset keys in `choices` that the Item has."""
  for keys in choices:
    if all(k in item.assets for k in keys):
      return keys
  wanted = ' or '.join(','.join(keys) for keys in choices)
  raise DataError(f'Item {item.id} has no {what} asset {wanted} (its assets: '
                  f'{", ".join(sorted(item.assets))}) — pass {flag} with its '
                  'keys, or remove the Item.')


def _href(item, key):
  asset = item.assets[key]
  return gdal_path(asset.get_absolute_href() or asset.href)


def open_series(items, assets=None, mask_asset=None, target=None,
                offset=None, tile=None, area=None):
  """A `rasters.reader.Series` of STAC Items (see the module doc).

  Args:
    items: pystac Items, one per date (after `tile`).
    assets: the three asset keys of red, green, blue, or None for
      DEFAULT_ASSETS.
    mask_asset: the SCL asset key, or None for DEFAULT_MASK_ASSETS.
    target, offset, area: as `rasters.reader.open_series`.
    tile: keep only the Items of this MGRS tile.
  """
  dated = by_date(items, tile)
  image_choices = (tuple(assets),) if assets else DEFAULT_ASSETS
  mask_choices = ((mask_asset,),) if mask_asset else tuple(
      (k,) for k in DEFAULT_MASK_ASSETS)
  images, masks, names = {}, {}, None
  for day, item in dated.items():
    keys = _keys(item, image_choices, '--assets', 'red, green, blue')
    mask_key, = _keys(item, mask_choices, '--mask_asset', 'SCL')
    images[day] = tuple(_href(item, k) for k in keys)
    masks[day] = _href(item, mask_key)
    names = names or keys
  for key, value in REMOTE_CONFIG.items():
    if key not in os.environ:
      rasterio.env.set_gdal_config(key, value)
  return reader.open_dated(
      images, 'scl', masks, band_names=names, target=target, offset=offset,
      area=area,
      default_offsets={d: item_offset(i) for d, i in dated.items()},
      items=list(dated.values()))
