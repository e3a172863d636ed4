"""Image-quality and distribution metrics (docs/design.md, Metrics).

The cloud-removal protocol (SEN12MS-CR-TS, UnCRtainTS, DSen2-CR, AllClear):
values scaled to [0, 1] (`to_unit`: 8-bit values / 255, Sentinel-2 digital
numbers / 10000), per image RMSE, MAE, PSNR (data range 1), SSIM (Gaussian
window) and SAM (degrees), each over a pixel mask: all pixels, the cloudy
ones of the target (reconstructed) or the clear ones (`SPLITS`), leaving out
the pixels the truth itself has no value for; and per set the pooled PSNR
(`pooled_psnr01`: from the MSE over every pixel of the set).
Upstream's metrics, kept: PSNR, SSIM and MSE per whole image on uint8-valued
images, max value 255; per set FID and KID from `(N, d)` activations with
TF-GAN's formulas, and the Inception-v3 pool features they are usually
computed from.

`score` computes every per-image column (`COLUMNS`) of a batch: the one
table that sample.py's metrics.csv and TensorBoard scalars and evaluate.py's
results tables are made from; `average` is how both average a column.
"""

import collections
import os

import numpy as np
from skimage import metrics as sk_metrics
import tensorflow as tf

MAX_VALUE = 255.
# Divisors to [0, 1]: the 8-bit research layout, Sentinel-2 digital numbers.
UNIT_SCALE = 255.
REFLECTANCE_SCALE = 10000.
# PSNR on [0, 1] values is capped here: an image whose RMSE is below
# 10^(-PSNR_CAP_DB / 20) = 1e-5 (an exact one) counts as PSNR_CAP_DB.
PSNR_CAP_DB = 100.
# SSIM on [0, 1] values: skimage's Gaussian-window settings.
SSIM_SETTINGS = dict(data_range=1., gaussian_weights=True, sigma=1.5,
                     use_sample_covariance=False, K1=0.01, K2=0.03)
INCEPTION_SIZE = 299
INCEPTION_NOTOP_FILE = (
    'inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5')
INCEPTION_NOTOP_URL = (
    'https://storage.googleapis.com/tensorflow/keras-applications/'
    'inception_v3/' + INCEPTION_NOTOP_FILE)


def _as_batch(a, b):
  """Checks two images or batches; returns (N, H, W, C) float64 copies."""
  a, b = np.asarray(a), np.asarray(b)
  if a.shape != b.shape or a.ndim not in (3, 4):
    raise ValueError(f'Expected two (H, W, C) or (N, H, W, C) arrays of the '
                     f'same shape, got {a.shape} and {b.shape}.')
  if a.ndim == 3:
    a, b = a[None], b[None]
  return a.astype(np.float64), b.astype(np.float64)


def _unbatch_like(values, a):
  """Returns `values` (N,) as is, or its only entry if `a` was one image."""
  return values[0] if np.ndim(a) == 3 else values


def mse(a, b):
  """Mean squared error per image.

  Args:
    a, b: (N, H, W, C) or (H, W, C) arrays of values 0..255.

  Returns:
    (N,) float64, or a float64 scalar for a single image.
  """
  x, y = _as_batch(a, b)
  return _unbatch_like(np.mean((x - y) ** 2, axis=(1, 2, 3)), a)


def psnr(a, b):
  """PSNR in dB per image: 10·log10(255² / MSE).

  Equals `skimage.metrics.peak_signal_noise_ratio(a, b, data_range=255)` and
  `tf.image.psnr(a, b, 255)`. Identical images (MSE 0) give `inf`.

  Args:
    a, b: (N, H, W, C) or (H, W, C) arrays of values 0..255.

  Returns:
    (N,) float64, or a float64 scalar for a single image.
  """
  err = np.atleast_1d(mse(a, b))
  with np.errstate(divide='ignore'):
    values = 10. * np.log10(MAX_VALUE ** 2 / err)
  return _unbatch_like(values, a)


def ssim(a, b):
  """SSIM per image with a Gaussian window, averaged over channels.

  Computed by `skimage.metrics.structural_similarity(x, y, data_range=255,
  channel_axis=-1, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False)`: an 11×11 Gaussian window (σ 1.5), K1 0.01,
  K2 0.03, population covariance, mean over the valid region. These are the
  semantics of `tf.image.ssim(a, b, 255)`, which upstream CloudTran reports;
  the two agree to float32 round-off. Images need H, W ≥ 11.

  Args:
    a, b: (N, H, W, C) or (H, W, C) arrays of values 0..255.

  Returns:
    (N,) float64, or a float64 scalar for a single image.
  """
  x, y = _as_batch(a, b)
  values = np.array([
      sk_metrics.structural_similarity(
          xi, yi, data_range=MAX_VALUE, channel_axis=-1,
          gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
      for xi, yi in zip(x, y)])
  return _unbatch_like(values, a)


# Upstream's per-image scores on 8-bit values, by name: whole images only.
PER_IMAGE = {'psnr': psnr, 'ssim': ssim, 'mse': mse}


def per_image(a, b):
  """{name: (N,) float64} of every PER_IMAGE score of images a against b."""
  return {name: np.atleast_1d(score(a, b)) for name, score in PER_IMAGE.items()}


def to_unit(values, scale=UNIT_SCALE):
  """Values as float64 in [0, 1]: 8-bit values / 255 (the default), or
  Sentinel-2 digital numbers / REFLECTANCE_SCALE (reflectance)."""
  return np.asarray(values, np.float64) / scale


def _as_masked_batch(a, b, mask):
  """(N, H, W, C) float64 copies of a and b and an (N, H, W) bool mask.

  `mask` None selects every pixel; an (H, W) mask goes with single images.
  """
  x, y = _as_batch(a, b)
  if mask is None:
    return x, y, np.ones(x.shape[:3], bool)
  m = np.asarray(mask).astype(bool)
  if m.ndim == 2:
    m = m[None]
  if m.shape != x.shape[:3]:
    raise ValueError(f'Expected a pixel mask of shape {x.shape[1:3]} per '
                     f'image, got {np.shape(mask)} for images {np.shape(a)}.')
  return x, y, m


def _masked_mean(values, mask):
  """(N, H, W) per-pixel values -> (N,) means over the masked pixels; NaN for
  an image whose mask selects nothing."""
  counts = mask.sum(axis=(1, 2))
  sums = np.where(mask, values, 0.).sum(axis=(1, 2))
  return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def rmse(a, b, mask=None):
  """Root mean squared error per image over the masked pixels (all channels).

  Args:
    a, b: (N, H, W, C) or (H, W, C) arrays of [0, 1] values (`to_unit`).
    mask: None (every pixel) or (N, H, W) / (H, W), true = pixel counted.

  Returns:
    (N,) float64, or a scalar for a single image; NaN where the mask selects
    no pixel.
  """
  x, y, m = _as_masked_batch(a, b, mask)
  values = np.sqrt(_masked_mean(np.mean((x - y) ** 2, axis=-1), m))
  return _unbatch_like(values, a)


def mae(a, b, mask=None):
  """Mean absolute error per image over the masked pixels; as `rmse`."""
  x, y, m = _as_masked_batch(a, b, mask)
  return _unbatch_like(_masked_mean(np.mean(np.abs(x - y), axis=-1), m), a)


def psnr01(a, b, mask=None):
  """PSNR in dB per image on [0, 1] values: 20·log10(1 / RMSE), RMSE over
  the masked pixels (`rmse`), capped at PSNR_CAP_DB (an exact image gives
  PSNR_CAP_DB, not inf); NaN where the mask selects no pixel."""
  error = np.atleast_1d(rmse(a, b, mask))
  floor = 10. ** (-PSNR_CAP_DB / 20.)
  values = np.where(np.isnan(error), np.nan,
                    20. * np.log10(1. / np.maximum(error, floor)))
  return _unbatch_like(values, a)


def ssim01(a, b, mask=None):
  """SSIM per image on [0, 1] values, averaged over the masked pixels.

  skimage's SSIM map, `structural_similarity(x, y, channel_axis=-1,
  full=True, **SSIM_SETTINGS)`: an 11×11 Gaussian window (σ 1.5), K1 0.01,
  K2 0.03, data range 1, population covariance; border windows are
  reflected. The map is averaged over channels and over the masked pixels,
  borders included, so with every pixel selected this is the mean of the
  whole map (skimage's own mean SSIM, like the 8-bit `ssim`, leaves out the
  5-pixel border). Images need H, W ≥ 11.

  Returns:
    (N,) float64, or a scalar for a single image; NaN where the mask selects
    no pixel.
  """
  x, y, m = _as_masked_batch(a, b, mask)
  return _unbatch_like(_masked_mean(_ssim_maps(x, y, m.any(axis=(1, 2))), m),
                       a)


def _ssim_maps(x, y, which):
  """(N, H, W) SSIM maps of `ssim01` (mean over channels) of the images
  where `which` (N,) is true, NaN elsewhere."""
  maps = np.full(x.shape[:3], np.nan)
  for i in np.flatnonzero(which):
    _, full = sk_metrics.structural_similarity(
        x[i], y[i], channel_axis=-1, full=True, **SSIM_SETTINGS)
    maps[i] = full.mean(axis=-1)
  return maps


def sam(a, b, mask=None):
  """Spectral angle mapper per image: mean per-pixel angle, in degrees.

  A pixel's angle is arccos(<x, y> / (|x| |y|)) between its channel vectors,
  computed as 2·atan2(|u - v|, |u + v|) of the unit vectors u, v (the same
  angle, without arccos' round-off near 0°: equal directions give exactly
  0); where a vector is zero the angle is 0° if both are, else 90°.
  Undefined (NaN) for single-channel images, where every angle is 0° or
  90°, and where the mask selects no pixel.

  Args:
    a, b: (N, H, W, C) or (H, W, C) arrays of [0, 1] values.
    mask: as for `rmse`.

  Returns:
    (N,) float64, or a scalar for a single image.
  """
  x, y, m = _as_masked_batch(a, b, mask)
  if x.shape[-1] < 2:
    return _unbatch_like(np.full(len(x), np.nan), a)
  norm_x = np.linalg.norm(x, axis=-1, keepdims=True)
  norm_y = np.linalg.norm(y, axis=-1, keepdims=True)
  u = x / np.where(norm_x > 0, norm_x, 1.)
  v = y / np.where(norm_y > 0, norm_y, 1.)
  angles = 2. * np.arctan2(np.linalg.norm(u - v, axis=-1),
                           np.linalg.norm(u + v, axis=-1))
  zero_x, zero_y = norm_x[..., 0] == 0, norm_y[..., 0] == 0
  angles = np.where(zero_x | zero_y,
                    np.where(zero_x & zero_y, 0., np.pi / 2), angles)
  return _unbatch_like(_masked_mean(np.degrees(angles), m), a)


# The protocol's metrics on [0, 1] values, computable on a pixel mask:
# name -> (function, table header with scale and unit).
Metric = collections.namedtuple('Metric', 'fn header')
PROTOCOL = {
    'rmse': Metric(rmse, 'RMSE [0-1]'),
    'mae': Metric(mae, 'MAE [0-1]'),
    'psnr01': Metric(psnr01, 'PSNR [dB, range 1]'),
    'ssim01': Metric(ssim01, 'SSIM [0-1]'),
    'sam': Metric(sam, 'SAM [°]'),
}
# Table headers of upstream's 8-bit metrics (their names are PER_IMAGE's).
UPSTREAM_HEADERS = {'psnr': 'PSNR [dB, 0-255]', 'ssim': 'SSIM [0-255]',
                    'mse': 'MSE [0-255]'}
# Pixel splits by the target's cloud mask: every pixel, the cloudy ones (the
# reconstructed pixels), the clear ones.
ALL, CLOUDY, CLEAR = SPLITS = ('all', 'cloudy', 'clear')

# One per-image column of the metric table: `key` names it in metrics.csv
# and TensorBoard (`<split>_<name>` for the protocol, upstream's names as
# they were), `split` and `header` place it in the results tables.
Column = collections.namedtuple('Column', 'key split name header')
COLUMNS = tuple(
    [Column(f'{split}_{name}', split, name, metric.header)
     for split in SPLITS for name, metric in PROTOCOL.items()] +
    [Column(name, ALL, name, UPSTREAM_HEADERS[name]) for name in PER_IMAGE])


def split_masks(target_clear, truth_clear=None):
  """{split: (N, H, W) bool, true = pixel in the split} of a target's
  clear-mask (N, H, W) or (H, W), 1 = clear (docs/design.md, Slots).

  `truth_clear`, the truth's own clear-mask (slot 0 of the mask cube, same
  shape), leaves its cloudy pixels out of every split: they have no truth.
  """
  clear = np.asarray(target_clear) > 0
  known = (np.ones_like(clear) if truth_clear is None
           else np.asarray(truth_clear) > 0)
  return {ALL: known, CLOUDY: ~clear & known, CLEAR: clear & known}


def pooled_psnr01(a, b, mask=None):
  """PSNR in dB of a whole set on [0, 1] values: 10·log10(1 / MSE), the MSE
  pooled over every masked pixel (all channels) of every image, capped at
  PSNR_CAP_DB; NaN where the mask selects no pixel. Unlike the mean of
  `psnr01` over images, an image counts by its pixels, and its large errors
  are not softened by the logarithm first.

  Args:
    a, b: (N, H, W, C) or (H, W, C) arrays of [0, 1] values.
    mask: as for `rmse`.

  Returns:
    A float.
  """
  x, y, m = _as_masked_batch(a, b, mask)
  if not m.any():
    return float('nan')
  error = np.mean((x - y) ** 2, axis=-1)[m].mean()
  return float(10. * np.log10(1. / max(error, 10. ** (-PSNR_CAP_DB / 10.))))


def score(outputs, truth, target_clear, truth_clear=None):
  """The metric table of 8-bit outputs against their truth.

  Args:
    outputs, truth: (N, H, W, C) or (H, W, C) arrays of values 0..255.
    target_clear: (N, H, W) or (H, W) clear-mask of the target date (the
      cloudy input), 1 = clear: it splits the pixels.
    truth_clear: None, or the truth's own clear-mask (as `target_clear`):
      its cloudy pixels are in no split (`split_masks`). Upstream's 8-bit
      scores are whole-image ones and keep them.

  Returns:
    {column key: (N,) float64} for every column of COLUMNS, in order: the
    protocol's metrics on outputs / 255 per split (NaN where an image has no
    pixel in the split), then upstream's on the 8-bit values.
  """
  x, y = (to_unit(v) for v in _as_batch(outputs, truth))
  masks = {split: _as_masked_batch(x, y, mask)[2] for split, mask in
           split_masks(target_clear, truth_clear).items()}
  # The SSIM map once per image, averaged over each split's pixels.
  maps = _ssim_maps(x, y, np.ones(len(x), bool))
  table = {}
  for column in COLUMNS:
    if column.name == 'ssim01':
      table[column.key] = _masked_mean(maps, masks[column.split])
    elif column.name in PROTOCOL:
      fn = PROTOCOL[column.name].fn
      table[column.key] = np.atleast_1d(fn(x, y, masks[column.split]))
    else:
      table[column.key] = np.atleast_1d(PER_IMAGE[column.name](outputs,
                                                               truth))
  return table


def average(values):
  """Mean of a column over images, leaving out NaN (an image without pixels
  in the split); None if nothing is left. inf (upstream's PSNR of an exact
  image) stays inf."""
  values = np.asarray(values, np.float64)
  values = values[~np.isnan(values)]
  return float(np.mean(values)) if len(values) else None


def _check_activations(a, b):
  """Returns two (N, d) activation arrays as float64."""
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
    raise ValueError(f'Expected (N, d) and (M, d) activations, got {a.shape} '
                     f'and {b.shape}.')
  return a, b


def _symmetric_sqrt(mat, eps=1e-10):
  """Square root of a symmetric PSD matrix by SVD; values < eps not rooted."""
  u, s, vt = np.linalg.svd(mat)
  return (u * np.where(s < eps, s, np.sqrt(s))) @ vt


def _mean_and_cov(x):
  """Mean (d,) and unbiased covariance (d, d) of (N, d) samples."""
  mean = x.mean(axis=0)
  centred = x - mean
  return mean, centred.T @ centred / (x.shape[0] - 1)


def fid_from_activations(a, b):
  """Fréchet distance between Gaussians fitted to two activation sets.

  TF-GAN's `frechet_classifier_distance_from_activations`, in float64:
  ||μa - μb||² + tr(Σa + Σb) - 2 tr(sqrt(sqrt(Σa) Σb sqrt(Σa))), with
  unbiased (N-1) covariances and SVD matrix square roots.

  Args:
    a, b: (N, d) and (M, d) activations.

  Returns:
    The distance, a float.
  """
  a, b = _check_activations(a, b)
  mean_a, cov_a = _mean_and_cov(a)
  mean_b, cov_b = _mean_and_cov(b)
  root_a = _symmetric_sqrt(cov_a)
  trace_sqrt_product = np.trace(_symmetric_sqrt(root_a @ cov_b @ root_a))
  return float(np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a + cov_b) -
               2. * trace_sqrt_product)


def _block_bounds(n, n_blocks):
  """Bounds (n_blocks + 1,) of TF-GAN's near-equal blocks, smaller first."""
  base, n_plus_one = divmod(n, n_blocks)
  sizes = [base] * (n_blocks - n_plus_one) + [base + 1] * n_plus_one
  return np.concatenate([[0], np.cumsum(sizes)])


def _cubic_kernel(x, y):
  """(m, d), (n, d) -> (m, n) kernel matrix (x·y/d + 1)³."""
  return (x @ y.T / x.shape[1] + 1.) ** 3


def _mmd2_unbiased(x, y):
  """Unbiased MMD² of two (m, d), (n, d) blocks with the cubic kernel."""
  k_xx, k_yy = _cubic_kernel(x, x), _cubic_kernel(y, y)
  m, n = x.shape[0], y.shape[0]
  return ((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1)) +
          (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1)) -
          2. * _cubic_kernel(x, y).mean())


def kid_and_std_from_activations(a, b, max_block_size=1024):
  """Kernel distance and its standard error, as TF-GAN computes them.

  TF-GAN's `kernel_classifier_distance_and_std_from_activations`, in float64:
  both sets are cut into ceil(max(N, M) / max_block_size) consecutive blocks
  of near-equal size (the smaller blocks first); each block pair gives an
  unbiased MMD² with k(x, y) = (x·y/d + 1)³; the result is their mean and
  std(ddof=1)/sqrt(n_blocks) (NaN for a single block). Note that a set
  compared with itself gives -2·(mean diagonal - mean off-diagonal of K)/N,
  not 0: the cross term keeps the pairs i = j.

  Args:
    a, b: (N, d) and (M, d) activations, in random order.
    max_block_size: largest block.

  Returns:
    (kid, std), floats.
  """
  a, b = _check_activations(a, b)
  n_blocks = -(-max(len(a), len(b)) // max_block_size)
  bounds_a = _block_bounds(len(a), n_blocks)
  bounds_b = _block_bounds(len(b), n_blocks)
  estimates = np.array([
      _mmd2_unbiased(a[bounds_a[i]:bounds_a[i + 1]],
                     b[bounds_b[i]:bounds_b[i + 1]])
      for i in range(n_blocks)])
  std = (estimates.std(ddof=1) / np.sqrt(n_blocks) if n_blocks > 1
         else float('nan'))
  return float(estimates.mean()), float(std)


def kid_from_activations(a, b, max_block_size=1024):
  """Kernel distance of `kid_and_std_from_activations`, without the std."""
  return kid_and_std_from_activations(a, b, max_block_size)[0]


class InceptionWeightsMissing(FileNotFoundError):
  """The Inception-v3 weights file needed for FID/KID is not on disk."""


def inception_cache_path():
  """Where Keras keeps the no-top Inception-v3 weights (honours KERAS_HOME)."""
  home = os.environ.get('KERAS_HOME') or os.path.join(
      os.path.expanduser('~'), '.keras')
  return os.path.join(home, 'models', INCEPTION_NOTOP_FILE)


def find_inception_weights(path=None):
  """Returns the weights file to use: `path` if given, else Keras' cache.

  Never downloads. Raises `InceptionWeightsMissing` if the file is absent.
  """
  if path:
    if os.path.isfile(path):
      return path
    reason = f'The Inception-v3 weights file given, {path}, does not exist.'
  else:
    path = inception_cache_path()
    if os.path.isfile(path):
      return path
    reason = 'No Inception-v3 weights file was given and none is cached.'
  raise InceptionWeightsMissing(
      f'{reason} FID and KID need the ImageNet Inception-v3 weights without '
      f'top, {INCEPTION_NOTOP_FILE} (from {INCEPTION_NOTOP_URL}); this '
      f'machine does not download it. Copy it to {inception_cache_path()} '
      f'(Keras\' cache, under $KERAS_HOME or ~/.keras) or pass its path with '
      f'--inception_weights. PSNR, SSIM and MSE do not need it.')


def _to_rgb(images):
  """(N, H, W, C), C in {1, 3, 4} -> (N, H, W, 3): grey repeated, C=4 cut."""
  channels = images.shape[-1]
  if channels == 1:
    return np.repeat(images, 3, axis=-1)
  if channels in (3, 4):
    return images[..., :3]
  raise ValueError(f'Inception features need 1, 3 or 4 channels, got '
                   f'{channels}.')


class InceptionFeatures:
  """Inception-v3 average-pool features of uint8 images.

  1. 1 channel is repeated to RGB; of 4 channels the first 3 (RGB) are kept.
  2. Bilinear resize to 299×299, `inception_v3.preprocess_input` (to [-1, 1]).
  3. `InceptionV3(include_top=False, pooling='avg')` in batches.
  """

  def __init__(self, weights_path=None, batch_size=32, random_weights=False):
    """Builds the network.

    Args:
      weights_path: the no-top weights file; None looks in Keras' cache.
      batch_size: images per forward pass.
      random_weights: random initialisation instead of weights (tests only).

    Raises:
      InceptionWeightsMissing: no weights file (unless `random_weights`).
    """
    weights = None if random_weights else find_inception_weights(weights_path)
    self._model = tf.keras.applications.InceptionV3(
        include_top=False, pooling='avg', weights=weights,
        input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3))
    self._batch_size = batch_size

  @tf.function(reduce_retracing=True)
  def _embed(self, images):
    """(B, H, W, 3) uint8 -> (B, 2048) float32."""
    resized = tf.image.resize(tf.cast(images, tf.float32),
                              (INCEPTION_SIZE, INCEPTION_SIZE),
                              method='bilinear')
    inputs = tf.keras.applications.inception_v3.preprocess_input(resized)
    return self._model(inputs, training=False)

  def __call__(self, images):
    """(N, H, W, C) uint8-valued images -> (N, 2048) float64 features."""
    images = _to_rgb(np.asarray(images))
    batches = [self._embed(images[i:i + self._batch_size]).numpy()
               for i in range(0, len(images), self._batch_size)]
    return np.concatenate(batches).astype(np.float64)
