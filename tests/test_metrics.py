"""Tests for evaluation/metrics.py."""

import functools

import numpy as np
import pytest
from skimage import data
from skimage import metrics as sk_metrics
import tensorflow as tf

from evaluation import metrics


def _noisy(image, seed, amplitude=30):
  noise = np.random.RandomState(seed).randint(-amplitude, amplitude + 1,
                                              image.shape)
  return np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8)


@pytest.fixture(name='pair', params=['rgb', 'grey'])
def _pair(request):
  """Two batches of 2 known images, (2, 64, 64, C) uint8, C = 3 or 1."""
  image = data.astronaut() if request.param == 'rgb' else data.camera()[
      ..., None]
  truth = np.stack([image[:64, :64], image[300:364, 100:164]])
  return truth, _noisy(truth, seed=0)


def test_mse_psnr_match_skimage(pair):
  truth, noisy = pair
  for i in range(2):
    np.testing.assert_allclose(
        metrics.mse(truth, noisy)[i],
        sk_metrics.mean_squared_error(truth[i], noisy[i]), rtol=1e-12)
    np.testing.assert_allclose(
        metrics.psnr(truth, noisy)[i],
        sk_metrics.peak_signal_noise_ratio(truth[i], noisy[i], data_range=255),
        rtol=1e-12)
  assert metrics.psnr(truth[0], noisy[0]) == metrics.psnr(truth, noisy)[0]


def test_ssim_matches_skimage_gaussian_and_tf(pair):
  truth, noisy = pair
  values = metrics.ssim(truth, noisy)
  assert values.shape == (2,)
  for i in range(2):
    expected = sk_metrics.structural_similarity(
        truth[i], noisy[i], data_range=255, channel_axis=-1,
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    np.testing.assert_allclose(values[i], expected, rtol=1e-12)
  # Same semantics as tf.image.ssim (float32 there).
  np.testing.assert_allclose(values, tf.image.ssim(truth, noisy, 255.),
                             atol=1e-4)


def test_identical_images():
  image = data.astronaut()[:32, :32]
  assert metrics.mse(image, image) == 0.
  assert metrics.psnr(image, image) == np.inf
  assert metrics.ssim(image, image) == pytest.approx(1.)


def test_per_image_scores_every_table_entry(pair):
  truth, noisy = pair
  scores = metrics.per_image(noisy, truth)
  assert list(scores) == ['psnr', 'ssim', 'mse'] == list(metrics.PER_IMAGE)
  for name, values in scores.items():
    np.testing.assert_array_equal(values, metrics.PER_IMAGE[name](noisy,
                                                                  truth))
  one = metrics.per_image(noisy[0], truth[0])
  assert all(v.shape == (1,) for v in one.values())


def test_shape_mismatch_raises():
  with pytest.raises(ValueError, match='same shape'):
    metrics.psnr(np.zeros((2, 16, 16, 3)), np.zeros((1, 16, 16, 3)))


@pytest.fixture(name='activations')
def _activations():
  a = np.random.RandomState(10).randn(100, 8).astype(np.float32)
  b = (np.random.RandomState(11).randn(100, 8) * 1.5 + 0.2).astype(np.float32)
  return a, b


def test_fid_matches_tfgan(activations):
  a, b = activations
  assert metrics.fid_from_activations(a, b) == pytest.approx(3.4188118,
                                                             rel=1e-4)
  assert abs(metrics.fid_from_activations(a, a)) < 1e-5


def test_kid_matches_tfgan(activations):
  a, b = activations
  assert metrics.kid_from_activations(a, b) == pytest.approx(0.77681756,
                                                             rel=1e-4)


def test_kid_of_identical_sets():
  # TF-GAN's estimator gives -2·(mean diag - mean off-diag of K)/N: ≈ 0 for
  # large N, exactly this value for any N.
  a = np.random.RandomState(0).randn(2000, 8)
  kernel = (a @ a.T / 8 + 1) ** 3
  diag = np.mean(np.diag(kernel))
  off_diag = (kernel.sum() - np.trace(kernel)) / (2000 * 1999)
  kid = metrics.kid_from_activations(a, a, max_block_size=2000)
  assert kid == pytest.approx(-2 * (diag - off_diag) / 2000, rel=1e-9)
  assert abs(kid) < 1e-2


def test_kid_blocks_follow_tfgan(activations):
  a, b = activations
  b = b[:90]
  # ceil(100 / 30) = 4 blocks: a in 4 × 25, b in 22, 22, 23, 23.
  bounds_a, bounds_b = [0, 25, 50, 75, 100], [0, 22, 44, 67, 90]
  per_block = [metrics.kid_from_activations(a[bounds_a[i]:bounds_a[i + 1]],
                                            b[bounds_b[i]:bounds_b[i + 1]])
               for i in range(4)]
  kid, std = metrics.kid_and_std_from_activations(a, b, max_block_size=30)
  assert kid == pytest.approx(np.mean(per_block), rel=1e-12)
  assert std == pytest.approx(np.std(per_block, ddof=1) / 2, rel=1e-12)
  assert np.isnan(metrics.kid_and_std_from_activations(a, b)[1])


def test_missing_weights_message(tmp_path, monkeypatch):
  monkeypatch.setenv('KERAS_HOME', str(tmp_path))
  cache = tmp_path / 'models' / metrics.INCEPTION_NOTOP_FILE
  with pytest.raises(metrics.InceptionWeightsMissing) as error:
    metrics.InceptionFeatures()
  for part in (str(cache), '--inception_weights', 'PSNR, SSIM and MSE'):
    assert part in str(error.value)
  with pytest.raises(metrics.InceptionWeightsMissing, match='nowhere.h5'):
    metrics.find_inception_weights(str(tmp_path / 'nowhere.h5'))
  cache.parent.mkdir()
  cache.touch()
  assert metrics.find_inception_weights() == str(cache)
  assert metrics.find_inception_weights(str(cache)) == str(cache)


@pytest.fixture(name='inception', scope='module')
def _inception():
  return metrics.InceptionFeatures(batch_size=2, random_weights=True)


def test_inception_features(inception):
  rgb = np.random.RandomState(0).randint(0, 256, (3, 40, 40, 3), np.uint8)
  features = inception(rgb)
  assert features.shape == (3, 2048) and features.dtype == np.float64
  assert np.all(np.isfinite(features))
  # Random weights give small features (~1e-4): compare at a matching scale.
  close = functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-8)
  with pytest.raises(AssertionError):
    close(features[0], features[1])
  # Batching does not change the features.
  close(inception(rgb[2:]), features[2:])
  # 4 channels: the first 3 are used; 1 channel: repeated to RGB.
  close(inception(np.concatenate([rgb, rgb[..., :1]], axis=-1)), features)
  grey = rgb[..., :1]
  close(inception(grey), inception(np.repeat(grey, 3, axis=-1)))


# The cloud-removal protocol: [0, 1] values, pixel splits.


def _hand_pair():
  """A 2×2 RGB pair on [0, 1] differing at pixel (0, 0) by (0.1, 0.2, -0.2).

  Squared errors at (0, 0): 0.01, 0.04, 0.04, mean 0.03; elsewhere 0.
  """
  truth = np.full((2, 2, 3), 0.5)
  out = truth.copy()
  out[0, 0] += [0.1, 0.2, -0.2]
  corner = np.zeros((2, 2), bool)
  corner[0, 0] = True
  return out, truth, corner


def test_rmse_mae_psnr_hand_worked():
  out, truth, corner = _hand_pair()
  # All pixels: mean squared error 0.03 / 4; absolute 0.5 / 3 / 4.
  assert metrics.rmse(out, truth) == pytest.approx(np.sqrt(0.0075))
  assert metrics.mae(out, truth) == pytest.approx(0.5 / 12)
  assert metrics.psnr01(out, truth) == pytest.approx(
      -10 * np.log10(0.0075))  # 21.249 dB
  # The corner alone, and the three clear pixels (exact: PSNR capped).
  assert metrics.rmse(out, truth, corner) == pytest.approx(np.sqrt(0.03))
  assert metrics.mae(out, truth, corner) == pytest.approx(0.5 / 3)
  assert metrics.psnr01(out, truth, corner) == pytest.approx(
      -10 * np.log10(0.03))
  assert metrics.rmse(out, truth, ~corner) == 0
  assert metrics.psnr01(out, truth, ~corner) == metrics.PSNR_CAP_DB == 100
  # A batch with a per-image mask.
  batch = metrics.rmse(np.stack([out, out]), np.stack([truth, truth]),
                       np.stack([corner, ~corner]))
  np.testing.assert_allclose(batch, [np.sqrt(0.03), 0.])


def test_empty_mask_is_nan_and_averages_to_none():
  out, truth, _ = _hand_pair()
  nothing = np.zeros((2, 2), bool)
  image = np.random.RandomState(0).rand(16, 16, 3)
  for fn in (metrics.rmse, metrics.mae, metrics.psnr01, metrics.sam):
    assert np.isnan(fn(out, truth, nothing))
  assert np.isnan(metrics.ssim01(image, image, np.zeros((16, 16), bool)))
  assert metrics.average([np.nan, np.nan]) is None
  assert metrics.average([1., np.nan, 3.]) == 2.
  assert metrics.average([np.inf, 1.]) == np.inf


def test_sam_of_known_vectors():
  x = np.array([[[1., 0, 0], [1, 1, 0]], [[1, 1, 1], [1, 0, 0]]])
  y = np.array([[[0., 1, 0], [1, 0, 0]], [[2, 2, 2], [1, np.sqrt(3), 0]]])
  angles = np.array([[90., 45.], [0., 60.]])
  assert metrics.sam(x, y) == pytest.approx(angles.mean())
  assert metrics.sam(x, y, angles == 60.) == pytest.approx(60.)
  assert metrics.sam(x, y, angles > 40.) == pytest.approx(65.)
  # Zero vectors: 0° against zero, 90° against anything else; never NaN.
  zero = np.zeros((1, 2, 3))
  other = np.array([[[0., 0, 0], [0.2, 0.1, 0]]])
  np.testing.assert_allclose(metrics.sam(zero, other), 45.)
  # One channel: undefined.
  assert np.isnan(metrics.sam(x[..., :1], y[..., :1]))


def test_ssim01_is_skimage_gaussian_map(pair):
  truth, noisy = pair
  x, y = metrics.to_unit(noisy[0]), metrics.to_unit(truth[0])
  mssim, full = sk_metrics.structural_similarity(
      x, y, data_range=1, channel_axis=-1, gaussian_weights=True, sigma=1.5,
      use_sample_covariance=False, full=True)
  full = full.mean(axis=-1) if full.ndim == 3 else full
  assert metrics.ssim01(x, y) == pytest.approx(full.mean(), rel=1e-12)
  mask = np.zeros(full.shape, bool)
  mask[10:30, 5:50] = True
  assert metrics.ssim01(x, y, mask) == pytest.approx(full[mask].mean(),
                                                     rel=1e-12)
  # The map's interior mean is skimage's (and the 8-bit) SSIM.
  interior = np.zeros(full.shape, bool)
  interior[5:-5, 5:-5] = True
  assert metrics.ssim01(x, y, interior) == pytest.approx(mssim, rel=1e-12)
  assert metrics.ssim(noisy[0], truth[0]) == pytest.approx(mssim, rel=1e-9)
  assert metrics.ssim01(y, y) == pytest.approx(1.)


def test_to_unit_scales():
  assert metrics.to_unit(255) == 1. and metrics.to_unit(51) == 0.2
  assert metrics.to_unit(2500, metrics.REFLECTANCE_SCALE) == 0.25


def _independent_scores(out, truth, selected):
  """Per image {column name: value} of 8-bit `out` against `truth` on the
  `selected` (H, W) pixels, from numpy and skimage alone."""
  x, y = out / 255., truth / 255.
  error = (x - y)[selected]                            # (pixels, C)
  rmse = np.sqrt(np.mean(error ** 2))
  _, full = sk_metrics.structural_similarity(
      x, y, data_range=1, channel_axis=-1, gaussian_weights=True, sigma=1.5,
      use_sample_covariance=False, full=True)
  a, b = x[selected], y[selected]
  cosine = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) *
                                    np.linalg.norm(b, axis=1))
  whole = np.mean((out.astype(float) - truth) ** 2)
  return {
      'rmse': rmse, 'mae': np.mean(np.abs(error)),
      'psnr01': min(20 * np.log10(1 / rmse), 100.) if rmse else 100.,
      'ssim01': full.reshape(full.shape[:2] + (-1,)).mean(axis=-1)[
          selected].mean(),
      'sam': (np.mean(np.degrees(np.arccos(np.clip(cosine, -1, 1))))
              if x.shape[-1] > 1 else np.nan),
      'mse': whole, 'psnr': 10 * np.log10(255. ** 2 / whole),
      'ssim': sk_metrics.structural_similarity(
          out.astype(float), truth.astype(float), data_range=255,
          channel_axis=-1, gaussian_weights=True, sigma=1.5,
          use_sample_covariance=False)}


def test_score_is_the_metric_table(pair):
  truth, noisy = pair
  noisy = np.maximum(noisy, 1)               # no zero vector for SAM
  truth = np.maximum(truth, 1)
  clear = np.random.RandomState(1).rand(*truth.shape[:3]) > 0.4
  # The truth's own cloudy pixels (a corner of image 0) are in no split.
  known = np.ones_like(clear)
  known[0, :20, :20] = False
  table = metrics.score(noisy, truth, clear, known)
  assert list(table) == [c.key for c in metrics.COLUMNS]
  assert [c.key for c in metrics.COLUMNS[-3:]] == ['psnr', 'ssim', 'mse']
  splits = {'all': known, 'cloudy': ~clear & known, 'clear': clear & known}
  for i in range(len(truth)):
    for split, selected in splits.items():
      expected = _independent_scores(noisy[i], truth[i], selected[i])
      for column in metrics.COLUMNS:
        if column.split == split:
          # arccos is off by ~1e-6° near equal vectors (round-off).
          np.testing.assert_allclose(table[column.key][i],
                                     expected[column.name], rtol=1e-9,
                                     atol=1e-5 if column.name == 'sam' else 0,
                                     err_msg=column.key)
  headers = {c.header for c in metrics.COLUMNS}
  assert {'RMSE [0-1]', 'SAM [°]', 'MSE [0-255]'} <= headers


def test_split_masks_leave_out_pixels_without_truth():
  target_clear = np.array([[1, 0, 0, 1]])
  truth_clear = np.array([[1, 1, 0, 0]])
  masks = metrics.split_masks(target_clear, truth_clear)
  assert masks['all'].tolist() == [[True, True, False, False]]
  assert masks['cloudy'].tolist() == [[False, True, False, False]]
  assert masks['clear'].tolist() == [[True, False, False, False]]
  assert metrics.split_masks(target_clear)['all'].all()


def test_pooled_psnr01_pools_pixels_not_images():
  truth = np.zeros((2, 2, 2, 1))
  out = truth.copy()
  out[0, 0, 0] = 0.1                      # image 0: MSE 0.01 / 4
  out[1] = 0.01                           # image 1: MSE 1e-4
  mask = np.ones((2, 2, 2), bool)
  mask[0, 1] = False                      # image 0 counts 2 pixels
  pooled = (0.1 ** 2 + 0 + 4 * 0.01 ** 2) / 6
  assert metrics.pooled_psnr01(out, truth, mask) == pytest.approx(
      10 * np.log10(1 / pooled), rel=1e-12)
  per_image = np.mean([10 * np.log10(2 / 0.1 ** 2), 40.])
  assert metrics.average(metrics.psnr01(out, truth, mask)) == pytest.approx(
      per_image)
  assert metrics.pooled_psnr01(truth, truth) == metrics.PSNR_CAP_DB
  assert np.isnan(metrics.pooled_psnr01(out, truth, np.zeros_like(mask)))
