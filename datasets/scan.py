"""Start-up reads of the files of a split, run in a thread pool.

Files are decoded with the pipeline's own decoders (`transforms`), so the
start-up and the training see the same values. Masks are read whole (their
coverage decides categories and keep/drop); every image a split uses is
decoded whole too, so a corrupt file fails here, naming it, and not at some
training step. Images already decoded are remembered in `ImageCache`.
"""

import concurrent.futures
import hashlib
import json
import os
import threading

import numpy as np
import tensorflow as tf

from datasets import transforms
from utils import cloud_shapes
from utils.errors import DataError

# Leading bytes of each accepted format.
MAGIC = {'PNG': b'\x89PNG\r\n\x1a\n', 'JPEG': b'\xff\xd8\xff'}
# A complete file ends with its end marker, possibly followed by padding.
END_MARKERS = {'PNG': b'IEND', 'JPEG': b'\xff\xd9'}
TAIL_BYTES = 64
CHANNEL_NAMES = {1: 'grayscale', 2: 'grayscale+alpha', 3: 'RGB', 4: 'RGBA'}
# Where ImageCache keeps its files; the environment variable overrides it.
CACHE_ENV = 'CLOUDTRAN_CACHE_DIR'
DEFAULT_CACHE = os.path.join('~', '.cache', 'cloudtran_tf')
# Cloud cover (%) up to which a mask is clear.
CLEAR_MAX = 5.0


def parallel_map(fn, items):
  """[fn(item) for item in items] on threads; re-raises the first error."""
  workers = min(32, (os.cpu_count() or 1) + 4)
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    return list(pool.map(fn, items))


def _open_error(path, what, error):
  return DataError(f'Cannot read {what} {path} ({error}); it is unreadable, '
                   'corrupt or truncated: replace it or remove its tile.')


def _read(path, what):
  """The bytes of a complete PNG/JPEG file; DataError otherwise."""
  try:
    with open(path, 'rb') as f:
      contents = f.read()
  except OSError as e:
    raise _open_error(path, what, e.strerror) from None
  kind = next((k for k, magic in MAGIC.items()
               if contents.startswith(magic)), None)
  if kind is None:
    raise DataError(f'{what.capitalize()} {path} is not a PNG or JPEG file; '
                    'convert it or remove its tile.')
  if END_MARKERS[kind] not in contents[-TAIL_BYTES:]:
    raise _open_error(path, what, f'no {kind} end marker')
  return contents


# Decoders traced on first use (not at import, which would start TensorFlow
# before a multi-worker strategy is made): key -> concrete function.
_DECODER_FNS = {
    'mask': lambda c: transforms.decode_clear_mask(c, False),
    'flipped mask': lambda c: transforms.decode_clear_mask(c, True),
    'image': transforms.decode_native,
}
_DECODERS = {}
_DECODERS_LOCK = threading.Lock()


def _decoder(key):
  """`_DECODER_FNS[key]` traced once into one graph call: far fewer eager ops
  per file, and nothing left to trace when the threads call it."""
  with _DECODERS_LOCK:
    if key not in _DECODERS:
      _DECODERS[key] = tf.function(_DECODER_FNS[key]).get_concrete_function(
          tf.TensorSpec([], tf.string))
    return _DECODERS[key]


def _decode(fn, path, what):
  """fn(the file's bytes) as numpy; a decoder error becomes a DataError
  naming `path`."""
  contents = _read(path, what)
  try:
    return fn(tf.constant(contents)).numpy()
  except tf.errors.OpError as e:
    raise _open_error(path, what, e.message.splitlines()[0]) from None


def read_clear_mask(path, flip):
  """A mask file as (H, W) bool, True = clear (`transforms.decode_clear_mask`).

  Args:
    path: a PNG mask, 8 or 16 bits, read by value (0 = clear).
    flip: `config.flip_masks`; clear is then the maximum value (255 - m = 0).
  """
  return _decode(_decoder('flipped mask' if flip else 'mask'), path, 'mask')


class ImageCache:
  """(H, W, channels) of images decoded whole before, keyed by path, size
  and modification time, in one JSON file per data directory under
  $CLOUDTRAN_CACHE_DIR (default ~/.cache/cloudtran_tf). A changed file misses
  the cache and is decoded again; an unwritable cache only costs time."""

  def __init__(self, data_dir):
    root = os.path.expanduser(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)
    name = hashlib.sha1(os.path.abspath(data_dir).encode()).hexdigest()[:16]
    self.path = os.path.join(root, f'decoded-{name}.json')
    try:
      with open(self.path) as f:
        self.entries = json.load(f)
    except (OSError, ValueError):
      self.entries = {}
    self.changed = False

  @staticmethod
  def key(path):
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns]

  def get(self, path):
    """(H, W, channels) if `path` is unchanged since it was decoded."""
    entry = self.entries.get(path)
    try:
      if entry and entry[:2] == self.key(path):
        return tuple(entry[2:])
    except OSError:
      pass
    return None

  def put(self, path, key, shape):
    self.entries[path] = key + list(shape)
    self.changed = True

  def save(self):
    if not self.changed:
      return
    try:
      os.makedirs(os.path.dirname(self.path), exist_ok=True)
      tmp = f'{self.path}.{os.getpid()}.tmp'
      with open(tmp, 'w') as f:
        json.dump(self.entries, f)
      os.replace(tmp, self.path)
    except OSError:
      pass


def coverage(clear, size):
  """Percentage of cloudy pixels of a (H, W) bool clear-mask in its centre."""
  return 100.0 * (1.0 - cloud_shapes.central_crop(clear, size).mean())


def category(percent, max_coverage):
  """'clear' (<= CLEAR_MAX), 'moderate' (<= max_coverage) or 'severe'."""
  if percent <= CLEAR_MAX:
    return 'clear'
  if percent <= max_coverage:
    return 'moderate'
  return 'severe'


def mask_stats(path, flip, size):
  """(coverage %, (H, W)) of a mask file."""
  clear = read_clear_mask(path, flip)
  return coverage(clear, size), clear.shape


def check_image(path, shape, n_channels=3, cache=None):
  """Decodes an image whole; DataError unless it is a complete PNG/JPEG of
  (H, W) `shape` with channels that `n_channels` reads (see
  `transforms.decode_image`)."""
  key = ImageCache.key(path) if cache is not None else None
  found = cache.get(path) if cache is not None else None
  if found is None:
    found = _decode(_decoder('image'), path, 'image').shape
    if cache is not None:
      cache.put(path, key, found)
  height, width, channels = found
  accepted = transforms.ACCEPTED_CHANNELS[n_channels]
  if channels not in accepted:
    want = ' or '.join(CHANNEL_NAMES[c] for c in accepted)
    raise DataError(
        f'Image {path} is {CHANNEL_NAMES.get(channels, channels)} but '
        f'config.n_channels={n_channels} reads {want} images; convert it '
        '(or set NUM_CHANNELS to match the data).')
  if (height, width) != tuple(shape):
    raise DataError(f'Image {path} is {height}x{width} but its mask is '
                    f'{shape[0]}x{shape[1]}; masks must match their images.')


def cloudy_everywhere(clear_masks):
  """True if some pixel is cloudy in every (H, W) bool clear-mask."""
  return not np.logical_or.reduce(clear_masks).all()
