"""Dated raster series: dates, radiometry, cloud masks, grids, bad input."""

import datetime
import errno
import os

import numpy as np
import pytest
import rasterio
from rasterio import warp
from rasterio.windows import Window

from rasters import cloudmasks
from rasters import dates
from rasters import geotiff
from rasters import radiometry
from rasters import reader
from tests import raster_helpers as rh
from tools import synthetic_geotiff
from utils import cli
from utils.errors import DataError

H, W = 20, 24
JULY = datetime.date(2024, 7, 14)


# Dates ---------------------------------------------------------------------

@pytest.mark.parametrize('name', [
    '20240714.tif', 'aoi_2024-07-14_rgb.tif',
    'T32TQM_20240714T103031_B04_10m.jp2',
    'S2A_MSIL2A_20240714T103031_N0510_R108_T32TQM_20240801T150124.tif',
    'x99991399_20240714.tif'])
def test_date_in_name(name):
  assert dates.date_in_name(name) == JULY


def test_date_from_tiff_tag(tmp_path):
  path = rh.write(tmp_path / 'scene.tif', np.ones((H, W), np.uint8),
                  tags={'TIFFTAG_DATETIME': '2024:07:14 10:30:00'})
  assert dates.date_of(path) == JULY


def test_no_date_names_the_file(tmp_path):
  path = rh.write(tmp_path / 'scene.tif', np.ones((H, W), np.uint8))
  with pytest.raises(DataError, match='No date in .*scene.tif'):
    dates.date_of(path)


def test_two_files_of_one_date_name_both(tmp_path):
  a = rh.write(tmp_path / '20240714_a.tif', np.ones((H, W), np.uint8))
  b = rh.write(tmp_path / '2024-07-14_b.tif', np.ones((H, W), np.uint8))
  with pytest.raises(DataError, match='20240714_a.tif and .*2024-07-14_b.tif'):
    dates.by_date([a, b])


# Radiometry ----------------------------------------------------------------

def test_radiometry_round_trip_and_formula():
  values8 = np.arange(256, dtype=np.uint8)
  dn = radiometry.from_uint8(values8, offset=1000)
  assert dn.dtype == np.uint16 and dn[0] == 1000 and dn[255] == 4000
  np.testing.assert_array_equal(radiometry.to_uint8(dn, 1000), values8)
  np.testing.assert_array_equal(
      radiometry.to_uint8(np.array([0, 999, 2500, 4000, 30000]), 1000),
      [0, 0, 128, 255, 255])
  np.testing.assert_array_equal(radiometry.to_uint8(values8, 1000), values8)
  np.testing.assert_array_equal(
      radiometry.from_uint8(values8, 1000, np.uint8), values8)


@pytest.mark.parametrize('tags, name, offset', [
    ({'BOA_ADD_OFFSET': '-1000'}, '', 1000),
    ({'RADIO_ADD_OFFSET': '0'}, '', 0),
    ({'PROCESSING_BASELINE': '04.00'}, '', 1000),
    ({'PROCESSING_BASELINE': '03.01'}, '', 0),
    ({}, 'S2B_MSIL2A_20240714T103031_N0510_R108_T32TQM.SAFE/B04.jp2', 1000),
    ({}, 'S2B_MSIL2A_20210714T103031_N0301_R108_T32TQM.SAFE/B04.jp2', 0),
    ({}, 'scene.tif', None)])
def test_offset_from_metadata(tags, name, offset):
  assert radiometry.offset_from_metadata(tags, name) == offset


# Cloud masks ---------------------------------------------------------------

def test_scl_classes():
  cloudy, missing = cloudmasks.classify('scl', np.arange(12))
  assert np.flatnonzero(cloudy).tolist() == [0, 3, 8, 9, 10]
  assert np.flatnonzero(missing).tolist() == [0]


def test_probability_threshold_and_nodata():
  cloudy, missing = cloudmasks.classify(
      'cloud_prob', np.array([0, 40, 41, 100, 255]), nodata=255, threshold=40)
  assert cloudy.tolist() == [False, False, True, True, True]
  assert missing.tolist() == [False, False, False, False, True]


def test_binary_masks_zero_is_clear():
  cloudy, missing = cloudmasks.classify('masks', np.array([0, 1, 255]))
  assert cloudy.tolist() == [False, True, True] and not missing.any()


# Series on one grid ----------------------------------------------------------

def _two_dates(tmp_path, mask_july=None, **image_kwargs):
  june = rh.ramp_image(H, W, seed=1)
  july = rh.ramp_image(H, W, seed=2)
  mask = np.zeros((H, W), np.uint8) if mask_july is None else mask_july
  images, masks = rh.write_series(
      tmp_path, {'2024-06-30': (june, np.zeros((H, W), np.uint8)),
                 '2024-07-14': (july, mask)}, image_kwargs=image_kwargs)
  return images, masks, june, july


def test_read_on_the_target_grid(tmp_path):
  mask = np.zeros((H, W), np.uint8)
  mask[3:5, 6:9] = 1
  images, masks, june, july = _two_dates(
      tmp_path, mask, tags={'BOA_ADD_OFFSET': '-1000'})
  with reader.open_series(images, masks=masks) as series:
    assert series.dates == [datetime.date(2024, 6, 30), JULY]
    assert series.target_index == 1 and series.dtype == np.uint16
    assert series.offsets == [1000, 1000] and series.bands == (1, 2, 3)
    assert series.grid.shape == (H, W) and series.grid.crs == rh.CRS
    assert series.grid.transform == rh.GRID_TRANSFORM
    rgb, cloudy, missing = series.read(series.grid.window)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, H, W, 3)
    np.testing.assert_array_equal(
        rgb[1], radiometry.to_uint8(july, 1000).transpose(1, 2, 0))
    np.testing.assert_array_equal(cloudy[1], mask == 1)
    assert not cloudy[0].any() and not missing.any()
    window = Window(5, 3, 7, 9)
    part = series.read(window)
    for whole, piece in zip((rgb, cloudy, missing), part):
      np.testing.assert_array_equal(piece, whole[:, 3:12, 5:12])
    np.testing.assert_array_equal(series.read_reflectance(window),
                                  july[:, 3:12, 5:12].transpose(1, 2, 0))
    for whole, piece in zip((rgb, cloudy, missing),
                            series.read(window, indices=[1])):
      np.testing.assert_array_equal(piece, whole[1:, 3:12, 5:12])


def test_window_past_the_grid_is_missing(tmp_path):
  images, masks, _, july = _two_dates(tmp_path)
  with reader.open_series(images, masks=masks, offset=1000) as series:
    rgb, cloudy, missing = series.read(Window(W - 4, H - 2, 8, 8))
  assert missing[:, :2, :4].sum() == 0 and missing[:, 2:].all()
  assert missing[:, :, 4:].all() and (cloudy == missing).all()
  np.testing.assert_array_equal(
      rgb[1, :2, :4], radiometry.to_uint8(july[:, H - 2:, W - 4:], 1000
                                          ).transpose(1, 2, 0))


def test_offset_flag_overrides_and_default_is_zero(tmp_path):
  images, masks, _, july = _two_dates(tmp_path)
  with reader.open_series(images, masks=masks) as series:
    assert series.offsets == [0, 0]
    rgb, _, _ = series.read(series.grid.window)
    np.testing.assert_array_equal(
        rgb[1], radiometry.to_uint8(july, 0).transpose(1, 2, 0))
  with reader.open_series(images, masks=masks, offset=1000,
                          target='2024-06-30') as series:
    assert series.offsets == [1000, 1000] and series.target_index == 0


def test_uint8_inputs_pass_unchanged(tmp_path):
  image = np.random.default_rng(0).integers(1, 256, (3, H, W), np.uint8)
  images, masks = rh.write_series(
      tmp_path, {'2024-07-14': (image, np.zeros((H, W), np.uint8))})
  with reader.open_series(images, masks=masks) as series:
    rgb, _, _ = series.read(series.grid.window)
  np.testing.assert_array_equal(rgb[0], image.transpose(1, 2, 0))


def test_nodata_zeros_and_nodata_value_are_missing(tmp_path):
  image = rh.ramp_image(H, W)
  image[:, :, 0] = 0                  # zeros: no data
  image[:, :, 1] = 65535              # the image's nodata value
  mask = np.zeros((H, W), np.uint8)
  mask[2] = 7                         # the mask's nodata value
  images, masks = rh.write_series(
      tmp_path, {'2024-07-14': (image, mask)},
      image_kwargs={'nodata': 65535}, mask_kwargs={'nodata': 7})
  with reader.open_series(images, masks=masks) as series:
    _, cloudy, missing = series.read(series.grid.window)
  expected = np.zeros((H, W), bool)
  expected[2, :] = True
  expected[:, :2] = True
  np.testing.assert_array_equal(missing[0], expected)
  np.testing.assert_array_equal(cloudy[0], expected)


def test_scl_at_20m_is_resampled_nearest(tmp_path):
  scl = np.full((H // 2, W // 2), 4, np.uint8)
  scl[1, 2], scl[3, 4], scl[5, 6], scl[0, 0] = 9, 3, 10, 0
  images, masks = rh.write_series(
      tmp_path, {'2024-07-14': (rh.ramp_image(H, W), scl)}, kind='scl',
      mask_kwargs={'transform': rh.north_up(rh.LEFT, rh.TOP, 20)})
  with reader.open_series(images, scl=masks) as series:
    _, cloudy, missing = series.read(series.grid.window)
  np.testing.assert_array_equal(
      cloudy[0], np.isin(np.repeat(np.repeat(scl, 2, 0), 2, 1),
                         [0, 3, 9, 10]))
  assert np.flatnonzero(missing[0].ravel()).tolist() == [0, 1, W, W + 1]


def test_cloud_probability_threshold(tmp_path):
  prob = np.tile(np.arange(W, dtype=np.uint8) * 4, (H, 1))
  images, masks = rh.write_series(
      tmp_path, {'2024-07-14': (rh.ramp_image(H, W), prob)}, kind='cloud_prob')
  with reader.open_series(images, cloud_prob=masks,
                          cloud_threshold=40) as series:
    _, cloudy, _ = series.read(series.grid.window)
  np.testing.assert_array_equal(cloudy[0], prob > 40)


# Bands ----------------------------------------------------------------------

def test_twelve_band_stack_reads_4_3_2(tmp_path):
  stack = np.stack([np.full((H, W), 1000 + 100 * b, np.uint16)
                    for b in range(1, 13)])
  images, masks = rh.write_series(
      tmp_path, {'2024-07-14': (stack, np.zeros((H, W), np.uint8))})
  with reader.open_series(images, masks=masks, offset=1000) as series:
    rgb, _, _ = series.read(series.grid.window)
    assert series.bands == (4, 3, 2)
  np.testing.assert_array_equal(
      rgb[0, 0, 0], radiometry.to_uint8(np.array([1400, 1300, 1200]), 1000))
  with reader.open_series(images, masks=masks, bands=(8, 4, 3)) as series:
    np.testing.assert_array_equal(
        series.read_reflectance(Window(0, 0, 1, 1))[0, 0], [1800, 1400, 1300])


def test_band_files_layout(tmp_path):
  names = {'B04': 40, 'B03': 30, 'B02': 20, 'B08': 80}
  for day in ('20240630', '20240714'):
    for band, value in names.items():
      rh.write_jp2(tmp_path / f'T32TQM_{day}T103031_{band}_10m.jp2',
                   np.full((H, W), 1000 + value, np.uint16))
    rh.write(tmp_path / f'T32TQM_{day}T103031_SCL_20m.tif',
             np.full((H, W), 4, np.uint8))
  with reader.open_series(str(tmp_path / '*_B*_10m*'), band_files=True,
                          scl=str(tmp_path / '*_SCL_*'), offset=1000
                          ) as series:
    assert len(series.dates) == 2 and series.bands == ('B04', 'B03', 'B02')
    assert [os.path.basename(p) for p in series.paths[1]][0].endswith(
        '_B04_10m.jp2')
    np.testing.assert_array_equal(series.read_reflectance(Window(0, 0, 1, 1)),
                                  [[[1040, 1030, 1020]]])
  os.remove(tmp_path / 'T32TQM_20240714T103031_B02_10m.jp2')
  with pytest.raises(DataError, match=r"2024-07-14 has no band file \['B02'\]"):
    reader.open_series(str(tmp_path / '*_B*_10m*'), band_files=True,
                       scl=str(tmp_path / '*_SCL_*'))


# Grids ----------------------------------------------------------------------

def test_other_crs_is_warped_and_outside_is_missing(tmp_path):
  images, masks, _, _ = _two_dates(tmp_path)
  # The June image again, in UTM zone 33N, covering the target's left half.
  left, bottom, right, top = warp.transform_bounds(
      rh.CRS, 'EPSG:32633', rh.LEFT, rh.TOP - H * 10, rh.LEFT + W * 5, rh.TOP)
  transform = rh.north_up(left, top, 5)
  size = (int((top - bottom) / 5) + 1, int((right - left) / 5) + 1)
  os.remove(os.path.join(tmp_path, 'images', '2024-06-30.tif'))
  rh.write(tmp_path / 'images' / '2024-06-30.tif',
           rh.dn_image([90, 120, 150], *size), transform=transform,
           crs='EPSG:32633')
  with reader.open_series(images, masks=masks, offset=1000) as series:
    rgb, cloudy, missing = series.read(series.grid.window)
  inside = ~missing[0]
  assert inside[2:-2, 2:W // 2 - 2].all() and missing[0][:, W // 2 + 2:].all()
  assert (rgb[0][inside] == [90, 120, 150]).all()
  assert (cloudy[0] == missing[0]).all() and not missing[1].any()


def test_no_overlap_names_the_file(tmp_path):
  images, masks, _, _ = _two_dates(tmp_path)
  rh.write(tmp_path / 'images' / '2024-06-30.tif', rh.ramp_image(H, W),
           transform=rh.north_up(rh.LEFT + 10000, rh.TOP, 10))
  with pytest.raises(DataError, match='2024-06-30.tif does not overlap'):
    reader.open_series(images, masks=masks)


# Bad input ------------------------------------------------------------------

def test_missing_mask_names_the_date_and_file(tmp_path):
  images, masks, _, _ = _two_dates(tmp_path)
  os.remove(os.path.join(tmp_path, 'masks', '2024-06-30_masks.tif'))
  with pytest.raises(DataError, match='No --masks file for 2024-06-30 '
                     r'\(input .*2024-06-30.tif\)'):
    reader.open_series(images, masks=masks)


def test_wrong_band_count(tmp_path):
  images, masks = rh.write_series(tmp_path, {'2024-07-14': (
      np.ones((4, H, W), np.uint16), np.zeros((H, W), np.uint8))})
  with pytest.raises(DataError, match='2024-07-14.tif has 4 band'):
    reader.open_series(images, masks=masks)
  with pytest.raises(DataError, match='has 4 band.*--bands 5,3,2'):
    reader.open_series(images, masks=masks, bands=(5, 3, 2))


def test_unreadable_file(tmp_path):
  images, masks, _, _ = _two_dates(tmp_path)
  with open(os.path.join(tmp_path, 'images', '2024-06-30.tif'), 'wb') as f:
    f.write(b'not a tiff')
  with pytest.raises(DataError, match='Cannot read input .*2024-06-30.tif'):
    reader.open_series(images, masks=masks)


def test_target_not_among_inputs(tmp_path):
  images, masks, _, _ = _two_dates(tmp_path)
  with pytest.raises(DataError, match='2024-07-15 is not among the input '
                     'dates.*2024-06-30, 2024-07-14'):
    reader.open_series(images, masks=masks, target='2024-07-15')


def test_float_inputs_are_refused(tmp_path):
  images, masks = rh.write_series(tmp_path, {'2024-07-14': (
      np.full((3, H, W), 0.1, np.float32), np.zeros((H, W), np.uint8))})
  with pytest.raises(DataError, match='2024-07-14.tif holds float32 values'):
    reader.open_series(images, masks=masks)


def test_no_input_and_no_mask_source(tmp_path):
  with pytest.raises(DataError, match="No file matches --inputs='.*none"):
    reader.open_series(str(tmp_path / 'none*.tif'), masks='x')
  images, _, _, _ = _two_dates(tmp_path)
  with pytest.raises(DataError, match='exactly one cloud mask source'):
    reader.open_series(images)


# The demo's synthetic scene ---------------------------------------------------

def test_synthetic_scene(tmp_path):
  written = synthetic_geotiff.write_scene(tmp_path, width=70, height=50,
                                          dates=4, seed=3)
  assert [c for _, c, _ in written][0::3] == ['clear', 'moderate']
  truth = reader.open_series(str(tmp_path / 'images' / '*.tif'),
                             masks=str(tmp_path / 'masks' / '*.tif'))
  scl = reader.open_series(str(tmp_path / 'images' / '*.tif'),
                           scl=str(tmp_path / 'scl' / '*.tif'))
  with truth, scl:
    assert scl.grid.crs == 'EPSG:32632' and scl.grid.shape == (50, 70)
    assert abs(scl.grid.transform.a) == 10 and scl.dtype == np.uint16
    assert scl.offsets == [1000] * 4 and scl.target == written[-1][0]
    _, truth_cloudy, _ = truth.read(truth.grid.window)
    _, scl_cloudy, scl_missing = scl.read(scl.grid.window)
  # The 20 m SCL flags every truly cloudy pixel; the swath edge is missing.
  assert (scl_cloudy >= truth_cloudy).all()
  np.testing.assert_array_equal(
      truth_cloudy.mean(axis=(1, 2)) * 100, [c for _, _, c in written])
  assert scl_missing[1].any() and not scl_missing[[0, 2, 3]].any()
  with rasterio.open(tmp_path / 'images' / f'{written[0][0]}.tif') as src:
    assert src.count == 3 and src.descriptions == ('B04', 'B03', 'B02')


def test_gdal_block_cache_is_capped(tmp_path, monkeypatch):
  monkeypatch.delenv('GDAL_CACHEMAX', raising=False)
  images, masks, _, _ = _two_dates(tmp_path)
  reader.open_series(images, masks=masks).close()
  assert int(rasterio.env.get_gdal_config('GDAL_CACHEMAX')) == (
      reader.BLOCK_CACHE_MB)


# Writing the outputs --------------------------------------------------------


def write_outputs(folder, out):
  """A 24x20 output written as predict writes one (scratch files in
  `folder`); returns its file names."""
  grid = reader.Grid(rh.CRS, rh.GRID_TRANSFORM, W, H)
  writer = geotiff.Writer(lambda name: os.path.join(folder, name), grid, 3,
                          'uint8')
  zeros = np.zeros((H, W, 3), np.uint8)
  writer.write((0, 0, H, W), zeros, zeros[..., 0], zeros)
  return writer.finish(out)


def error_line(error, capsys):
  """(stderr, exit status) of a command that raises `error`."""
  def fail():
    raise error
  with pytest.raises(SystemExit) as exited:
    cli.guard(fail)
  return capsys.readouterr().err, exited.value.code


def no_space(*args, **kwargs):
  """A write on a full disk: OSError 28 without a file name."""
  del args, kwargs
  raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize('real', [False, True])
def test_a_full_disk_names_the_output_and_what_to_do(tmp_path, monkeypatch,
                                                     capsys, real):
  out = str(tmp_path / 'clear.tif')
  png = str(tmp_path / 'clear.png')
  if real:  # the quicklook written to /dev/full
    os.symlink('/dev/full', png + '.tmp')
  else:
    monkeypatch.setattr(geotiff.Image.Image, 'save', no_space)
  with pytest.raises(OSError) as raised:
    write_outputs(str(tmp_path), out)
  assert (raised.value.errno, raised.value.filename) == (errno.ENOSPC, png)
  # Before: "error: [Errno 28] No space left on device".
  assert error_line(raised.value, capsys) == (
      f'error: No space left on device: {png} — free space on the disk of '
      f'{png} (or write elsewhere), then run the command again\n', 2)


def test_a_failed_geotiff_write_names_the_file(tmp_path, capsys):
  out = str(tmp_path / 'clear.tif')
  os.symlink('/dev/full', out + '.tmp')  # GDAL cannot write the COG
  with pytest.raises(OSError) as raised:
    write_outputs(str(tmp_path), out)
  assert raised.value.filename == out
  line, status = error_line(raised.value, capsys)
  assert status == 2 and line.startswith('error: ') and line.endswith(
      f': {out} — check the free space and the permissions of {tmp_path}, '
      'then run the command again\n'), line


def test_a_denied_folder_names_the_file(tmp_path, monkeypatch, capsys):
  def denied(path, *args, **kwargs):
    del args, kwargs
    # GDAL's words when it cannot create a GeoTIFF in a read-only folder
    # (root is never denied, so the refusal is played).
    raise rasterio.errors.RasterioIOError(
        f"Attempt to create new tiff file '{path}' failed: Permission denied")
  monkeypatch.setattr(geotiff.rasterio, 'open', denied)
  with pytest.raises(OSError) as raised:
    write_outputs(str(tmp_path), str(tmp_path / 'clear.tif'))
  scratch = str(tmp_path / 'image.tif')
  assert (raised.value.errno, raised.value.filename) == (errno.EACCES,
                                                          scratch)
  line, status = error_line(raised.value, capsys)
  assert (line, status) == (
      f'error: Permission denied: {scratch} — give this user write access to '
      f'{tmp_path} (read access to read it), or use another path\n', 2)
