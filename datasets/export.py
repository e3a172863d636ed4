"""`config.targets_dir`: the downsampled input slots as PNGs, for inspection.

    <targets_dir>_<h>_<C>bands/<subset>/image/NNNNN/iii.png   image_<h> slot iii
    <targets_dir>_<h>_<C>bands/<subset>/mask/NNNNN/iii.png    mask_<h> as 0/255

NNNNN counts the examples of one pass in pipeline order (as upstream does);
iii runs over the input slots 1..T-1.
"""

import os

from absl import logging

from datasets import keys
from utils import images


def export_root(config, subset):
  """`<targets_dir>_<h>_<C>bands/<subset>`."""
  return os.path.join(
      f'{config.targets_dir}_{config.downsample_res}_{config.n_channels}bands',
      subset)


def _save(array, path):
  """(h, w, K) values 0..255 -> PNG (grey for K = 1)."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  images.save(path, array)


def export_examples(examples, config, subset):
  """Writes one pass of unbatched `examples`; returns the number written."""
  root = export_root(config, subset)
  low, n_channels = config.downsample_res, config.n_channels
  count = 0
  for count, example in enumerate(examples.as_numpy_iterator(), start=1):
    image = example[keys.downsampled('image', low)]
    mask = example[keys.downsampled('mask', low)]
    for slot in range(1, mask.shape[-1]):
      name = f'{count - 1:05d}/{slot:03d}.png'
      _save(image[..., slot * n_channels:(slot + 1) * n_channels],
            os.path.join(root, 'image', name))
      _save(mask[..., slot:slot + 1] * 255, os.path.join(root, 'mask', name))
  logging.info('Exported %d %s examples to %s.', count, subset, root)
  return count
