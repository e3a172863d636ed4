"""models/sampler.py: the fast sampler equals the straightforward decode."""

import numpy as np
import pytest
import tensorflow as tf

import models
from model_helpers import core_config
from model_helpers import random_inputs


def build(channels, seed, **overrides):
  config = core_config(channels=channels)
  for key, value in overrides.items():
    config.model.decoder[key] = value
  tf.keras.utils.set_random_seed(seed)
  return models.build(config), random_inputs(config, batch_size=2, seed=seed)


@pytest.mark.parametrize('channels,seed', [(1, 0), (1, 1), (3, 2), (3, 3)])
def test_fast_argmax_equals_the_oracle(channels, seed):
  model, inputs = build(channels, seed)
  fast = model.sample(inputs, mode='argmax')
  oracle = model.sample_reference(inputs, mode='argmax')
  np.testing.assert_array_equal(fast['auto_argmax'], oracle['auto_argmax'])
  np.testing.assert_array_equal(fast['parallel'], oracle['parallel'])
  np.testing.assert_allclose(fast['proba'], oracle['proba'], atol=1e-4)
  assert fast['auto_argmax'].shape == (2, 8, 8, channels)
  assert fast['auto_argmax'].dtype == tf.int32


def test_fast_equals_oracle_without_conditioning():
  model, inputs = build(3, 4, cond_ln=False, cond_att_q=False,
                        cond_att_k=False, cond_att_v=False, cond_mlp='shift',
                        skip=False)
  np.testing.assert_array_equal(
      model.sample(inputs)['auto_argmax'],
      model.sample_reference(inputs)['auto_argmax'])


def test_sample_mode_is_seeded():
  model, inputs = build(3, 5)
  first = model.sample(inputs, mode='sample', seed=[7, 1])['auto_sample']
  again = model.sample(inputs, mode='sample', seed=[7, 1])['auto_sample']
  other = model.sample(inputs, mode='sample', seed=[8, 1])['auto_sample']
  np.testing.assert_array_equal(first, again)
  assert not np.array_equal(first, other)
  assert 0 <= first.numpy().min() and first.numpy().max() < 256


def test_batch_of_two_equals_two_batches_of_one():
  model, inputs = build(3, 6)
  both = model.sample(inputs)['auto_argmax'].numpy()
  for i in range(2):
    single = {k: v[i:i + 1] for k, v in inputs.items()}
    np.testing.assert_array_equal(model.sample(single)['auto_argmax'],
                                  both[i:i + 1])


def test_only_parallel_skips_the_decoder():
  model, inputs = build(3, 7)
  out = model.sample(inputs, only_parallel=True)
  assert set(out) == {'parallel'}
  assert out['parallel'].shape == (2, 8, 8, 3)
