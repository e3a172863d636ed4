"""config.context_correction: the context dates in the target's light."""

import numpy as np
import pytest

from datasets import pipeline
from datasets import transforms
from evaluation import baselines
from jobs import predict_models
import models
from utils import errors

C = 3


def cube_and_mask(seed, size=24, slots=5):
  """A random targets cube (cloudy pixels = 40) and its clear-mask."""
  rng = np.random.default_rng(seed)
  image = rng.integers(0, 256, (size, size, slots, C))
  mask = (rng.random((size, size, slots)) > 0.3).astype(np.int32)
  targets = np.where(mask[..., None] > 0, image, transforms.MASK_VALUE)
  return targets.reshape(size, size, slots * C).astype(np.int32), mask


@pytest.mark.parametrize('method', ['global', 'local'])
def test_a_linear_date_comes_back_as_the_target(method):
  rng = np.random.default_rng(0)
  target = rng.integers(0, 120, (32, 32, C))
  # Date = 2 · target + 3 everywhere: the fit's gain is 0.5, its offset -1.5.
  slots = np.stack([target, 2 * target + 3, 2 * target + 3, target], axis=-2)
  mask = np.ones((32, 32, 4), np.int32)
  mask[5:20, 5:20, 1] = 0
  mask[10:30, 0:12, 3] = 0
  targets = np.where(mask[..., None] > 0, slots, 40).reshape(32, 32, 4 * C)
  out = transforms.correct_context(targets, mask, C, method).numpy()
  out = out.reshape(32, 32, 4, C)
  clear = mask[..., 1:3] > 0
  np.testing.assert_array_equal(out[..., 1:3, :][clear],
                                np.stack([target, target], -2)[clear])
  assert (out[..., 1:3, :][~clear] == 40).all()
  np.testing.assert_array_equal(out[..., [0, 3], :],
                                targets.reshape(32, 32, 4, C)[..., [0, 3], :])


@pytest.mark.parametrize('method,windows', [('global', ()),
                                            ('local', baselines.LOCAL_WINDOWS)])
def test_the_classical_fill_fit_on_random_cubes(method, windows):
  targets, mask = cube_and_mask(1)
  out = transforms.correct_context(targets, mask, C, method).numpy()
  slots = targets.reshape(24, 24, 5, C)
  expected = np.clip(np.rint(baselines._corrected_context(  # pylint: disable=protected-access
      slots, mask, windows)), 0, 255)
  clear = mask[..., 1:-1] > 0
  got = out.reshape(24, 24, 5, C)[..., 1:-1, :]
  np.testing.assert_array_equal(got[clear], expected[clear])
  assert transforms.LOCAL_WINDOWS == baselines.LOCAL_WINDOWS
  assert transforms.MIN_GAIN_PIXELS == baselines.MIN_GAIN_PIXELS


def test_none_is_the_cube_as_is_and_unknown_methods_are_refused():
  targets, mask = cube_and_mask(2)
  assert transforms.correct_context(targets, mask, C, 'none') is targets
  with pytest.raises(ValueError, match='context_correction'):
    transforms.correct_context(targets, mask, C, 'median')


def test_the_pipeline_corrects_only_the_context_slots(tiny_config):
  config = tiny_config('cloudtran_core_test')
  plain = next(iter(pipeline.get_dataset(config, 2, 'valid')))
  config.context_correction = 'local'
  corrected = next(iter(pipeline.get_dataset(config, 2, 'valid')))
  slots = lambda b: b['targets'].numpy().reshape(
      b['targets'].shape[:3] + (config.timeline, C))
  np.testing.assert_array_equal(slots(plain)[..., [0, -1], :],
                                slots(corrected)[..., [0, -1], :])
  assert (slots(plain)[..., 1:-1, :] != slots(corrected)[..., 1:-1, :]).any()
  for key in ('image', 'mask'):
    np.testing.assert_array_equal(plain[key], corrected[key])
  config.context_correction = 'nearest'
  with pytest.raises(errors.DataError, match='context_correction'):
    pipeline.check_config(config)


def test_predict_refuses_models_with_different_corrections(tiny_config):
  core = tiny_config('cloudtran_core_test')
  upsampler = tiny_config('upsampler_test')
  core.context_correction = 'local'
  with pytest.raises(ValueError, match='context_correction'):
    predict_models.check_configs(core, upsampler)


def test_classical_fill_is_the_local_corrected_mosaic():
  targets, mask = cube_and_mask(3, slots=5)
  mask[:4, :4, 1:] = 0                      # clear in no input date
  targets = np.where(np.repeat(mask, C, -1) > 0, targets, 40)
  got = transforms.classical_fill(targets, mask, C).numpy()
  expected = np.clip(baselines.local_corrected_mosaic(targets, mask, C), 0,
                     255)
  np.testing.assert_array_equal(got, expected)
  # Batched, as the models' inputs come.
  both = transforms.classical_fill(np.stack([targets] * 2),
                                   np.stack([mask] * 2), C).numpy()
  np.testing.assert_array_equal(both, np.stack([expected] * 2))


@pytest.mark.parametrize('flat', [False, True])
def test_the_similar_fill_is_the_similar_pixel_mosaic(flat):
  """To the bit. Flat context dates fit no gain, so their corrected values
  are all equal: every candidate ties, and the earliest offsets win."""
  targets, mask = cube_and_mask(4, size=40, slots=4)
  if flat:
    targets[..., C:3 * C] = 100
  mask[:4, :4, 1:] = 0                      # clear in no input date
  mask[20:, 20:, -1] = 0                    # a cloud wider than the search
  targets = np.where(np.repeat(mask, C, -1) > 0, targets, 40)
  expected = baselines.fill_8bit(baselines.SIMILAR_FILL, targets, mask, C)
  local = baselines.fill_8bit('local corrected mosaic', targets, mask, C)
  assert (expected != local).mean() > 0.1
  both = transforms.classical_fill(np.stack([targets] * 2),
                                   np.stack([mask] * 2), C, 'similar').numpy()
  np.testing.assert_array_equal(both, np.stack([expected] * 2))
  assert (transforms.SIMILAR_RADIUS, transforms.SIMILAR_COUNT) == (
      baselines.SIMILAR_RADIUS, baselines.SIMILAR_COUNT)
  with pytest.raises(ValueError, match='prior_fill'):
    transforms.classical_fill(targets, mask, C, 'nearest')


@pytest.mark.parametrize('name,fill', [('cloudtran_core_test', 'local'),
                                       ('upsampler_test', 'local'),
                                       ('cloudtran_core_test', 'similar')])
def test_the_prior_is_the_fill_at_the_models_side(tiny_config, name, fill):
  """The pipeline gives each model its classical fill of the uncorrected
  full-resolution inputs, area-resized to the side it outputs: the core's
  downsample_res, the upsampler's full resolution."""
  config = tiny_config(name)
  config.classical_prior = True
  config.context_correction = 'local'
  config.prior_fill = fill
  batch = next(iter(pipeline.get_dataset(config, 2, 'valid')))
  side = pipeline.prior_side(config)
  assert side == (config.resolution[0] if name == 'upsampler_test' else
                  config.downsample_res)
  # The pipeline's twin of the models' own output side.
  assert side == models.generator_resolution(config)
  key = 'prior' if side == config.resolution[0] else f'prior_{side}'
  plain = transforms.mask_targets(batch['image'], batch['mask'], C)
  expected = transforms.resize_values(
      transforms.classical_fill(plain, batch['mask'], C, fill), side)
  np.testing.assert_array_equal(batch[key], expected)
  assert batch[key].shape == (2, side, side, C)
  config.prior_fill = 'nearest'
  with pytest.raises(errors.DataError, match='prior_fill'):
    pipeline.check_config(config)
