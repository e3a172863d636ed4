"""Hand-made tiny datasets for tests: known pixels, known masks.

    root = write_split(tmp_path, 'trainset', {'00000': [
        ('T1_20200101_000', image, mask), ...]})

`write_known_split` writes a testset of 8x8 tiles whose keep/drop outcome is
known; with `known_config` (timeline 3, reference index 2) the slots are
(d2, d1, d2 x synthetic). TOP / BOTTOM = two cloudy rows (25 %, moderate),
FULL = all cloudy:

  tile  d0      d1     d2 (reference)
  0     BOTTOM  clear  clear
  1     clear   clear  TOP
  2     clear   FULL   FULL
  3     clear   FULL   clear

`NO_MODERATE_MASKS` is a split of clear and overcast dates only (no mask
for the dataset rule's synthetic clouds); with the same config:

  tile  d0      d1     d2 (reference)   valid with procedural clouds
  0     FULL    clear  clear            keep
  1     clear   clear  clear            keep
  2     clear   FULL   clear            drop: uncovered (d1 and the cloud)

`dataset_digest` fingerprints a whole dataset written by a tool.
"""

import hashlib
import os

import numpy as np
from PIL import Image

from configs import cloudtran_core_test

SIZE = 8


def split_dirs(root, split):
  """(videos_final_<split>, masks_final_<split>) under `root`."""
  return (os.path.join(root, f'videos_final_{split}'),
          os.path.join(root, f'masks_final_{split}'))


def write_split(root, split, tiles, image_ext='.png'):
  """Writes tiles {folder: [(stem, (H, W, C) uint8 image, (H, W) uint8
  mask)]} in the upstream layout; returns `root`."""
  image_root, mask_root = split_dirs(root, split)
  for folder, dates in tiles.items():
    os.makedirs(os.path.join(image_root, folder), exist_ok=True)
    os.makedirs(os.path.join(mask_root, folder), exist_ok=True)
    for stem, image, mask in dates:
      Image.fromarray(np.asarray(image, np.uint8)).save(
          os.path.join(image_root, folder, stem + image_ext), quality=100)
      Image.fromarray(np.asarray(mask, np.uint8)).save(
          os.path.join(mask_root, folder, stem + '.png'))
  return root


def dataset_digest(root):
  """sha256 of every file under `root`: its relative path and its decoded
  pixels (PNG, JPEG) or bytes (other files). What a tool drew, not how the
  image encoder packed it."""
  digest = hashlib.sha256()
  for folder, subfolders, files in os.walk(root):
    subfolders.sort()
    for name in sorted(files):
      path = os.path.join(folder, name)
      digest.update(os.path.relpath(path, root).encode())
      if name.endswith(('.png', '.jpeg')):
        pixels = np.asarray(Image.open(path))
        digest.update(str(pixels.shape).encode() + pixels.tobytes())
      else:
        with open(path, 'rb') as f:
          digest.update(f.read())
  return digest.hexdigest()


def point_config(config, root, split):
  """Sets config.data_dir / mask_dir to the split under `root`."""
  config.data_dir, config.mask_dir = split_dirs(root, split)
  return config


def constant_image(size, values):
  """(size, size, C) uint8 image whose channel c is `values[c]` everywhere."""
  return np.broadcast_to(np.asarray(values, np.uint8),
                         (size, size, len(values))).copy()


def rows_mask(size, rows):
  """(size, size) uint8 mask, 255 (cloud) on `rows`, 0 elsewhere."""
  mask = np.zeros((size, size), np.uint8)
  mask[list(rows)] = 255
  return mask


CLEAR = np.zeros((SIZE, SIZE), np.uint8)
TOP = rows_mask(SIZE, [0, 1])
BOTTOM = rows_mask(SIZE, [6, 7])
FULL = np.full((SIZE, SIZE), 255, np.uint8)
KNOWN_MASKS = {0: (BOTTOM, CLEAR, CLEAR), 1: (CLEAR, CLEAR, TOP),
               2: (CLEAR, FULL, FULL), 3: (CLEAR, FULL, CLEAR)}
NO_MODERATE_MASKS = {0: (FULL, CLEAR, CLEAR), 1: (CLEAR, CLEAR, CLEAR),
                     2: (CLEAR, FULL, CLEAR)}


def known_image(tile, date):
  """Constant values 100 + 30·date + 3·tile + channel (never 40)."""
  return constant_image(SIZE, [100 + 30 * date + 3 * tile + c
                               for c in range(3)])


def write_known_split(root, masks=None):
  """Writes the testset of KNOWN_MASKS (or `masks`, same form) under root."""
  tiles = {f'{t:05d}': [(f'T{t}_2020010{d + 1}_000', known_image(t, d), m)
                        for d, m in enumerate(ms)]
           for t, ms in (masks or KNOWN_MASKS).items()}
  return write_split(root, 'testset', tiles)


def known_config(root):
  """Tiny test config reading the known split (no JSON, reference 2)."""
  config = cloudtran_core_test.get_config('tiny')
  point_config(config, root, 'testset')
  config.jsonf = None
  config.ref_index = 2
  config.timeline = 3
  config.resolution = (SIZE, SIZE)
  config.downsample_res = SIZE // 2
  config.max_coverage = 50
  return config
