"""models.build / build_discriminator / zero_inputs and compiled steps."""

import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from datasets import keys
import models
from models import base
from models import core
from models import upsampler
import model_helpers

SIZE = model_helpers.SIZE


def test_build_dispatches_on_the_model_name():
  assert isinstance(models.build(model_helpers.core_config()),
                    core.CloudTranCore)
  assert isinstance(models.build(model_helpers.upsampler_config()),
                    upsampler.Upsampler)
  config = model_helpers.core_config()
  config.model.name = 'colorizer'
  with pytest.raises(ValueError, match='config.model.name'):
    models.build(config)


def test_shared_config_checks():
  config = model_helpers.core_config(timeline=2)
  with pytest.raises(ValueError, match='config.timeline'):
    models.build(config)
  # A config without FieldReferences (e.g. loaded from config.yaml).
  config = ml_collections.ConfigDict(model_helpers.core_config().to_dict())
  config.model.encoder.hidden_size = 32
  with pytest.raises(ValueError, match='encoder.hidden_size'):
    models.build(config)
  config = model_helpers.upsampler_config()
  config.downsample_res = 32
  with pytest.raises(ValueError, match='downsample_res'):
    models.build(config)


def test_zero_inputs_follow_the_pipeline_shapes():
  config = model_helpers.core_config(channels=4, timeline=3)
  inputs = models.zero_inputs(config, batch_size=2)
  full = tuple(config.resolution)
  assert inputs['targets'].shape == (2,) + full + (12,)
  assert inputs['mask'].shape == (2,) + full + (3,)
  assert inputs[f'targets_{SIZE}'].shape == (2, SIZE, SIZE, 12)
  assert inputs[f'targets_slice_{SIZE}_up_back'].shape == (2,) + full + (3,)
  assert inputs[keys.downsampled('mask', SIZE)].shape == (2, SIZE, SIZE, 3)
  assert inputs[keys.up_back('image', SIZE)].shape == (2,) + full + (12,)
  assert inputs['channel_index'].shape == (2,)
  assert all(v.dtype == tf.int32 for v in inputs.values())


def test_built_models_have_all_their_weights():
  for config in (model_helpers.core_config(), model_helpers.upsampler_config()):
    model = models.build(config)
    assert model.built and model.count_params() > 0
    before = len(model.variables)
    model.get_logits(model_helpers.random_inputs(config), training=False)
    assert len(model.variables) == before
    assert callable(model.loss)


@pytest.mark.parametrize('make_config', [model_helpers.core_config,
                                         model_helpers.upsampler_config])
def test_compiled_train_step(make_config):
  """forward + backward + RMSprop inside tf.function(jit_compile=True)."""
  config = make_config()
  model = models.build(config)
  optimizer = tf.keras.optimizers.RMSprop(config.optimizer.learning_rate)
  inputs = model_helpers.random_inputs(config)

  @tf.function(jit_compile=True)
  def step(batch):
    total, grads = model_helpers.gradients(model, batch, training=True)
    optimizer.apply_gradients([(g, v) for v, g in grads])
    return total

  losses = [float(step(inputs)) for _ in range(3)]
  assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_fold_unfold_channels():
  x = tf.reshape(tf.range(2 * 3 * 4 * 5 * 6), [2, 3, 4, 5, 6])
  folded = base.fold_channels(x)
  assert folded.shape == (10, 3, 4, 6)
  np.testing.assert_array_equal(folded[5 + 2], x[1, :, :, 2])
  np.testing.assert_array_equal(base.unfold_channels(folded, 5), x)
