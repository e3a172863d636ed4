"""The model flags predict.py and tools.selfcheck share, and their configs.

    model_flags.define()                # at import, beside the series flags
    core, upsampler = model_flags.configs(FLAGS)
    predictor, identity = model_flags.load(FLAGS, core, upsampler)
    identity = model_flags.identity(FLAGS, core, upsampler)  # unloaded

Each model is built from its run's config.yaml, unless --core_config /
--upsampler_config is given; --<name>.<key>=value overrides one key either
way.
"""

import os

from absl import flags
from ml_collections import config_flags

from utils import cli
from utils.errors import DataError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def define():
  """Defines the model flags (`check` says which a command needs)."""
  config_flags.DEFINE_config_file(
      'core_config', os.path.join(ROOT, 'configs', 'cloudtran_core_test.py'),
      'Default: the core run\'s config.yaml. Test config of the core '
      '(`:tiny` for the small CPU variant); overrides as '
      '--core_config.<key>=value.', lock_config=True)
  config_flags.DEFINE_config_file(
      'upsampler_config', os.path.join(ROOT, 'configs', 'upsampler_test.py'),
      'Default: the upsampler run\'s config.yaml. Test config of the '
      'upsampler; its resolution is the tile size.', lock_config=True)
  flags.DEFINE_string('core_logdir', None, 'Core training run (newest '
                      'checkpoint, averaged weights).')
  flags.DEFINE_string('upsampler_logdir', None, 'Upsampler training run.')
  flags.DEFINE_integer('overlap', None, 'Pixels shared by neighbouring tiles '
                       '(at most half the tile); default an eighth of the '
                       'tile (`jobs.predict.Tiling`).')
  flags.DEFINE_integer('batch_size', 4, 'Tiles per model call.')
  cli.check_range('overlap', 0)
  cli.check_range('batch_size', 1)
  flags.DEFINE_bool('only_parallel', False, "Use the core's fast parallel "
                    'head instead of its autoregressive argmax.')


def _models():
  """`jobs.predict_models`, imported when the models are used: a classical
  fill (`predict.py --method`) then runs without loading TensorFlow."""
  from jobs import predict_models  # pylint: disable=g-import-not-at-top
  return predict_models


LOGDIRS = ('core_logdir', 'upsampler_logdir')
MODEL_FLAGS = (*LOGDIRS, 'core_config', 'upsampler_config', 'overlap',
               'batch_size', 'only_parallel')


def given(values):
  """Whether the models are given: True with both logdirs, False with no
  model flag at all.

  Raises:
    DataError: one logdir without the other, or another model flag
      without them.
  """
  present = [name for name in MODEL_FLAGS if values[name].present]
  missing = [name for name in LOGDIRS if name not in present]
  if not present or not missing:
    return bool(present)
  if len(missing) == 1:
    raise DataError(f'--{LOGDIRS[0]} and --{LOGDIRS[1]} go together: give '
                    f'--{missing[0]} too.')
  raise DataError(f'--{present[0]} is a model flag, but no model is given — '
                  f'give --{LOGDIRS[0]} and --{LOGDIRS[1]}, or drop it.')


def _run_config(values, name, logdir_flag):
  """--<name> if given, else the config.yaml of the run in --<logdir_flag>
  with the --<name>.<key> overrides."""
  holder = values[name]
  if holder.present:
    return holder.value
  logdir = values[logdir_flag].value
  # Imported with the models: it reads through TensorFlow (`_models`).
  from utils import runconfig  # pylint: disable=g-import-not-at-top
  config = runconfig.load(logdir)
  if config is None:
    raise DataError(f'--{logdir_flag}={logdir} holds no config.yaml — point '
                    f'it at a training run, or give --{name}')
  config.update_from_flattened_dict(
      config_flags.get_override_values(holder))
  return config


def configs(values):
  """(core config, upsampler config), checked to work together."""
  core = _run_config(values, 'core_config', 'core_logdir')
  upsampler = _run_config(values, 'upsampler_config', 'upsampler_logdir')
  _models().check_configs(core, upsampler)
  return core, upsampler


def _runs(values, core, upsampler):
  return (core, values.core_logdir, upsampler, values.upsampler_logdir,
          values.only_parallel)


def identity(values, core, upsampler):
  """The identity of the models `load` loads, without loading them."""
  return _models().model_identity(*_runs(values, core, upsampler))


def load(values, core, upsampler):
  """(predictor, identity) of the two runs' newest checkpoints, each checked
  against its config before anything is read."""
  return _models().load_predictor(*_runs(values, core, upsampler))
