"""The fast sampler (models/sampler.py) against the reference decode.

The reference (`CloudTranCore.generate(..., reference=True)`) re-runs the
whole decoders for every pixel; the fast sampler must generate the same
images. Weights get
noise everywhere (also the zero-initialised relative position biases), so a
wrong cache position or bias index changes the probabilities.
"""

import numpy as np
import pytest
import tensorflow as tf

import models
from models import sampler
import model_helpers

SIZE = model_helpers.SIZE
# Decoder toggles that change what the sampler caches or precomputes.
TOGGLES = {'cond_ln': False, 'cond_att_q': False, 'cond_att_scale': False,
           'cond_att_act': 'tanh', 'cond_mlp': 'shift', 'skip': False}


def _build(channels, timeline, stage='encoder_decoder', **decoder):
  config = model_helpers.core_config(channels, timeline)
  config.model.stage = stage
  config.model.decoder.update(decoder)
  return models.build(config)


def _randomize(model, seed):
  """Adds N(0, 0.1) noise to every weight of the model.

  Also to the zero-initialised relative biases and the norms' spatial
  weights. Much larger noise makes the network so ill-conditioned that float
  rounding alone moves some probabilities by 1e-3.
  """
  rng = np.random.default_rng(seed)
  for variable in model.variables:
    variable.assign(variable + rng.normal(0, 0.1, variable.shape))


@pytest.fixture(scope='module')
def rgb():
  return _build(3, 4)


def _assert_same_argmax(model, inputs):
  fast = model.generate(inputs, mode='argmax')
  reference = model.generate(inputs, mode='argmax', reference=True)
  assert sorted(fast) == sorted(reference)
  for key, value in fast.items():
    assert value.dtype == reference[key].dtype
    assert value.shape == reference[key].shape
  np.testing.assert_array_equal(fast['auto_argmax'], reference['auto_argmax'])
  np.testing.assert_allclose(fast['proba'], reference['proba'], atol=1e-5)
  if 'parallel' in reference:
    np.testing.assert_array_equal(fast['parallel'], reference['parallel'])
    np.testing.assert_allclose(fast['parallel_proba'],
                               reference['parallel_proba'], atol=1e-5)
  return fast


@pytest.mark.parametrize('channels,timeline,seeds', [(3, 4, 3), (1, 3, 2)])
def test_argmax_equals_the_reference(rgb, channels, timeline, seeds):
  model = rgb if channels == 3 else _build(channels, timeline)
  for seed in range(seeds):
    _randomize(model, seed)
    inputs = model_helpers.random_inputs(model.config, 2, seed=seed)
    out = _assert_same_argmax(model, inputs)
    assert sorted(out) == ['auto_argmax', 'parallel', 'parallel_proba',
                           'proba']
    shape = (2, SIZE, SIZE, channels)
    assert out['auto_argmax'].shape == out['parallel'].shape == shape
    assert out['auto_argmax'].dtype == out['parallel'].dtype == tf.int32
    assert out['proba'].shape == shape + (256,)
    assert out['proba'].dtype == tf.float32
    np.testing.assert_allclose(tf.reduce_sum(out['proba'], -1), 1, atol=1e-5)


def test_toggled_decoder_equals_the_reference():
  model = _build(3, 3, stage='decoder', **TOGGLES)
  _randomize(model, 7)
  out = _assert_same_argmax(model, model_helpers.random_inputs(model.config))
  assert sorted(out) == ['auto_argmax', 'proba']
  with pytest.raises(ValueError, match='parallel head'):
    model.sample(model_helpers.random_inputs(model.config),
                 only_parallel=True)


def test_batch_of_two_equals_two_batches_of_one(rgb):
  inputs = model_helpers.random_inputs(rgb.config, 2, seed=5)
  both = rgb.generate(inputs)['auto_argmax']
  for index in range(2):
    one = rgb.generate({k: v[index:index + 1] for k, v in inputs.items()})
    np.testing.assert_array_equal(one['auto_argmax'], both[index:index + 1])


def test_draws_are_seeded(rgb):
  inputs = model_helpers.random_inputs(rgb.config, 1, seed=3)
  draw = lambda seed: rgb.generate(inputs, mode='sample',
                                   seed=seed)['auto_sample'].numpy()
  first = draw([4, 0])
  assert first.shape == (1, SIZE, SIZE, 3) and first.dtype == np.int32
  assert 0 <= first.min() and first.max() < 256
  np.testing.assert_array_equal(draw(4), first)  # an int seed is [seed, 0]
  assert np.mean(draw([4, 1]) != first) > 0.5
  assert np.mean(draw(5) != first) > 0.5
  # The draws are those of the reference decode, without XLA (whose random
  # bits differ from the kernels' ones).
  graph = sampler.Sampler(rgb, jit_compile=False)
  np.testing.assert_array_equal(
      graph(inputs, mode='sample', seed=[4, 1])['auto_sample'],
      rgb.generate(inputs, mode='sample', seed=[4, 1],
                   reference=True)['auto_sample'])


def test_only_parallel(rgb):
  inputs = model_helpers.random_inputs(rgb.config, 2, seed=2)
  only = rgb.generate(inputs, only_parallel=True)
  assert sorted(only) == ['parallel', 'parallel_proba']
  _, aux = rgb.get_logits(inputs, training=False)
  np.testing.assert_array_equal(
      only['parallel'],
      tf.argmax(aux['encoder_logits'], -1, output_type=tf.int32))
  with pytest.raises(ValueError, match='mode'):
    rgb.generate(inputs, mode='beam')
  with pytest.raises(ValueError, match='mode'):
    rgb.sample(inputs, mode='beam')
