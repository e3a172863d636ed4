"""Object-based checkpoints: what a run saves, and how it comes back.

A training checkpoint holds the model, its EMA, the optimizer and, with
`use_discriminator`, the discriminator and its optimizer. Files are named
`model-<step>` in the logdir. TensorFlow writes the data files first and the
`checkpoint` index last, so a run killed mid-save leaves the previous
checkpoint as the newest readable one.
"""

import os
import re

from absl import logging
import tensorflow as tf

import models
from utils import distribute
from utils import ema as ema_lib

CHECKPOINT_NAME = 'model'
MAX_TO_KEEP = 10


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


def restore_or_pretrain(checkpoint, weights_only, logdir, pretrain_dir):
  """Resumes from the newest checkpoint in `logdir`, else loads pretraining.

  Args:
    checkpoint: the full training checkpoint.
    weights_only: a checkpoint of the model and EMA alone, used with
      `pretrain_dir` so the optimizer starts fresh (step 0).
    logdir: this run's directory.
    pretrain_dir: another run's directory, or None.

  Returns:
    'resumed', 'pretrained' or 'fresh'.
  """
  latest = tf.train.latest_checkpoint(logdir)
  if latest:
    checkpoint.restore(latest).assert_existing_objects_matched()
    logging.info('Resumed from %s.', latest)
    return 'resumed'
  if pretrain_dir:
    pretrained = tf.train.latest_checkpoint(pretrain_dir)
    if not pretrained:
      raise FileNotFoundError(
          f'--pretrain_dir={pretrain_dir} holds no checkpoint (no "checkpoint" '
          'index file); point it at the logdir of a finished training run.')
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
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
      self.model = models.build(config)
      self.ema = ema_lib.ExponentialMovingAverage(
          self.model.trainable_variables, config.polyak_decay)
    self.checkpoint = tf.train.Checkpoint(model=self.model, ema=self.ema)

  def restore(self, path):
    """Loads the checkpoint `path` and copies the EMA into the weights."""
    self.checkpoint.restore(path).expect_partial()
    self.ema.copy_to(self.model.trainable_variables)
    logging.info('Restored the averaged weights of %s.', path)


def remove_worker_scratch(strategy, logdir):
  """Deletes what a non-chief worker wrote (its copies are not needed)."""
  if not distribute.is_chief(strategy):
    scratch = distribute.worker_dir(strategy, logdir)
    if os.path.isdir(scratch):
      tf.io.gfile.rmtree(scratch)
