"""Cloud-removal baselines computed from an example's inputs alone:
the cloudy input, the least cloudy date and the mosaic; and the
composite of a model's output with the target's clear pixels.

Cubes follow the pipeline: `(..., H, W, T·C)` with slot 0's C channels first,
masks `(..., H, W, T)` with 1 = clear. Slot 0 is the target, slots 1..T-2 the
earlier dates in increasing date order, slot T-1 the cloudy reference date.

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
  slots, mask_cube = _slots_and_masks(cube, mask_cube, n_channels)
  newest_first = mask_cube[..., :0:-1] > 0
  # argmax finds the first clear slot from the end; none clear gives 0: T-1.
  chosen = mask_cube.shape[-1] - 1 - np.argmax(newest_first, axis=-1)
  return np.take_along_axis(slots, chosen[..., None, None], axis=-2)[..., 0, :]


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
