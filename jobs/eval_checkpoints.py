"""Evaluation beside training: the mean loss of each new checkpoint.

`evaluate(config, logdir, strategy, subset)` is what `run.py --mode=eval_*`
calls. It waits for checkpoints with `tf.train.checkpoints_iterator`, which
yields a checkpoint only once its index is written, so a half-written
checkpoint is never read.
"""

import math
import os

from absl import logging
import tensorflow as tf

from datasets import pipeline
from datasets import subsets
from jobs import checkpoints
from utils import runconfig

# run.py mode (eval_<label>) -> the subset it evaluates.
MODES = subsets.modes('eval')


def summary_dir(logdir, mode):
  """`<logdir>/eval_<label>_summaries_pyk_True` (upstream naming)."""
  return os.path.join(logdir,
                      f'eval_{MODES[mode].label}_summaries_pyk_True')


def make_eval_step(model, strategy):
  """Compiled step: (sum over examples of each loss, number of examples)."""

  def step(inputs):
    logits, aux = model.get_logits(inputs, training=False)
    total, losses = model.loss(inputs, logits, aux, training=False)
    losses = dict(losses, total_loss=total)
    count = tf.cast(tf.shape(logits)[0], tf.float32)
    # An empty final batch on some replica gives NaN means; weight them by 0.
    return {k: tf.where(count > 0, v * count, 0.0) for k, v in
            losses.items()}, count

  @tf.function
  def run(inputs):
    sums, count = strategy.run(step, args=(inputs,))
    total = lambda x: strategy.reduce(tf.distribute.ReduceOp.SUM, x, axis=None)
    return {k: total(v) for k, v in sums.items()}, total(count)

  return run


def mean_losses(config, strategy, eval_step, dataset):
  """Mean of every loss over `config.eval_num_examples` examples."""
  global_batch = config.eval_batch_size * strategy.num_replicas_in_sync
  num_batches = math.ceil(config.eval_num_examples / global_batch)
  sums, count = {}, 0.0
  for batch_index, batch in enumerate(dataset):
    if batch_index == num_batches:
      break
    batch_sums, batch_count = eval_step(batch)
    for key, value in batch_sums.items():
      sums[key] = sums.get(key, 0.0) + float(value)
    count += float(batch_count)
  if not count:
    raise ValueError('The evaluation subset yielded no example.')
  return {k: v / count for k, v in sums.items()}, int(count)


def check_run(logdir, wait):
  """FileNotFoundError when `logdir` does not exist, or, with no timeout
  (`wait` <= 0), holds no training run: waiting would never end."""
  if not tf.io.gfile.isdir(logdir):
    raise FileNotFoundError(
        f'--logdir={logdir} does not exist — point it at a training run (or '
        'start the training first)')
  started = (tf.train.latest_checkpoint(logdir) or
             runconfig.read(logdir) is not None or
             tf.io.gfile.exists(os.path.join(logdir, 'train.lock')))
  if not started and wait <= 0:
    raise FileNotFoundError(
        f'--logdir={logdir} holds no training run (no checkpoint, '
        'config.yaml or train.lock) — point it at a run, start its training '
        'first, or pass --eval_timeout_secs')


def evaluate(config, logdir, strategy, mode):
  """Evaluates each new checkpoint in `logdir` until the last one.

  Stops after the checkpoint of the training run's `max_train_steps` (from
  its config.yaml, else `config.max_train_steps`), or when no new checkpoint
  appears within `config.eval_checkpoint_wait_secs` (if > 0).
  Returns {step: mean losses}.
  """
  if mode not in MODES:
    raise ValueError(f'mode must be one of {sorted(MODES)}, got {mode!r}.')
  subset = MODES[mode].name
  if config.eval_batch_size < 1:
    raise ValueError(f'config.eval_batch_size={config.eval_batch_size} must '
                     'be >= 1.')
  check_run(logdir, config.eval_checkpoint_wait_secs)
  state = checkpoints.AveragedModel(config, strategy)
  newest = tf.train.latest_checkpoint(logdir)
  if newest:            # a wrong config fails now, not after the data
    checkpoints.check_fits(newest, state.model, config)
  pipeline.export_targets(config, subset)
  dataset = strategy.distribute_datasets_from_function(
      lambda ctx: pipeline.get_dataset(config, config.eval_batch_size, subset,
                                       ctx))
  eval_step = make_eval_step(state.model, strategy)
  writer = tf.summary.create_file_writer(summary_dir(logdir, mode))
  wait = config.eval_checkpoint_wait_secs
  results = {}
  for path in tf.train.checkpoints_iterator(
      logdir, timeout=wait if wait > 0 else None):
    step = checkpoints.step_of(path)
    state.restore(path)
    losses, count = mean_losses(config, strategy, eval_step, dataset)
    results[step] = losses
    with writer.as_default(step=step):
      for key, value in losses.items():
        tf.summary.scalar(key, value)
    writer.flush()
    logging.info('eval %s step %d | %d examples | loss %.4f bits/dim | %s',
                 subset, step, count, losses['loss'],
                 ' '.join(f'{k} {v:.4f}' for k, v in sorted(losses.items())))
    if step >= runconfig.max_train_steps(config, logdir):
      break
  else:
    logging.info('No new checkpoint in %ss; stopping.', wait)
  return results
