"""Exponential moving average of a model's trainable weights.

Kept as our own tracked shadow variables (`tf.train.ExponentialMovingAverage`
does not work with Keras 3 variables). Created under the strategy's scope, the
shadows are mirrored like the weights; they are updated in replica context with
`ONLY_FIRST_REPLICA` aggregation, which is exact because every replica holds the
same weights after the synchronous update.
"""

import tensorflow as tf


class ExponentialMovingAverage(tf.Module):
  """shadow ← decay · shadow + (1 − decay) · weight, one shadow per weight."""

  def __init__(self, variables, decay):
    super().__init__(name='ema')
    if not 0.0 <= decay < 1.0:
      raise ValueError(f'config.polyak_decay must be in [0, 1), got {decay}.')
    self.decay = decay
    self.shadows = [
        tf.Variable(v.value if hasattr(v, 'value') else v, trainable=False,
                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        for v in variables]

  def apply(self, variables):
    """Moves every shadow towards its weight (call after each update)."""
    for shadow, var in zip(self.shadows, variables, strict=True):
      shadow.assign(self.decay * shadow + (1.0 - self.decay) * var)

  def copy_to(self, variables):
    """Overwrites the weights with their averages (for evaluation)."""
    for shadow, var in zip(self.shadows, variables, strict=True):
      var.assign(shadow)
