"""Model builders: `build(config)` and `build_discriminator(config)`.

Both take the whole experiment config. `build` returns the model named by
`config.model.name` with every weight created, after one call on zero inputs
shaped like the data pipeline's batches (`zero_inputs`).
"""

import tensorflow as tf

from models import core
from models import discriminator
from models import upsampler

MODELS = {
    'cloudtran_core': core.CloudTranCore,
    'upsampler': upsampler.Upsampler,
}


def check_config(config):
  """Raises ValueError naming the keys of an inconsistent config."""
  if config.model.name not in MODELS:
    raise ValueError(f'config.model.name={config.model.name!r} must be one of '
                     f'{sorted(MODELS)}.')
  if config.n_channels < 1:
    raise ValueError(f'config.n_channels={config.n_channels} must be >= 1.')
  if config.timeline < 3:
    raise ValueError(f'config.timeline={config.timeline} must be >= 3 (the '
                     'target, at least one earlier date and the cloudy one).')
  if config.downsample_res > min(config.resolution):
    raise ValueError(f'config.downsample_res={config.downsample_res} must not '
                     f'exceed config.resolution={tuple(config.resolution)}.')
  if config.model.name == 'cloudtran_core':
    core.check_config(config)
  else:
    upsampler.check_config(config)


def zero_inputs(config, batch_size=1):
  """A batch of zeros with every key the models read, train and eval.

  Shapes follow the data pipeline (SPEC §1.3): `targets`/`image`
  `(B, H, W, T·C)`, `mask` `(B, H, W, T)`, their `_{h}` and `_{h}_up_back`
  versions, the random-channel `targets_slice*` `(·, ·, ·, T)` and
  `channel_index` `(B,)`, all int32.
  """
  height, width = config.resolution
  size = config.downsample_res
  timeline, channels = config.timeline, config.n_channels
  inputs = {'channel_index': tf.zeros([batch_size], tf.int32)}
  for key, depth in (('targets', timeline * channels),
                     ('image', timeline * channels), ('mask', timeline),
                     ('targets_slice', timeline)):
    inputs[key] = tf.zeros([batch_size, height, width, depth], tf.int32)
    inputs[f'{key}_{size}'] = tf.zeros([batch_size, size, size, depth],
                                       tf.int32)
    inputs[f'{key}_{size}_up_back'] = inputs[key]
  return inputs


def build(config):
  """The model for `config.model.name`, with all its weights created."""
  check_config(config)
  model = MODELS[config.model.name](config)
  model.get_logits(zero_inputs(config), training=True)
  return model


def generator_resolution(config):
  """Side of the images the generator of `config` outputs."""
  check_config(config)
  if config.model.name == 'cloudtran_core':
    return config.downsample_res
  height, width = config.resolution
  if height != width:
    raise ValueError('The discriminator takes square images; '
                     f'config.resolution={tuple(config.resolution)}.')
  return height


def build_discriminator(config):
  """The PatchGAN of SPEC §4 at the generator's resolution.

  Call it as `disc([cloudy, candidate, channel_index], training=...)`; see
  `models.discriminator`.
  """
  return discriminator.build(generator_resolution(config))
