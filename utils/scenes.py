"""Synthetic Sentinel-2-like RGB scenes (numpy + pillow only).

A `Landscape` is the fixed ground of a tile: crop parcels (Voronoi cells in
a rotated, stretched frame), forest, water (a lake and sometimes a river),
a road, field margins and a fine texture. `render` colours it for a day of
the year (crops go soil -> green -> ripe -> harvested, deciduous forest
browns in winter). `compose` lays clouds drawn by
`utils.cloud_shapes` (soft edges, offset shadows) over it, under the date's
light; `relief` and `shading` give light that varies within a tile.
"""

import dataclasses

import numpy as np

from utils import cloud_shapes

# Approximate Sentinel-2 true-colour values (8-bit, typical stretch).
SOIL = np.array([150, 126, 102], np.float32)
WET_SOIL = np.array([112, 94, 78], np.float32)
GREEN = np.array([62, 98, 48], np.float32)
RIPE = np.array([182, 162, 108], np.float32)
GRASS = np.array([86, 112, 64], np.float32)
FOREST = np.array([36, 60, 38], np.float32)
BARE_FOREST = np.array([78, 72, 60], np.float32)
WATER = np.array([22, 36, 52], np.float32)
BUILT = np.array([152, 146, 142], np.float32)
ROAD = np.array([172, 168, 162], np.float32)
CLOUD = np.array([236, 239, 244], np.float32)
# Parcel kinds: 0 crop, 1 grassland, 2 built-up.
KIND_PROBS = (0.78, 0.16, 0.06)
# Share of tiles with a river, with a road.
RIVER_PROB, ROAD_PROB = 0.4, 0.6
# Crops per tile: each has a sowing day; its parcels sow within a spread.
CROP_TYPES, SOWING_SPREAD = 3, 0.03
# Crop cycle (fractions of a year after sowing): sown soil, growing, ripe.
CYCLE = (0.12, 0.55, 0.72)
# Clouds (`utils.cloud_shapes`): shadow darkening, grey of thin cloud edges.
SHADOW_DARKENING, THIN_CLOUD_GREY = 0.5, np.float32(40.0)
SENSOR_NOISE = np.float32(1.5)


@dataclasses.dataclass(frozen=True)
class Landscape:
  labels: np.ndarray    # (S, S) int32 parcel id
  kind: np.ndarray      # (P,) int parcel kind (see KIND_PROBS)
  sowing: np.ndarray    # (P,) float sowing day as a fraction of the year
  tint: np.ndarray      # (P, 3) float32 per-parcel colour offset
  forest: np.ndarray    # (S, S) bool
  water: np.ndarray     # (S, S) bool
  road: np.ndarray      # (S, S) bool
  margin: np.ndarray    # (S, S) bool parcel borders
  texture: np.ndarray   # (S, S) float32 brightness texture


def _parcels(rng, size):
  """(S, S) Voronoi labels of a jittered grid, in a rotated, stretched frame."""
  cell = rng.uniform(28.0, 56.0)
  angle = rng.uniform(0.0, np.pi)
  stretch = rng.uniform(1.0, 2.0)
  y, x = np.mgrid[0:size, 0:size].astype(np.float32)
  u = x * np.cos(angle) + y * np.sin(angle)
  v = (y * np.cos(angle) - x * np.sin(angle)) * stretch
  u, v = u - u.min(), v - v.min()
  cols = int(u.max() // cell) + 2
  rows = int(v.max() // cell) + 2
  seeds = (rng.random((rows, cols, 2)) + np.mgrid[0:rows, 0:cols].transpose(
      1, 2, 0)) * cell
  ci, cj = (v // cell).astype(int), (u // cell).astype(int)
  best = np.full((size, size), np.inf, np.float32)
  labels = np.zeros((size, size), np.int32)
  for di in (-1, 0, 1):
    for dj in (-1, 0, 1):
      i, j = np.clip(ci + di, 0, rows - 1), np.clip(cj + dj, 0, cols - 1)
      dist = (seeds[i, j, 0] - v) ** 2 + (seeds[i, j, 1] - u) ** 2
      closer = dist < best
      best = np.where(closer, dist, best)
      labels = np.where(closer, i * cols + j, labels)
  return labels, rows * cols


def _river(rng, size):
  """(S, S) bool: a meandering band across the tile."""
  y, x = np.mgrid[0:size, 0:size].astype(np.float32)
  centre = size * rng.uniform(0.2, 0.8) + size * 0.08 * np.sin(
      2 * np.pi * x / size * rng.uniform(0.5, 2.0) + rng.uniform(0, 2 * np.pi))
  return np.abs(y - centre) < max(1.0, size * rng.uniform(0.008, 0.02))


def _road(rng, size):
  """(S, S) bool: a straight road through the tile."""
  y, x = np.mgrid[0:size, 0:size].astype(np.float32)
  angle, offset = rng.uniform(0, np.pi), rng.uniform(0.2, 0.8) * size
  distance = np.abs((x - size / 2) * np.sin(angle) -
                    (y - size / 2) * np.cos(angle) + offset - size / 2)
  return distance < 0.8


def make_landscape(rng, size, period=None):
  """The fixed ground of one tile (or of a region `size` px across).

  Lakes, forests and texture have the feature sizes of a `period`-px tile
  (default `size`): a region larger than `period` holds more of them, not
  larger ones.
  """
  scale = size / (period or size)
  cells = lambda n: max(1, round(n * scale))
  labels, n = _parcels(rng, size)
  water = cloud_shapes.fractal_noise(rng, size, cells(2)) < -rng.uniform(1.3, 3.0)
  if rng.random() < RIVER_PROB:
    water |= _river(rng, size)
  forest = (cloud_shapes.fractal_noise(rng, size, cells(3)) > rng.uniform(0.5, 1.2)) & (
      ~water)
  road = np.zeros((size, size), bool)
  if rng.random() < ROAD_PROB:
    road = _road(rng, size) & ~water
  margin = np.zeros((size, size), bool)
  margin[1:] |= labels[1:] != labels[:-1]
  margin[:, 1:] |= labels[:, 1:] != labels[:, :-1]
  return Landscape(
      labels=labels,
      kind=rng.choice(len(KIND_PROBS), n, p=KIND_PROBS),
      sowing=(rng.choice(rng.random(CROP_TYPES), n) +
              rng.normal(0.0, SOWING_SPREAD, n)),
      tint=rng.normal(0.0, 5.0, (n, 3)).astype(np.float32),
      forest=forest, water=water, road=road, margin=margin,
      texture=6.0 * cloud_shapes.fractal_noise(rng, size, cells(16)))


def _crop_colour(phase):
  """(P,) phases in [0, 1) of the crop cycle -> (P, 3) colours."""
  sown, grown, ripe = CYCLE
  grow = cloud_shapes.smoothstep((phase - sown) / (grown - sown))[:, None]
  ripen = cloud_shapes.smoothstep((phase - grown) / (ripe - grown))[:, None]
  harvested = (phase >= ripe)[:, None]
  colour = WET_SOIL + grow * (GREEN - WET_SOIL)
  colour = colour + ripen * (RIPE - colour)
  return np.where(harvested, SOIL, colour)


def render(land, day):
  """(S, S, 3) float32 ground colours on `day` (fraction of the year)."""
  phase = (day - land.sowing) % 1.0
  season = np.float32(0.5 + 0.5 * np.cos(2 * np.pi * (day - 0.55)))  # summer 1
  palette = np.where((land.kind == 0)[:, None], _crop_colour(phase),
                     np.where((land.kind == 1)[:, None],
                              GRASS + (1 - season) * (SOIL - GRASS) * 0.4,
                              BUILT)).astype(np.float32)
  ground = (palette + land.tint)[land.labels]
  ground[land.margin] = 0.6 * ground[land.margin] + 0.4 * GRASS
  ground[land.forest] = BARE_FOREST + season * (FOREST - BARE_FOREST)
  ground[land.road] = ROAD
  ground[land.water] = WATER
  ground += land.texture[..., None] * np.where(
      land.water, np.float32(0.3), np.float32(1.0))[..., None]
  return ground


def relief(rng, size, cells, slope):
  """(S, S, 2) float32 terrain slopes (d height / dy, d height / dx) of
  fractal hills `cells` across, their standard deviation `slope`."""
  height = cloud_shapes.fractal_noise(rng, size, cells)
  slopes = np.stack(np.gradient(height), axis=-1)
  return (slope * slopes / slopes.std()).astype(np.float32)


def shading(slopes, zenith, azimuth):
  """(S, S) float32 Lambertian illumination of terrain `slopes` (`relief`)
  relative to flat ground, sun at `zenith` and `azimuth` (radians, azimuth
  clockwise from north; rows run south, columns east)."""
  sun = np.array([-np.sin(zenith) * np.cos(azimuth),       # south
                  np.sin(zenith) * np.sin(azimuth),        # east
                  np.cos(zenith)], np.float32)
  normal = np.concatenate([-slopes, np.ones(slopes.shape[:2] + (1,),
                                            np.float32)], axis=-1)
  normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
  return np.maximum(normal @ sun, 0.0) / np.float32(np.cos(zenith))


def compose(ground, clouds, rng, gain, haze, veil=None):
  """(S, S, 3) uint8 image: ground under `clouds` (or None), with the
  date's illumination `gain`, additive `haze` and sensor noise.

  Clouds are brightest where thick and greyer at their thin edges. `gain`
  and `haze` are per channel or per pixel and channel; `veil` (None or
  (S, S) opacity) is thin cloud that no mask flags, beneath `clouds`.
  """
  image = ground * np.float32(gain) + np.float32(haze)
  if veil is not None:
    image += veil[..., None] * (CLOUD - THIN_CLOUD_GREY - image)
  if clouds is not None:
    alpha = clouds.alpha[..., None]
    image *= 1.0 - SHADOW_DARKENING * clouds.shadow[..., None]
    image += alpha * (CLOUD - THIN_CLOUD_GREY * (1.0 - alpha) - image)
  image += SENSOR_NOISE * rng.standard_normal(image.shape, dtype=np.float32)
  return np.clip(image + 0.5, 0, 255).astype(np.uint8)
