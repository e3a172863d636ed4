"""The compute precision of the models: `config.precision`.

'float32' (the default) computes everything in float32. 'bfloat16' builds
the models under Keras' `mixed_bfloat16` policy: activations and matrix
products in bfloat16, variables (so checkpoints) in float32, and the layers
built with `layers.KEEP_FLOAT32` (those that output logits, and the
discriminator's first layers, which read pixel values) in float32, so
softmaxes, losses and sampling see float32 logits either way. A checkpoint
restores under either precision. 'auto' is bfloat16 where the hardware
computes it natively (a GPU, or a CPU with one of
`cpu_flags.BF16_COMPUTE`) and float32 elsewhere, where bfloat16 is slower.

A layer takes the global dtype policy when it is constructed and keeps it,
so `building(config)` sets the policy around the construction of a model
and restores the previous one after: models of both precisions can live in
one process.
"""

import contextlib

import tensorflow as tf

from utils import cpu_flags

# config.precision -> the Keras dtype policy the models are built under.
POLICIES = {'float32': 'float32', 'bfloat16': 'mixed_bfloat16'}
AUTO = 'auto'
DEFAULT = 'float32'


def recorded(config):
  """`config.precision` as written; runs recorded before the key existed
  (their config.yaml has none) computed in float32."""
  return config.precision if 'precision' in config else DEFAULT


def choose_auto(has_gpu, flags):
  """('bfloat16' or 'float32', why) for 'auto', given whether a GPU is
  visible and the CPU's flags (`cpu_flags.read()`, None if unknown)."""
  if has_gpu:
    return 'bfloat16', 'a GPU is visible'
  found = cpu_flags.bf16_compute(flags)
  if found:
    return 'bfloat16', f'the CPU has {", ".join(found)}'
  if flags is None:
    return 'float32', 'the CPU flags are unknown'
  return 'float32', ('the CPU has no bfloat16 instructions (none of '
                     f'{", ".join(cpu_flags.BF16_COMPUTE)})')


def resolve(config):
  """(precision, why): the precision the models compute in."""
  precision = recorded(config)
  if precision != AUTO:
    return precision, f'config.precision={precision}'
  chosen, why = choose_auto(bool(tf.config.list_physical_devices('GPU')),
                            cpu_flags.read())
  return chosen, f'config.precision=auto: {why}'


def of(config):
  """The precision the models of `config` compute in ('auto' resolved)."""
  return resolve(config)[0]


def describe(config):
  """One log line naming the compute precision and why."""
  return 'Compute precision: %s (%s).' % resolve(config)


def check(config):
  """Raises ValueError when `config.precision` is not one of POLICIES or
  'auto'."""
  precision = recorded(config)
  if precision != AUTO and precision not in POLICIES:
    raise ValueError(
        f'config.precision={precision!r} is not a precision — set '
        f'--config.precision to one of {", ".join(POLICIES)}, {AUTO}')


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
