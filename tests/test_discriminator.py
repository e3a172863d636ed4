"""The PatchGAN discriminator (models/discriminator.py)."""

import numpy as np
import pytest
import tensorflow as tf

import models
from models import discriminator
import model_helpers


def _images(batch, size, seed):
  return tf.random.stateless_uniform([batch, size, size, 1], [seed, 0],
                                     maxval=255.0)


@pytest.mark.parametrize('size,patches', [(8, 2), (16, 6), (64, 30)])
def test_output_shape(size, patches):
  disc = discriminator.build(size)
  logits = disc([_images(2, size, 0), _images(2, size, 1),
                 tf.constant([0, 2])], training=False)
  assert logits.shape == (2, patches, patches, 1)


def test_resolution_comes_from_the_config():
  core = model_helpers.core_config()
  assert models.build_discriminator(core).input_shape[0] == (None, 8, 8, 1)
  upsampler = model_helpers.upsampler_config(resolution=12)
  assert models.build_discriminator(upsampler).input_shape[0] == (
      None, 12, 12, 1)
  upsampler.resolution = (12, 16)
  with pytest.raises(ValueError, match='square'):
    models.build_discriminator(upsampler)
  with pytest.raises(ValueError, match='at least'):
    discriminator.build(4)


def test_channel_index_changes_the_output():
  disc = discriminator.build(8)
  cloudy, candidate = _images(1, 8, 0), _images(1, 8, 1)
  first = disc([cloudy, candidate, tf.constant([0])], training=False)
  second = disc([cloudy, candidate, tf.constant([1])], training=False)
  assert not np.allclose(first, second)


def test_kernels_are_clipped_and_batch_norm_is_used():
  disc = discriminator.build(8)
  convs = [l for l in disc.layers if isinstance(l, tf.keras.layers.Conv2D)]
  assert [c.filters for c in convs] == [64, 128, 256, 512, 1]
  assert [c.use_bias for c in convs] == [False] * 4 + [True]
  norms = [l for l in disc.layers
           if isinstance(l, tf.keras.layers.BatchNormalization)]
  assert len(norms) == 3
  for conv in convs:
    assert isinstance(conv.kernel.constraint, discriminator.ClipConstraint)
    conv.kernel.assign(3.0 * tf.sign(conv.kernel))
  optimizer = tf.keras.optimizers.Adam(2e-4, beta_1=0.5)
  batch = [_images(2, 8, 0), _images(2, 8, 1), tf.constant([0, 1])]
  with tf.GradientTape() as tape:
    logits = disc(batch, training=True)
    loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
        tf.ones_like(logits), logits))
  grads = tape.gradient(loss, disc.trainable_variables)
  assert all(g is not None for g in grads)
  optimizer.apply_gradients(zip(grads, disc.trainable_variables))
  for conv in convs:
    kernel = conv.kernel.numpy()
    assert np.abs(kernel).max() <= 1.0
    assert np.isclose(np.abs(kernel).max(), 1.0)


def test_checkpoint_round_trip(tmp_path):
  disc = discriminator.build(8)
  path = tf.train.Checkpoint(discriminator=disc).save(str(tmp_path / 'c'))
  other = discriminator.build(8)
  tf.train.Checkpoint(discriminator=other).restore(path).assert_consumed()
  batch = [_images(1, 8, 0), _images(1, 8, 1), tf.constant([2])]
  np.testing.assert_array_equal(other(batch, training=False),
                                disc(batch, training=False))


@pytest.mark.parametrize('padding,size', [('same', 9), ('valid', 8)])
def test_stride1_conv_gradients_equal_tensorflows(padding, size):
  x = tf.random.stateless_normal([2, size, size, 3], [0, 0])
  w = tf.random.stateless_normal([4, 4, 3, 5], [0, 1])
  with tf.GradientTape(persistent=True) as tape:
    tape.watch([x, w])
    ours = discriminator._stride1_conv(x, w, padding)  # pylint: disable=protected-access
    theirs = tf.nn.conv2d(x, w, 1, padding.upper())
    losses = [tf.reduce_sum(y * tf.sin(y)) for y in (ours, theirs)]
  np.testing.assert_array_equal(ours, theirs)
  for a, b in zip(tape.gradient(losses[0], [x, w]),
                  tape.gradient(losses[1], [x, w])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())
