"""Fractal cloud shapes (numpy and pillow), seeded by a numpy Generator.

`make_clouds` draws the clouds of the synthetic data makers (`tools/`):
opacity with soft edges, offset shadows, and a mask covering both, within a
cover range on every central crop; `cover_clouds` the same shapes with an
exact cover of the whole tile and a faint fringe outside the mask.
`clear_masks` draws the procedural synthetic clouds of training
(`config.synthetic_clouds='procedural'`): the same shapes as clear-masks,
with a cover inside a band on one central crop.
"""

import dataclasses
import math

import numpy as np
from PIL import Image

# Noise octaves start at this many cells across; soft-edge width (in noise
# standard deviations).
CLOUD_CELLS, CLOUD_SOFTNESS = 3, 0.8
# Crops (fractions of the side) on which `make_clouds` checks the cover.
CHECK_CROPS = (0.5, 2 / 3, 0.75, 7 / 8, 1.0)


def fractal_noise(rng, size, cells, persistence=0.55):
  """(size, size) float32 fractal noise, zero mean, unit deviation.

  Octaves of bicubically enlarged random grids, from `cells` across to one
  cell per two pixels, each weighted `persistence` times the previous.
  """
  total = np.zeros((size, size), np.float32)
  weight = 1.0
  while cells <= size // 2:
    grid = rng.random((cells + 1, cells + 1), dtype=np.float32)
    total += weight * np.asarray(
        Image.fromarray(grid).resize((size, size), Image.BICUBIC))
    weight *= persistence
    cells *= 2
  return (total - total.mean()) / (total.std() + 1e-6)


def smoothstep(x):
  x = np.clip(x, 0.0, 1.0)
  return x * x * (3.0 - 2.0 * x)


def central_crop(array, size):
  """The central (size, size) window of (H, W, ...); a short side is kept."""
  top = max(array.shape[0] - size, 0) // 2
  left = max(array.shape[1] - size, 0) // 2
  return array[top:top + size, left:left + size]


@dataclasses.dataclass(frozen=True)
class Clouds:
  alpha: np.ndarray     # (S, S) float32 cloud opacity
  shadow: np.ndarray    # (S, S) float32 shadow strength
  mask: np.ndarray      # (S, S) bool cloud or shadow


def crop_coverages(mask):
  """Cloud cover (%) of `mask` on each central crop of CHECK_CROPS."""
  size = mask.shape[0]
  return [100.0 * central_crop(mask, max(1, round(size * f))).mean()
          for f in CHECK_CROPS]


def _cloud_field(rng, size):
  """(noise, shadow_noise), (size, size) float32: the clouds' fractal noise
  and the same noise shifted a few pixels, the shadow's."""
  noise = fractal_noise(rng, size, CLOUD_CELLS)
  shift = rng.integers(2, max(3, size // 10) + 1, 2) * rng.choice([-1, 1], 2)
  return noise, np.roll(noise, tuple(shift), axis=(0, 1)) - 0.3


def _target_cover(rng, low, high):
  """A cover (%) from the middle half of low..high."""
  return low + (high - low) * rng.uniform(0.25, 0.75)


def make_clouds(rng, size, low, high, tries=20):
  """Fractal clouds whose mask covers low..high % of every central crop.

  The threshold gives a cover from the middle half of the range on the 3/4
  central crop; the draw is repeated until every crop of CHECK_CROPS is in
  range.
  """
  for _ in range(tries):
    noise, shadow_noise = _cloud_field(rng, size)
    field = np.maximum(noise, shadow_noise)
    target = _target_cover(rng, low, high)
    threshold = np.quantile(central_crop(field, round(size * 0.75)),
                            1.0 - target / 100.0)
    mask = field > threshold
    if all(low <= c <= high for c in crop_coverages(mask)):
      alpha = 0.97 * smoothstep((noise - threshold) / CLOUD_SOFTNESS)
      shadow = smoothstep((shadow_noise - threshold) / CLOUD_SOFTNESS)
      return Clouds(alpha.astype(np.float32),
                    (shadow * (1.0 - alpha)).astype(np.float32), mask)
  raise RuntimeError(f'No cloud with {low}..{high} % coverage in {tries} '
                     f'draws at size {size}; use a larger --size.')


def _shade(noise, shadow_noise, mask, start, width):
  """Clouds whose opacity and shadow rise from 0 at noise `start` to full
  `width` noise deviations above it."""
  alpha = 0.97 * smoothstep((noise - start) / width)
  shadow = smoothstep((shadow_noise - start) / width)
  return Clouds(alpha.astype(np.float32),
                (shadow * (1.0 - alpha)).astype(np.float32), mask)


def cover_clouds(rng, size, cover, fringe):
  """Fractal clouds whose mask covers round(cover * size²) pixels of the
  tile, with a fringe the mask misses.

  Opacity and shadow start `fringe` noise deviations below the mask's
  threshold, so a faint rim of cloud and shadow lies outside the mask, as
  real cloud masks miss thin edges (fringe 0: none).

  Args:
    rng: a numpy Generator.
    size: tile side.
    cover: fraction of the tile under cloud or shadow, 0..1.
    fringe: non-negative, in noise standard deviations.
  """
  noise, shadow_noise = _cloud_field(rng, size)
  field = np.maximum(noise, shadow_noise)
  count = round(cover * field.size)
  ranked = np.sort(field, axis=None)[::-1]
  threshold = ranked[count] if count < field.size else ranked[-1] - 1.0
  return _shade(noise, shadow_noise, field > threshold, threshold - fringe,
                CLOUD_SOFTNESS + fringe)


def cloudy_count_range(pixels, low, high):
  """(fewest, most): the numbers of cloudy pixels among `pixels` whose share
  is above `low` % and at most `high` % (fewest > most if there is none)."""
  fewest = math.floor(low * pixels / 100.0)
  while 100.0 * fewest / pixels <= low:
    fewest += 1
  most = math.floor(high * pixels / 100.0) + 1
  while most > 0 and 100.0 * most / pixels > high:
    most -= 1
  return fewest, min(most, pixels)


def clear_mask(rng, shape, window, low, high):
  """(H, W) bool clear-mask (True = clear) of fractal clouds and their
  shadows, more than `low` and at most `high` % cloudy in the central
  (window, window) crop; the cover is drawn from the middle half of the band.

  Raises:
    ValueError: no pixel count of that crop has a cover in the band.
  """
  noise, shadow_noise = _cloud_field(rng, max(shape))
  field = np.maximum(noise, shadow_noise)[:shape[0], :shape[1]]
  centre = central_crop(field, window).ravel()
  fewest, most = cloudy_count_range(centre.size, low, high)
  if fewest > most:
    raise ValueError(f'No cloud cover above {low} % and at most {high} % '
                     f'exists on {centre.size} pixels.')
  count = round(centre.size * _target_cover(rng, low, high) / 100.0)
  count = min(max(count, fewest), most)
  threshold = np.partition(centre, centre.size - count)[centre.size - count]
  return field < threshold


def clear_masks(seed, count, shape, window, low, high):
  """`count` masks of `clear_mask` from one Generator seeded with `seed` (an
  int or a sequence of non-negative ints): (count, H, W) bool."""
  rng = np.random.default_rng(seed)
  return np.stack([clear_mask(rng, shape, window, low, high)
                   for _ in range(count)])
