"""Behaviour of the upsampler (models/upsampler.py)."""

import numpy as np
import pytest
import tensorflow as tf

from datasets import transforms
import models
from models import base
from models import upsampler
import model_helpers

SIZE = model_helpers.SIZE
FULL = 16
UP_BACK = f'targets_{SIZE}_up_back'


@pytest.fixture(scope='module')
def model():
  return models.build(model_helpers.upsampler_config(resolution=FULL))


@pytest.fixture(scope='module')
def inputs():
  return model_helpers.random_inputs(
      model_helpers.upsampler_config(resolution=FULL))


@pytest.mark.parametrize('channels,timeline', [(1, 3), (3, 4), (4, 5)])
def test_output_shapes(channels, timeline):
  config = model_helpers.upsampler_config(channels, timeline, resolution=12)
  model = models.build(config)
  inputs = model_helpers.random_inputs(config)
  for training, out in ((True, 1), (False, channels)):
    logits, aux = model.get_logits(inputs, training=training)
    assert logits.shape == (2, 12, 12, out, 256) and aux == {}
  assert model.metric_keys == []


def test_uniform_logits_cost_8_bits_and_total_is_the_loss(model, inputs):
  assert model.config.loss_factor == 1.0  # upstream's default
  for training, channels in ((True, 1), (False, 3)):
    uniform = tf.zeros([2, FULL, FULL, channels, 256])
    total, losses = model.loss(inputs, uniform, {}, training=training)
    assert list(losses) == ['loss']
    assert float(total) == float(losses['loss']) == pytest.approx(8.0,
                                                                  abs=1e-5)


def test_total_loss_is_scaled_by_loss_factor(inputs):
  config = model_helpers.upsampler_config(resolution=FULL)
  config.loss_factor = 0.25
  model = models.build(config)
  uniform = tf.zeros([2, FULL, FULL, 1, 256])
  total, losses = model.loss(inputs, uniform, {}, training=True)
  assert float(losses['loss']) == pytest.approx(8.0, abs=1e-5)
  assert float(total) == pytest.approx(2.0, abs=1e-5)


def test_every_variable_gets_a_gradient(model, inputs):
  for training in (True, False):
    total, grads = model_helpers.gradients(model, inputs, training=training)
    assert np.isfinite(total)
    assert not [v.path for v, g in grads if g is None]
    assert not [v.path for v, g in grads
                if not np.any(tf.convert_to_tensor(g).numpy())]


def test_conditioning(model, inputs):
  """Channels are independent; slot 0 of `targets` (the labels) is unused."""
  before, _ = model.get_logits(inputs, training=False)
  low = inputs[UP_BACK].numpy().copy()
  low[..., 0] = 255 - low[..., 0]
  after, _ = model.get_logits(dict(inputs, **{UP_BACK: tf.constant(low)}),
                              training=False)
  delta = np.abs(after - before).max(axis=(0, 1, 2, 4))
  assert delta[0] > 0 and delta[1] == delta[2] == 0
  targets = inputs['targets'].numpy().copy()
  targets[..., :3] = 255 - targets[..., :3]
  same, _ = model.get_logits(dict(inputs, targets=tf.constant(targets)),
                             training=False)
  np.testing.assert_array_equal(same, before)
  targets[..., 3:] = 255 - targets[..., 3:]
  moved, _ = model.get_logits(dict(inputs, targets=tf.constant(targets)),
                              training=False)
  assert not np.allclose(moved, before)


def test_checkpoint_round_trip(tmp_path, inputs):
  config = model_helpers.upsampler_config(resolution=FULL)
  model = models.build(config)
  path = tf.train.Checkpoint(model=model).save(str(tmp_path / 'ckpt'))
  restored = models.build(config)
  tf.train.Checkpoint(model=restored).restore(path).assert_consumed()
  np.testing.assert_array_equal(
      restored.get_logits(inputs, training=True)[0],
      model.get_logits(inputs, training=True)[0])


def test_sample(model, inputs):
  output = model.sample(inputs, mode='argmax')
  assert sorted(output) == sorted([base.OUTPUT, base.CONFIDENCE])
  image = output[base.OUTPUT]
  assert image.shape == (2, FULL, FULL, 3) and image.dtype == tf.int32
  logits, _ = model.get_logits(inputs, training=False)
  np.testing.assert_array_equal(
      image, tf.argmax(logits, -1, output_type=tf.int32))
  np.testing.assert_allclose(output[base.CONFIDENCE],
                             tf.reduce_max(tf.nn.softmax(logits), -1),
                             atol=1e-6)
  # The upsampler is parallel: only_parallel changes nothing.
  np.testing.assert_array_equal(
      model.sample(inputs, only_parallel=True)[base.OUTPUT], image)
  drawn = model.sample(inputs, mode='sample', seed=1)[base.OUTPUT]
  assert drawn.shape == (2, FULL, FULL, 3) and drawn.dtype == tf.int32
  np.testing.assert_array_equal(
      drawn, model.sample(inputs, mode='sample', seed=1)[base.OUTPUT])
  assert not np.array_equal(
      drawn, model.sample(inputs, mode='sample', seed=2)[base.OUTPUT])
  with pytest.raises(ValueError, match='mode'):
    model.sample(inputs, mode='beam')


def test_with_low_res_conditions_on_another_models_output(model, inputs):
  """The output becomes slot 0 of `_up_back`, resized as the pipeline does."""
  low = tf.constant(np.random.default_rng(0).integers(
      0, 256, (2, SIZE, SIZE, 3)), tf.int32)
  chained = model.with_low_res(inputs, low)
  np.testing.assert_array_equal(chained[UP_BACK][..., :3],
                                transforms.resize_values(low, FULL))
  np.testing.assert_array_equal(chained[UP_BACK][..., 3:],
                                inputs[UP_BACK][..., 3:])
  assert all(chained[k] is inputs[k] for k in inputs if k != UP_BACK)
  logits, _ = model.get_logits(chained, training=False)
  np.testing.assert_array_equal(
      model.sample(chained)[base.OUTPUT],
      tf.argmax(logits, -1, output_type=tf.int32))
  core = models.build(model_helpers.core_config())
  with pytest.raises(ValueError, match='gen_data_dir'):
    core.with_low_res(inputs, low)


def test_gan_inputs(model, inputs):
  logits, _ = model.get_logits(inputs, training=True)
  cloudy, real, fake, channel_index = model.gan_inputs(inputs, logits,
                                                       'argmax')
  for image in (cloudy, real, fake):
    assert image.shape == (2, FULL, FULL, 1) and image.dtype == tf.float32
  np.testing.assert_array_equal(cloudy[..., 0],
                                inputs['targets_slice'][..., -1])
  np.testing.assert_array_equal(real[..., 0], inputs['targets_slice'][..., 0])
  np.testing.assert_array_equal(
      fake[..., 0], tf.argmax(logits[..., 0, :], -1, output_type=tf.int32))
  np.testing.assert_array_equal(channel_index, inputs['channel_index'])


def test_config_errors_name_the_keys():
  config = model_helpers.upsampler_config()
  config.model.num_heads = 3
  with pytest.raises(ValueError, match='model.num_heads'):
    models.build(config)
  config = model_helpers.upsampler_config()
  config.model.resolution = (4, 4)
  with pytest.raises(ValueError, match='model.resolution'):
    models.build(config)


def test_a_certain_classical_prior_is_what_the_upsampler_gives():
  """With config.classical_prior and its precision made huge, `sample` (the
  compiled sampler) and the logits' argmax give the full resolution fill
  corrected by the low resolution target (`residual_fill`, to the nearest
  value); the training loss is finite and the precision gets a gradient."""
  config = model_helpers.upsampler_config(resolution=FULL)
  config.classical_prior = True
  model = models.build(config)
  prior_inputs = model_helpers.random_inputs(config, seed=3)
  assert prior_inputs['prior'].shape == (2, FULL, FULL, 3)
  total, grads = model_helpers.gradients(model, prior_inputs, training=True)
  assert np.isfinite(total)
  assert dict((v.path, g) for v, g in grads)[
      model.prior_log_precision.path] is not None
  low_res = prior_inputs[UP_BACK][..., :3]
  fill = upsampler.residual_fill(prior_inputs['prior'], low_res,
                                SIZE).numpy()
  model.prior_log_precision.assign(10.)
  logits, _ = model.get_logits(prior_inputs, training=False)
  argmax = tf.argmax(logits, -1).numpy()
  assert np.abs(argmax - fill).max() <= 0.5 + 1e-3   # its nearest value
  np.testing.assert_array_equal(model.sample(prior_inputs)[base.OUTPUT],
                                argmax)
  model.prior_log_precision.assign(-30.)     # the prior all but gone
  assert (model.sample(prior_inputs)[base.OUTPUT].numpy() != argmax).mean(
      ) > .9


def test_the_residual_fill_takes_its_levels_from_the_low_resolution():
  """`residual_fill`: the fill itself (within rounding) when the low
  resolution target is the fill's own, the fill shifted by a constant added
  to it, clipped to 0..255."""
  fill = np.random.RandomState(0).randint(20, 236, (2, FULL, FULL, 3))
  own = transforms.resize_values(transforms.resize_values(fill, SIZE), FULL)
  same = upsampler.residual_fill(fill, own, SIZE).numpy()
  assert np.abs(same - fill).max() <= 0.5
  shifted = upsampler.residual_fill(fill, own + 30, SIZE).numpy()
  np.testing.assert_allclose(shifted, np.minimum(same + 30, 255), atol=1e-3)
  # Its block means are the pipeline's area resize, and it compiles with
  # XLA (training with config.jit_compile, the compiled sampler).
  low_res = np.random.RandomState(1).randint(0, 256, fill.shape)
  compiled = tf.function(upsampler.residual_fill, jit_compile=True)
  got = compiled(tf.constant(fill, tf.float32), tf.constant(low_res), SIZE)
  residual = (transforms.area_resize(low_res, SIZE) -
              transforms.area_resize(fill, SIZE))
  expected = np.clip(fill + tf.image.resize(residual, (FULL, FULL)), 0, 255)
  np.testing.assert_allclose(got, expected, atol=1e-3)
  with pytest.raises(ValueError, match='multiple of downsample_res'):
    upsampler.residual_fill(fill, low_res, 5)
