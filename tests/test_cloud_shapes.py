"""utils/cloud_shapes.py: the procedural clear-masks and their cover band."""

import numpy as np
import pytest

from utils import cloud_shapes


@pytest.mark.parametrize('pixels, low, high, expected', [
    (64, 5, 50, (4, 32)),        # 4/64 = 6.25 % > 5; 32/64 = 50 %
    (100, 5, 30, (6, 30)),       # 5 % exactly is clear, 30 % is in
    (400, 5, 5.5, (21, 22)),
    (20, 5, 6, (2, 1)),          # 5 % and 10 %: nothing in between
    (16, 5, 100, (1, 16)),
])
def test_cloudy_count_range(pixels, low, high, expected):
  assert cloud_shapes.cloudy_count_range(pixels, low, high) == expected


@pytest.mark.parametrize('shape, window, low, high', [
    ((8, 8), 8, 5, 50),
    ((32, 32), 32, 5, 30),
    ((72, 72), 64, 5, 30),
    ((40, 56), 32, 5, 8),        # a narrow band, a non-square tile
])
def test_clear_masks_keep_the_cover_band(shape, window, low, high):
  masks = cloud_shapes.clear_masks([3, 1], 16, shape, window, low, high)
  assert masks.shape == (16,) + shape and masks.dtype == bool
  covers = [100 * (1 - cloud_shapes.central_crop(m, window).mean())
            for m in masks]
  assert all(low < c <= high for c in covers), covers
  assert len({m.tobytes() for m in masks}) == len(masks)


def test_clear_masks_repeat_for_a_seed():
  draw = lambda seed: cloud_shapes.clear_masks(seed, 2, (16, 16), 16, 5, 30)
  np.testing.assert_array_equal(draw(4), draw(4))
  assert not np.array_equal(draw(4), draw(5))


def test_clouds_are_blobs_not_scattered_pixels():
  """Clouds and their shadows are fractal blobs: nearly every cloudy pixel
  has a cloudy neighbour."""
  cloudy = ~cloud_shapes.clear_masks(0, 1, (64, 64), 64, 10, 30)[0]
  neighbours = (np.roll(cloudy, 1, 0) | np.roll(cloudy, -1, 0) |
                np.roll(cloudy, 1, 1) | np.roll(cloudy, -1, 1))
  assert (cloudy & neighbours).sum() >= 0.9 * cloudy.sum()


def test_an_empty_band_is_an_error():
  with pytest.raises(ValueError, match='No cloud cover above 5 % and at '
                     'most 6 % exists on 20'):
    cloud_shapes.clear_mask(np.random.default_rng(0), (4, 5), 8, 5, 6)


@pytest.mark.parametrize('cover', [0.0, 0.013, 0.5, 1.0])
def test_cover_clouds_cover_exactly(cover):
  clouds = cloud_shapes.cover_clouds(np.random.default_rng(1), 40, cover,
                                     0.25)
  assert clouds.mask.sum() == round(cover * 40 * 40)


def test_a_fringe_lies_outside_the_mask_only_when_asked():
  """Without a fringe, opacity and shadow are 0 outside the mask; with one,
  a faint rim of them lies outside it, fainter than inside."""
  bare = cloud_shapes.cover_clouds(np.random.default_rng(2), 64, 0.3, 0.0)
  assert not (bare.alpha[~bare.mask].any() or bare.shadow[~bare.mask].any())
  rimmed = cloud_shapes.cover_clouds(np.random.default_rng(2), 64, 0.3, 0.25)
  np.testing.assert_array_equal(rimmed.mask, bare.mask)
  rim = np.maximum(rimmed.alpha, rimmed.shadow)[~rimmed.mask]
  assert 0 < rim.max() < 0.2
  assert (rim > 0).mean() < 0.2
