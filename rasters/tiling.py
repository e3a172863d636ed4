"""Overlapping tiles over a large scene and their smooth blending.

A scene of `height × width` pixels is cut into square tiles of side `size`
whose starts are `size - overlap` apart; the last tile of a row or column may
reach past the scene's edge (it is padded for the model and cropped back).
Overlapping predictions are averaged with `blend_weights`, which are positive
everywhere and fall smoothly to small values towards a tile's inner edges, so
no seam shows; the output is then assembled block by block (`blocks`), each
block from the few tiles that cover it.
"""

import collections
import math

import numpy as np

# One tile: its number (row-major), its row and column in the tile grid, and
# the part of the scene it covers (top, left, height, width), clipped to the
# scene; `size` - height (or width) pixels of padding follow at the bottom
# (right) of an edge tile.
Tile = collections.namedtuple('Tile', 'index row col top left height width')


def check_overlap(size, overlap):
  """ValueError unless 0 <= overlap <= size / 2."""
  if not 0 <= overlap <= size // 2:
    raise ValueError(f'--overlap={overlap} must be between 0 and half the '
                     f'tile size ({size} px, the upsampler resolution).')


def starts(length, size, overlap):
  """Tile starts along an axis of `length` pixels (the first is 0)."""
  stride = size - overlap
  count = 1 + max(0, math.ceil((length - size) / stride))
  return [k * stride for k in range(count)]


def grid(height, width, size, overlap):
  """The tiles of a scene, row-major."""
  check_overlap(size, overlap)
  tiles = []
  rows, cols = starts(height, size, overlap), starts(width, size, overlap)
  for r, top in enumerate(rows):
    for c, left in enumerate(cols):
      tiles.append(Tile(len(tiles), r, c, top, left, min(size, height - top),
                        min(size, width - left)))
  return tiles


def blend_weights(size, overlap):
  """(size, size) float64 weights: 1 inside, a raised-cosine ramp over the
  `overlap` pixels of each edge, never 0."""
  ramp = np.ones(size)
  if overlap:
    x = (np.arange(overlap) + 0.5) / overlap
    rise = 0.5 - 0.5 * np.cos(np.pi * x)
    ramp[:overlap] = rise
    ramp[size - overlap:] = rise[::-1]
  return np.outer(ramp, ramp)


def pad_to(array, size):
  """Pads the first two axes of `array` to (size, size) by mirroring."""
  pad_h, pad_w = size - array.shape[0], size - array.shape[1]
  if not pad_h and not pad_w:
    return array
  widths = [(0, pad_h), (0, pad_w)] + [(0, 0)] * (array.ndim - 2)
  return np.pad(array, widths, mode='symmetric')


def blocks(height, width, block):
  """(top, left, height, width) of the `block`-sized output windows, row-major
  (edge windows are smaller)."""
  return [(top, left, min(block, height - top), min(block, width - left))
          for top in range(0, height, block)
          for left in range(0, width, block)]


def covering(tiles, window, size, overlap):
  """The tiles of `grid(...)` that overlap `window` (top, left, h, w)."""
  stride = size - overlap
  top, left, height, width = window
  num_cols = max(t.col for t in tiles) + 1
  num_rows = max(t.row for t in tiles) + 1

  def span(start, length, count):
    first = max(0, -(-(start - size + 1) // stride))
    last = min(count - 1, (start + length - 1) // stride)
    return range(first, last + 1)

  return [tiles[r * num_cols + c]
          for r in span(top, height, num_rows)
          for c in span(left, width, num_cols)]


def shared(tile, window):
  """(window slices, tile slices) of the pixels `tile` shares with `window`
  (top, left, h, w), each relative to its own origin; None if none."""
  top, left, height, width = window
  r0, r1 = max(top, tile.top), min(top + height, tile.top + tile.height)
  c0, c1 = max(left, tile.left), min(left + width, tile.left + tile.width)
  if r0 >= r1 or c0 >= c1:
    return None
  return ((slice(r0 - top, r1 - top), slice(c0 - left, c1 - left)),
          (slice(r0 - tile.top, r1 - tile.top),
           slice(c0 - tile.left, c1 - tile.left)))


def blend(window, parts, size, overlap, needed=None):
  """`blend_mean` rounded to (height, width, C) uint8."""
  return np.clip(np.round(blend_mean(window, parts, size, overlap, needed)),
                 0, 255).astype(np.uint8)


def blend_mean(window, parts, size, overlap, needed=None):
  """Weighted average of tile values over one output window.

  Args:
    window: (top, left, height, width) in scene pixels.
    parts: (tile, values) pairs; values are (tile.height, tile.width, C) and
      cover the tile's scene extent.
    size, overlap: the tiling.
    needed: (height, width) bool, the pixels the parts must cover (default
      all); the others, where no part covers them, are 0.

  Returns:
    (height, width, C) float64.
  """
  height, width = window[2:]
  needed = np.ones((height, width), bool) if needed is None else needed
  weights = blend_weights(size, overlap)
  total, norm = None, np.zeros((height, width))
  for tile, prediction in parts:
    pair = shared(tile, window)
    if pair is None:
      continue
    if total is None:
      total = np.zeros((height, width, prediction.shape[-1]))
    ours, theirs = pair
    total[ours] += weights[theirs][..., None] * prediction[theirs]
    norm[ours] += weights[theirs]
  covered = norm > 0
  if total is None or (needed & ~covered).any():
    raise ValueError(f'Window {window} is not covered by the given tiles.')
  return np.divide(total, norm[..., None], out=np.zeros_like(total),
                   where=covered[..., None])
