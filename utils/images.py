"""Image files: every PNG (and JPEG) the project writes goes through `save`.

Model outputs, coverage maps, contact sheets, the `targets_dir` export and the
synthetic dataset's dates and masks.
"""

import os

import numpy as np
from PIL import Image
from PIL import ImageEnhance

# Anchor colours of matplotlib's 'inferno' colour map at 0, 1/4, ..., 1.
_INFERNO = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9],
                     [252, 255, 164]], np.float64)


def inferno(levels):
  """(levels, 3) uint8 colours from dark (0) to bright (levels - 1)."""
  positions = np.linspace(0.0, 1.0, levels)
  anchors = np.linspace(0.0, 1.0, len(_INFERNO))
  channels = [np.interp(positions, anchors, _INFERNO[:, c]) for c in range(3)]
  return np.round(np.stack(channels, axis=-1)).astype(np.uint8)


def enlarge(image, factor):
  """Nearest-neighbour enlargement of (H, W, ...) by an integer factor."""
  if factor < 1:
    raise ValueError(f'sample.upsample_factor must be >= 1, got {factor}.')
  return image.repeat(factor, axis=0).repeat(factor, axis=1)


def to_pil(image, brightness=1.0, contrast=1.0):
  """(H, W, C) values 0..255 -> PIL image; C = 1 (L), 3 (RGB) or 4 (RGBA).

  Brightness and contrast enhancement apply to RGB only, for viewing dark
  scenes; they never reach metrics or TFRecords.
  """
  image = np.clip(np.asarray(image), 0, 255).astype(np.uint8)
  channels = image.shape[-1]
  if channels == 1:
    return Image.fromarray(image[..., 0], mode='L')
  if channels == 4:
    return Image.fromarray(image, mode='RGBA')
  if channels != 3:
    raise ValueError(f'Cannot write a {channels}-channel image as PNG.')
  pil = Image.fromarray(image, mode='RGB')
  if brightness != 1.0:
    pil = ImageEnhance.Brightness(pil).enhance(brightness)
  if contrast != 1.0:
    pil = ImageEnhance.Contrast(pil).enhance(contrast)
  return pil


def coverage_image(clear_masks):
  """(H, W, T-1) 0/1 clear masks -> (H, W, 3) map of clear dates per pixel."""
  clear_masks = np.asarray(clear_masks)
  counts = clear_masks.sum(axis=-1).astype(np.int64)
  return inferno(clear_masks.shape[-1] + 1)[counts]


def save(path, image, fast=False):
  """Writes an image atomically (a killed job never leaves half a file).

  Args:
    path: ends in .png, or .jpeg/.jpg (written at quality 95).
    image: a PIL image, or (H, W) or (H, W, C) values 0..255 (see `to_pil`).
    fast: PNG with the fastest compression (larger files).
  """
  if not isinstance(image, Image.Image):
    image = np.asarray(image)
    image = to_pil(image[..., None] if image.ndim == 2 else image)
  ext = os.path.splitext(path)[1].lower()
  if ext == '.png':
    options = dict(format='PNG', compress_level=1 if fast else 6)
  elif ext in ('.jpeg', '.jpg'):
    options = dict(format='JPEG', quality=95)
  else:
    raise ValueError(f'Cannot tell the image format of {path}: use .png or '
                     '.jpeg.')
  tmp = f'{path}.tmp'
  image.save(tmp, **options)
  os.replace(tmp, path)
