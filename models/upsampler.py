"""The upsampler (SPEC §3): low resolution target -> full resolution logits.

Deterministic and parallel at `H × W = config.resolution`. Conditioned on the
full resolution masked slots 1..T-1 of `targets` (all channels) and, per
channel, on the low resolution target brought back to full size
(`targets_{h}_up_back`, or a generated core output resized to `H × W`).
"""

import tensorflow as tf

from models import base
from models import core
from models import layers

NUM_SYMBOLS = base.NUM_SYMBOLS


def check_config(config):
  """Raises ValueError naming the keys of an inconsistent upsampler config."""
  model = config.model
  size = config.downsample_res
  if not config.downsample:
    raise ValueError('The upsampler reads the `_{h}_up_back` cubes: '
                     'config.downsample must be True.')
  if tuple(model.resolution) != (size, size):
    raise ValueError(f'config.model.resolution={tuple(model.resolution)} must '
                     f'equal (downsample_res, downsample_res)=({size}, {size}).')
  if model.n_channels != config.n_channels:
    raise ValueError(f'config.model.n_channels={model.n_channels} must equal '
                     f'config.n_channels={config.n_channels}.')
  if model.hidden_size % model.num_heads:
    raise ValueError(
        f'config.model.hidden_size={model.hidden_size} must be divisible by '
        f'config.model.num_heads={model.num_heads}.')


class Upsampler(base.CloudTranModel):
  """Spatial upsampler.

  1. The slots 1..T-1 (`(T-1)·C` slot-channels, 256 symbols each) are one-hot
     encoded, flattened and embedded (dense to D, no bias): a time embedding
     per pixel.
  2. Each low resolution target channel (value + 256·c) is one-hot embedded
     (dense to D, no bias), concatenated with the time embedding and mapped
     by a dense layer (with bias) to D.
  3. An axial encoder stack (`num_encoder_layers`) and a dense `D -> 256`.

  Logits `(B, H, W, C_out, 256)`: one random channel in training, all C
  otherwise.
  """

  def __init__(self, config, **kwargs):
    super().__init__(**kwargs)
    check_config(config)
    self.config = config
    model = config.model
    self.num_channels = config.n_channels
    self.resolution = tuple(config.resolution)
    hidden_size = model.hidden_size
    self.time_embedding = layers.OneHotEmbedding(
        NUM_SYMBOLS, hidden_size,
        num_features=(config.timeline - 1) * self.num_channels)
    self.channel_embedding = layers.OneHotEmbedding(
        NUM_SYMBOLS * self.num_channels, hidden_size)
    self.input_dense = layers.dense(hidden_size, 2 * hidden_size)
    # The upsampler config has no dropout key; upstream runs it without.
    self.encoder = layers.AxialEncoder(
        hidden_size, model.ff_size, model.num_heads, model.num_encoder_layers,
        self.resolution)
    self.final_dense = layers.dense(NUM_SYMBOLS, hidden_size)
    # Every weight exists once the constructor returns.
    self.built = True

  def _low_res_key(self, training):
    size = self.config.downsample_res
    if training:
      return f'targets_slice_{size}_up_back'
    return f'targets_{size}_up_back'

  def _labels_key(self, training):
    return 'targets_slice' if training else 'targets'

  def upsample(self, low_res, offsets, inputs, training=False):
    """Logits `(B, H, W, C_out, 256)`.

    Args:
      low_res: `(B, H, W, C_out)` int, the low resolution target channels.
      offsets: `(B|1, C_out)` int32 flat-vocabulary offsets `256·c`.
      inputs: batched example dict; slots 1..T-1 of `targets` condition.
      training: passed to the encoder stack (which has no dropout here).
    """
    slots = tf.cast(inputs['targets'], tf.int32)[..., self.num_channels:]
    time = self.time_embedding(slots)
    num_out = low_res.shape[-1]
    channels = self.channel_embedding(core.fold_channels(
        tf.cast(low_res, tf.int32) + offsets[:, None, None])[..., None])
    time = core.fold_channels(
        tf.repeat(time[:, :, :, None], num_out, axis=3))
    x = self.input_dense(tf.concat([channels, time], axis=-1))
    x = self.encoder(x, training=training)
    return core.unfold_channels(self.final_dense(x), num_out)

  def get_logits(self, inputs, training):
    low_res = tf.cast(inputs[self._low_res_key(training)], tf.int32)
    if training:
      offsets = core.channel_offsets(inputs['channel_index'], 1)
      low_res = low_res[..., :1]
    else:
      offsets = core.channel_offsets(None, self.num_channels)
      low_res = low_res[..., :self.num_channels]
    return self.upsample(low_res, offsets, inputs, training=training), {}

  def call(self, inputs, training=False):
    return self.get_logits(inputs, training)

  def loss(self, inputs, logits, aux, training):
    del aux
    num_out = 1 if training else self.num_channels
    labels = inputs[self._labels_key(training)][..., :num_out]
    loss = base.bits_per_dim(logits, labels)
    return self.config.loss_factor * loss, {'loss': loss}

  def gan_inputs(self, inputs, logits, relaxation):
    if logits.shape[3] != 1:
      raise ValueError('gan_inputs takes the one-channel logits of training '
                       f'(random channel); got {logits.shape[3]} channels.')
    cube = tf.cast(inputs[self._labels_key(True)], tf.float32)
    fake = base.relax(logits[..., 0, :], relaxation)[..., None]
    return cube[..., -1:], cube[..., :1], fake, inputs['channel_index']

  def sample(self, inputs, low_res, mode='argmax', seed=None):
    """Upsamples every channel.

    Args:
      inputs: batched example dict (slots 1..T-1 of `targets` condition).
      low_res: `(B, H, W, C)` int, the low resolution target at full size
        (`targets_{h}_up_back[..., :C]` or a resized core output).
      mode: 'argmax' or 'sample' (a draw from the softmax per pixel).
      seed: seed of the `'sample'` draws (stateless): an int or a pair of
        ints (see `core.seed_pair`), or None.

    Returns:
      The full resolution image `(B, H, W, C)` int32.
    """
    logits = self.upsample(low_res, core.channel_offsets(
        None, self.num_channels), inputs)
    if mode == 'argmax':
      return tf.argmax(logits, axis=-1, output_type=tf.int32)
    if mode != 'sample':
      raise ValueError(f"mode must be 'argmax' or 'sample', got {mode!r}.")
    flat = tf.reshape(logits, [-1, NUM_SYMBOLS])
    if seed is None:
      draws = tf.random.categorical(flat, 1, dtype=tf.int32)
    else:
      draws = tf.random.stateless_categorical(
          flat, 1, seed=core.seed_pair(seed), dtype=tf.int32)
    return tf.reshape(draws, tf.shape(logits)[:-1])
