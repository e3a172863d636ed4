"""The upsampler: low resolution target -> full resolution logits.

Deterministic and parallel at `H × W = config.resolution`. Conditioned on the
full resolution masked slots 1..T-1 of `targets` (all channels) and, per
channel, on the low resolution target brought back to full size
(slot 0 of `targets_{h}_up_back`: the truth, or a generated core output
resized to `H × W` by `Upsampler.with_low_res`). See docs/design.md, The
upsampler.
"""

import tensorflow as tf

from datasets import keys
from datasets import transforms
from models import base
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


def _area_down(x, side):
  """Area resize of `(B, H, W, C)` to `side` for H, W multiples of it: the
  mean of each block, as `transforms.area_resize` (XLA has no ResizeArea)."""
  height, width = x.shape[1:3]
  if height % side or width % side:
    raise ValueError(f'The upsampler\'s classical prior needs the resolution '
                     f'({height}, {width}) to be a multiple of downsample_res='
                     f'{side}.')
  return tf.nn.avg_pool2d(x, (height // side, width // side),
                          (height // side, width // side), 'VALID')


def residual_fill(fill, low_res, side):
  """The full resolution fill with its low frequencies from the low
  resolution target: `fill + up(down(low_res) - down(fill))`, down an area
  resize to `side` (block means), up a bilinear one, clipped to 0..255.

  The fill keeps its texture and edges; the target (the truth in training,
  the core's output at inference) sets the level of each `side` pixel.

  Args:
    fill: `(B, H, W, C)` the classical fill.
    low_res: `(B, H, W, C)` the low resolution target brought back to full
      resolution (`_up_back`): area-resized to `side`, it is that target.
    side: the low resolution (downsample_res).
  """
  fill = tf.cast(fill, tf.float32)
  residual = (_area_down(tf.cast(low_res, tf.float32), side) -
              _area_down(fill, side))
  up = tf.image.resize(residual, fill.shape[1:3], method='bilinear')
  return tf.clip_by_value(fill + up, 0., NUM_SYMBOLS - 1.)


class Upsampler(base.CloudTranModel):
  """Spatial upsampler.

  1. The slots 1..T-1 (`(T-1)·C` slot-channels, 256 symbols each) are one-hot
     encoded, flattened and embedded (dense to D, no bias): a time embedding
     per pixel.
  2. Each low resolution target channel (value + 256·c) is one-hot embedded
     (dense to D, no bias), concatenated with the time embedding and mapped
     by a dense layer (with bias) to D.
  3. An axial encoder stack (`num_encoder_layers`) and a dense `D -> 256`.
  4. With `config.classical_prior`, the prior's logits
     (`base.CloudTranModel.prior_logits`) of the full resolution fill
     corrected by the low resolution target (`residual_fill`) are added.

  Logits `(B, H, W, C_out, 256)`: one random channel in training, all C
  otherwise.
  """

  check_config = staticmethod(check_config)

  def __init__(self, config, **kwargs):
    super().__init__(config, **kwargs)
    model = config.model
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
    self.final_dense = layers.dense(NUM_SYMBOLS, hidden_size,
                                    dtype=layers.KEEP_FLOAT32)
    self._map_sampler = None
    # Every weight exists once the constructor returns.
    self.built = True

  @staticmethod
  def output_side(config):
    height, width = config.resolution
    if height != width:
      raise ValueError('The upsampler outputs square images; '
                       f'config.resolution={tuple(config.resolution)}.')
    return height

  def _low_res_key(self, training):
    return keys.up_back('targets_slice' if training else 'targets',
                        self.config.downsample_res)

  def _labels_key(self, training):
    return 'targets_slice' if training else 'targets'

  def prior_fill(self, inputs, training):
    """`residual_fill` of the pipeline's full resolution fill and the low
    resolution target, `(B, H, W, C_out)` float32; None without
    config.classical_prior."""
    fill = super().prior_fill(inputs, training)
    if fill is None:
      return None
    low_res = inputs[self._low_res_key(training)][..., :fill.shape[-1]]
    return residual_fill(fill, low_res, self.config.downsample_res)

  def _slots(self, inputs):
    """Slots 1..T-1 of `targets`, `(B, H, W, (T-1)·C)` int32."""
    return tf.cast(inputs['targets'], tf.int32)[..., self.num_channels:]

  def upsample(self, low_res, offsets, slots, training=False):
    """Logits `(B, H, W, C_out, 256)`.

    Args:
      low_res: `(B, H, W, C_out)` int, the low resolution target channels.
      offsets: `(B|1, C_out)` int32 flat-vocabulary offsets `256·c`.
      slots: `(B, H, W, (T-1)·C)` int32, the conditioning slots 1..T-1.
      training: passed to the encoder stack (which has no dropout here).
    """
    num_out = low_res.shape[-1]
    symbols = base.fold_channels(tf.cast(low_res, tf.int32) +
                                 offsets[:, None, None])
    time = base.fold_channels(tf.repeat(
        self.time_embedding(slots)[:, :, :, None], num_out, axis=3))
    return base.unfold_channels(
        self._map_logits(symbols, time, training), num_out)

  def _map_logits(self, symbols, time, training=False):
    """Logits `(N, H, W, 256)` of N channel maps: symbols `(N, H, W)` with
    their offsets added, and their slots' time embeddings `(N, H, W, D)`."""
    channels = self.channel_embedding(symbols[..., None])
    x = self.input_dense(tf.concat([channels, time], axis=-1))
    return self.final_dense(self.encoder(x, training=training))

  def get_logits(self, inputs, training):
    low_res = tf.cast(inputs[self._low_res_key(training)], tf.int32)
    if training:
      offsets = base.channel_offsets(inputs['channel_index'], 1)
      low_res = low_res[..., :1]
    else:
      offsets = base.channel_offsets(None, self.num_channels)
      low_res = low_res[..., :self.num_channels]
    logits = self.upsample(low_res, offsets, self._slots(inputs),
                           training=training)
    prior = self.prior_logits(
        self.prior_params(self.prior_fill(inputs, training)))
    return (logits if prior is None else logits + prior), {}

  def call(self, inputs, training=False):
    return self.get_logits(inputs, training)

  def loss(self, inputs, logits, aux, training):
    del aux
    num_out = 1 if training else self.num_channels
    labels = inputs[self._labels_key(training)][..., :num_out]
    loss = base.bits_per_dim(logits, labels)
    return self.config.loss_factor * loss, {'loss': loss}

  def sample(self, inputs, mode='argmax', only_parallel=False, seed=None):
    """See `base.CloudTranModel.sample`; s = resolution.

    Upsamples the low resolution target, slot 0 of `targets_{h}_up_back`
    (the truth, or another model's output put there by `with_low_res`).
    The upsampler is parallel: `only_parallel` changes nothing. Runs
    `_sample_maps`, XLA-compiled once per model. A `'sample'` draw is a
    stateless categorical draw per channel map, its seed folded with the
    map's index `b·C + c`.
    """
    base.check_mode(mode)
    del only_parallel
    image, confidence = self.compiled_sampler()(
        *self.sampler_args(inputs, mode, seed), mode=mode)
    return base.sample_outputs(image, confidence)

  def compiled_sampler(self):
    """`_sample_maps` compiled with XLA, made once per model."""
    if self._map_sampler is None:
      self._map_sampler = tf.function(self._sample_maps, jit_compile=True)
    return self._map_sampler

  def sampler_args(self, inputs, mode, seed=None):
    """The tensor arguments of `_sample_maps` for a batch and a mode."""
    low_res = tf.cast(inputs[self._low_res_key(training=False)],
                      tf.int32)[..., :self.num_channels]
    seed = (base.seed_pair(seed) if mode == 'sample' else
            tf.zeros([2], tf.int32))
    return (low_res, self._slots(inputs), seed,
            self.prior_fill(inputs, training=False))

  def _sample_maps(self, low_res, slots, seed, fill, mode):
    """Pixel values and their probabilities, each `(B, H, W, C)`; `fill`
    the classical prior's `(B, H, W, C)`, or None.

    One `(example, channel)` map at a time through the whole model, its
    pixels chosen inside the loop: memory stays that of one map whatever
    the batch (at 224x224, D=512, under 3 GB, where the whole-batch logits
    need about 5 GB per example), and the time is that of the eager
    whole-batch pass or a little less (bench/sampler.py).
    """
    offsets = base.channel_offsets(None, self.num_channels)
    symbols = base.fold_channels(low_res + offsets[:, None, None])
    priors = (None if fill is None else
              base.fold_channels(self.prior_params(fill)))

    def one_map(index):
      time = self.time_embedding(slots[index // self.num_channels][None])
      logits = self._map_logits(symbols[index][None], time)[0]
      if priors is not None:
        logits += self.prior_logits(priors[index])
      flat = tf.reshape(logits, [-1, NUM_SYMBOLS])
      pixels = base.choose_pixels(
          flat, mode, tf.random.experimental.stateless_fold_in(seed, index),
          0)
      nats = tf.nn.sparse_softmax_cross_entropy_with_logits(pixels, flat)
      shape = tf.shape(logits)[:-1]
      return tf.reshape(pixels, shape), tf.reshape(tf.exp(-nats), shape)

    image, confidence = tf.map_fn(
        one_map, tf.range(tf.shape(symbols)[0]),
        fn_output_signature=(tf.int32, tf.float32))
    return (base.unfold_channels(image, self.num_channels),
            base.unfold_channels(confidence, self.num_channels))

  def with_low_res(self, inputs, low_res):
    """See `base.CloudTranModel`: `low_res` becomes slot 0 of `_up_back`.

    It is brought to full resolution as the pipeline makes `_up_back`
    (`transforms.resize_values`); the other slots stay.
    """
    key = self._low_res_key(training=False)
    cube = tf.cast(inputs[key], tf.int32)
    image = transforms.resize_values(low_res, cube.shape[1])
    return dict(inputs, **{key: tf.concat(
        [image, cube[..., self.num_channels:]], axis=-1)})
