"""PatchGAN discriminator on one channel (docs/design.md, The discriminator).

Call signature of the model `build` returns:

  patch_logits = disc([cloudy, candidate, channel_index], training=...)

with `cloudy` (slot T-1) and `candidate` (the truth, slot 0, or the relaxed
generator output) `(B, R, R, 1) float32` pixel values 0..255 at the
generator's resolution R, `channel_index` `(B,)` int32, and `patch_logits`
`(B, P, P, 1)` real-vs-generated logits (P = ceil(R/2) - 2, e.g. 30 for 64).
"""

import tensorflow as tf

from models import base
from models import layers

# Smallest resolution for which the last convolution still has an output.
MIN_RESOLUTION = 5


class ClipConstraint(tf.keras.constraints.Constraint):
  """Clips a kernel to [-clip_value, clip_value] after every update."""

  def __init__(self, clip_value=1.0):
    self.clip_value = clip_value

  def __call__(self, w):
    return tf.clip_by_value(w, -self.clip_value, self.clip_value)

  def get_config(self):
    return {'clip_value': self.clip_value}


def _conv(filters, strides, padding, use_bias=False, dtype=None):
  return tf.keras.layers.Conv2D(
      filters, 4, strides=strides, padding=padding, use_bias=use_bias,
      kernel_initializer=tf.keras.initializers.RandomNormal(stddev=0.02),
      kernel_constraint=ClipConstraint(1.0), dtype=dtype)


def build(resolution):
  """The PatchGAN for `(resolution, resolution)` single-channel images.

  1. Each image plus `256 · channel_index`, concatenated: `(B, R, R, 2)`.
  2. 4×4 convolutions 64 (stride 1, no norm), 128 (stride 1), 256
     (stride 2), all 'same' padded; zero-pad, 512 (stride 1, valid); zero-pad,
     1 (valid, with bias). Batch norm after every convolution but the first
     and the last, leaky ReLU after every one but the last. Kernels are
     initialised N(0, 0.02) and clipped to [-1, 1].

  Under `config.precision='bfloat16'` the layers of step 1, the first
  convolution (they read pixel values) and the last (logits) stay float32.

  Returns a functional Keras model (see the module docstring).
  """
  if resolution < MIN_RESOLUTION:
    raise ValueError(f'The discriminator needs images of at least '
                     f'{MIN_RESOLUTION} pixels a side, got {resolution}.')
  shape = (resolution, resolution, 1)
  cloudy = tf.keras.Input(shape, name='cloudy')
  candidate = tf.keras.Input(shape, name='candidate')
  channel_index = tf.keras.Input((), dtype='int32', name='channel_index')
  offset = tf.keras.ops.reshape(
      tf.keras.ops.cast(channel_index, 'float32') * base.NUM_SYMBOLS,
      (-1, 1, 1, 1))
  x = tf.keras.layers.Concatenate(dtype=layers.KEEP_FLOAT32)(
      [cloudy + offset, candidate + offset])
  x = tf.keras.layers.LeakyReLU()(
      _conv(64, 1, 'same', dtype=layers.KEEP_FLOAT32)(x))
  for filters, strides in ((128, 1), (256, 2)):
    x = _conv(filters, strides, 'same')(x)
    x = tf.keras.layers.LeakyReLU()(tf.keras.layers.BatchNormalization()(x))
  x = _conv(512, 1, 'valid')(tf.keras.layers.ZeroPadding2D()(x))
  x = tf.keras.layers.LeakyReLU()(tf.keras.layers.BatchNormalization()(x))
  logits = _conv(1, 1, 'valid', use_bias=True, dtype=layers.KEEP_FLOAT32)(
      tf.keras.layers.ZeroPadding2D()(x))
  return tf.keras.Model([cloudy, candidate, channel_index], logits,
                        name='discriminator')
