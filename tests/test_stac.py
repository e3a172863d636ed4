"""STAC input (rasters.stac, the --stac_* flags) and the output's STAC Item.

Offline: the Items point at GeoTIFFs written here, in a static catalogue on
disk or served with a STAC API search by an HTTP server on 127.0.0.1 that
this module starts (with byte ranges, as GDAL's /vsicurl/ reads them).
"""

import datetime
import hashlib
import http.server
import json
import logging
import os
import re
import subprocess
import sys
import threading

import numpy as np
from PIL import Image
import pystac
from pystac.extensions.projection import ProjectionExtension
import pytest
import rasterio
from rasterio import warp

from bench import predict as bench_predict
from jobs import predict
from rasters import geotiff
from rasters import reader
from rasters import stac
from rasters import stac_item
from tools import prepare
from tools import synthetic_geotiff
from utils.errors import DataError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TILE, OVERLAP, TIMELINE = 32, 8, 4
BANDS = ('B04', 'B03', 'B02')
COLOURS = ('red', 'green', 'blue')
TILE_ID = '32TQM'
# The Items say baseline 05.10 (offset 1000); the band files carry no tag.
OFFSET = 1000
PREPARE = prepare.Options(patch=16, stride=16, test_fraction=0, seed=0,
                          block=1, timeline=3, resolution=16)


@pytest.fixture(scope='module')
def scene(tmp_path_factory):
  """4 dates, 48x40 px: one untagged GeoTIFF per band and date
  (bands/<date>_B04.tif ...) and the SCL at 20 m (scl/)."""
  root = str(tmp_path_factory.mktemp('scene'))
  synthetic_geotiff.write_scene(root, width=48, height=40, dates=4, seed=3)
  for name in sorted(os.listdir(os.path.join(root, 'images'))):
    with rasterio.open(os.path.join(root, 'images', name)) as src:
      values, transform = src.read(), src.transform
    for band, plane in zip(BANDS, values):
      synthetic_geotiff.write_geotiff(
          os.path.join(root, 'bands', f'{name[:10]}_{band}.tif'), plane,
          transform, nodata=0)
  return root


def dates_of(root):
  return sorted(name[:10] for name in os.listdir(os.path.join(root, 'scl')))


def footprint(root):
  """(geometry, bbox) in WGS84 of the scene's first image."""
  with rasterio.open(os.path.join(root, 'images', dates_of(root)[0] + '.tif')
                     ) as src:
    bounds, crs = src.bounds, src.crs
  bbox = list(warp.transform_bounds(crs, 'EPSG:4326', *bounds))
  west, south, east, north = bbox
  ring = [[west, south], [east, south], [east, north], [west, north],
          [west, south]]
  return {'type': 'Polygon', 'coordinates': [ring]}, bbox


def make_items(root, href, keys=BANDS + ('SCL',), tile=TILE_ID):
  """One Item per date, its assets at href(relative path) under `keys`."""
  geometry, bbox = footprint(root)
  items = []
  for day in dates_of(root):
    stamp = datetime.datetime.fromisoformat(day + 'T10:30:31+00:00')
    item = pystac.Item(
        f'S2B_{tile}_{day.replace("-", "")}_0_L2A', geometry, bbox, stamp,
        {'s2:processing_baseline': '05.10', 's2:mgrs_tile': tile,
         'eo:cloud_cover': 20.0}, collection='sentinel-2-l2a')
    files = [f'bands/{day}_{band}.tif' for band in BANDS]
    files.append(f'scl/{day}_SCL_20m.tif')
    for key, file in zip(keys, files):
      item.add_asset(key, pystac.Asset(href(file), media_type=stac_item.COG))
    items.append(item)
  return items


def write_catalogue(root, items, name='catalog'):
  """A self-contained static catalogue of `items` (relative asset hrefs)."""
  catalog = pystac.Catalog(name, 'Test scenes')
  catalog.add_items(items)
  catalog.normalize_hrefs(os.path.join(root, name))
  catalog.make_all_asset_hrefs_relative()
  catalog.save(pystac.CatalogType.SELF_CONTAINED)
  return os.path.join(root, name, 'catalog.json')


@pytest.fixture(scope='module')
def catalogue(scene):
  return write_catalogue(scene, make_items(
      scene, lambda f: os.path.join(scene, f)))


class StacServer(http.server.ThreadingHTTPServer):
  """A STAC API (landing page, POST /search) and the files of `root` under
  /files/, with byte ranges; `searches` records the search bodies."""

  def __init__(self, root):
    super().__init__(('127.0.0.1', 0), StacHandler)
    self.root = root
    self.url = f'http://127.0.0.1:{self.server_port}'
    self.items = []
    self.searches = []
    self.ranges = 0


class StacHandler(http.server.BaseHTTPRequestHandler):

  def log_message(self, *args):
    del args

  def _send(self, status, body, content_type, headers=()):
    self.send_response(status)
    self.send_header('Content-Type', content_type)
    self.send_header('Content-Length', str(len(body)))
    for key, value in headers:
      self.send_header(key, value)
    self.end_headers()
    if self.command != 'HEAD':
      self.wfile.write(body)

  def _json(self, value):
    self._send(200, json.dumps(value).encode(), 'application/json')

  def do_GET(self):  # pylint: disable=invalid-name
    url = self.server.url
    if self.path == '/':
      self._json({
          'type': 'Catalog', 'id': 'test-api', 'stac_version': '1.0.0',
          'description': 'Test STAC API',
          'conformsTo': ['https://api.stacspec.org/v1.0.0/core',
                         'https://api.stacspec.org/v1.0.0/item-search',
                         'https://api.stacspec.org/v1.0.0/item-search#query'],
          'links': [{'rel': 'self', 'href': url + '/'},
                    {'rel': 'root', 'href': url + '/'},
                    {'rel': 'search', 'href': url + '/search',
                     'method': 'POST', 'type': 'application/geo+json'}]})
    elif self.path.startswith('/files/'):
      self._file(os.path.join(self.server.root, self.path[len('/files/'):]))
    else:
      self._send(404, b'{}', 'application/json')

  do_HEAD = do_GET  # pylint: disable=invalid-name

  def do_POST(self):  # pylint: disable=invalid-name
    body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
    self.server.searches.append(body)
    found = [i for i in self.server.items
             if i['collection'] in body.get('collections', [])]
    self._send(200, json.dumps({'type': 'FeatureCollection',
                                'features': found, 'links': []}).encode(),
               'application/geo+json')

  def _file(self, path):
    if not os.path.isfile(path):
      self._send(404, b'', 'text/plain')
      return
    with open(path, 'rb') as f:
      data = f.read()
    ranges = self.headers.get('Range')
    if not ranges:
      self._send(200, data, 'image/tiff', [('Accept-Ranges', 'bytes')])
      return
    self.server.ranges += 1
    first, _, last = ranges.removeprefix('bytes=').partition('-')
    first, last = int(first), min(int(last or len(data) - 1), len(data) - 1)
    self._send(206, data[first:last + 1], 'image/tiff', [
        ('Accept-Ranges', 'bytes'),
        ('Content-Range', f'bytes {first}-{last}/{len(data)}')])


@pytest.fixture(scope='module')
def server(scene):
  """The STAC API on 127.0.0.1 serving the scene's Items, asset keys red,
  green, blue, scl, hrefs http://127.0.0.1:PORT/files/..."""
  httpd = StacServer(scene)
  thread = threading.Thread(target=httpd.serve_forever, daemon=True)
  thread.start()
  httpd.items = [item.to_dict() for item in make_items(
      scene, lambda f: f'{httpd.url}/files/{f}', COLOURS + ('scl',))]
  yield httpd
  httpd.shutdown()
  httpd.server_close()


def echo_target(rgb, clear):
  """A position-dependent stand-in predictor: the target date, mirrored."""
  del clear
  return rgb[:, -1, :, ::-1].copy()


def options():
  return predict.Options(tile_size=TILE, timeline=TIMELINE, overlap=OVERLAP)


def open_files(root):
  """The scene through --inputs bands/*.tif --band_files --scl --offset."""
  return reader.open_series(os.path.join(root, 'bands', '*.tif'),
                            band_files=True,
                            scl=os.path.join(root, 'scl', '*.tif'),
                            offset=OFFSET)


def digest(path):
  with open(path, 'rb') as f:
    return hashlib.sha256(f.read()).hexdigest()


def digests(names):
  return {key: digest(names[key]) for key in ('image', 'fill', 'quicklook')}


@pytest.fixture(scope='module')
def from_files(scene, tmp_path_factory):
  out = str(tmp_path_factory.mktemp('files') / 'clear.tif')
  with open_files(scene) as series:
    return predict.predict(series, echo_target, out, options())


def test_a_static_catalogue_gives_the_bytes_of_the_files(
    scene, catalogue, from_files, tmp_path):
  items = stac.read_items(catalogue)
  with stac.open_series(items) as series:
    assert series.offsets == [OFFSET] * 4  # from s2:processing_baseline
    assert [str(d) for d in series.dates] == dates_of(scene)
    assert series.bands == BANDS
    names = predict.predict(series, echo_target, str(tmp_path / 'c.tif'),
                            options())
  assert digests(names) == digests(from_files)


def test_an_api_search_on_127_0_0_1_gives_the_bytes_of_the_files(
    scene, server, from_files, tmp_path):
  _, bbox = footprint(scene)
  items = stac.search(server.url, bbox, '2024-05-01/2024-08-31')
  body = server.searches[-1]
  assert body['collections'] == ['sentinel-2-l2a']
  assert body['datetime'].startswith('2024-05-01T00:00:00')
  assert body['bbox'] == bbox
  assert body['query'] == {'eo:cloud_cover': {'lt': stac.MAX_CLOUD}}
  with stac.open_series(items) as series:
    assert series.paths[0][0].startswith(f'/vsicurl/{server.url}/files/')
    assert series.bands == COLOURS and series.offsets == [OFFSET] * 4
    names = predict.predict(series, echo_target, str(tmp_path / 'a.tif'),
                            options())
  assert server.ranges > 0  # GDAL read byte ranges of the http hrefs
  assert digests(names) == digests(from_files)


def test_the_output_item_is_valid_and_its_assets_open(scene, catalogue,
                                                      tmp_path):
  models = {'core': '/runs/core/model-3', 'core_config': {'timeline': 4}}
  with stac.open_series(stac.read_items(catalogue)) as series:
    names = predict.predict(series, echo_target, str(tmp_path / 'c.tif'),
                            options(), models)
    grid, dates = series.grid, [str(d) for d in series.dates]
  assert names['item'] == str(tmp_path / 'c.stac.json')
  item = pystac.Item.from_file(names['item'])
  assert item.id == 'c'
  last = dates_of(scene)[-1]
  assert item.datetime == datetime.datetime.fromisoformat(
      last + 'T10:30:31+00:00')
  proj = ProjectionExtension.ext(item)
  assert proj.epsg == 32632
  assert proj.shape == [grid.height, grid.width]
  assert proj.transform == list(grid.transform)[:6]
  west, south, east, north = warp.transform_bounds(grid.crs, 'EPSG:4326',
                                                   *grid.bounds())
  assert np.allclose(item.bbox, [west, south, east, north])
  props = item.properties
  assert props['cloudtran:models'] == models
  assert props['cloudtran:offset'] == OFFSET
  inputs = props['cloudtran:inputs']
  assert [row['date'] for row in inputs] == dates
  assert inputs[-1]['item']['id'] == (
      f'S2B_{TILE_ID}_{last.replace("-", "")}_0_L2A')
  assert inputs[-1]['item']['href'].endswith('.json')
  assert inputs[0]['files'][0].endswith('_B04.tif')
  assert set(item.assets) == {'image', 'fill', 'quicklook'}
  for key in ('image', 'fill'):
    with rasterio.open(item.assets[key].get_absolute_href()) as src:
      assert (src.width, src.height) == (grid.width, grid.height), key
  with Image.open(item.assets['quicklook'].get_absolute_href()) as png:
    assert png.size == (grid.width, grid.height)
  with rasterio.open(item.assets['image'].get_absolute_href()) as src:
    assert src.crs == grid.crs and src.transform == grid.transform


def test_an_output_from_files_has_an_item_too(scene, from_files):
  item = pystac.Item.from_file(from_files['item'])
  assert item.datetime == datetime.datetime.fromisoformat(
      dates_of(scene)[-1] + 'T00:00:00+00:00')
  inputs = item.properties['cloudtran:inputs']
  assert 'item' not in inputs[0] and len(inputs[0]['files']) == 3


def test_tile_keeps_one_of_two_items_on_a_date(scene, tmp_path):
  items = make_items(scene, lambda f: os.path.join(scene, f))
  others = make_items(scene, lambda f: os.path.join(scene, f), tile='32TQN')
  path = write_catalogue(str(tmp_path), items + others[-1:])
  # Before: it advised narrowing --datetime, which cannot part two Items of
  # one datetime (and did nothing to --stac_items).
  with pytest.raises(DataError, match=(
      r'^2 Items on 2024-06-01: S2B_32TQM_20240601_0_L2A \(tile 32TQM\), '
      r'S2B_32TQN_20240601_0_L2A \(tile 32TQN\) — one Item per date is '
      r'read: pass --tile with one of 32TQM, 32TQN, or keep one of them in '
      r'a --stac_items file.$')):
    stac.open_series(stac.read_items(path))
  with stac.open_series(stac.read_items(path), tile='T32TQM') as series:
    assert len(series.dates) == 4
  with pytest.raises(DataError, match=(
      r'^No Item is of MGRS tile 33TUL \(--tile\) — choose one of the tiles '
      r'of the Items: 32TQM, 32TQN.$')):
    stac.open_series(stac.read_items(path), tile='33TUL')


def shifted(item, degrees):
  """`item` moved east by `degrees` (its bbox and geometry)."""
  west, south, east, north = item.bbox
  item.bbox = [west + degrees, south, east + degrees, north]
  item.geometry = {'type': 'Polygon', 'coordinates': [[
      [x + degrees, y] for x, y in item.geometry['coordinates'][0]]]}
  return item


def test_search_flags_filter_static_items_as_a_search(scene):
  items = make_items(scene, lambda f: os.path.join(scene, f))
  _, bbox = footprint(scene)
  days = lambda kept: [str(stac.item_date(i)) for i in kept]
  assert days(stac.select(items, '2024-05-04/2024-05-20')) == [
      '2024-05-08', '2024-05-20']
  assert days(stac.select(items, '../2024-05-08')) == [
      '2024-05-03', '2024-05-08']
  assert stac.select(items, bbox=bbox, max_cloud=21,
                     collection='sentinel-2-l2a') == items
  # The other tile's Item on the last date lies a degree east: --bbox over
  # the scene leaves it out, as a search would.
  other = shifted(make_items(scene, lambda f: os.path.join(scene, f),
                             tile='32TQN')[-1], 1.0)
  assert stac.select(items + [other], bbox=bbox) == items
  west, south, east, north = bbox
  assert stac.select(items + [other], bbox=[west + 1, south, east + 1,
                                            north]) == [other]
  with pytest.raises(DataError, match=(
      r'^No Item of --stac_items is kept by --datetime=2030-01-01/2030-02-01 '
      r'\(the 4 Items have dates 2024-05-03 to 2024-06-01\) — widen '
      r'--datetime or drop it.$')):
    stac.select(items, '2030-01-01/2030-02-01')
  for kwargs, message in [
      (dict(max_cloud=20), r'--max_cloud=20 \(the 4 Items have '
       r'eo:cloud_cover 20.0 %\) — raise --max_cloud'),
      (dict(collection='landsat'), r'--collection=landsat \(the 4 Items '
       r'have collections sentinel-2-l2a\) — name one of them'),
      (dict(bbox=[0, 0, 1, 1]), r'--bbox=0,0,1,1 \(the 4 Items have '
       r'bboxes 10.2924,46.0426,10.2987,46.0463\) — give a --bbox over '
       'them')]:
    with pytest.raises(DataError, match='^No Item of --stac_items is kept by '
                       + message):
      stac.select(items, **kwargs)


@pytest.mark.parametrize('box, other, meets', [
    ((179.5, -17, -179.5, -16), (179.8, -16.5, 179.9, -16.4), True),
    ((179.5, -17, -179.5, -16), (-179.9, -16.5, -179.6, -16.4), True),
    ((179.5, -17, -179.5, -16), (-179.4, -16.5, -179.3, -16.4), False),
    ((179.5, -17, -179.5, -16), (170, -16.5, -170, -16.4), True),
    ((10, 46, 11, 47), (10.5, 47.5, 10.6, 48), False)])
def test_bboxes_meet_across_the_antimeridian(box, other, meets):
  assert stac._meets(box, other) is meets  # pylint: disable=protected-access
  assert stac._meets(other, box) is meets  # pylint: disable=protected-access


def test_an_item_without_the_asset_is_named(scene, tmp_path):
  items = make_items(scene, lambda f: os.path.join(scene, f))
  del items[2].assets['B03']
  path = write_catalogue(str(tmp_path), items)
  third = items[2].id
  with pytest.raises(DataError, match=(
      rf'Item {third} has no red, green, blue asset B04,B03,B02 or '
      r'red,green,blue \(its assets: B02, B04, SCL\) — pass --assets')):
    stac.open_series(stac.read_items(path))
  with pytest.raises(DataError, match=rf'Item {items[0].id} has no SCL asset '
                     r'scl_20m .* --mask_asset'):
    stac.open_series(stac.read_items(path), mask_asset='scl_20m')


def rgb_file_items(scene, metadata=None, keys=BANDS):
  """The Items with the image assets `keys` all at the date's 3-band RGB
  file (images/), with the asset fields `metadata` (band metadata)."""
  items = make_items(scene, lambda f: os.path.join(scene, f))
  for item in items:
    for key in BANDS:
      del item.assets[key]
    for key in keys:
      item.add_asset(key, pystac.Asset(
          os.path.join(scene, 'images', f'{stac.item_date(item)}.tif'),
          extra_fields=dict(metadata or {})))
  return items


def test_one_file_under_the_three_band_keys_needs_band_metadata(scene):
  # Before: read as band 1 three times, a grey image (R = G = B), rc 0.
  first = make_items(scene, str)[0].id
  with pytest.raises(DataError, match=(
      rf'^Item {first}: assets B04, B03, B02 are one file, '
      rf'{scene}/images/2024-05-03.tif, and its band metadata does not say '
      r'which band each is — list the file\'s bands with their common_name '
      r'\(red, green, blue\) in the asset\'s bands or eo:bands, or pass '
      '--assets with one-band assets.$')):
    stac.open_series(rgb_file_items(scene))
  items = make_items(scene, lambda f: os.path.join(scene, f))
  items[0].assets['B04'].href = os.path.join(scene, 'images', '2024-05-03.tif')
  with pytest.raises(DataError, match=(
      rf'^{scene}/images/2024-05-03.tif has 3 bands and is read as the one '
      r'band B04 — say which band it is')):
    stac.open_series(items)
  items = rgb_file_items(scene, {'eo:bands': [{'name': 'a'}, {'name': 'b'}]})
  with pytest.raises(DataError, match=(
      rf'^Item {first}: asset B04 has 2 bands \(a, b\) and none is red — ')):
    stac.open_series(items)


@pytest.mark.parametrize('metadata, keys', [
    ({'eo:bands': [{'name': 'B04', 'common_name': 'red'},
                   {'name': 'B03', 'common_name': 'green'},
                   {'name': 'B02', 'common_name': 'blue'}]}, BANDS),
    ({'bands': [{'name': 'B02', 'eo:common_name': 'blue'},
                {'name': 'B03', 'eo:common_name': 'green'},
                {'name': 'B04', 'eo:common_name': 'red'}][::-1]}, BANDS),
    ({'eo:bands': [{'name': 'red'}, {'name': 'green'}, {'name': 'blue'}]},
     ('visual',) * 3)])
def test_a_multi_band_asset_is_read_by_its_band_metadata(scene, metadata,
                                                         keys):
  items = rgb_file_items(scene, metadata, keys)
  with stac.open_series(items, assets=keys) as series, open_files(
      scene) as files:
    assert series.bands == keys
    window = series.grid.window
    for ours, theirs in zip(series.read(window), files.read(window)):
      np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(series.read_reflectance(window),
                                  files.read_reflectance(window))


def test_an_empty_search_and_an_unreachable_api(scene, server):
  _, bbox = footprint(scene)
  with pytest.raises(DataError, match=r'has no Item of nothing over bbox .*'
                     r'— widen --bbox or --datetime'):
    stac.search(server.url, bbox, '2024-05-01/2024-08-31', 'nothing')
  closed = StacServer(scene)
  url = closed.url
  closed.server_close()  # the port answers no more
  with pytest.raises(DataError, match=rf'The STAC API {url} did not answer '
                     r'.* — check --stac_api'):
    stac.search(url, bbox, '2024-05-01/2024-08-31')


@pytest.mark.parametrize('dates', ['garbage', '2024-13-01/2024-12-01'])
def test_a_bad_datetime_is_named_before_any_request(server, dates):
  count = len(server.searches)
  with pytest.raises(DataError, match=f'--datetime={dates}: .* — write '
                     'START/END'):
    stac.search(server.url, [11, 46, 11.1, 46.1], dates)
  assert len(server.searches) == count


def test_a_file_that_is_not_stac_is_named(tmp_path):
  path = tmp_path / 'x.json'
  path.write_text('{"type": "Something"}')
  with pytest.raises(DataError, match=f'--stac_items={path}: not a readable '
                     'STAC file .* — give an ItemCollection'):
    stac.read_items(str(path))


@pytest.mark.parametrize('href, path', [
    ('https://x.org/a/B04.tif', '/vsicurl/https://x.org/a/B04.tif'),
    ('s3://bucket/a/B04.tif', '/vsis3/bucket/a/B04.tif'),
    ('file:///data/B04%201.tif', '/data/B04 1.tif'),
    ('/data/B04.tif', '/data/B04.tif')])
def test_gdal_paths_of_hrefs(href, path):
  assert stac.gdal_path(href) == path


@pytest.mark.parametrize('props, offset', [
    ({'s2:processing_baseline': '03.01'}, 0),
    ({'s2:processing_baseline': '04.00'}, 1000),
    ({'s2:processing_baseline': '05.10',
      'earthsearch:boa_offset_applied': True}, 0),
    ({}, None)])
def test_the_offset_of_an_item(props, offset):
  item = pystac.Item('i', None, None, datetime.datetime(2024, 1, 1), props)
  assert stac.item_offset(item) == offset


def run_cli(*args):
  return subprocess.run([sys.executable, *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=900,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))


def test_prepare_from_a_catalogue_equals_prepare_from_files(
    scene, catalogue, tmp_path):
  out = tmp_path / 'stac'
  done = run_cli('-m', 'tools.prepare', str(out), f'--stac_items={catalogue}',
                 '--patch=16', '--stride=16', '--test_fraction=0',
                 '--seed=0', '--block=1', '--timeline=3', '--resolution=16')
  assert done.returncode == 0, done.stderr[-2000:]
  with open_files(scene) as series:
    expected = prepare.prepare(str(tmp_path / 'files'), series, PREPARE)
  with open(out / 'prepare.json') as f:
    report = json.load(f)
  assert report['offsets'] == [OFFSET] * 4
  for key in ('dates', 'grid', 'patches', 'counts', 'coverage_histogram'):
    assert report[key] == expected[key], key
  assert sum(expected['counts']['kept'].values()) > 0
  files = sorted(os.path.relpath(os.path.join(d, n), tmp_path / 'files')
                 for d, _, ns in os.walk(tmp_path / 'files') for n in ns
                 if n != 'prepare.json')
  for name in files:
    assert digest(out / name) == digest(tmp_path / 'files' / name), name


@pytest.fixture(scope='module')
def tiny_models(tmp_path_factory):
  return bench_predict.save_random_models(str(tmp_path_factory.mktemp('m')),
                                         'tiny')


def predict_py(models, *args):
  core, upsampler = models
  return run_cli('predict.py',
                 '--core_config=configs/cloudtran_core_test.py:tiny',
                 '--upsampler_config=configs/upsampler_test.py:tiny',
                 f'--core_logdir={core}', f'--upsampler_logdir={upsampler}',
                 '--overlap=8', *args)


def test_predict_py_from_an_api_search_equals_from_files(
    scene, server, tiny_models, tmp_path):
  files = predict_py(tiny_models, f'--inputs={scene}/bands/*.tif',
                     '--band_files', f'--scl={scene}/scl/*.tif',
                     f'--offset={OFFSET}', f'--out={tmp_path}/files.tif')
  assert files.returncode == 0, files.stderr[-2000:]
  _, bbox = footprint(scene)
  searched = predict_py(
      tiny_models, f'--stac_api={server.url}',
      f'--bbox={",".join(map(str, bbox))}', '--datetime=2024-05-01/2024-08-31',
      '--max_cloud=50', f'--out={tmp_path}/stac.tif')
  assert searched.returncode == 0, searched.stderr[-2000:]
  assert server.searches[-1]['query'] == {'eo:cloud_cover': {'lt': 50.0}}
  assert digests(geotiff.paths(f'{tmp_path}/stac.tif')) == digests(
      geotiff.paths(f'{tmp_path}/files.tif'))
  item = pystac.Item.from_file(f'{tmp_path}/stac.stac.json')
  models = item.properties['cloudtran:models']
  assert models['core'].startswith(tiny_models[0])
  assert models['core_config']['timeline'] == TIMELINE
  assert models['upsampler_config']['resolution'] == [TILE, TILE]
  assert item.properties['cloudtran:inputs'][0]['item']['id'].startswith(
      'S2B_32TQM_')


@pytest.mark.parametrize('args, message', [
    # Before: rc 0 on the 2024 Items.
    (['--stac_items={catalogue}', '--datetime=2030-01-01/2030-02-01'],
     r'No Item of --stac_items is kept by --datetime=2030-01-01/2030-02-01 '
     r'\(the 4 Items have dates 2024-05-03 to 2024-06-01\) — widen'),
    (['--stac_items={two}'], r'2 Items on 2024-06-01: .* — .*--tile'),
    (['--stac_items={catalogue}', '--assets=B04,B03,B8A'],
     r'Item S2B_32TQM_\d{{8}}_0_L2A has no red, green, blue asset B04,B03,B8A '
     r'.* — pass --assets'),
    (['--stac_api=http://127.0.0.1:9', '--bbox=11,46,11.1,46.1',
      '--datetime=2024-05-01/2024-08-31'],
     r'The STAC API http://127.0.0.1:9 did not answer .* — check'),
    (['--stac_api={url}', '--bbox=11,46,11.1,46.1',
      '--datetime=2024-05-01/2024-08-31', '--collection=nothing'],
     r'The STAC API {url} has no Item of nothing .* — widen'),
])
def test_bad_stac_input_is_one_error_line(scene, catalogue, server, tmp_path,
                                          tiny_models, args, message):
  items = make_items(scene, lambda f: os.path.join(scene, f))
  others = make_items(scene, lambda f: os.path.join(scene, f), tile='32TQN')
  two = write_catalogue(str(tmp_path), items + others[-1:])
  names = dict(scene=scene, catalogue=catalogue, two=two, url=server.url)
  done = predict_py(tiny_models, f'--out={tmp_path}/o.tif',
                    *(a.format(**names) for a in args))
  assert done.returncode == 2, done.stderr[-2000:]
  lines = [l for l in done.stderr.splitlines() if l.startswith('error: ')]
  assert len(lines) == 1 and 'Traceback' not in done.stderr, done.stderr
  assert re.search(message.format(**names), lines[0]), lines[0]


# What the series flags refuse as they are parsed, before any work: each
# argv -> the start of its error line (None: accepted).
FLAG_CASES = [
    # Before: rc 1, "CPLE_AppDefinedError: latitude max < latitude min —
    # this looks like a bug".
    (['--stac_items=c.json', '--bbox=11,46.1,11.1,46.0'],
     '--bbox=11,46.1,11.1,46.0: south 46.1 is not below north 46 — give '
     'W,S,E,N (south first).'),
    # Before: rc 0, read as 359.9 degrees across the antimeridian.
    (['--stac_items=c.json', '--bbox=11.1,46,11.0,46.1'],
     '--bbox=11.1,46,11.0,46.1: west 11.1 > east 11 is an area across the '
     'antimeridian 359.9 degrees wide — give W < E'),
    (['--stac_items=c.json', '--bbox=179.5,-17,-179.5,-16'], None),
    # Before: rc 0.
    (['--stac_items=c.json', '--bbox=11,46,11.1,96'],
     '--bbox=11,46,11.1,96: latitudes S and N are from -90 to 90 — '),
    (['--stac_items=c.json', '--bbox=46,11,200,12'],
     '--bbox=46,11,200,12: longitudes W and E are from -180 to 180 — '),
    (['--stac_items=c.json', '--bbox=11,46,11'],
     '--bbox=11,46,11: give W,S,E,N in degrees — e.g.'),
    (['--stac_items=c.json', '--max_cloud=-5'],
     '--max_cloud=-5 is out of range — give a percentage from 0 to 100'),
    (['--inputs=x', '--scl=y', '--cloud_threshold=150'],
     '--cloud_threshold=150 is out of range — give a percentage from 0 to '
     '100'),
    (['--inputs=x', '--scl=y', '--cloud_threshold=nan'],
     '--cloud_threshold=nan is out of range'),
    (['--inputs=x', '--scl=y', '--offset=-1000'],
     '--offset=-1000 is out of range — give a DN offset 0 or more'),
    (['--inputs=x', '--scl=y', '--bands=0,1,2'],
     '--bands=0,1,2: give three 1-based band numbers — e.g. 4,3,2.'),
    # Before: ignored with --inputs.
    (['--inputs=x', '--scl=y', '--datetime=2024-05-01/2024-06-01',
      '--tile=32TQM'],
     '--datetime, --tile are for STAC Items, not --inputs files — drop them'),
    (['--stac_items=c.json', '--datetime=garbage'],
     '--datetime=garbage: '),
    (['--stac_items=c.json', '--assets=red,green'],
     '--assets=red,green: give the three asset keys'),
    (['--stac_items=c.json', '--scl=y'], '--scl is for --inputs files — '),
    (['--stac_api=http://x', '--datetime=2024'],
     '--stac_api needs --bbox W,S,E,N and --datetime START/END — e.g.'),
    (['--inputs=x', '--stac_items=y'], '--inputs, --stac_items: give '
     'exactly one of --inputs, --stac_items, --stac_api — '),
    ([], 'No input: give exactly one of'),
]
PARSE = """
import json, sys
from absl import flags
from commands import series_flags
from utils import cli
series_flags.define('target', 'The target date.')
lines = []
for argv in json.loads(sys.argv[1]):
  flags.FLAGS.unparse_flags()
  try:
    cli.parse_flags(['predict.py', *argv])
    lines.append(None)
  except cli.InputError as e:
    lines.append(str(e))
print(json.dumps(lines))
"""


def test_series_flags_are_checked_as_they_are_parsed():
  done = run_cli('-c', PARSE, json.dumps([argv for argv, _ in FLAG_CASES]))
  assert done.returncode == 0, done.stderr[-2000:]
  for (argv, start), line in zip(FLAG_CASES, json.loads(done.stdout)):
    assert (line is None if start is None else line.startswith(start)), (
        argv, line)
    assert line is None or line.count(' — ') == 1, line


def test_a_bbox_across_the_antimeridian_crops_the_grid():
  """W > E is an area across 180 degrees (as in GeoJSON and STAC)."""
  # 2 km of UTM zone 60 south, across 180 degrees at 17 S.
  grid = reader.Grid('EPSG:32760', reader.Affine(10, 0, 818000, 0, -10,
                                                 8120000), 200, 100)
  across = grid.crop((179.999, -16.99, -179.999, -16.989))
  assert across == grid.crop((179.999, -16.99, 180.001, -16.989))
  assert 20 <= across.width <= 23 and 10 <= across.height <= 13
  west, _, east, _ = warp.transform_bounds(across.crs, 'EPSG:4326',
                                           *across.bounds())
  assert 179.99 < west < 180 and -180 < east < -179.99


def degrees(grid, cols, rows):
  """W, S, E, N (degrees) of the pixels cols x rows of `grid`, shrunk by a
  third of a pixel so that they touch no other pixel."""
  (c0, c1), (r0, r1) = cols, rows
  left, top = grid.transform @ (c0 + 0.33, r0 + 0.33)
  right, bottom = grid.transform @ (c1 - 0.33, r1 - 0.33)
  return warp.transform_bounds(grid.crs, 'EPSG:4326', left, bottom, right,
                               top)


def test_bbox_crops_the_grid_to_whole_pixels_read_as_they_are(catalogue,
                                                               caplog):
  items = stac.read_items(catalogue)
  with stac.open_series(items) as full:
    area = degrees(full.grid, (10, 30), (8, 24))
    caplog.clear()
    with caplog.at_level(logging.INFO), stac.open_series(
        items, area=area) as cropped:
      grid = cropped.grid
      col, row = grid.origin_in(full.grid)
      # The degrees' rectangle, back in UTM, may touch one more pixel a side.
      assert 9 <= col <= 10 and 7 <= row <= 8
      assert 20 <= grid.width <= 22 and 16 <= grid.height <= 18
      # The band files hold the grid: read as they are; the 20 m SCL warped.
      assert 'Warping input' not in caplog.text
      assert 'Warping scl' in caplog.text
      window = rasterio.windows.Window(col, row, grid.width, grid.height)
      for ours, theirs in zip(cropped.read(grid.window), full.read(window)):
        np.testing.assert_array_equal(ours, theirs)
    with pytest.raises(DataError, match=r"--bbox 1,2,3,4 is off the target "
                       r"date's grid \(.*\) — give W,S,E,N inside it"):
      stac.open_series(items, area=(1, 2, 3, 4))
