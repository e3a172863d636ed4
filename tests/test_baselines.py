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


def _stack(slots):
  """[(..., H, W, C) per slot] -> (..., H, W, T·C) cube."""
  return np.concatenate(slots, axis=-1)


def _light(target, gain, offset):
  """A date that is `target` in another light: gain · target + offset."""
  return np.asarray(target, np.float64) * gain + offset


def test_fit_gain_offset_recovers_a_linear_map():
  rng = np.random.default_rng(0)
  target = rng.uniform(0, 200, (2, 6, 6, 3))
  source = _light(target, 1.1, 5.)       # target = (source - 5) / 1.1
  valid = np.ones((2, 6, 6), bool)
  valid[0, :3] = False                  # 18 pixels left: still a fit
  gain, offset = baselines.fit_gain_offset(source, target, valid)
  assert gain.shape == offset.shape == (2, 3)
  np.testing.assert_allclose(gain, 1 / 1.1)
  np.testing.assert_allclose(offset, -5 / 1.1, atol=1e-9)


def test_fit_gain_offset_fallbacks():
  target = np.arange(36, dtype=np.float64).reshape(1, 6, 6, 1)
  source = 2. * target + 7.
  few = np.zeros((1, 6, 6), bool)
  few[0, 0, :baselines.MIN_GAIN_PIXELS - 10] = True
  # Too few pixels: gain 1, offset the mean difference over them.
  gain, offset = baselines.fit_gain_offset(source, target, few)
  expected = np.mean(target[few] - source[few])
  np.testing.assert_allclose([gain[0, 0], offset[0, 0]], [1., expected])
  # A constant source: no slope, offset only.
  gain, offset = baselines.fit_gain_offset(np.full_like(target, 9.), target,
                                           np.ones((1, 6, 6), bool))
  np.testing.assert_allclose([gain[0, 0], offset[0, 0]],
                             [1., target.mean() - 9.])
  # No pixel: the identity.
  gain, offset = baselines.fit_gain_offset(source, target,
                                           np.zeros((1, 6, 6), bool))
  np.testing.assert_array_equal([gain[0, 0], offset[0, 0]], [1., 0.])


def _scene(shape=(8, 8)):
  """A (H, W, 2) uint8 target whose values are multiples of 10, so that
  1.1 · target + 5 is an integer."""
  rng = np.random.default_rng(1)
  return (10 * rng.integers(0, 21, shape + (2,))).astype(np.uint8)


def test_corrected_least_cloudy_undoes_a_gain_and_offset():
  truth = _scene()
  other = _scene()[::-1]
  # Slots: truth, a date in another light (least cloudy), an unrelated date,
  # the target (cloudy in its top rows: their values stay unknown).
  date = _light(truth, 1.1, 5.).astype(np.uint8)
  target = truth.copy()
  target[:3] = 40
  cube = _stack([truth, date, other, target])
  mask = np.ones((8, 8, 4), np.uint8)
  mask[:3, :, 3] = 0
  mask[:, :3, 2] = 0                     # slot 2: 40 clear pixels
  mask[6:, :, 1] = 0                     # slot 1: 48 clear pixels
  out = baselines.corrected_least_cloudy(cube, mask, 2)
  assert out.dtype == np.uint8 and out.shape == (8, 8, 2)
  np.testing.assert_array_equal(out[:6], truth[:6])  # where date 1 is clear
  # A clear target (the clearest slot) is never the date chosen.
  mask[..., 3] = 1
  cube = _stack([truth, date, other, truth])
  np.testing.assert_array_equal(
      baselines.corrected_least_cloudy(cube, mask, 2)[:6], truth[:6])


def test_corrected_mosaic_takes_the_newest_clear_corrected_value():
  truth = _scene((8, 8))
  target = truth.copy()
  old = _light(truth, 1.1, 5.).astype(np.uint8)   # corrected: truth
  new = np.clip(_light(truth, 0.5, 60.), 0, 255).astype(np.uint8)
  cube = _stack([truth, old, new, target])
  mask = np.ones((1, 8, 8, 4), np.uint8)
  mask[0, :4, :, 3] = 0                   # target cloudy in rows 0..3
  mask[0, 0, :, 2] = 0                    # row 0: only the old date clear
  mask[0, 1, :4, 1:] = 0                  # row 1, cols 0..3: clear nowhere
  cube[..., 6:] = np.where(mask[0, ..., 3:4] > 0, target, 40)
  out = baselines.corrected_mosaic(cube[None], mask, 2)[0]
  assert out.dtype == np.uint8
  # Rows 2..3 from the new date (0.5 · truth + 60, rounded back), row 0 and
  # row 1's right half from the old one: the truth; clear rows: the target.
  new_corrected = np.rint((new.astype(np.float64) - 60.) / 0.5)
  np.testing.assert_array_equal(out[2:4], new_corrected[2:4])
  np.testing.assert_array_equal(out[1, 4:], new_corrected[1, 4:])
  np.testing.assert_array_equal(out[0], truth[0])
  np.testing.assert_array_equal(out[4:], target[4:])
  # Clear nowhere: the mean of the target's clear pixels, per channel.
  fill = np.rint(truth[4:].reshape(-1, 2).mean(axis=0))
  np.testing.assert_array_equal(out[1, :4], np.broadcast_to(fill, (4, 2)))


def test_corrected_mosaic_fill_without_a_clear_target_pixel():
  cube = _stack([_scene()] * 3)
  mask = np.zeros((8, 8, 3), np.uint8)
  np.testing.assert_array_equal(baselines.corrected_mosaic(cube, mask, 2),
                                cube[..., 4:])


def test_baselines_never_read_the_truth():
  cube = _stack([_scene(), _scene()[::-1], _scene()[:, ::-1],
                 _scene().T.transpose(1, 2, 0)[:8, :8]]).astype(np.float32)
  mask = np.ones((8, 8, 4), np.uint8)
  mask[2:5, 1:6, 3] = 0
  mask[:3, :, 2] = 0
  garbage = cube.copy()
  garbage[..., :2] = np.nan
  for name, fill in baselines.FILLS.items():
    expected = fill(cube, mask, 2)
    assert expected.shape == (8, 8, 2) and expected.dtype == cube.dtype
    assert np.isfinite(expected).all(), name
    np.testing.assert_array_equal(fill(garbage, mask, 2), expected, name)
  np.testing.assert_array_equal(
      baselines.FILLS['cloudy input'](cube, mask, 2), cube[..., 6:])


def test_local_corrected_mosaic_follows_light_that_varies_across_the_image():
  rng = np.random.default_rng(2)
  truth = rng.uniform(0, 200, (12, 24, 2))
  # The context date's light differs between the two halves.
  date = np.concatenate([_light(truth[:, :12], 1.1, 5.),
                         _light(truth[:, 12:], 0.7, 30.)], axis=1)
  target = truth.copy()
  mask = np.ones((12, 24, 3), np.uint8)
  mask[4:8, 2:4, 2] = 0                  # cloudy in the left half
  mask[4:8, 20:22, 2] = 0                # and in the right half
  cube = _stack([truth, date, target])
  local = baselines.local_corrected_mosaic(cube, mask, 2, windows=(5,))
  cloudy = mask[..., 2] == 0
  np.testing.assert_allclose(local[cloudy], truth[cloudy], atol=1e-9)
  # One gain for the whole image cannot.
  whole = baselines.corrected_mosaic(cube, mask, 2)
  assert np.abs(whole[cloudy] - truth[cloudy]).max() > 1.
  with pytest.raises(ValueError, match='odd'):
    baselines.local_corrected_mosaic(cube, mask, 2, windows=(5, 4))


def test_local_corrected_mosaic_falls_back_to_the_image_fit():
  truth = _scene((12, 12))
  cube = _stack([truth, _light(truth, 1.1, 5.).astype(np.uint8), truth])
  mask = np.ones((12, 12, 3), np.uint8)
  mask[:7, :7, 2] = 0                    # a 3×3 window at (1, 1): no pixel
  local = baselines.local_corrected_mosaic(cube, mask, 2, windows=(3,))
  np.testing.assert_array_equal(local, truth)


def test_local_corrected_mosaic_takes_a_wider_window_inside_a_large_cloud():
  rng = np.random.default_rng(3)
  truth = rng.uniform(0, 200, (13, 24, 2))
  date = np.concatenate([_light(truth[:, :12], 1.1, 5.),
                         _light(truth[:, 12:], 0.7, 30.)], axis=1)
  mask = np.ones((13, 24, 3), np.uint8)
  mask[3:10, 2:9, 2] = 0     # 7×7: the 5×5 windows of its middle are cloudy
  cube = _stack([truth, date, truth])
  # The 9×9 windows of the cloud's columns 2..7 lie in the left half.
  inside = np.zeros((13, 24), bool)
  inside[3:10, 2:8] = True
  narrow = baselines.local_corrected_mosaic(cube, mask, 2, windows=(5,))
  both = baselines.local_corrected_mosaic(cube, mask, 2, windows=(9, 5))
  np.testing.assert_allclose(both[inside], truth[inside], atol=1e-9)
  assert np.abs(narrow[inside] - truth[inside]).max() > 1.
  clear = mask[..., 2] > 0
  np.testing.assert_array_equal(both[clear], truth[clear])


def test_corrected_baselines_need_a_context_date():
  with pytest.raises(ValueError, match='no context date'):
    baselines.corrected_mosaic(_cube([[1], [2]]), np.ones((1, 2, 2, 2)), 1)


def similar_pixel_scene():
  """(cube, masks, target) of a 24×24 one-channel scene of three land
  covers in 1 px column stripes that changed differently since the one
  context date (50 -> 80, 100 -> 70, 150 -> 160: no gain and offset maps
  all three), the target cloudy in a 6×6 square."""
  cover = np.arange(24)[None, :].repeat(24, axis=0) % 3
  context = np.array([50, 100, 150])[cover]
  target = np.array([80, 70, 160])[cover]
  cube = np.stack([target, context, target], axis=-1)
  masks = np.ones((24, 24, 3), np.int32)
  masks[9:15, 9:15, 2] = 0
  cube[..., 2] = np.where(masks[..., 2] > 0, target, 40)
  return cube, masks, target


def test_similar_pixel_mosaic_follows_each_land_cover_under_the_cloud():
  cube, masks, target = similar_pixel_scene()
  cloudy = masks[..., 2] == 0
  local = baselines.local_corrected_mosaic(cube, masks, 1)[..., 0]
  similar = baselines.similar_pixel_mosaic(cube, masks, 1)[..., 0]
  assert np.abs(local - target)[cloudy].min() >= 5     # one line, 3 covers
  assert np.abs(similar - target)[cloudy].max() <= 1
  np.testing.assert_array_equal(similar[~cloudy], target[~cloudy])
  # Fewer similar clear pixels in reach than asked: the local fill as is.
  np.testing.assert_array_equal(
      baselines.similar_pixel_mosaic(cube, masks, 1, radius=2, count=20),
      baselines.local_corrected_mosaic(cube, masks, 1))

