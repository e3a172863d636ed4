"""The models of `predict.py`: the core and the upsampler on batches of tiles.

`load_predictor` restores the averaged weights of both runs' newest
checkpoints into a `ModelPredictor`, which turns a batch of tiles (their
dates and clear masks) into the example dict the models read
(`model_batch`) and runs the core, then the upsampler (`generate`).
Kept apart from `jobs.predict` so that a classical fill (`jobs.classical`)
does not load TensorFlow.
"""

import json
import os

import numpy as np

from datasets import pipeline
from datasets import transforms
from jobs import checkpoints
from models import base


def model_batch(rgb, clear, config, upsampler_config=None):
  """The example dict the models read, from a batch of tiles.

  Args:
    rgb: (B, T-1, S, S, C) uint8, the model's dates oldest first, the target
      last.
    clear: (B, T-1, S, S) bool, True = clear.
    config: the core's config: its `downsample_res` (the side `h`),
      `context_correction` and `classical_prior`.
    upsampler_config: the upsampler's config, for its `classical_prior`.

  Returns:
    {'targets', 'mask' (B, S, S, T·C | T) and their `_{h}`, `_{h}_up_back`,
    and for each config with classical_prior its `prior` cube}
    int32, slot 0 = the target, slots 1..T-1 = the dates, cloudy
    pixels set to 40 in `targets`, resized as the data pipeline does.
  """
  dates = rgb.shape[1]
  image = transforms.to_slots([rgb[:, t].astype(np.int32)
                               for t in range(dates)])
  mask = transforms.to_slots([clear[:, t, ..., None].astype(np.int32)
                              for t in range(dates)])
  plain = transforms.mask_targets(image, mask, rgb.shape[-1])
  batch = {'targets': transforms.correct_context(
               plain, mask, rgb.shape[-1], config.context_correction),
           'mask': mask}
  transforms.add_downsampled(batch, ['targets', 'mask'],
                             config.downsample_res, rgb.shape[2])
  for model_config in (config, upsampler_config):
    if model_config is not None and model_config.classical_prior:
      pipeline.add_prior(batch, plain, model_config)
  return batch


def generate(core, upsampler, batch, only_parallel, seed=None):
  """Core then upsampler on a model batch: (B, S, S, C) int. The core takes
  its argmax, or with `seed` draws (`mode='sample'`, one per row); the
  upsampler takes its argmax.

  The one place that calls the models' `sample`.
  """
  mode = 'argmax' if seed is None else 'sample'
  low = core.sample(batch, mode=mode, only_parallel=only_parallel,
                    seed=seed)[base.OUTPUT]
  batch = upsampler.with_low_res(batch, low)
  return upsampler.sample(batch, mode='argmax')[base.OUTPUT]


def check_configs(core_config, upsampler_config):
  """ValueError naming the key when the two models cannot work together."""
  if core_config.model.name != 'cloudtran_core':
    raise ValueError(f'--core_config is a {core_config.model.name!r} config; '
                     'give configs/cloudtran_core_test.py.')
  if upsampler_config.model.name != 'upsampler':
    raise ValueError(f'--upsampler_config is a '
                     f'{upsampler_config.model.name!r} config; give '
                     'configs/upsampler_test.py.')
  for key in ('timeline', 'downsample_res', 'n_channels',
              'context_correction'):
    if core_config[key] != upsampler_config[key]:
      raise ValueError(
          f'config.{key} differs between the core ({core_config[key]}) and '
          f'the upsampler ({upsampler_config[key]}); the two runs must match.')
  if core_config.n_channels != 3:
    raise ValueError(f'config.n_channels={core_config.n_channels}: predict.py '
                     'fills RGB scenes and needs models with 3 channels.')
  height, width = upsampler_config.resolution
  if height != width:
    raise ValueError(f'config.resolution={(height, width)} of the upsampler '
                     'must be square (it is the tile size).')


def model_identity(core_config, core_logdir, upsampler_config,
                   upsampler_logdir, only_parallel):
  """The identity of the models `load_predictor` loads (the newest
  checkpoint paths, mode and configs), for records and STAC Items, found
  without loading them."""
  return {'core': os.path.abspath(checkpoints.newest_checkpoint(core_logdir)),
          'upsampler': os.path.abspath(
              checkpoints.newest_checkpoint(upsampler_logdir)),
          'only_parallel': bool(only_parallel),
          'core_config': _config_dict(core_config),
          'upsampler_config': _config_dict(upsampler_config)}


def load_predictor(core_config, core_logdir, upsampler_config,
                   upsampler_logdir, only_parallel):
  """A ModelPredictor with the averaged weights of both runs, and its
  `model_identity`. The configs are those `check_configs` accepts."""
  identity = model_identity(core_config, core_logdir, upsampler_config,
                            upsampler_logdir, only_parallel)
  core = checkpoints.restore_averaged_model(core_config, core_logdir,
                                            identity['core'])
  upsampler = checkpoints.restore_averaged_model(
      upsampler_config, upsampler_logdir, identity['upsampler'])
  return ModelPredictor(core, upsampler, core_config, upsampler_config,
                        only_parallel), identity


def _config_dict(config):
  """A config as JSON-ready dict (its values that JSON can hold)."""
  return json.loads(config.to_json_best_effort(sort_keys=True))


class ModelPredictor:
  """(B, T-1, S, S, C) uint8 dates + (B, T-1, S, S) clear -> (B, S, S, C)
  uint8, by the core (argmax or its parallel head) and the upsampler; the
  dates' cloudy pixels are masked (`model_batch`), so only the clear ones
  count. Given `seed` (a pair of ints), the core draws instead of its
  argmax, each row of the batch its own draw (`generate`)."""

  def __init__(self, core, upsampler, core_config, upsampler_config,
               only_parallel):
    self.core, self.upsampler = core, upsampler
    self.core_config = core_config
    self.upsampler_config = upsampler_config
    self.tile_size = upsampler_config.resolution[0]
    self.only_parallel = only_parallel

  def __call__(self, rgb, clear, seed=None):
    batch = model_batch(rgb, clear, self.core_config,
                        self.upsampler_config)
    out = generate(self.core, self.upsampler, batch, self.only_parallel,
                   seed)
    return np.clip(np.asarray(out), 0, 255).astype(np.uint8)
