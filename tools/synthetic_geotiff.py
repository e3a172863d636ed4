"""Writes a synthetic dated Sentinel-2-like scene as georeferenced rasters.

  python -m tools.synthetic_geotiff OUT --width 600 --height 520 --dates 8 \
      [--target_cover 30]

OUT/images/YYYY-MM-DD.tif   3 bands (B04, B03, B02) uint16 reflectance DN,
                            10 m pixels in UTM zone 32N (EPSG:32632), with
                            the baseline >= 04.00 offset of 1000 (tagged
                            BOA_ADD_OFFSET=-1000, PROCESSING_BASELINE=05.10)
OUT/scl/YYYY-MM-DD_SCL_20m.tif   the L2A Scene Classification at 20 m
OUT/masks/YYYY-MM-DD.tif    the true cloud mask at 10 m (0 = clear, 1 = cloud)
OUT/truth/YYYY-MM-DD.tif    the cloud-free image of the last date

The ground comes from `utils.scenes` (one landscape rendered per date of
the growing season); the first date is clear, the last one partly cloudy
(the date to restore; with --target_cover, clouds over that percentage of
it: none at 0, all of it at 100), the others clear, moderate or severe at
random; the second date misses a corner (zeros, SCL no data), as at a swath
edge.
"""

import datetime
import os

import numpy as np
from affine import Affine
import rasterio

from rasters import radiometry
from utils import cli
from utils import cloud_shapes
from utils import scenes

CRS = 'EPSG:32632'
ORIGIN = (600000.0, 5100000.0)  # left, top (m)
FIRST_DAY = datetime.date(2024, 5, 3)
CATEGORIES = ('clear', 'moderate', 'severe')
CATEGORY_PROBS = (0.4, 0.45, 0.15)
COVERAGE = {'moderate': (6.0, 15.0), 'severe': (60.0, 100.0)}
# Points of cloud cover a --target_cover between 0 and 100 may be off by.
COVER_TOLERANCE = 5.0
BAND_NAMES = ('B04', 'B03', 'B02')
# SCL classes used here; a 20 m pixel takes the class of highest priority
# among its four 10 m pixels.
SCL_NO_DATA, SCL_SHADOW, SCL_VEGETATION, SCL_WATER = 0, 3, 4, 6
SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH = 8, 9
SCL_PRIORITY = (SCL_VEGETATION, SCL_WATER, SCL_SHADOW, SCL_CLOUD_MEDIUM,
                SCL_CLOUD_HIGH, SCL_NO_DATA)


def north_up(left, top, pixel):
  """The affine transform of a north-up grid of square `pixel`s."""
  return Affine(pixel, 0.0, left, 0.0, -pixel, top)


def write_geotiff(path, values, transform, crs=CRS, nodata=None, tags=None,
                  descriptions=None):
  """Writes (C, H, W) or (H, W) `values` as a tiled, deflated GeoTIFF."""
  values = np.asarray(values)
  if values.ndim == 2:
    values = values[None]
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  count, height, width = values.shape
  profile = dict(driver='GTiff', width=width, height=height, count=count,
                 dtype=values.dtype.name, crs=crs, transform=transform,
                 nodata=nodata, compress='deflate')
  if width >= 256 and height >= 256:
    profile.update(tiled=True, blockxsize=256, blockysize=256)
  with rasterio.open(path, 'w', **profile) as dst:
    dst.write(values)
    if tags:
      dst.update_tags(**tags)
    for i, text in enumerate(descriptions or ()):
      dst.set_band_description(i + 1, text)
  return path


def scl_classes(land, clouds, shape):
  """(H, W) uint8 10 m Scene Classification of a date (before no data)."""
  height, width = shape
  scl = np.where(land.water[:height, :width], SCL_WATER, SCL_VEGETATION)
  if clouds is not None:
    alpha = clouds.alpha[:height, :width]
    shadow = clouds.shadow[:height, :width]
    cloud = np.where(alpha > 0.6, SCL_CLOUD_HIGH, SCL_CLOUD_MEDIUM)
    flagged = np.where(shadow > alpha, SCL_SHADOW, cloud)
    scl = np.where(clouds.mask[:height, :width], flagged, scl)
  return scl.astype(np.uint8)


def coarsen_scl(scl, factor):
  """(ceil(H/f), ceil(W/f)) classes: each block keeps its highest priority."""
  rank = np.zeros(256, np.uint8)
  rank[list(SCL_PRIORITY)] = np.arange(len(SCL_PRIORITY))
  height, width = scl.shape
  pad = ((0, -height % factor), (0, -width % factor))
  blocks = np.pad(scl, pad, mode='edge')
  blocks = blocks.reshape(blocks.shape[0] // factor, factor,
                          blocks.shape[1] // factor, factor)
  best = rank[blocks].max(axis=(1, 3))
  return np.asarray(SCL_PRIORITY, np.uint8)[best]


def swath_edge(shape):
  """(H, W) bool: a corner outside the swath (top-left triangle)."""
  height, width = shape
  y, x = np.mgrid[0:height, 0:width]
  return x / width + y / height < 0.35


def plan(rng, count):
  """Per-date categories: first clear, last moderate, others at random."""
  categories = [str(c) for c in rng.choice(CATEGORIES, count,
                                           p=CATEGORY_PROBS)]
  categories[0], categories[-1] = 'clear', 'moderate'
  return categories


def target_clouds(rng, side, cover):
  """Clouds over `cover` % of a (side, side) date: none at 0, everywhere
  at 100, else fractal clouds within COVER_TOLERANCE points of it."""
  if cover == 0:
    return None
  if cover == 100:
    return cloud_shapes.Clouds(np.full((side, side), 0.97, np.float32),
                               np.zeros((side, side), np.float32),
                               np.ones((side, side), bool))
  return cloud_shapes.make_clouds(rng, side, max(0, cover - COVER_TOLERANCE),
                                  min(100, cover + COVER_TOLERANCE))


def write_scene(out, width=600, height=520, dates=8, seed=0, offset=1000,
                resolution=10.0, scl_factor=2, crs=CRS, origin=ORIGIN,
                target_cover=None):
  """Writes the scene; returns [(date, category, cloud %)] in date order.
  `target_cover`: percent of the last date under clouds (`target_clouds`;
  its category is then 'clear' at 0, else that percentage); default a
  moderate cover drawn like the other dates'."""
  rng = np.random.default_rng(seed)
  side = max(width, height)
  land = scenes.make_landscape(rng, side)
  transform = north_up(origin[0], origin[1], resolution)
  scl_transform = north_up(origin[0], origin[1], resolution * scl_factor)
  tags = {'PROCESSING_BASELINE': '05.10', 'BOA_ADD_OFFSET': str(-offset),
          'QUANTIFICATION_VALUE': str(radiometry.QUANTIFICATION)}
  day, written = FIRST_DAY, []
  for t, category in enumerate(plan(rng, dates)):
    if t == dates - 1 and target_cover is not None:
      clouds = target_clouds(rng, side, target_cover)
      category = 'clear' if clouds is None else f'{target_cover:g} %'
    else:
      clouds = (cloud_shapes.make_clouds(rng, side, *COVERAGE[category])
                if category != 'clear' else None)
    ground = scenes.render(land, day.timetuple().tm_yday / 365.0)
    image = scenes.compose(ground, clouds, rng, gain=rng.uniform(0.93, 1.07),
                           haze=rng.uniform(0.0, 10.0))[:height, :width]
    scl = scl_classes(land, clouds, (height, width))
    mask = (np.zeros((height, width), np.uint8) if clouds is None
            else clouds.mask[:height, :width].astype(np.uint8))
    dn = radiometry.from_uint8(image, offset).transpose(2, 0, 1)
    if t == 1:
      edge = swath_edge((height, width))
      dn[:, edge], scl[edge], mask[edge] = 0, SCL_NO_DATA, 1
    name = f'{day:%Y-%m-%d}'
    stamp = {'TIFFTAG_DATETIME': f'{day:%Y:%m:%d} 10:30:00'}
    write_geotiff(os.path.join(out, 'images', name + '.tif'), dn, transform,
                  crs, nodata=0, tags={**tags, **stamp},
                  descriptions=BAND_NAMES)
    write_geotiff(os.path.join(out, 'scl', name + '_SCL_20m.tif'),
                  coarsen_scl(scl, scl_factor), scl_transform, crs,
                  tags=stamp)
    write_geotiff(os.path.join(out, 'masks', name + '.tif'), mask, transform,
                  crs, tags=stamp)
    if t == dates - 1:
      truth = scenes.compose(ground, None, rng, gain=1.0, haze=0.0)
      write_geotiff(os.path.join(out, 'truth', name + '.tif'),
                    radiometry.from_uint8(truth[:height, :width], offset
                                          ).transpose(2, 0, 1),
                    transform, crs, nodata=0, tags={**tags, **stamp},
                    descriptions=BAND_NAMES)
    written.append((day, category, 100.0 * mask.mean()))
    day += datetime.timedelta(days=int(rng.integers(5, 16)))
  return written


def parser():
  p = cli.ArgumentParser(
      prog='python -m tools.synthetic_geotiff',
      description='Writes a synthetic dated Sentinel-2-like scene (GeoTIFF '
                  'reflectance, SCL and cloud masks).')
  p.add_argument('out', help='output directory')
  p.add_argument('--width', type=int, default=600, help='pixels')
  p.add_argument('--height', type=int, default=520, help='pixels')
  p.add_argument('--dates', type=int, default=8)
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--offset', type=int, default=1000,
                 help='DN offset (1000 = processing baseline >= 04.00)')
  p.add_argument('--target_cover', type=float, default=None,
                 help='percent of the last date under clouds, 0..100 '
                 '(default: a moderate cover drawn at random)')
  return p


def main(argv=None):
  args = parser().parse_args(argv)
  if min(args.width, args.height) < 16 or args.dates < 2:
    parser().error('need --width, --height >= 16 and --dates >= 2.')
  if args.target_cover is not None and not 0 <= args.target_cover <= 100:
    parser().error('--target_cover is a percentage: give 0 to 100.')
  written = write_scene(args.out, args.width, args.height, args.dates,
                        args.seed, args.offset,
                        target_cover=args.target_cover)
  print(f'Synthetic scene in {args.out}: {args.width}x{args.height} px at '
        f'10 m ({CRS}), {args.dates} dates:')
  for day, category, cover in written:
    print(f'  {day}  {category:<8} {cover:5.1f} % cloud')
  print(f'  restore the last date: --inputs "{args.out}/images/*.tif" '
        f'--scl "{args.out}/scl/*.tif" --target {written[-1][0]}')


if __name__ == '__main__':
  cli.guard(main)
