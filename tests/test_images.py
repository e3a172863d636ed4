"""utils/images.py: the one writer of image files."""

import os

import numpy as np
from PIL import Image
import pytest

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
