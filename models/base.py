"""The protocol every CloudTran model follows, and the tensor helpers they share.

The training, evaluation and sampling loops (and `predict.py`) talk to models
only through `CloudTranModel`'s methods, so a model is a drop-in as long as it
implements them; nothing outside `models/` asks which model it holds. All
methods take the batched example dicts of `datasets.pipeline.get_dataset`
(docs/design.md, Data).
"""

import math

import tensorflow as tf

from datasets import keys

NUM_SYMBOLS = 256
SAMPLE_MODES = ('argmax', 'sample')
# The keys of the dict every model's `sample` returns.
OUTPUT = 'output'
CONFIDENCE = 'confidence'
# σ (in 8-bit levels) of the classical prior at the start of training.
PRIOR_SIGMA = 2.0


def bits_per_dim(logits, labels):
  """Softmax cross-entropy in bits per dimension.

  Args:
    logits: (B, H, W, C, 256) float.
    labels: (B, H, W, C) integers 0..255.

  Returns:
    Scalar: the loss summed over pixels and channels, averaged over the batch,
    divided by ln 2 · H · W · C.
  """
  labels = tf.cast(labels, tf.int32)
  nats = tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=labels, logits=tf.cast(logits, tf.float32))
  per_example = tf.reduce_sum(nats, axis=[1, 2, 3])
  dims = tf.cast(tf.reduce_prod(tf.shape(labels)[1:]), tf.float32)
  return tf.reduce_mean(per_example) / (math.log(2.0) * dims)


def relax(logits, relaxation):
  """Turns logits (..., 256) into a float image the discriminator can read.

  'soft' is the expected value under the softmax (differentiable); 'argmax'
  is the upstream behaviour and carries no gradient.
  """
  if relaxation == 'soft':
    values = tf.range(NUM_SYMBOLS, dtype=logits.dtype)
    return tf.reduce_sum(tf.nn.softmax(logits, axis=-1) * values, axis=-1)
  if relaxation == 'argmax':
    return tf.cast(tf.argmax(logits, axis=-1), logits.dtype)
  raise ValueError(
      f"config.gan_relaxation must be 'soft' or 'argmax', got {relaxation!r}.")


def channel_offsets(channel_index, num_channels):
  """Flat-vocabulary offsets `256·c`, `(B, 1)` or `(1, C)` int32.

  With `channel_index` (B,) (training), one channel per example; without
  (None), every channel 0..C-1.
  """
  if channel_index is None:
    return NUM_SYMBOLS * tf.range(num_channels, dtype=tf.int32)[None]
  return NUM_SYMBOLS * tf.reshape(tf.cast(channel_index, tf.int32), [-1, 1])


def fold_channels(x):
  """`(B, H, W, C, ...)` -> `(B·C, H, W, ...)`, channel-major per example."""
  rank = len(x.shape)
  x = tf.transpose(x, [0, 3, 1, 2] + list(range(4, rank)))
  return tf.reshape(x, [-1] + x.shape[2:].as_list())


def unfold_channels(x, num_channels):
  """Inverse of fold_channels: `(B·C, H, W, ...)` -> `(B, H, W, C, ...)`."""
  rank = len(x.shape)
  x = tf.reshape(x, [-1, num_channels] + x.shape[1:].as_list())
  return tf.transpose(x, [0, 2, 3, 1] + list(range(4, rank + 1)))


def check_mode(mode):
  """Raises ValueError unless `mode` is one of SAMPLE_MODES."""
  if mode not in SAMPLE_MODES:
    raise ValueError(f'mode must be one of {SAMPLE_MODES}, got {mode!r}.')


def seed_pair(seed):
  """The `(2,)` int32 seed of the stateless draws of `mode='sample'`.

  `seed` is an int, a pair of ints (e.g. `[sample.seed, batch index]`) or
  None (a pair drawn from the global generator: not reproducible).
  """
  if seed is None:
    return tf.random.uniform([2], maxval=tf.int32.max, dtype=tf.int32)
  seed = tf.cast(seed, tf.int32)
  if seed.shape.rank == 0:
    seed = tf.stack([seed, 0])
  return tf.ensure_shape(seed, [2])


def choose_pixels(logits, mode, seed, position):
  """Pixel values `(N,)` int32 from their logits `(N, 256)`.

  `'argmax'`: the most likely value; `'sample'`: a stateless draw from the
  softmax seeded by the `(2,)` `seed` folded with `position` (e.g. the raster
  position row · w + column of the pixel), so a draw depends only on the
  seed, the position and the logits.
  """
  if mode == 'argmax':
    return tf.argmax(logits, axis=-1, output_type=tf.int32)
  pixel_seed = tf.random.experimental.stateless_fold_in(seed, position)
  return tf.random.stateless_categorical(
      logits, 1, seed=pixel_seed, dtype=tf.int32)[:, 0]


def sample_outputs(image, confidence):
  """The dict `CloudTranModel.sample` returns (see there)."""
  return {OUTPUT: image, CONFIDENCE: confidence}


class CloudTranModel(tf.keras.Model):
  """Base class: the methods the loops call.

  Built from the whole experiment config (checked by the subclass's
  `check_config`, kept as `self.config`). Subclasses implement
  `check_config`, `output_side`, `get_logits`, `loss`, `sample` and, if they
  refine another model's output, `with_low_res`; with
  `config.classical_prior` they add `prior_logits` to every logit.
  """

  # Whether `sample` generates pixel by pixel (its output is then written as
  # `_gen`, a parallel one as `_sam`; docs/design.md, Outputs).
  autoregressive = False

  def __init__(self, config, **kwargs):
    super().__init__(**kwargs)
    # keras.Model.__init__ sets an instance attribute `loss = None` (the
    # `compile` loss), which would hide the `loss` method of the protocol.
    del self.loss
    self.check_config(config)
    self.config = config
    self.num_channels = config.n_channels
    self.prior_log_precision = None
    if config.classical_prior:
      # log(1 / (2 σ²)) of a σ of PRIOR_SIGMA levels at the start.
      self.prior_log_precision = self.add_weight(
          name='prior_log_precision', shape=(), dtype='float32',
          initializer=tf.keras.initializers.Constant(
              -math.log(2 * PRIOR_SIGMA ** 2)))

  @staticmethod
  def check_config(config):
    """Raises ValueError naming the keys of a config this model cannot use."""
    raise NotImplementedError

  @staticmethod
  def output_side(config):
    """Side of the square images the model outputs for `config`."""
    raise NotImplementedError

  @property
  def metric_keys(self):
    """Names of the extra losses `loss` returns besides 'loss'."""
    return []

  def get_logits(self, inputs, training):
    """Returns (logits (B, s, s, C_out, 256), aux dict of extra outputs)."""
    raise NotImplementedError

  def prior_fill(self, inputs, training):
    """The classical fill at the output side, `(B, s, s, C_out)` (the
    pipeline's `prior` cubes); None without config.classical_prior."""
    if self.prior_log_precision is None:
      return None
    return inputs[keys.at_side('prior_slice' if training else 'prior',
                               self.output_side(self.config), self.config)]

  def prior_params(self, fill, adjust=None):
    """The classical prior of a fill `(...)`: `(..., 2)` float32, its centre
    (the fill, in levels) and the learned log precision, plus `adjust`
    `(..., 2)` when given (a per-pixel shift and log scale); None for a
    None fill."""
    if fill is None:
      return None
    fill = tf.cast(fill, tf.float32)
    params = tf.stack(
        [fill, tf.broadcast_to(self.prior_log_precision, tf.shape(fill))], -1)
    return params if adjust is None else params + tf.cast(adjust, tf.float32)

  def prior_logits(self, params):
    """The classical prior's logits `(..., 256)` of its `prior_params`
    `(..., 2)`: -(v - centre)² times the precision, for every value v; None
    for None."""
    if params is None:
      return None
    values = tf.range(NUM_SYMBOLS, dtype=tf.float32)
    return -tf.square(values - params[..., :1]) * tf.exp(params[..., 1:])

  def loss(self, inputs, logits, aux, training):
    """Returns (weighted total, {'loss': bits/dim, <metric_key>: bits/dim})."""
    raise NotImplementedError

  def gan_inputs(self, inputs, logits, relaxation):
    """Returns (cloudy, real, fake, channel_index) for the discriminator.

    cloudy/real/fake: (B, s, s, 1) float32 at the generator's resolution
    (`output_side`) — slot T-1 and slot 0 of the trained channel
    (`targets_slice` at that side), and the relaxed output.
    """
    if logits.shape[3] != 1:
      raise ValueError('gan_inputs takes the one-channel logits of training '
                       f'(random channel); got {logits.shape[3]} channels.')
    key = keys.at_side('targets_slice', self.output_side(self.config),
                       self.config)
    cube = tf.cast(inputs[key], tf.float32)
    fake = relax(logits[..., 0, :], relaxation)[..., None]
    return cube[..., -1:], cube[..., :1], fake, inputs['channel_index']

  def sample(self, inputs, mode='argmax', only_parallel=False, seed=None):
    """Generates every channel of the target (slot 0) from the inputs.

    Args:
      inputs: batched example dict (slot 0 of the target cubes is ignored).
      mode: 'argmax' (the most likely value of each pixel) or 'sample' (a
        draw from the model's distribution).
      only_parallel: use only the model's parallel (non-autoregressive)
        prediction; a parallel model's output is that anyway.
      seed: the seed of the `'sample'` draws: an int or a pair of ints
        (stateless, reproducible; see `seed_pair`), or None for a random one;
        ignored by `'argmax'`.

    Returns:
      {OUTPUT: (B, s, s, C) int32 values 0..255, the generated image with
       s = `output_side(config)`; CONFIDENCE: (B, s, s, C) float32, the
       probability the model gave each of those values}.
    """
    raise NotImplementedError

  def with_low_res(self, inputs, low_res):
    """The inputs with another model's output as the target to refine.

    Args:
      inputs: batched example dict.
      low_res: (B, h, w, C) int values, the output of the model before this
        one in the chain (h = `config.downsample_res`).

    Returns:
      The example dict that `sample` then refines.
    """
    raise ValueError(f'{type(self).__name__} refines no other model\'s '
                     'output: unset config.sample.gen_data_dir.')
