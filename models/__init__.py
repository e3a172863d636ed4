"""Model builders: `build(config)` and `build_discriminator(config)`.

Both take the whole experiment config. `build` returns the model named by
`config.model.name` with every weight created, after one call on zero inputs
shaped like the data pipeline's batches (`zero_inputs`). Both build under
the dtype policy of `config.precision` (models/precision.py).
"""

import tensorflow as tf

from datasets import keys
from datasets import pipeline
from models import core
from models import discriminator
from models import precision
from models import upsampler

MODELS = {
    'cloudtran_core': core.CloudTranCore,
    'upsampler': upsampler.Upsampler,
}


def model_class(config):
  """The class of the model `config.model.name` names."""
  if config.model.name not in MODELS:
    raise ValueError(f'config.model.name={config.model.name!r} must be one of '
                     f'{sorted(MODELS)}.')
  return MODELS[config.model.name]


def check_config(config):
  """Raises ValueError naming the keys of an inconsistent config."""
  kind = model_class(config)
  precision.check(config)
  pipeline.check_resolution(config)
  if config.n_channels < 1:
    raise ValueError(f'config.n_channels={config.n_channels} must be >= 1.')
  if config.timeline < 3:
    raise ValueError(f'config.timeline={config.timeline} must be >= 3 (the '
                     'target, at least one earlier date and the cloudy one).')
  if config.downsample_res > min(config.resolution):
    raise ValueError(f'config.downsample_res={config.downsample_res} must not '
                     f'exceed config.resolution={tuple(config.resolution)}.')
  kind.check_config(config)


def zero_inputs(config, batch_size=1):
  """A batch of zeros with every key the models read, train and eval.

  Shapes follow the data pipeline (docs/design.md, Data): `targets`/`image`
  `(B, H, W, T·C)`, `mask` `(B, H, W, T)`, their `_{h}` and `_{h}_up_back`
  versions, the random-channel `targets_slice*` `(·, ·, ·, T)` and
  `channel_index` `(B,)`, and with config.classical_prior `prior` `(B, s,
  s, C)` and `prior_slice` `(B, s, s, 1)` at the model's output side s
  (named by `keys.at_side`), all int32.
  """
  height, width = config.resolution
  size = config.downsample_res
  timeline, channels = config.timeline, config.n_channels
  inputs = {'channel_index': tf.zeros([batch_size], tf.int32)}
  for key, depth in (('targets', timeline * channels),
                     ('image', timeline * channels), ('mask', timeline),
                     ('targets_slice', timeline)):
    inputs[key] = tf.zeros([batch_size, height, width, depth], tf.int32)
    inputs[keys.downsampled(key, size)] = tf.zeros(
        [batch_size, size, size, depth], tf.int32)
    inputs[keys.up_back(key, size)] = inputs[key]
  if config.classical_prior:
    side = model_class(config).output_side(config)
    for key, depth in (('prior', channels), ('prior_slice', 1)):
      inputs[keys.at_side(key, side, config)] = tf.zeros(
          [batch_size, side, side, depth], tf.int32)
  return inputs


def build(config):
  """The model for `config.model.name`, with all its weights created."""
  check_config(config)
  with precision.building(config):
    model = model_class(config)(config)
  model.get_logits(zero_inputs(config), training=True)
  return model


def generator_resolution(config):
  """Side of the images the generator of `config` outputs."""
  check_config(config)
  return model_class(config).output_side(config)


def build_discriminator(config):
  """The PatchGAN discriminator at the generator's resolution.

  Call it as `disc([cloudy, candidate, channel_index], training=...)`; see
  `models.discriminator`.
  """
  with precision.building(config):
    return discriminator.build(generator_resolution(config))
