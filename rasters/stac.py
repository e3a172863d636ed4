"""Dated series from STAC Items: a static catalogue or an API search.

    items = stac.read_items('catalog.json')    # or stac.search(url, ...)
    series = stac.open_series(items, target='2024-07-14')

Each Item is one date (its `datetime`, in UTC) and gives three image
assets, red, green, blue (default `B04,B03,B02` or `red,green,blue`,
whichever the Item has) and an L2A Scene Classification asset (`SCL` or
`scl`). An image asset is a one-band file, or a multi-band file whose band
metadata (`bands`, STAC 1.1, or `eo:bands`) names the band it is given for
(its common_name red, green or blue, or its name); one file under several
keys (`--assets visual,visual,visual`) is read so, band by band. Their hrefs are read by `rasters.reader` exactly like local band
files, window by window on the target date's grid: local paths as they
are, http(s) through GDAL's /vsicurl/, s3:// through /vsis3/ (public
buckets need AWS_NO_SIGN_REQUEST=YES). The DN offset comes from the
files' metadata, else from the Item: 0 when `earthsearch:boa_offset_applied`
is true, else that of `s2:processing_baseline`.

`select` keeps the Items of a static catalogue that an API search with the
same terms (datetime, bbox, cloud cover, collection) would return. Several
Items on one date (neighbouring MGRS tiles, or two orbits) are refused:
`tile` keeps the Items of one MGRS tile.
"""

import datetime
import json
import os
import urllib.parse

from absl import logging
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
# The colours of the three image assets, and their Sentinel-2 band names.
COLOURS = ('red', 'green', 'blue')
S2_BANDS = DEFAULT_ASSETS[0]
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
  interval(dates)
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


def interval(dates):
  """(start, end) UTC datetimes of 'START/END' as an API search reads it
  (a date is the whole day; None for an open end).

  Raises:
    DataError: pystac-client cannot read `dates`.
  """
  try:
    text = item_search.ItemSearch('', datetime=dates).get_parameters()[
        'datetime']
  except Exception as e:  # pylint: disable=broad-except
    # pystac-client raises a bare Exception for an unreadable component.
    raise DataError(f'--datetime={dates}: {e} — write START/END as dates or '
                    'times, e.g. 2024-05-01/2024-07-31 (.. for open).'
                    ) from None
  start, _, end = text.partition('/')
  return tuple(None if t in ('', '..') else _utc(
      datetime.datetime.fromisoformat(t)) for t in (start, end or start))


def _utc(stamp):
  if stamp.tzinfo is None:
    return stamp.replace(tzinfo=datetime.timezone.utc)
  return stamp.astimezone(datetime.timezone.utc)


def _times(item):
  """(first, last) UTC datetimes of an Item."""
  meta = item.common_metadata
  first = item.datetime or meta.start_datetime
  last = item.datetime or meta.end_datetime or first
  if first is None:
    raise DataError(f'Item {item.id} has no datetime — give Items with a '
                    'datetime (the acquisition date).')
  return _utc(first), _utc(last)


def _spans(west, east):
  """The longitude spans of west..east (two across the antimeridian)."""
  return [(west, east)] if west <= east else [(west, 180.), (-180., east)]


def _meets(box, other):
  """Whether two W, S, E, N boxes (W > E across the antimeridian) meet."""
  if box[1] > other[3] or other[1] > box[3]:
    return False
  return any(w1 <= e2 and w2 <= e1 for w1, e1 in _spans(box[0], box[2])
             for w2, e2 in _spans(other[0], other[2]))


def _bbox_of(item):
  """W, S, E, N of an Item's bbox (2D or 3D), or None."""
  if not item.bbox:
    return None
  box = item.bbox
  return (box[0], box[1], box[3], box[4]) if len(box) == 6 else tuple(box)


def _span_text(values, unit=''):
  values = sorted(values)
  if not values:
    return 'none'
  if values[0] == values[-1]:
    return f'{values[0]}{unit}'
  return f'{values[0]}{unit} to {values[-1]}{unit}'


def select(items, dates=None, bbox=None, max_cloud=None, collection=None):
  """The Items an API search with these terms returns (None: no term):
  a datetime in `dates` (START/END), a bbox meeting `bbox` (W, S, E, N in
  degrees; Items without a bbox are kept), `eo:cloud_cover` below
  `max_cloud` (%), of `collection`. Logs what each term left out.

  Raises:
    DataError: a term leaves no Item (saying what the Items have).
  """
  terms = []
  if dates:
    start, end = interval(dates)
    terms.append((
        f'--datetime={dates}',
        lambda i: ((start is None or _times(i)[1] >= start) and
                   (end is None or _times(i)[0] <= end)),
        lambda kept: f'dates {_span_text({item_date(i) for i in kept})}',
        'widen --datetime or drop it'))
  if bbox:
    terms.append((
        f'--bbox={",".join(f"{v:g}" for v in bbox)}',
        lambda i: _bbox_of(i) is None or _meets(_bbox_of(i), bbox),
        lambda kept: 'bboxes ' + '; '.join(sorted({
            ','.join(f'{v:.4f}' for v in _bbox_of(i)) for i in kept})[:3]),
        'give a --bbox over them'))
  if max_cloud is not None:
    cover = lambda i: i.properties.get('eo:cloud_cover')
    terms.append((
        f'--max_cloud={max_cloud:g}',
        lambda i: cover(i) is not None and cover(i) < max_cloud,
        lambda kept: 'eo:cloud_cover ' + _span_text(
            [cover(i) for i in kept if cover(i) is not None], ' %'),
        'raise --max_cloud or drop it'))
  if collection:
    terms.append((
        f'--collection={collection}',
        lambda i: i.collection_id == collection,
        lambda kept: 'collections ' + ', '.join(sorted({
            str(i.collection_id) for i in kept})),
        'name one of them, or drop --collection'))
  for flag, keep, have, todo in terms:
    left = [item for item in items if keep(item)]
    if not left:
      raise DataError(f'No Item of --stac_items is kept by {flag} (the '
                      f'{len(items)} Items have {have(items)}) — {todo}.')
    if len(left) < len(items):
      ids = {item.id for item in left}
      logging.info('%s leaves out %d of %d Items: %s.', flag,
                   len(items) - len(left), len(items),
                   ', '.join(i.id for i in items if i.id not in ids))
    items = left
  return items


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
  return _times(item)[0].date()


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
    kept = [item for item in items if item_tile(item) == wanted]
    if not kept:
      tiles = sorted({item_tile(i) or '?' for i in items})
      raise DataError(f'No Item is of MGRS tile {wanted} (--tile) — choose '
                      f'one of the tiles of the Items: {", ".join(tiles)}.')
    items = kept
  table = {}
  for item in items:
    table.setdefault(item_date(item), []).append(item)
  for day, same in table.items():
    if len(same) > 1:
      names = ', '.join(f'{i.id} (tile {item_tile(i) or "?"})' for i in same)
      raise DataError(f'{len(same)} Items on {day}: {names} — one Item per '
                      f'date is read: {_one_of(same)}.')
  return {day: same[0] for day, same in sorted(table.items())}


def _one_of(same):
  """How to keep one of the Items `same` (on one date): the flags that tell
  them apart, else leaving them out of the Items given."""
  ways = []
  tiles = {item_tile(i) for i in same}
  if None not in tiles and len(tiles) > 1:
    ways.append(f'pass --tile with one of {", ".join(sorted(tiles))}')
  if len({_bbox_of(i) for i in same}) > 1:
    ways.append('give a --bbox that only one of them meets')
  if len({_times(i) for i in same}) > 1:
    ways.append('give --datetime with times that hold only one')
  ways.append('keep one of them in a --stac_items file')
  return ', or '.join(ways)


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


def _band_index(item, key, colour, s2_band):
  """The 1-based index of band `colour` in the asset `key` from its band
  metadata; None without metadata (the file must have one band)."""
  asset = item.assets[key]
  bands = asset.extra_fields.get('bands') or asset.extra_fields.get(
      'eo:bands')
  if not bands:
    return None
  if len(bands) == 1:
    return 1
  found = [i for i, band in enumerate(bands, 1) if colour in (
      band.get('common_name'), band.get('eo:common_name'), band.get('name'))
           or band.get('name') == s2_band]
  if len(found) != 1:
    names = ', '.join(str(b.get('name') or b.get('common_name') or '?')
                      for b in bands)
    raise DataError(f'Item {item.id}: asset {key} has {len(bands)} bands '
                    f'({names}) and {"several are" if found else "none is"} '
                    f'{colour} — name the band by its common_name in the '
                    "asset's band metadata, or pass --assets with a one-band "
                    f'asset for {colour}.')
  return found[0]


def _image_bands(item, keys):
  """(GDAL paths, 1-based band indexes or None) of the image assets `keys`
  (red, green, blue).

  Raises:
    DataError: one file under several keys without band metadata telling
      its bands apart.
  """
  paths = tuple(_href(item, k) for k in keys)
  indexes = tuple(_band_index(item, k, c, b)
                  for k, c, b in zip(keys, COLOURS, S2_BANDS))
  pairs = list(zip(paths, indexes))
  for i, (path, index) in enumerate(pairs):
    same = [keys[j] for j, pair in enumerate(pairs) if pair[0] == path]
    if len(same) > 1 and (index is None or pairs.count(pairs[i]) > 1):
      raise DataError(
          f'Item {item.id}: assets {", ".join(same)} are one file, {path}, '
          "and its band metadata does not say which band each is — list "
          "the file's bands with their common_name (red, green, blue) in "
          'the asset\'s bands or eo:bands, or pass --assets with one-band '
          'assets.')
  return paths, indexes


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
  images, indexes, masks, names = {}, {}, {}, None
  for day, item in dated.items():
    keys = _keys(item, image_choices, '--assets', 'red, green, blue')
    mask_key, = _keys(item, mask_choices, '--mask_asset', 'SCL')
    images[day], indexes[day] = _image_bands(item, keys)
    masks[day] = _href(item, mask_key)
    names = names or keys
  for key, value in REMOTE_CONFIG.items():
    if key not in os.environ:
      rasterio.env.set_gdal_config(key, value)
  return reader.open_dated(
      images, 'scl', masks, band_names=names, band_indexes=indexes,
      target=target, offset=offset, area=area,
      default_offsets={d: item_offset(i) for d, i in dated.items()},
      items=list(dated.values()))
