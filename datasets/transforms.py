"""Graph-safe transforms of one example, used inside tf.data.map.

What an example is: docs/design.md, Data.

Cubes are (H, W, T·K): the K values of slot 0 first, then slot 1, and so on.
Masks are 1 = clear, 0 = cloud.
"""

import tensorflow as tf

from datasets import keys

# Value of every channel of a cloudy pixel in the `targets` cubes.
MASK_VALUE = 40
# ITU-R BT.601 luma weights, for n_channels = 1.
GRAY_WEIGHTS = (0.299, 0.587, 0.114)
# config.n_channels -> the channel counts an image file may have.
ACCEPTED_CHANNELS = {1: (1, 3), 3: (3,), 4: (4,)}
# Augmentation of dark scenes (config.use_augmentation).
CONTRAST_FACTOR, CONTRAST_PROB = 1.5, 0.5
GAIN_FACTOR, GAIN_PROB = 3.0, 0.7


def decode_native(contents):
  """PNG/JPEG bytes -> (H, W, c) uint8 with the file's own channels c.

  16-bit PNGs keep their high byte (v // 256): this is the one place where
  16-bit images are read, at start-up and in the pipeline alike.
  """
  return tf.io.decode_image(contents, channels=0, expand_animations=False)


def decode_image(contents, n_channels, path=''):
  """PNG/JPEG bytes -> (H, W, n_channels) uint8.

  The file must have one of ACCEPTED_CHANNELS[n_channels] channels: RGB for
  3 (RGBA for 4); for 1, grayscale as is or RGB turned into luma. Any other
  count fails naming `path`.
  """
  image = decode_native(contents)
  channels = tf.shape(image)[-1]
  accepted = ACCEPTED_CHANNELS[n_channels]
  check = tf.debugging.Assert(
      tf.reduce_any(tf.equal(channels, accepted)),
      [f'An image does not have the {" or ".join(map(str, accepted))} '
       f'channel(s) that config.n_channels={n_channels} reads; convert it. '
       'File and channels:', path, channels])
  with tf.control_dependencies([check]):
    if n_channels == 1:
      image = tf.cond(tf.equal(channels, 3), lambda: _luma(image),
                      lambda: image[..., :1])
  return tf.ensure_shape(image, [None, None, n_channels])


def _luma(rgb):
  luma = tf.tensordot(tf.cast(rgb, tf.float32), tf.constant(GRAY_WEIGHTS), 1)
  return tf.cast(tf.round(luma), tf.uint8)[..., tf.newaxis]


def decode_clear_mask(contents, flip):
  """Mask bytes -> (H, W) bool, True = clear.

  Read by value at any bit depth: clear = every colour channel (alpha aside)
  is 0, or with `flip` is the maximum of its depth (255 for 8 bits, 65535
  for 16 bits, i.e. `255 - m` = 0 for 8-bit masks). Used by the start-up
  scan and the pipeline alike.
  """
  mask = tf.io.decode_image(contents, channels=0, dtype=tf.uint16,
                            expand_animations=False)
  channels = tf.shape(mask)[-1]
  colours = tf.where(tf.equal(channels % 2, 0), channels - 1, channels)
  value = tf.constant(65535 if flip else 0, tf.uint16)
  return tf.reduce_all(tf.equal(mask[..., :colours], value), axis=-1)


def to_slots(dates):
  """T-1 per-date (H, W, K) tensors, oldest first -> (H, W, T·K) slot cube.

  Slot 0 is the last date (the reference), slots 1..T-1 are the dates in
  order, so the reference appears first and last.
  """
  return tf.concat([dates[-1]] + list(dates), axis=-1)


def brighten(cube, seed):
  """The training augmentation on a (H, W, N) uint8 cube, one draw.

  Contrast x1.5 (around each channel's mean) with probability 0.5, then
  values x3 with probability 0.7, clipped to 0..255 and rounded.
  """
  draws = tf.random.stateless_uniform([2], seed)
  x = tf.cast(cube, tf.float32) / 255.0
  x = tf.cond(draws[0] < CONTRAST_PROB,
              lambda: tf.image.adjust_contrast(x, CONTRAST_FACTOR), lambda: x)
  x = tf.clip_by_value(x, 0.0, 1.0) * 255.0
  x = tf.cond(draws[1] < GAIN_PROB, lambda: x * GAIN_FACTOR, lambda: x)
  return tf.cast(tf.round(tf.clip_by_value(x, 0.0, 255.0)), tf.uint8)


def crop_window(shape, resolution, seed=None):
  """(top, left, side) of the square crop of an image of `shape` (H, W, ...).

  The side is `resolution`, or min(H, W) if the image is not square; the
  offset is random with a stateless `seed` (shape (2,)), central without.
  """
  height, width = shape[0], shape[1]
  side = tf.where(tf.equal(height, width), resolution,
                  tf.minimum(height, width))
  if seed is None:
    return (height - side) // 2, (width - side) // 2, side
  room = tf.cast(tf.stack([height, width]) - side + 1, tf.float32)
  top_left = tf.cast(tf.random.stateless_uniform([2], seed) * room, tf.int32)
  return top_left[0], top_left[1], side


def crop(image, window):
  """Crops (H, W, N) to the (top, left, side) `window`."""
  top, left, side = window
  return tf.image.crop_to_bounding_box(image, top, left, side, side)


def area_resize(cube, size):
  """Area resize (antialiased) of (..., H, W, N) to (size, size), float32.

  An input already of that size is returned as is (the resize would copy it).
  """
  x = tf.cast(cube, tf.float32)
  same = tf.reduce_all(tf.equal(tf.shape(x)[-3:-1], size))
  out = tf.cond(same, lambda: x, lambda: tf.image.resize(
      x, (size, size), method='area', antialias=True))
  out.set_shape(x.shape[:-3].concatenate([size, size]).concatenate(
      x.shape[-1:]))
  return out


def resize_values(cube, size):
  """Area resize of (..., H, W, N) values to `size`, rounded, int32."""
  return tf.cast(tf.round(area_resize(cube, size)), tf.int32)


def resize_mask(mask, size):
  """Area resize of a (..., H, W, N) 0/1 mask, kept binary.

  A pixel is clear (1) only if more than half of its area is clear; an exact
  half counts as cloud, the safe side for a clear-mask.
  """
  return tf.cast(area_resize(mask, size) > 0.5, tf.int32)


def split_slots(cube, n_channels):
  """(..., T·C) -> (..., T, C)."""
  shape = tf.shape(cube)
  return tf.reshape(cube, tf.concat([shape[:-1], [-1, n_channels]], axis=0))


def mask_targets(image, mask, n_channels):
  """(H, W, T·C) image, (H, W, T) mask -> targets with cloudy pixels = 40."""
  clear = tf.cast(mask, tf.bool)[..., tf.newaxis]
  targets = tf.where(clear, split_slots(image, n_channels),
                     tf.cast(MASK_VALUE, image.dtype))
  return tf.reshape(targets, tf.shape(image))


# config.context_correction: how the context dates reach the models.
CONTEXT_CORRECTIONS = ('none', 'global', 'local')
# As the classical fills (evaluation/baselines.py): fewest pixels for a
# fitted gain, and the sides of the local fit's windows, smallest first.
MIN_GAIN_PIXELS = 16
LOCAL_WINDOWS = (15, 31)


def _window_sum(values, window, axes):
  """Sums of `values` over the window × window square centred on each
  pixel (along `axes`, the image's rows and columns), cut at the edges."""
  radius = window // 2
  for axis in axes:
    size = tf.shape(values)[axis]
    prefix = tf.cumsum(values, axis=axis)
    zero = tf.zeros_like(tf.gather(prefix, [0], axis=axis))
    prefix = tf.concat([zero, prefix], axis=axis)
    index = tf.range(size)
    upper = tf.gather(prefix, tf.minimum(index + radius + 1, size), axis=axis)
    lower = tf.gather(prefix, tf.maximum(index - radius, 0), axis=axis)
    values = upper - lower
  return values


def _gain_offset(source, target, valid, total):
  """Least-squares gain and offset from source to target over the `valid`
  pixels, from sums `total`, and whether the gain could be fitted (else 1,
  the offset alone; no valid pixel: the identity)."""
  weight = tf.cast(valid, tf.float64)
  sums = [total(v) for v in (weight, weight * source, weight * target,
                             weight * source * source, weight * source * target)]
  count, sum_s, sum_t, sum_ss, sum_st = sums
  n = tf.maximum(count, 1.)
  mean_s, mean_t = sum_s / n, sum_t / n
  var_s = sum_ss / n - mean_s ** 2
  cov = sum_st / n - mean_s * mean_t
  sloped = (count >= MIN_GAIN_PIXELS) & (
      var_s > 1e-10 * tf.maximum(mean_s ** 2, 1.))
  gain = tf.where(sloped, cov / tf.where(sloped, var_s, 1.), 1.)
  offset = tf.where(count > 0, mean_t - gain * mean_s, 0.)
  return gain, offset, sloped


def _corrected_dates(slots, clear, method):
  """The context dates of float64 `slots` (..., H, W, T, C) in the target's
  light, unrounded, (..., H, W, T-2, C): `correct_context`'s fit, `clear`
  (..., H, W, T) bool."""
  dates, target = slots[..., 1:-1, :], slots[..., -1:, :]
  valid = (clear[..., 1:-1] & clear[..., -1:])[..., None]
  image_sum = lambda v: tf.reduce_sum(v, axis=[-4, -3], keepdims=True)
  gain, offset, _ = _gain_offset(dates, target, valid, image_sum)
  # The widest first: a smaller window's fit replaces it where it has one.
  for window in sorted(LOCAL_WINDOWS if method == 'local' else (),
                       reverse=True):
    local_gain, local_offset, sloped = _gain_offset(
        dates, target, valid,
        lambda v, w=window: _window_sum(v, w, (-4, -3)))
    gain = tf.where(sloped, local_gain, gain)
    offset = tf.where(sloped, local_offset, offset)
  return dates * gain + offset


def correct_context(targets, mask, n_channels, method):
  """The context dates (slots 1..T-2) of a `targets` cube in the light of
  the target date (slot T-1), for the models to read.

  Per date and channel, the least-squares gain and offset from the date to
  the target over the pixels clear in both, as the classical corrected
  fills (evaluation/baselines.py) fit them: over the whole image
  ('global'), or in a square around each pixel ('local': the smallest of
  LOCAL_WINDOWS that can fit a gain, the whole image's fit where none
  can). Clear pixels take the corrected value, rounded and clipped to
  0..255; cloudy ones keep MASK_VALUE; slots 0 and T-1 are unchanged.
  'none' returns `targets`.

  Args:
    targets: (..., H, W, T·C) integer cube, cloudy pixels = MASK_VALUE.
    mask: (..., H, W, T), 1 = clear.
    n_channels: C.
    method: one of CONTEXT_CORRECTIONS.
  """
  if method not in CONTEXT_CORRECTIONS:
    raise ValueError(f'config.context_correction={method!r} must be one of '
                     f'{CONTEXT_CORRECTIONS}.')
  if method == 'none':
    return targets
  slots = tf.cast(split_slots(targets, n_channels), tf.float64)
  clear = tf.cast(mask, tf.bool)
  corrected = tf.clip_by_value(
      tf.round(_corrected_dates(slots, clear, method)), 0., 255.)
  corrected = tf.where(clear[..., 1:-1, None], corrected,
                       tf.cast(MASK_VALUE, tf.float64))
  cube = tf.concat([slots[..., :1, :], corrected, slots[..., -1:, :]],
                   axis=-2)
  return tf.reshape(tf.cast(cube, targets.dtype), tf.shape(targets))


# config.prior_fill: the classical fill a model's prior starts from.
PRIOR_FILLS = ('local', 'similar')
# As evaluation/baselines.py's similar-pixel fill: the side's half of the
# square searched, and the similar pixels averaged.
SIMILAR_RADIUS = 7
SIMILAR_COUNT = 8


def _newest(dates, clear):
  """Per pixel the newest of `dates` (..., H, W, D, C) where `clear`
  (..., H, W, D) bool, (..., H, W, C) (zeros where none), and whether one
  is, (..., H, W)."""
  value = tf.zeros_like(dates[..., 0, :])
  for d in range(int(clear.shape[-1])):
    value = tf.where(clear[..., d:d + 1], dates[..., d, :], value)
  return value, tf.reduce_any(clear, axis=-1)


def _patches(cube, radius):
  """(N, H, W, (2·radius+1)², K): each pixel's square of `cube` (N, H, W,
  K), offsets row by row, zeros outside the image."""
  side = 2 * radius + 1
  patches = tf.image.extract_patches(cube, [1, side, side, 1], [1, 1, 1, 1],
                                     [1, 1, 1, 1], 'SAME')
  return tf.reshape(patches, tf.concat(
      [tf.shape(cube)[:3], [side * side, tf.shape(cube)[3]]], 0))


def _similar_shift(values, error, usable, radius, count):
  """The mean `error` (N, H, W, C) of the `count` `usable` (N, H, W) pixels
  within `radius` whose `values` (N, H, W, C) are nearest each pixel's (a
  tie to the earlier offset, row by row), and whether it has that many,
  (N, H, W); evaluation/baselines.py's `_similar_shift`, float32, summed in
  its order."""
  square = tf.square(_patches(values, radius) - values[..., None, :])
  distance = square[..., 0]
  for c in range(1, int(values.shape[-1])):
    distance += square[..., c]
  candidate = _patches(tf.cast(usable, tf.float32)[..., None], radius)
  distance = tf.where(candidate[..., 0] > 0, distance, float('inf'))
  nearest_negated, nearest = tf.math.top_k(-distance, count)
  enough = tf.reduce_all(tf.math.is_finite(nearest_negated), axis=-1)
  # In offset order, as the baseline adds them.
  chosen = tf.gather(_patches(error, radius), tf.sort(nearest, axis=-1),
                     axis=3, batch_dims=3)
  shift = chosen[..., 0, :]
  for k in range(1, count):
    shift += chosen[..., k, :]
  return shift / count, enough


def _with_similar_shift(fill, context, target, target_clear, found):
  """`fill` (..., H, W, C) float64 where each cloudy pixel with a clear
  context date (`found`) that has SIMILAR_COUNT similar clear pixels adds
  their mean error, target − `context` (the newest clear corrected context
  date), rounded: the similar-pixel corrected mosaic."""
  shape = tf.shape(fill)
  images = tf.concat([[-1], shape[-3:]], 0)
  context32 = tf.cast(context, tf.float32)
  error = tf.cast(target - tf.cast(context32, tf.float64), tf.float32)
  shift, enough = _similar_shift(
      tf.reshape(context32, images), tf.reshape(error, images),
      tf.reshape(target_clear & found, images[:-1]), SIMILAR_RADIUS,
      SIMILAR_COUNT)
  shifted = ~target_clear & found & tf.reshape(enough, shape[:-1])
  shift = tf.cast(tf.reshape(shift, shape), tf.float64)
  return tf.where(shifted[..., None], tf.round(fill + shift), fill)


def classical_fill(targets, mask, n_channels, method='local'):
  """The classical fill of a `targets` cube, (..., H, W, C) int32 clipped to
  0..255: evaluation/baselines.py's fills, to the bit.

  'local', the local corrected mosaic: per pixel the target's own value
  where it is clear, else the newest clear context date in the target's
  light (`correct_context`'s 'local' fit), rounded; a pixel clear in no
  date takes the rounded mean of the target's clear pixels per channel
  (slot T-1 as is if none is clear). 'similar', the similar-pixel
  corrected mosaic: a cloudy pixel with a clear context date also adds
  the mean error (target − newest clear corrected context date) of the
  SIMILAR_COUNT clear target pixels within SIMILAR_RADIUS whose corrected
  context is nearest its own, where it has that many.

  Args:
    targets: (..., H, W, T·C) integer cube as the pipeline masks it (the
      inputs as they are, not corrected).
    mask: (..., H, W, T), 1 = clear.
    n_channels: C.
    method: one of PRIOR_FILLS.
  """
  if method not in PRIOR_FILLS:
    raise ValueError(f'config.prior_fill={method!r} must be one of '
                     f'{PRIOR_FILLS}.')
  slots = tf.cast(split_slots(targets, n_channels), tf.float64)
  clear = tf.cast(mask, tf.bool)
  context, found = _newest(_corrected_dates(slots, clear, 'local'),
                           clear[..., 1:-1])
  target, target_clear = slots[..., -1, :], clear[..., -1:]
  count = tf.reduce_sum(tf.cast(target_clear, tf.float64), axis=[-3, -2],
                        keepdims=True)
  mean = tf.reduce_sum(tf.where(target_clear, target, 0.), axis=[-3, -2],
                       keepdims=True) / tf.maximum(count, 1.)
  value = tf.where(found[..., None], context,
                   tf.where(count > 0, mean, target))
  value = tf.round(tf.where(target_clear, target, value))
  if method == 'similar':
    value = _with_similar_shift(value, context, target, target_clear[..., 0],
                                found)
  return tf.cast(tf.clip_by_value(value, 0., 255.), tf.int32)


def channel_slice(cube, channel, n_channels):
  """(..., T·C) cube -> (..., T): channel `channel` of every slot."""
  return tf.gather(split_slots(cube, n_channels), channel, axis=-1)


def cloud_coverage(mask):
  """Percentage (float32) of cloudy pixels of a (H, W) 0/1 clear-mask."""
  return 100.0 * (1.0 - tf.reduce_mean(tf.cast(mask, tf.float32)))


def add_downsampled(example, cubes, low, high):
  """Adds `<key>_<low>` and `<key>_<low>_up_back` for each key of `cubes`.

  `<key>_<low>` is the (high, high) cube area-resized to (low, low);
  `_up_back` is that resized back to (high, high). Keys starting with 'mask'
  stay binary (see `resize_mask`), the others are rounded values.
  """
  for key in cubes:
    resize = resize_mask if key.startswith('mask') else resize_values
    down = resize(example[key], low)
    example[keys.downsampled(key, low)] = down
    example[keys.up_back(key, low)] = resize(down, high)
  return example
