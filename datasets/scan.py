"""Start-up reads of the files of a split, run in a thread pool.

Masks are read whole (their coverage decides categories and keep/drop);
images only have their header and their last bytes checked (size and
truncation), since tf.data decodes them later.
"""

import concurrent.futures
import os

import numpy as np
from PIL import Image

from datasets.ondisk import DataError

FORMATS = ('PNG', 'JPEG')
# A complete file ends with its end marker, possibly followed by padding.
END_MARKERS = {'PNG': b'IEND', 'JPEG': b'\xff\xd9'}
TAIL_BYTES = 64


def parallel_map(fn, items):
  """[fn(item) for item in items] on threads; re-raises the first error."""
  workers = min(32, (os.cpu_count() or 1) + 4)
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    return list(pool.map(fn, items))


def _open_error(path, what, error):
  return DataError(f'Cannot read {what} {path} ({error}); it is unreadable or '
                   'truncated: replace it or remove its tile.')


def read_clear_mask(path, flip):
  """A mask file as (H, W) bool, True = clear (value 0 after the flip).

  Args:
    path: a single-channel PNG (other modes are converted to luminance).
    flip: `config.flip_masks`; the stored value m is read as 255 - m.
  """
  try:
    with Image.open(path) as im:
      mask_format = im.format
      mask = np.asarray(im if im.mode == 'L' else im.convert('L'))
  except (OSError, SyntaxError, ValueError) as e:
    raise _open_error(path, 'mask', e) from None
  if mask_format not in FORMATS:
    raise DataError(f'Mask {path} is {mask_format}; masks must be PNG.')
  if flip:
    mask = 255 - mask
  return mask == 0


def central_crop(array, size):
  """The central (size, size) window of (H, W, ...); a short side is kept."""
  top = max(array.shape[0] - size, 0) // 2
  left = max(array.shape[1] - size, 0) // 2
  return array[top:top + size, left:left + size]


def coverage(clear, size):
  """Percentage of cloudy pixels of a (H, W) bool clear-mask in its centre."""
  return 100.0 * (1.0 - central_crop(clear, size).mean())


def category(percent, max_coverage):
  """'clear' (<= 5), 'moderate' (<= max_coverage) or 'severe'."""
  if percent <= 5.0:
    return 'clear'
  if percent <= max_coverage:
    return 'moderate'
  return 'severe'


def mask_stats(path, flip, size):
  """(coverage %, (H, W)) of a mask file."""
  clear = read_clear_mask(path, flip)
  return coverage(clear, size), clear.shape


def check_image(path, shape):
  """Raises DataError unless `path` is a complete PNG/JPEG of (H, W) `shape`."""
  try:
    with Image.open(path) as im:
      image_format, (width, height) = im.format, im.size
  except (OSError, SyntaxError, ValueError) as e:
    raise _open_error(path, 'image', e) from None
  if image_format not in FORMATS:
    raise DataError(f'Image {path} is {image_format}; use PNG or JPEG.')
  with open(path, 'rb') as f:
    f.seek(max(os.path.getsize(path) - TAIL_BYTES, 0))
    tail = f.read()
  if END_MARKERS[image_format] not in tail:
    raise _open_error(path, 'image', f'no {image_format} end marker')
  if (height, width) != tuple(shape):
    raise DataError(f'Image {path} is {height}x{width} but its mask is '
                    f'{shape[0]}x{shape[1]}; masks must match their images.')


def cloudy_everywhere(clear_masks):
  """True if some pixel is cloudy in every (H, W) bool clear-mask."""
  return not np.logical_or.reduce(clear_masks).all()
