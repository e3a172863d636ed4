"""Object-based checkpoints: what a run saves, and how it comes back.

A training checkpoint holds the model, its EMA, the optimizer and, with
`use_discriminator`, the discriminator and its optimizer. Files are named
`model-<step>` in the logdir. TensorFlow writes the data files first and the
`checkpoint` index last, so a run killed mid-save leaves the previous
checkpoint as the newest readable one, and a `model-<step>_temp` folder that
the next training start removes.

A checkpoint that cannot be read (truncated or missing files) is moved to
`<logdir>/corrupt/` with a warning and the one before it is restored; a
checkpoint that reads but does not fit the model stops the run, since every
older one would fail the same way. Every restore first compares the
checkpoint's variable shapes with the model (`check_fits`), so a wrong
config is one line naming the config keys that differ, before TensorFlow
reads anything.
"""

import contextlib
import glob
import os
import re
import shutil

from absl import logging
import tensorflow as tf

from configs import common
import models
from utils import cli
from utils import distribute
from utils import ema as ema_lib
from utils import runconfig

CHECKPOINT_NAME = 'model'
MAX_TO_KEEP = 10
CORRUPT_DIR = 'corrupt'


def step_of(path):
  """The training step a checkpoint path was saved at ('.../model-120' -> 120)."""
  match = re.search(r'-(\d+)$', path)
  if not match:
    raise ValueError(f'{path} is not a checkpoint path ending in -<step>.')
  return int(match.group(1))


def make_manager(checkpoint, strategy, logdir):
  """A CheckpointManager; non-chief workers write to a scratch dir."""
  directory = distribute.worker_dir(strategy, logdir)
  keep = MAX_TO_KEEP if distribute.is_chief(strategy) else 1
  return tf.train.CheckpointManager(
      checkpoint, directory=directory, checkpoint_name=CHECKPOINT_NAME,
      max_to_keep=keep)


def write_error(error, what, directory, after=''):
  """The one-line OSError for a failed write of `what` in `directory`:
  `Cannot write <what> (<reason>) — <what to do> and run again<after>`.

  `error` is an OSError or a TensorFlow op error; the advice fits a full
  disk, a missing permission, or else names the directory to check.
  """
  if isinstance(error, tf.errors.OpError):
    reason = re.sub(r'^\{\{function_node [^}]*\}\}\s*', '',
                    error.message.splitlines()[0])
  else:
    reason = str(error)
  if (isinstance(error, tf.errors.ResourceExhaustedError) or
      getattr(error, 'errno', None) in cli.NO_SPACE or
      'No space left' in reason or 'quota' in reason.lower()):
    advice = f'free space in {directory}'
  elif (isinstance(error, tf.errors.PermissionDeniedError) or
        getattr(error, 'errno', None) in cli.NO_PERMISSION or
        'ermission denied' in reason or 'Read-only' in reason):
    advice = (f'make {directory} writable for this user (or give another '
              'directory)')
  else:
    advice = f'check that {directory} can be written'
  return OSError(f'Cannot write {what} ({reason}) — {advice} and run again'
                 f'{after}')


@contextlib.contextmanager
def writing(what, directory):
  """Raises `write_error` for a write inside that fails."""
  try:
    yield
  except (OSError, tf.errors.OpError) as e:
    raise write_error(e, what, directory) from e


def save(manager, step):
  """`manager.save` at `step`; when it fails (a full disk), removes what it
  wrote of `model-<step>` and raises `write_error` naming the path."""
  prefix = os.path.join(manager.directory, f'{CHECKPOINT_NAME}-{step}')
  try:
    return manager.save(checkpoint_number=step)
  except (OSError, tf.errors.OpError) as e:
    for path in glob.glob(glob.escape(prefix) + '[._]*'):
      if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
      else:
        os.remove(path)
    raise write_error(e, f'checkpoint {prefix}', manager.directory,
                      '; it resumes from '
                      f'{manager.latest_checkpoint or "the start"}') from e


def saved_paths(logdir):
  """Paths `<logdir>/model-<step>` of every checkpoint on disk, oldest first.

  Found from the `.index` files, so a checkpoint the `checkpoint` index file
  no longer lists (or a lost index file) is still seen.
  """
  pattern = os.path.join(glob.escape(logdir), f'{CHECKPOINT_NAME}-*.index')
  paths = [p[:-len('.index')] for p in glob.glob(pattern)]
  return sorted((p for p in paths if re.search(r'-\d+$', p)), key=step_of)


def move_aside(path, logdir):
  """Moves the files of checkpoint `path` to `<logdir>/corrupt/`."""
  target = os.path.join(logdir, CORRUPT_DIR)
  os.makedirs(target, exist_ok=True)
  for name in glob.glob(glob.escape(path) + '.*'):
    shutil.move(name, os.path.join(target, os.path.basename(name)))
  return target


def write_index(logdir, paths):
  """Rewrites the `checkpoint` index file to list `paths`, newest last."""
  names = [os.path.basename(p) for p in paths]
  text = ''.join([f'model_checkpoint_path: "{names[-1]}"\n'] + [
      f'all_model_checkpoint_paths: "{n}"\n' for n in names])
  index = os.path.join(logdir, 'checkpoint')
  with open(index + '.tmp', 'w') as f:
    f.write(text)
  os.replace(index + '.tmp', index)


# Config keys outside `model` that shape the model's variables.
SHAPE_KEYS = ('n_channels', 'downsample_res', 'timeline')
# The variants a config file takes after its path (`configs/x.py:tiny`).
VARIANTS = ('tiny', 'small')
# Size environment variables (configs/common.py) -> the model key they set.
SIZE_VARIABLES = {'MODEL_SIZE': 'model.hidden_size',
                  'DOWNSAMPLE_SIZE': 'downsample_res',
                  'NUM_CHANNELS': 'n_channels'}


def _model_keys(flat):
  return {k: v for k, v in flat.items()
          if k.startswith('model.') or k in SHAPE_KEYS}


def _shape_mismatch(path, model):
  """'<variable>: <shape> in the checkpoint, <shape> in the model' for the
  first trained variable whose shape differs, or None when they agree.

  Read from the EMA's shadows, `ema/shadows/<i>` for the model's i-th
  trained variable in every checkpoint (the model's own keys depend on which
  object reaches a variable first)."""
  saved = dict(tf.train.list_variables(path))
  shadows = sorted((k for k in saved if k.startswith('ema/shadows/')),
                   key=lambda k: int(k.split('/')[2]))
  trainable = model.trainable_variables
  for key, variable in zip(shadows, trainable):
    if tuple(saved[key]) != tuple(variable.shape):
      return (f'{variable.path}: {tuple(saved[key])} in the checkpoint, '
              f'{tuple(variable.shape)} in the model')
  if len(shadows) != len(trainable):
    return (f'{len(shadows)} trained variables in the checkpoint, '
            f'{len(trainable)} in the model')
  return None


def _variant_of(config, recorded):
  """The variant (':tiny') whose model keys are the run's, or None."""
  kind = config.model.name
  if kind not in common.KINDS:
    return None
  for variant in VARIANTS:
    try:
      built = common.build(kind, 'testset', variant)
    except ValueError:                       # a variant this file lacks
      continue
    if _model_keys(runconfig.as_flat(built)) == _model_keys(recorded):
      return variant
  return None


def _config_fix(config, recorded, differing):
  """What to change so the config builds the run's model."""
  variant = _variant_of(config, recorded)
  if variant:
    return (f'the run was trained with :{variant}: append it to the config '
            'path, without overrides of these keys')
  sizes = [f'{name}={recorded[key]}' for name, key in SIZE_VARIABLES.items()
           if key in differing]
  if sizes:
    return f'set {" ".join(sizes)} as the run was trained (no variant)'
  return 'give the config the run was trained with, or override those keys'


def check_fits(path, model, config):
  """Refuses checkpoint `path` if its variables do not fit `model`, with
  `refuse_misfit`'s one line.

  Raises:
    ValueError: the shapes differ.
  """
  try:
    mismatch = _shape_mismatch(path, model)
  except tf.errors.OpError:     # unreadable: the restore says how
    return
  if mismatch is not None:
    refuse_misfit(path, mismatch, config)


def refuse_misfit(path, mismatch, config):
  """Raises the one-line error for checkpoint `path`, which does not fit
  the model `config` builds; `mismatch` says the first difference.

  The message names the config keys that differ between the run's
  config.yaml (beside the checkpoint) and `config`, and how to fix it. Keys
  that config.yaml does not record (added since, or new to this project for
  a run of the original code, whose run.py writes config.yaml too) are not
  compared.

  Raises:
    ValueError: always.
  """
  logdir = os.path.dirname(path)
  recorded = runconfig.read(logdir)
  if recorded is None:
    raise ValueError(
        f'Checkpoint {path} does not fit the model the config builds '
        f'({mismatch}) — give the config (and MODEL_SIZE) the run was '
        'trained with')
  given = _model_keys(runconfig.as_flat(config))
  recorded = _model_keys(recorded)
  differing = sorted((k for k in recorded if recorded[k] != given.get(k)),
                     key=lambda k: (k not in SIZE_VARIABLES.values(),
                                    k.count('.'), k))
  shown, seen = [], set()
  for key in differing:    # a key a reference copies is shown once
    leaf = (key.rsplit('.', 1)[-1], recorded.get(key), given.get(key))
    if leaf not in seen:
      seen.add(leaf)
      shown.append(f'{key} {recorded.get(key)} vs {given.get(key)}')
  if not shown:
    raise ValueError(
        f'Checkpoint {path} does not fit the model the config builds '
        f'({mismatch}), though the config agrees with '
        f'{runconfig.path_in(logdir)} — this looks like a bug; report it')
  key = differing[0]
  what = (f'{key} {recorded.get(key)} in {runconfig.path_in(logdir)}, '
          f'{given.get(key)} in the config given')
  if len(shown) > 1:
    what += f' (also {", ".join(shown[1:3])}' + (
        ', ...)' if len(shown) > 3 else ')')
  raise ValueError(f'Checkpoint {path} does not fit the config: {what} — '
                   f'{_config_fix(config, recorded, differing)}')


def restore_newest(checkpoint, logdir, config):
  """Restores the newest checkpoint of `logdir` that reads; returns its path.

  Unreadable ones are moved aside on the way. Returns None when `logdir` has
  no checkpoint. `checkpoint.model` is built from `config`.

  Raises:
    ValueError: a checkpoint does not fit the model, or none could be read.
  """
  paths = saved_paths(logdir)
  for path in reversed(paths):
    check_fits(path, checkpoint.model, config)
    try:
      checkpoint.restore(path).assert_existing_objects_matched()
    except (IndexError, tf.errors.OpError) as e:
      where = move_aside(path, logdir)
      logging.warning('Checkpoint %s cannot be read (%s); moved it to %s and '
                      'trying the one before.', path, e, where)
      continue
    except (ValueError, AssertionError) as e:
      raise ValueError(
          f'Checkpoint {path} does not fit this model ({str(e)[:300]}) — '
          'resume with the model config and MODEL_SIZE the run was started '
          'with, or use another --logdir') from e
    if path != paths[-1]:
      write_index(logdir, [p for p in paths if os.path.exists(p + '.index')])
    return path
  if paths:
    raise ValueError(
        f'None of the {len(paths)} checkpoints in {logdir} can be read (moved '
        f'to {os.path.join(logdir, CORRUPT_DIR)}) — restore them from a backup,'
        ' or start afresh in another --logdir')
  return None


def restore_or_pretrain(checkpoint, weights_only, logdir, pretrain_dir,
                        config):
  """Resumes from the newest checkpoint in `logdir`, else loads pretraining.

  Args:
    checkpoint: the full training checkpoint.
    weights_only: a checkpoint of the model and EMA alone, used with
      `pretrain_dir` so the optimizer starts fresh (step 0).
    logdir: this run's directory.
    pretrain_dir: another run's directory, or None.
    config: the config the model is built from.

  Returns:
    'resumed', 'pretrained' or 'fresh'.
  """
  latest = restore_newest(checkpoint, logdir, config)
  if latest:
    logging.info('Resumed from %s.', latest)
    return 'resumed'
  if pretrain_dir:
    pretrained = tf.train.latest_checkpoint(pretrain_dir)
    if not pretrained:
      raise FileNotFoundError(
          f'--pretrain_dir={pretrain_dir} holds no checkpoint (no "checkpoint" '
          'index file); point it at the logdir of a finished training run.')
    check_fits(pretrained, weights_only.model, config)
    status = weights_only.restore(pretrained)
    try:
      status.assert_existing_objects_matched().expect_partial()
    except AssertionError as e:
      raise ValueError(
          f'The weights in {pretrained} do not fit this model; check that '
          'MODEL_SIZE and the model config match the pretraining run.') from e
    logging.info('Loaded pretrained weights from %s.', pretrained)
    return 'pretrained'
  return 'fresh'


class AveragedModel:
  """A model to evaluate or sample with: its weights are the EMA's.

  Built under the strategy's scope (the default one unless given);
  `restore(path)` loads a training checkpoint's model and EMA and puts the
  averaged weights into the model.
  """

  def __init__(self, config, strategy=None):
    self.config = config
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
      self.model = models.build(config)
      self.ema = ema_lib.ExponentialMovingAverage(
          self.model.trainable_variables, config.polyak_decay)
    self.checkpoint = tf.train.Checkpoint(model=self.model, ema=self.ema)

  def restore(self, path):
    """Loads the checkpoint `path` and copies the EMA into the weights."""
    check_fits(path, self.model, self.config)
    self.checkpoint.restore(path).expect_partial()
    self.ema.copy_to(self.model.trainable_variables)
    logging.info('Restored the averaged weights of %s.', path)


def newest_checkpoint(logdir):
  """The path of the newest checkpoint in `logdir`; a clear error if none."""
  path = tf.train.latest_checkpoint(logdir)
  if path is None:
    raise FileNotFoundError(
        f'No checkpoint in {logdir}; train first (run.py --mode=train '
        f'--logdir {logdir}) or point --logdir at a training run.')
  return path


def restore_averaged_model(config, logdir, checkpoint=None):
  """Builds the model and loads the EMA weights of `checkpoint` (a path;
  default the newest checkpoint in `logdir`)."""
  averaged = AveragedModel(config)
  averaged.restore(checkpoint or newest_checkpoint(logdir))
  return averaged.model


def remove_stale_temp(strategy, logdir):
  """Removes the `model-<step>_temp` folders of saves killed midway from
  where this worker writes (the logdir on the chief, its scratch dir on
  another worker). Call it while this worker alone saves there."""
  directory = distribute.worker_dir(strategy, logdir)
  pattern = os.path.join(glob.escape(directory), f'{CHECKPOINT_NAME}-*_temp')
  for path in sorted(glob.glob(pattern)):
    shutil.rmtree(path)
    logging.info('Removed %s, left by a checkpoint save that did not finish.',
                 path)


def remove_worker_scratch(strategy, logdir):
  """Deletes what a non-chief worker wrote (its copies are not needed)."""
  if not distribute.is_chief(strategy):
    scratch = distribute.worker_dir(strategy, logdir)
    if os.path.isdir(scratch):
      tf.io.gfile.rmtree(scratch)
