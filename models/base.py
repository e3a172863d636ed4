"""The protocol every CloudTran model follows.

`run.py` and `sample.py` talk to models only through these methods, so a model
is a drop-in as long as it implements them. All methods take the batched
example dicts of `datasets.get_dataset` (SPEC §1.3).
"""

import math

import tensorflow as tf

NUM_SYMBOLS = 256


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


class CloudTranModel(tf.keras.Model):
  """Base class: the methods the runners call.

  Subclasses set `self.config` (the whole experiment config) and implement
  `get_logits`, `loss`, `gan_inputs` and `sample`.
  """

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    # keras.Model.__init__ sets an instance attribute `loss = None` (the
    # `compile` loss), which would hide the `loss` method of the protocol.
    del self.loss

  @property
  def metric_keys(self):
    """Names of the extra losses `loss` returns besides 'loss'."""
    return []

  def get_logits(self, inputs, training):
    """Returns (logits (B, h, w, C_out, 256), aux dict of extra outputs)."""
    raise NotImplementedError

  def loss(self, inputs, logits, aux, training):
    """Returns (weighted total, {'loss': bits/dim, <metric_key>: bits/dim})."""
    raise NotImplementedError

  def gan_inputs(self, inputs, logits, relaxation):
    """Returns (cloudy, real, fake, channel_index) for the discriminator.

    cloudy/real/fake: (B, h, w, 1) float32 at the generator's resolution —
    slot T-1 and slot 0 of the trained channel, and the relaxed output.
    """
    raise NotImplementedError

  def sample(self, inputs, mode='argmax', **kwargs):
    """Generated images with values 0..255; see each model.

    The core returns a dict of them, the upsampler the full resolution image.
    """
    raise NotImplementedError
