"""utils/images.py: the one writer of image files."""

import os

import numpy as np
from PIL import Image
import pytest

from utils import colormaps
from utils import images


def test_save_png_and_jpeg(tmp_path):
  rng = np.random.default_rng(0)
  rgb = rng.integers(0, 256, (6, 5, 3)).astype(np.uint8)
  grey = rng.integers(0, 256, (6, 5)).astype(np.uint8)
  for name, array, fast in (('rgb.png', rgb, False), ('grey.png', grey, True),
                            ('one.png', grey[..., None], False)):
    path = str(tmp_path / name)
    images.save(path, array, fast=fast)
    np.testing.assert_array_equal(np.asarray(Image.open(path)),
                                  np.squeeze(array))
  images.save(str(tmp_path / 'rgb.jpeg'), rgb)
  with Image.open(tmp_path / 'rgb.jpeg') as jpeg:
    assert jpeg.format == 'JPEG' and jpeg.size == (5, 6)
  images.save(str(tmp_path / 'pil.png'), Image.fromarray(rgb))
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / 'pil.png')),
                                rgb)
  assert not [f for f in os.listdir(tmp_path) if f.endswith('.tmp')]


def test_save_rejects_unknown_formats(tmp_path):
  with pytest.raises(ValueError, match='image format'):
    images.save(str(tmp_path / 'x.bmp'), np.zeros((2, 2, 3), np.uint8))


def test_inferno_has_matplotlibs_colours():
  # Known values of matplotlib's inferno, round(255 * cmap(x)[:3]).
  assert colormaps.INFERNO.shape == (256, 3)
  assert colormaps.INFERNO[0].tolist() == [0, 0, 4]
  assert colormaps.INFERNO[128].tolist() == [188, 55, 84]
  assert colormaps.INFERNO[255].tolist() == [252, 255, 164]
  # Sampled as matplotlib samples linspace(0, 1, n): floor(256 x), 1.0 last.
  assert colormaps.inferno(5).tolist() == [
      [0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]]
  np.testing.assert_array_equal(colormaps.inferno(4),
                                colormaps.INFERNO[[0, 85, 170, 255]])


def test_coverage_png_is_upstreams_palette_image(tmp_path):
  clear = np.zeros((2, 3, 3), np.uint8)     # T-1 = 3 dates: counts 0..3
  clear[0, 1, 0] = clear[1, 2] = 1
  clear[1, 0, :2] = 1
  path = str(tmp_path / 'cov.png')
  images.save(path, images.coverage_png(clear, factor=2))
  with Image.open(path) as png:
    assert png.mode == 'P' and png.size == (6, 4)
    counts = np.asarray(png)
    palette = np.array(png.getpalette()[:12]).reshape(4, 3)
  np.testing.assert_array_equal(counts[::2, ::2], [[0, 1, 0], [2, 0, 3]])
  np.testing.assert_array_equal(palette, colormaps.inferno(4))
  np.testing.assert_array_equal(images.coverage_image(clear),
                                palette[counts[::2, ::2]])
