"""Tiny configs and random batches shared by the model tests."""

import numpy as np
import tensorflow as tf

import models
from configs import cloudtran_core_train
from configs import upsampler_train

# Side of the core's images and of the upsampler's low resolution in tests.
SIZE = 8


def core_config(channels=3, timeline=4):
  """The 'tiny' core config at 8×8 (D=16, 2 heads, 1 layer each)."""
  config = cloudtran_core_train.get_config('tiny')
  config.n_channels = channels
  config.timeline = timeline
  config.downsample_res = SIZE
  config.model.resolution = config.model.decoder.resolution = (SIZE, SIZE)
  return config


def upsampler_config(channels=3, timeline=4, resolution=16):
  """The 'tiny' upsampler config at resolution×resolution (D=16)."""
  config = upsampler_train.get_config('tiny')
  config.n_channels = channels
  config.timeline = timeline
  config.downsample_res = SIZE
  config.resolution = (resolution, resolution)
  config.model.resolution = (SIZE, SIZE)
  return config


def random_inputs(config, batch_size=2, seed=0):
  """A batch with every key of `models.zero_inputs`, random valid values."""
  rng = np.random.default_rng(seed)
  inputs = {}
  for key, zeros in models.zero_inputs(config, batch_size).items():
    if key == 'channel_index':
      high = config.n_channels
    elif key.startswith('mask'):
      high = 2
    else:
      high = 256
    inputs[key] = tf.constant(rng.integers(0, high, zeros.shape), tf.int32)
  return inputs


def gradients(model, inputs, training=True):
  """(total loss, [(variable, gradient)]) of the model's training loss."""
  with tf.GradientTape() as tape:
    logits, aux = model.get_logits(inputs, training=training)
    total, _ = model.loss(inputs, logits, aux, training=training)
  grads = tape.gradient(total, model.trainable_variables)
  return total, list(zip(model.trainable_variables, grads))
