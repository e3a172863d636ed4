"""Tests of rasters/tiling.py: tile grid, blend weights, block assembly."""

import numpy as np
import pytest

from rasters import tiling


@pytest.mark.parametrize('length,size,overlap,expected', [
    (32, 32, 8, [0]),
    (20, 32, 8, [0]),
    (33, 32, 8, [0, 24]),
    (100, 32, 8, [0, 24, 48, 72]),
    (64, 32, 0, [0, 32]),
])
def test_starts_cover_the_axis(length, size, overlap, expected):
  got = tiling.starts(length, size, overlap)
  assert got == expected
  assert got[-1] + size >= length


def test_grid_clips_edge_tiles_to_the_scene():
  tiles = tiling.grid(50, 70, 32, 8)
  assert [(t.top, t.left) for t in tiles] == [
      (0, 0), (0, 24), (0, 48), (24, 0), (24, 24), (24, 48)]
  assert tiles[-1].height == 26 and tiles[-1].width == 22
  assert [t.index for t in tiles] == list(range(6))


@pytest.mark.parametrize('overlap', [-1, 17])
def test_overlap_out_of_range_is_refused(overlap):
  with pytest.raises(ValueError, match='--overlap'):
    tiling.grid(64, 64, 32, overlap)


def test_blend_weights_are_positive_smooth_and_symmetric():
  w = tiling.blend_weights(32, 8)
  assert (w > 0).all() and w.max() == 1.0
  np.testing.assert_allclose(w, w[::-1, ::-1])
  np.testing.assert_allclose(w, w.T)
  # Opposite ramps of two neighbours sum to one over the overlap.
  edge = w[16, :8]
  np.testing.assert_allclose(edge + edge[::-1], 1.0)


def test_pad_to_mirrors_and_keeps_the_original():
  a = np.arange(12).reshape(3, 4)
  padded = tiling.pad_to(a, 6)
  assert padded.shape == (6, 6)
  np.testing.assert_array_equal(padded[:3, :4], a)
  np.testing.assert_array_equal(padded[3], a[2, [0, 1, 2, 3, 3, 2]])


def test_blocks_partition_the_scene():
  seen = np.zeros((70, 45), int)
  for top, left, h, w in tiling.blocks(70, 45, 32):
    seen[top:top + h, left:left + w] += 1
  assert (seen == 1).all()


def test_covering_finds_exactly_the_overlapping_tiles():
  tiles = tiling.grid(90, 75, 32, 8)
  for window in tiling.blocks(90, 75, 20):
    top, left, h, w = window
    expected = [t for t in tiles
                if t.top < top + h and t.top + t.height > top and
                t.left < left + w and t.left + t.width > left]
    assert tiling.covering(tiles, window, 32, 8) == expected


def test_constant_predictions_blend_to_the_constant_exactly():
  tiles = tiling.grid(90, 75, 32, 12)
  out = np.zeros((90, 75, 3), np.uint8)
  for window in tiling.blocks(90, 75, 16):
    parts = [(t, np.full((t.height, t.width, 3), 137, np.uint8))
             for t in tiling.covering(tiles, window, 32, 12)]
    top, left, h, w = window
    out[top:top + h, left:left + w] = tiling.blend(window, parts, 32, 12)
  assert (out == 137).all()


def test_blend_is_a_smooth_mix_across_the_overlap():
  tiles = tiling.grid(32, 56, 32, 8)
  values = [0, 200]
  parts = [(t, np.full((t.height, t.width, 1), v, np.uint8))
           for t, v in zip(tiles, values)]
  row = tiling.blend((0, 0, 32, 56), parts, 32, 8)[16, :, 0].astype(int)
  assert row[:24].max() == 0 and row[32:].min() == 200
  assert (np.diff(row) >= 0).all()
  assert np.abs(np.diff(row)).max() < 60


def test_uncovered_window_is_an_error():
  tiles = tiling.grid(64, 64, 32, 0)
  with pytest.raises(ValueError, match='not covered'):
    tiling.blend((0, 0, 40, 40), [(tiles[0], np.zeros((32, 32, 3)))], 32, 0)
