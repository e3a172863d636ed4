"""The compute precision of the models: `config.precision`.

'float32' (the default) computes everything in float32. 'bfloat16' builds
the models under Keras' `mixed_bfloat16` policy: activations and matrix
products in bfloat16, variables (so checkpoints) in float32, and the layers
built with `layers.KEEP_FLOAT32` (those that output logits, and the
discriminator's first layers, which read pixel values) in float32, so
softmaxes, losses and sampling see float32 logits either way. A checkpoint restores under either precision.

A layer takes the global dtype policy when it is constructed and keeps it,
so `building(config)` sets the policy around the construction of a model
and restores the previous one after: models of both precisions can live in
one process.
"""

import contextlib

import tensorflow as tf

# config.precision -> the Keras dtype policy the models are built under.
POLICIES = {'float32': 'float32', 'bfloat16': 'mixed_bfloat16'}
DEFAULT = 'float32'


def of(config):
  """`config.precision`; runs recorded before the key existed (their
  config.yaml has none) computed in float32."""
  return config.precision if 'precision' in config else DEFAULT


def check(config):
  """Raises ValueError when `config.precision` is not one of POLICIES."""
  precision = of(config)
  if precision not in POLICIES:
    raise ValueError(
        f'config.precision={precision!r} is not a precision — set '
        f'--config.precision to one of {", ".join(POLICIES)}')


@contextlib.contextmanager
def building(config):
  """Layers constructed inside take the dtype policy of `config.precision`;
  the global policy before is restored on exit."""
  check(config)
  previous = tf.keras.config.dtype_policy()
  tf.keras.config.set_dtype_policy(POLICIES[of(config)])
  try:
    yield
  finally:
    tf.keras.config.set_dtype_policy(previous)
