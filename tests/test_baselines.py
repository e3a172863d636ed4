"""Tests for evaluation/baselines.py."""

import numpy as np
import pytest

from evaluation import baselines


def _cube(values):
  """(T, C) per-slot constant values -> a (1, 2, 2, T·C) cube."""
  return np.broadcast_to(np.asarray(values, np.uint8).reshape(-1),
                         (1, 2, 2, np.size(values))).copy()


def test_cloudy_input_is_last_slot():
  cube = _cube([[0, 1], [10, 11], [20, 21], [30, 31]])
  out = baselines.cloudy_input(cube, n_channels=2)
  assert out.shape == (1, 2, 2, 2)
  np.testing.assert_array_equal(out, np.broadcast_to([30, 31], (1, 2, 2, 2)))


def test_mosaic_hand_made():
  # T = 4 slots, C = 2 channels; slot s has values (10·s + 1, 10·s + 2).
  cube = _cube([[1, 2], [11, 12], [21, 22], [31, 32]])
  # Per pixel, the clear flags of slots 0..3 (slot 0 is never used):
  mask = np.array([[[1, 1, 1, 1],    # reference clear       -> slot 3
                    [1, 1, 1, 0]],   # newest earlier clear  -> slot 2
                   [[0, 1, 0, 0],    # only the oldest clear -> slot 1
                    [1, 0, 0, 0]]],  # clear nowhere         -> slot 3
                  np.uint8)[None]
  expected = np.array([[[31, 32], [21, 22]],
                       [[11, 12], [31, 32]]], np.uint8)[None]
  out = baselines.mosaic(cube, mask, n_channels=2)
  assert out.dtype == np.uint8
  np.testing.assert_array_equal(out, expected)


def test_mosaic_unbatched_single_channel():
  cube = np.arange(3, dtype=np.uint8).reshape(1, 1, 3) + np.zeros(
      (2, 1, 3), np.uint8)
  mask = np.array([[[1, 1, 0]], [[1, 0, 1]]])
  np.testing.assert_array_equal(baselines.mosaic(cube, mask, 1),
                                [[[1]], [[2]]])


def test_mosaic_rejects_mismatched_masks():
  with pytest.raises(ValueError, match='does not match'):
    baselines.mosaic(_cube([[1], [2], [3]]), np.ones((1, 2, 2, 4)), 1)


def test_least_cloudy_hand_made():
  # T = 4, C = 2; slot s has values (10·s + 1, 10·s + 2). Clear pixels of
  # slots 1..3 (of 4): per example below.
  cube = np.concatenate([_cube([[1, 2], [11, 12], [21, 22], [31, 32]])] * 3)
  mask = np.ones((3, 2, 2, 4), np.uint8)
  mask[0, 0, :, 3] = 0          # slots 1, 2 whole, 3 half: slot 2 (newest)
  mask[1, :, :, 1:3] = 0        # 1, 2 cloudy, 3 whole: slot 3
  mask[1, 0, 0, 2] = 1
  mask[2, :, :, 2:] = 0         # 1 whole: slot 1
  out = baselines.least_cloudy(cube, mask, n_channels=2)
  assert out.shape == (3, 2, 2, 2) and out.dtype == np.uint8
  for i, value in enumerate([21, 31, 11]):
    np.testing.assert_array_equal(out[i, ..., 0], np.full((2, 2), value))
  # Unbatched.
  np.testing.assert_array_equal(baselines.least_cloudy(cube[2], mask[2], 2),
                                out[2])


def test_composite_keeps_clear_target_pixels():
  cube = _cube([[1, 2], [11, 12], [21, 22], [31, 32]])
  mask = np.ones((1, 2, 2, 4), np.uint8)
  mask[0, 1, 0, 3] = 0          # the target is cloudy at (1, 0) only
  output = np.full((1, 2, 2, 2), 99, np.uint8)
  out = baselines.composite(output, cube, mask, n_channels=2)
  expected = np.broadcast_to([31, 32], (1, 2, 2, 2)).copy()
  expected[0, 1, 0] = 99
  np.testing.assert_array_equal(out, expected)
  with pytest.raises(ValueError, match='do not match'):
    baselines.composite(output[..., :1], cube, mask, 2)
