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


class RecordedTraining:
  """What `train.train` runs, recorded by wrapping `train.make_train_loop`
  (patched with `monkeypatch`): the trainable weights of the model and the
  discriminator when the loop is made, the compiled loop, and the mean
  losses of each of its calls."""

  def __init__(self, monkeypatch):
    from jobs import train  # pylint: disable=g-import-not-at-top
    self.state = self.loop = None
    self.start, self.losses = [], []
    make_loop = train.make_train_loop

    def recording(state):
      self.state, self.loop = state, make_loop(state)
      self.start = [v.numpy() for v in self.variables()]

      def loop(iterator, num_steps):
        losses = self.loop(iterator, num_steps)
        self.losses.append({k: float(v) for k, v in losses.items()})
        return losses
      return loop

    monkeypatch.setattr(train, 'make_train_loop', recording)

  def variables(self):
    parts = [self.state.model, self.state.discriminator]
    return [v for part in parts if part is not None
            for v in part.trainable_variables]

  def unchanged(self):
    """Paths of the trainable weights still equal to their start values."""
    return [v.path for v, start in zip(self.variables(), self.start)
            if np.array_equal(v.numpy(), start)]
