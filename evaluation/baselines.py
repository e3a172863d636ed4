"""Cloud-removal baselines computed from an example's inputs alone: the
cloudy input, the least cloudy date, the mosaic, their versions corrected to
the target date's light (a per-date gain and offset), and the composite of a
model's output with the target's clear pixels.

Cubes: `(..., H, W, T·C)` with slot 0's C channels first, masks
`(..., H, W, T)` with 1 = clear. Slot 0 is the truth (never read here), slots
1..T-2 the earlier dates in increasing date order (the context dates), slot
T-1 the cloudy target date.

Pass the `targets` cube (cloudy pixels set to 40): it is what the model sees.
The `image` cube keeps unmasked values, so on train and valid its slot T-1 is
the truth itself.
"""

import numpy as np


def _slots(cube, n_channels):
  """(..., H, W, T·C) -> (..., H, W, T, C)."""
  if cube.shape[-1] % n_channels:
    raise ValueError(f'Cube depth {cube.shape[-1]} is not a multiple of '
                     f'{n_channels} channels.')
  return cube.reshape(cube.shape[:-1] + (-1, n_channels))


def cloudy_input(cube, n_channels):
  """The cloudy reference date as is: slot T-1, (..., H, W, C)."""
  return _slots(np.asarray(cube), n_channels)[..., -1, :]


def _slots_and_masks(cube, mask_cube, n_channels):
  """(..., H, W, T, C) slots of the image cube and its (..., H, W, T) mask
  cube, checked to match."""
  slots = _slots(np.asarray(cube), n_channels)
  mask_cube = np.asarray(mask_cube)
  if mask_cube.shape != slots.shape[:-1]:
    raise ValueError(f'Mask cube {mask_cube.shape} does not match the '
                     f'{slots.shape[:-1]} slots of the image cube.')
  return slots, mask_cube


def _newest_clear(slots, mask_cube):
  """Per pixel, the value of the highest (most recent) of slots 1..T-1 where
  it is clear, (..., H, W, C), and whether there is one, (..., H, W); a pixel
  clear in none of them takes slot T-1."""
  newest_first = mask_cube[..., :0:-1] > 0
  # argmax finds the first clear slot from the end; none clear gives 0: T-1.
  chosen = mask_cube.shape[-1] - 1 - np.argmax(newest_first, axis=-1)
  picked = np.take_along_axis(slots, chosen[..., None, None], axis=-2)
  return picked[..., 0, :], newest_first.any(axis=-1)


def mosaic(cube, mask_cube, n_channels):
  """Each pixel from the most recent date among slots 1..T-1 where it is clear.

  Slots are in date order, so the most recent clear date is the highest clear
  slot: T-1 where the reference date is clear, else the latest earlier date.
  A pixel clear in none of slots 1..T-1 takes slot T-1 (the data pipeline
  drops tiles with such pixels).

  Args:
    cube: (..., H, W, T·C) image cube.
    mask_cube: (..., H, W, T), 1 = clear, 0 = cloud.
    n_channels: C.

  Returns:
    (..., H, W, C), the dtype of `cube`.
  """
  return _newest_clear(*_slots_and_masks(cube, mask_cube, n_channels))[0]


def least_cloudy(cube, mask_cube, n_channels):
  """The input date with the fewest cloudy pixels, whole (cloudy pixels too).

  Among slots 1..T-1 (the inputs, the cloudy reference date included), the
  one whose mask has the most clear pixels; a tie goes to the most recent.

  Args:
    cube: (..., H, W, T·C) image cube.
    mask_cube: (..., H, W, T), 1 = clear, 0 = cloud.
    n_channels: C.

  Returns:
    (..., H, W, C), the dtype of `cube`.
  """
  slots, mask_cube = _slots_and_masks(cube, mask_cube, n_channels)
  clear = (mask_cube[..., 1:] > 0).sum(axis=(-3, -2))     # (..., T-1)
  # argmax finds the first maximum from the end: the newest of a tie.
  chosen = mask_cube.shape[-1] - 1 - np.argmax(clear[..., ::-1], axis=-1)
  index = chosen[..., None, None, None, None]             # (..., 1, 1, 1, 1)
  return np.take_along_axis(slots, index, axis=-2)[..., 0, :]


# Fewest pixels clear in both dates for a least-squares gain: below it the
# slope of a handful of pixels is mostly noise, so only the offset is fitted.
MIN_GAIN_PIXELS = 16
# Sides of `local_corrected_mosaic`'s windows, in pixels, smallest first: a
# pixel takes the fit of the smallest that holds enough clear pixels. The
# 31 px one serves the inside of clouds wider than the 15 px window, which
# the whole image's fit serves badly where light varies across it (+0.5 dB
# per image on the cloudy pixels of docs/benchmark_v2.md's valid split).
LOCAL_WINDOWS = (15, 31)
# similar_pixel_mosaic: the square searched around a cloudy pixel (its
# half side) and the similar pixels averaged, chosen on benchmark v2's valid
# split (docs/beat_classical.md, session 12).
SIMILAR_RADIUS = 7
SIMILAR_COUNT = 8
SIMILAR_FILL = 'similar-pixel corrected mosaic'


def _context_dates(slots, mask_cube):
  """Slots 1..T-2 (the context dates), (..., H, W, T-2, C), and their masks;
  a cube without one is refused."""
  if mask_cube.shape[-1] < 3:
    raise ValueError(f'A cube of {mask_cube.shape[-1]} slots has no context '
                     'date (slots 1..T-2) to correct.')
  return slots[..., 1:-1, :], mask_cube[..., 1:-1]


def _least_squares(source, target, valid, total):
  """Gain, offset and whether the gain was fitted (else 1, offset only),
  from sums `total` over the valid pixels; shapes as `total` leaves them."""
  source, target = np.broadcast_arrays(np.asarray(source, np.float64),
                                       np.asarray(target, np.float64))
  weight = np.broadcast_to(np.asarray(valid, bool)[..., None], source.shape)
  # Invalid pixels are zeroed, not weighted: a NaN there stays out.
  source, target = np.where(weight, source, 0.), np.where(weight, target, 0.)
  return solve_gain_offset(total(weight.astype(np.float64)), total(source),
                           total(target), total(source ** 2),
                           total(source * target))


def solve_gain_offset(count, sum_s, sum_t, sum_ss, sum_st):
  """Gain, offset and whether the gain was fitted (else 1, offset only) of
  `fit_gain_offset`, from the sums over the valid pixels of 1, source,
  target, source² and source · target (sums streamed over a whole scene
  give the scene's fit)."""
  n = np.maximum(count, 1.)
  mean_s, mean_t = sum_s / n, sum_t / n
  var_s = sum_ss / n - mean_s ** 2
  cov = sum_st / n - mean_s * mean_t
  sloped = (count >= MIN_GAIN_PIXELS) & (
      var_s > 1e-10 * np.maximum(mean_s ** 2, 1.))
  gain = np.where(sloped, cov / np.where(sloped, var_s, 1.), 1.)
  offset = np.where(count > 0, mean_t - gain * mean_s, 0.)
  return gain, offset, sloped


def _image_sum(values):
  """Sums over H, W of (..., H, W, C), kept as (..., 1, 1, C)."""
  return values.sum(axis=(-3, -2), keepdims=True)


def fit_gain_offset(source, target, valid):
  """Per image and channel, the least-squares gain and offset from source to
  target values: target ≈ gain · source + offset over the `valid` pixels.

  Fallbacks: with fewer than MIN_GAIN_PIXELS valid pixels, or a source
  constant over them (no slope to fit), the gain is 1 and the offset the
  mean difference target - source; with no valid pixel, the identity (gain
  1, offset 0).

  Args:
    source, target: (..., H, W, C) images (broadcastable to each other).
    valid: (..., H, W), true = pixel used in the fit.

  Returns:
    (gain, offset), each (..., C) float64.
  """
  gain, offset, _ = _least_squares(source, target, valid, _image_sum)
  return gain[..., 0, 0, :], offset[..., 0, 0, :]


def _window_sum(values, window):
  """Sums of (..., H, W, C) over the window × window square centred on each
  pixel, cut at the image's edges."""
  radius = window // 2
  for axis in (-3, -2):
    size = values.shape[axis]
    prefix = np.cumsum(values, axis=axis)
    prefix = np.concatenate([np.zeros_like(np.take(prefix, [0], axis=axis)),
                             prefix], axis=axis)
    index = np.arange(size)
    upper = np.take(prefix, np.minimum(index + radius + 1, size), axis=axis)
    lower = np.take(prefix, np.maximum(index - radius, 0), axis=axis)
    values = upper - lower
  return values


def _corrected_context(slots, mask_cube, windows=(), fit=None):
  """Every context date (slots 1..T-2) in the target's light, (..., H, W,
  T-2, C) float64: `fit_gain_offset` from it to the target (slot T-1) over
  the pixels clear in both (or `fit`, (gain, offset) each (..., T-2, C));
  with `windows`, a gain and offset per pixel fitted in the smallest
  window around it that can fit a gain, the whole image's (or `fit`) where
  none can."""
  dates, clear = _context_dates(slots, mask_cube)
  # Dates first, (..., T-2, H, W, C), to fit one gain per date and channel.
  source = np.moveaxis(dates, -2, -4)
  target = slots[..., -1, :][..., None, :, :, :]
  valid = np.moveaxis((clear > 0) & (mask_cube[..., -1:] > 0), -1, -3)
  if fit is None:
    gain, offset, _ = _least_squares(source, target, valid, _image_sum)
  else:
    gain, offset = (np.asarray(v, np.float64)[..., None, None, :]
                    for v in fit)
  # The widest first: a smaller window's fit replaces it where it has one.
  for window in sorted(windows, reverse=True):
    local_gain, local_offset, sloped = _least_squares(
        source, target, valid, lambda v, w=window: _window_sum(v, w))
    gain = np.where(sloped, local_gain, gain)
    offset = np.where(sloped, local_offset, offset)
  return np.moveaxis(source * gain + offset, -4, -2)


def _as_dtype(values, dtype):
  """Float values in `dtype`: integer dtypes rounded and clipped to their
  range."""
  if np.issubdtype(dtype, np.integer):
    info = np.iinfo(dtype)
    values = np.clip(np.rint(values), info.min, info.max)
  return values.astype(dtype)


def corrected_least_cloudy(cube, mask_cube, n_channels, fit=None):
  """The least cloudy context date, whole, in the target date's light.

  Among slots 1..T-2 (the context dates; the target would be its own
  identity correction) the one with the most clear pixels, a tie going to
  the most recent, mapped per channel by `fit_gain_offset` from it to the
  target (slot T-1) over the pixels clear in both; every pixel is mapped,
  its cloudy ones too (as `least_cloudy` keeps them).

  Args:
    cube: (..., H, W, T·C) image cube; slot 0 (the truth) is never read.
    mask_cube: (..., H, W, T), 1 = clear, 0 = cloud.
    n_channels: C.
    fit: (gain, offset), each (..., T-2, C), to use instead of fitting
      them on this image (a whole scene's, read block by block).

  Returns:
    (..., H, W, C), the dtype of `cube` (integers rounded and clipped).
  """
  slots, mask_cube = _slots_and_masks(cube, mask_cube, n_channels)
  corrected = _corrected_context(slots, mask_cube, fit=fit)
  counts = (mask_cube[..., 1:-1] > 0).sum(axis=(-3, -2))  # (..., T-2)
  # argmax finds the first maximum from the end: the newest of a tie.
  chosen = counts.shape[-1] - 1 - np.argmax(counts[..., ::-1], axis=-1)
  index = chosen[..., None, None, None, None]
  return _as_dtype(np.take_along_axis(corrected, index, axis=-2)[..., 0, :],
                   slots.dtype)


def _corrected_slots(slots, mask_cube, windows=(), fit=None):
  """The slots (..., H, W, T, C) float64 with the context dates in the
  target's light (`_corrected_context`) and slot 0 (the truth) zeros."""
  return np.concatenate(
      [np.zeros(slots[..., :1, :].shape),
       _corrected_context(slots, mask_cube, windows, fit), slots[..., -1:, :]],
      axis=-2)


def _corrected_newest_clear(cube, mask_cube, n_channels, windows=(),
                            fit=None, fill=None):
  """`mosaic` over the target and its context dates in the target's light
  (`_corrected_context`, with `fit`); fill as `_mosaic_of`."""
  slots, mask_cube = _slots_and_masks(cube, mask_cube, n_channels)
  return _mosaic_of(_corrected_slots(slots, mask_cube, windows, fit),
                    mask_cube, slots.dtype, fill)


def _mosaic_of(corrected, mask_cube, dtype, fill=None):
  """`mosaic` of `_corrected_slots` in `dtype`; a pixel clear in no date
  takes `fill` ((..., C)), by default the per-channel mean of the target's
  clear pixels (slot T-1 as is if it has none)."""
  # Slot 0 (the truth) is zeros: `_newest_clear` never takes it.
  values, found = _newest_clear(corrected, mask_cube)
  if fill is None:
    target_clear = mask_cube[..., -1] > 0
    count = target_clear.sum(axis=(-2, -1))[..., None, None, None]
    mean = _image_sum(np.where(target_clear[..., None], values, 0.)) / (
        np.maximum(count, 1))
    fill = np.where(count > 0, mean, values)
  else:
    fill = np.asarray(fill, np.float64)[..., None, None, :]
  return _as_dtype(np.where(found[..., None], values, fill), dtype)


def corrected_mosaic(cube, mask_cube, n_channels, fit=None, fill=None):
  """`mosaic` of the context dates corrected to the target date's light.

  Every context date (slots 1..T-2) is mapped per channel by
  `fit_gain_offset` to the target (slot T-1) over the pixels clear in both;
  then each pixel takes the target's own value where the target is clear
  (as `mosaic` does), else the most recent context date's corrected value
  where that date is clear. A pixel clear in no date takes the per-channel
  mean of the target's clear pixels (the target date as is if none is
  clear; the data pipeline drops tiles with such pixels).

  Args:
    cube: (..., H, W, T·C) image cube; slot 0 (the truth) is never read.
    mask_cube: (..., H, W, T), 1 = clear, 0 = cloud.
    n_channels: C.
    fit: as `corrected_least_cloudy`.
    fill: (..., C), the value of a pixel clear in no date instead of the
      mean of this image's clear target pixels.

  Returns:
    (..., H, W, C), the dtype of `cube` (integers rounded and clipped).
  """
  return _corrected_newest_clear(cube, mask_cube, n_channels, fit=fit,
                                 fill=fill)


def local_corrected_mosaic(cube, mask_cube, n_channels,
                           windows=LOCAL_WINDOWS, fit=None, fill=None):
  """`corrected_mosaic` with a gain and offset per pixel, fitted in a
  square window around it.

  The moving-window gain/offset is the classical local linear histogram
  matching of Landsat 7's SLC-off gap filling (USGS): a global correction
  cannot follow light or haze that varies across the image, a local one can,
  at the cost of a few box sums. A pixel takes the fit of the smallest of
  `windows` that holds at least MIN_GAIN_PIXELS pixels clear in both dates
  (and no constant date), the whole image's gain and offset where none
  does; fill as `corrected_mosaic`.

  Args:
    cube: (..., H, W, T·C) image cube; slot 0 (the truth) is never read.
    mask_cube: (..., H, W, T), 1 = clear, 0 = cloud.
    n_channels: C.
    windows: odd sides of the windows, in pixels.
    fit, fill: as `corrected_mosaic`.

  Returns:
    (..., H, W, C), the dtype of `cube` (integers rounded and clipped).
  """
  for window in windows:
    if window < 1 or window % 2 == 0:
      raise ValueError(f'A window side must be odd and positive, got '
                       f'{window}.')
  return _corrected_newest_clear(cube, mask_cube, n_channels, windows, fit,
                                 fill)


def _similar_shift(values, error, usable, radius, count):
  """`similar_pixel_mosaic`'s correction of one image: the mean `error`
  (H, W, C) of the `count` `usable` (H, W) pixels within `radius` whose
  `values` (H, W, C) are nearest each pixel's, and whether it has that
  many, (H, W)."""
  height, width = usable.shape
  pad = ((radius, radius), (radius, radius))
  padded_values = np.pad(values, pad + ((0, 0),))
  padded_error = np.pad(error, pad + ((0, 0),))
  padded_usable = np.pad(usable, pad)
  offsets = [(slice(dy, dy + height), slice(dx, dx + width))
             for dy in range(2 * radius + 1) for dx in range(2 * radius + 1)]
  distances = np.empty((height, width, len(offsets)), np.float32)
  for i, window in enumerate(offsets):
    distances[..., i] = np.where(
        padded_usable[window],
        np.square(padded_values[window] - values).sum(axis=-1), np.inf)
  # A tie goes to the earlier offset (row by row), as the pipeline's twin.
  nearest = np.argsort(distances, axis=-1, kind='stable')[..., :count]
  enough = np.isfinite(
      np.take_along_axis(distances, nearest, axis=-1)).all(axis=-1)
  shift = np.zeros_like(error)
  for i, window in enumerate(offsets):
    chosen = (nearest == i).any(axis=-1)
    shift += np.where(chosen[..., None], padded_error[window], 0)
  return shift / count, enough


def similar_pixel_mosaic(cube, mask_cube, n_channels, fit=None, fill=None,
                         radius=SIMILAR_RADIUS, count=SIMILAR_COUNT):
  """`local_corrected_mosaic` corrected again where the target is cloudy,
  by the error its context makes on similar clear pixels nearby.

  The similar-pixel idea of gap filling (NSPI, Chen et al. 2011): pixels of
  the same land cover close by changed alike since the context dates, which
  one gain and offset per window cannot follow (a window spans parcels
  that changed differently). Where the target is clear, the corrected
  context (the newest clear corrected context date, as the fill would take
  it) differs from the target by an error. Each cloudy pixel adds the mean
  error of the `count` clear target pixels within `radius` whose corrected
  context values are nearest its own; with fewer such pixels, or no clear
  context date, it keeps the local corrected mosaic.

  Args:
    cube, mask_cube, n_channels, fit, fill: as `local_corrected_mosaic`.
    radius: half the side of the square searched, in pixels.
    count: similar pixels averaged.

  Returns:
    (..., H, W, C), the dtype of `cube` (integers rounded and clipped).
  """
  slots, mask_cube = _slots_and_masks(cube, mask_cube, n_channels)
  corrected = _corrected_slots(slots, mask_cube, LOCAL_WINDOWS, fit)
  fill = _mosaic_of(corrected, mask_cube, slots.dtype, fill)
  # The newest clear corrected context date: the target masked.
  masks = np.concatenate([mask_cube[..., :-1],
                          np.zeros_like(mask_cube[..., -1:])], axis=-1)
  values, found = _newest_clear(corrected, masks)
  values = values.astype(np.float32)
  clear = mask_cube[..., -1] > 0
  error = (slots[..., -1, :] - values).astype(np.float32)
  usable = clear & found
  # One image at a time: the candidates' distances are (H, W, window²).
  height, width, channels = values.shape[-3:]
  images = zip(values.reshape(-1, height, width, channels),
               error.reshape(-1, height, width, channels),
               usable.reshape(-1, height, width))
  shifts, enough = zip(*(_similar_shift(*image, radius, count)
                         for image in images))
  shift = np.stack(shifts).reshape(values.shape)
  enough = np.stack(enough).reshape(clear.shape)
  corrected = ~clear & found & enough
  return _as_dtype(np.where(corrected[..., None], fill + shift, fill),
                   slots.dtype)


# Every fill by its table name: name -> fn(cube, mask_cube, n_channels) ->
# (..., H, W, C), from the inputs alone.
FILLS = {
    'cloudy input': lambda cube, _, n_channels: cloudy_input(cube,
                                                             n_channels),
    'least cloudy': least_cloudy,
    'mosaic': mosaic,
    'corrected least cloudy': corrected_least_cloudy,
    'corrected mosaic': corrected_mosaic,
    'local corrected mosaic': local_corrected_mosaic,
    SIMILAR_FILL: similar_pixel_mosaic,
}


# The best fills made at full resolution, area-resized to a lower one (the
# core's side; `jobs.evaluate.resized_fill`, which resizes as the data
# pipeline does): at the lower side, made from the inputs there, they lose
# dates to the coarser cloud mask and light to the wider window. Name ->
# the fill resized.
RESIZED_FILL = 'resized local corrected mosaic'
RESIZED_FILLS = {RESIZED_FILL: 'local corrected mosaic',
                 f'resized {SIMILAR_FILL}': SIMILAR_FILL}


def fill_8bit(name, cube, mask_cube, n_channels):
  """FILLS[name] of an 8-bit cube held in a wider integer dtype (the data
  pipeline's int32), as uint8: a corrected value that overshoots 0..255 is
  clipped, not wrapped round."""
  return np.clip(FILLS[name](cube, mask_cube, n_channels), 0,
                 255).astype(np.uint8)


def composite(output, cube, mask_cube, n_channels):
  """A model's output where the target date is cloudy, the target's own
  pixels where it is clear: what `predict.py` writes.

  Args:
    output: (..., H, W, C) images.
    cube: (..., H, W, T·C) image cube; slot T-1 is the target date.
    mask_cube: (..., H, W, T), 1 = clear; its slot T-1 is the target's.
    n_channels: C.

  Returns:
    (..., H, W, C), the dtype of `output`.
  """
  output = np.asarray(output)
  target = cloudy_input(cube, n_channels)
  clear = np.asarray(mask_cube)[..., -1:] > 0
  if target.shape != output.shape or clear.shape != output.shape[:-1] + (1,):
    raise ValueError(f'Outputs {output.shape}, cube {np.shape(cube)} and '
                     f'masks {np.shape(mask_cube)} do not match.')
  return np.where(clear, target, output).astype(output.dtype)
