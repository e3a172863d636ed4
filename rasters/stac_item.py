"""The STAC Item of a `predict.py` output: `<stem>.stac.json` beside it.

A STAC 1.1 Item (made with pystac) with the output's footprint (geometry
and bbox in WGS84), the projection extension (`proj:code` EPSG, or
`proj:wkt2`, `proj:transform`, `proj:shape`), the target date's datetime,
one asset per output file (relative hrefs) and the provenance in
`cloudtran:*` properties: per input date its files (or STAC Item), date and
DN offset, the target's offset, the models (checkpoints, configs) and the
record a rerun is compared with (`cloudtran:record`, `jobs.records`).
"""

import datetime
import json
import os

import pystac
from pystac.extensions.projection import ProjectionExtension
from rasterio import warp

from rasters import geotiff
from utils import errors

# The Item property holding the record of what made the output.
RECORD = 'cloudtran:record'
COG = 'image/tiff; application=geotiff; profile=cloud-optimized'
# Asset fields of each output file (the keys of `rasters.geotiff.paths`);
# a file geotiff adds (such as a spread band) gets its entry here.
ASSETS = {
    'image': dict(media_type=COG, roles=['data'],
                  title='Cloud-free image of the target date'),
    'fill': dict(media_type=COG, roles=['data'],
                 title='Fill map: 0 clear target pixel kept, 1 filled by the '
                 'model, 2 filled with no clear date among the model inputs'),
    'quicklook': dict(media_type=pystac.MediaType.PNG, roles=['overview'],
                      title='Quicklook'),
    'spread': dict(media_type=COG, roles=['data'],
                   title='Spread of the draws: per band, the standard '
                   'deviation of the K draws of the fill in the image\'s '
                   'units, 0 where the target is kept'),
    'spread_quicklook': dict(media_type=pystac.MediaType.PNG,
                             roles=['overview'], title='Quicklook of the '
                             'spread (inferno, brightest from '
                             f'{geotiff.SPREAD_LOOK_MAX} 8-bit values)'),
}


def read_record(item_path):
  """The `cloudtran:record` of the Item at `item_path`, or None (no Item,
  an unreadable one, or one without a record)."""
  try:
    with open(item_path) as f:
      return json.load(f)['properties'][RECORD]
  except (OSError, ValueError, KeyError, TypeError):
    return None


def path(out):
  """The Item's file name for output GeoTIFF `out`."""
  return os.path.splitext(out)[0] + '.stac.json'


def _footprint(grid):
  """(geometry, bbox) in WGS84 of the grid, or (None, None) without CRS."""
  if grid.crs is None:
    return None, None
  left, bottom, right, top = grid.bounds()
  ring = [(left, bottom), (right, bottom), (right, top), (left, top),
          (left, bottom)]
  geometry = warp.transform_geom(grid.crs, 'EPSG:4326',
                                 {'type': 'Polygon', 'coordinates': [ring]})
  bbox = warp.transform_bounds(grid.crs, 'EPSG:4326', left, bottom, right,
                               top, densify_pts=21)
  return geometry, list(bbox)


def _datetime(series):
  """The target Item's datetime, else midnight UTC of the target date."""
  item = series.items[series.target_index] if series.items else None
  if item is not None and item.datetime is not None:
    return item.datetime
  return datetime.datetime.combine(series.target, datetime.time(),
                                   datetime.timezone.utc)


def _inputs(series):
  """Per input date: date, files, mask, offset and its STAC Item."""
  rows = []
  for t, day in enumerate(series.dates):
    files = series.paths[t]
    row = {'date': str(day),
           'files': list(files) if isinstance(files, tuple) else [files],
           'mask': series.mask_paths[t], 'offset': int(series.offsets[t])}
    if series.items:
      item = series.items[t]
      row['item'] = {'id': item.id, 'collection': item.collection_id,
                     'href': item.get_self_href()}
    rows.append(row)
  return rows


def make(names, series, models=None):
  """The pystac.Item of output files `names` ({key: path}) of `series`."""
  grid = series.grid
  geometry, bbox = _footprint(grid)
  item = pystac.Item(
      id=os.path.splitext(os.path.basename(names['image']))[0],
      geometry=geometry, bbox=bbox, datetime=_datetime(series),
      properties={
          'cloudtran:target': str(series.target),
          'cloudtran:offset': int(series.offsets[series.target_index]),
          'cloudtran:mask_kind': series.mask_kind,
          'cloudtran:bands': [str(b) for b in series.bands],
          'cloudtran:inputs': _inputs(series),
          'cloudtran:models': models,
      })
  proj = ProjectionExtension.ext(item, add_if_missing=True)
  epsg = grid.crs.to_epsg() if grid.crs else None
  if epsg:
    proj.epsg = epsg
  elif grid.crs:
    proj.wkt2 = grid.crs.to_wkt()
  proj.transform = list(grid.transform)[:6]
  proj.shape = [grid.height, grid.width]
  for key, file in names.items():
    item.add_asset(key, pystac.Asset(href='./' + os.path.basename(file),
                                     **ASSETS[key]))
  return item


def write(out, names, series, models=None, record=None):
  """Writes the Item of output `out` beside it (whole or not at all), with
  the `record` of what made it (`jobs.records`) in `cloudtran:record`;
  returns its path."""
  target = path(out)
  item = make(names, series, models)
  if record is not None:
    item.properties[RECORD] = record
  with errors.writing(target), open(target + '.tmp', 'w') as f:
    json.dump(item.to_dict(include_self_link=False, transform_hrefs=False),
              f, indent=1)
  os.replace(target + '.tmp', target)
  return target
