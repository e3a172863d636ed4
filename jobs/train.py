"""Training: the compiled step, the loop, checkpoints and summaries.

`train(config, logdir, strategy, ...)` is what `run.py --mode=train` calls; it
takes everything as arguments so tests can drive it directly.
"""

import math
import os
import time

from absl import logging
import tensorflow as tf

from datasets import pipeline
from datasets import selection
from jobs import checkpoints
import models
from utils import distribute
from utils import ema as ema_lib
from utils import progress
from utils import runconfig
from utils import runlock
from utils import stop

OPTIMIZERS = {
    'rmsprop': tf.keras.optimizers.RMSprop,
    'adam': tf.keras.optimizers.Adam,
    'sgd': tf.keras.optimizers.SGD,
}
# Longest stretch of training (seconds) between two looks at the checkpoint
# clock and at a stop signal; a slower step is one stretch.
CHUNK_SECS = 1.0
# The training summaries' folder in the logdir.
SUMMARIES = 'train_summaries'


def build_optimizer(optimizer_config):
  """The optimizer `config.optimizer.type` names, with the other keys as args."""
  kwargs = dict(optimizer_config)
  kind = kwargs.pop('type')
  if kind not in OPTIMIZERS:
    raise ValueError(f'config.optimizer.type must be one of '
                     f'{sorted(OPTIMIZERS)}, got {kind!r}.')
  return OPTIMIZERS[kind](**kwargs)


def sigmoid_bce(labels_value, logits):
  """Mean binary cross-entropy of logits against a constant label."""
  labels = tf.fill(tf.shape(logits), tf.cast(labels_value, logits.dtype))
  return tf.reduce_mean(
      tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


class TrainState:
  """The objects a training run owns, built under the strategy's scope."""

  def __init__(self, config, strategy):
    self.config = config
    self.strategy = strategy
    with strategy.scope():
      self.model = models.build(config)
      self.optimizer = build_optimizer(config.optimizer)
      self.optimizer.build(self.model.trainable_variables)
      self.ema = ema_lib.ExponentialMovingAverage(
          self.model.trainable_variables, config.polyak_decay)
      self.discriminator = self.disc_optimizer = None
      if config.use_discriminator:
        self.discriminator = models.build_discriminator(config)
        self.disc_optimizer = tf.keras.optimizers.Adam(2e-4, beta_1=0.5)
        self.disc_optimizer.build(self.discriminator.trainable_variables)
    parts = dict(model=self.model, ema=self.ema, optimizer=self.optimizer)
    if self.discriminator is not None:
      parts.update(discriminator=self.discriminator,
                   discriminator_optimizer=self.disc_optimizer)
    self.checkpoint = tf.train.Checkpoint(**parts)
    self.weights_only = tf.train.Checkpoint(model=self.model, ema=self.ema)

  @property
  def step(self):
    return int(self.optimizer.iterations.numpy())

  @property
  def metric_keys(self):
    keys = ['loss', 'total_loss'] + list(self.model.metric_keys)
    if self.discriminator is not None:
      keys += ['generator', 'total_discriminator_loss',
               'real_discriminator_loss', 'generated_discriminator_loss']
    return keys


def losses_on_batch(state, inputs):
  """Forward pass of one replica's batch: (generator total, disc total, dict)."""
  config, model = state.config, state.model
  logits, aux = model.get_logits(inputs, training=True)
  total, losses = model.loss(inputs, logits, aux, training=True)
  losses = dict(losses)
  disc_total = None
  if state.discriminator is not None:
    cloudy, real, fake, channel = model.gan_inputs(inputs, logits,
                                                   config.gan_relaxation)
    real_out = state.discriminator([cloudy, real, channel], training=True)
    fake_out = state.discriminator([cloudy, fake, channel], training=True)
    generator = sigmoid_bce(1.0, fake_out)
    real_loss = sigmoid_bce(1.0, real_out)
    fake_loss = sigmoid_bce(0.0, fake_out)
    disc_total = real_loss + fake_loss
    total += config.generator_loss_factor * generator
    losses.update(generator=generator, total_discriminator_loss=disc_total,
                  real_discriminator_loss=real_loss,
                  generated_discriminator_loss=fake_loss)
  losses['total_loss'] = total
  return total, disc_total, losses


def dense_gradients(grads):
  """Embedding lookups give sparse gradients with one row per pixel; the
  dense form is far smaller and has the same shape on every replica, which
  the cross-replica sum needs."""
  return [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g
          for g in grads]


def make_gradients(state):
  """One replica's forward and backward pass: (losses, model gradients,
  discriminator gradients or None).

  Losses are divided by the replica count before the gradients are summed
  across replicas, so the update does not depend on how many there are.
  With `config.jit_compile` the pass is compiled with XLA; the updates stay
  outside it, since summing gradients across replicas cannot run inside an
  XLA function.
  """
  replicas = state.strategy.num_replicas_in_sync

  def gradients(inputs):
    with tf.GradientTape(persistent=True) as tape:
      total, disc_total, losses = losses_on_batch(state, inputs)
      scaled = total / replicas
      disc_scaled = None if disc_total is None else disc_total / replicas
    grads = dense_gradients(tape.gradient(scaled,
                                          state.model.trainable_variables))
    disc_grads = None
    if disc_scaled is not None:
      disc_grads = tape.gradient(disc_scaled,
                                 state.discriminator.trainable_variables)
    del tape
    return losses, grads, disc_grads

  if state.config.jit_compile:
    return tf.function(gradients, jit_compile=True)
  return gradients


def make_train_step(state):
  """One replica's step: forward, backward, updates of model, EMA and disc."""
  gradients = make_gradients(state)

  def step(inputs):
    model_vars = state.model.trainable_variables
    losses, grads, disc_grads = gradients(inputs)
    with tf.name_scope('optimizer'):
      state.optimizer.apply_gradients(zip(grads, model_vars))
    if disc_grads is not None:
      with tf.name_scope('discriminator_optimizer'):
        disc_vars = state.discriminator.trainable_variables
        state.disc_optimizer.apply_gradients(zip(disc_grads, disc_vars))
    with tf.name_scope('ema'):
      state.ema.apply(model_vars)
    return losses

  return step


def make_train_loop(state):
  """A compiled function running `num_steps` steps; returns the mean losses."""
  step = make_train_step(state)
  strategy = state.strategy
  keys = state.metric_keys

  @tf.function
  def loop(iterator, num_steps):
    sums = {k: tf.constant(0.0) for k in keys}
    for _ in tf.range(num_steps):
      losses = strategy.run(step, args=(next(iterator),))
      sums = {k: sums[k] + strategy.reduce(
          tf.distribute.ReduceOp.MEAN, losses[k], axis=None) for k in keys}
    return {k: v / tf.cast(num_steps, tf.float32) for k, v in sums.items()}

  return loop


def load_discriminator(state, disc_chkpt_dir):
  """Loads the `discriminator` of the newest checkpoint in `disc_chkpt_dir`
  (upstream's `config.disc_chkpt_dir`: a pretrained discriminator)."""
  if state.discriminator is None:
    raise ValueError('config.disc_chkpt_dir is set but this run has no '
                     'discriminator (config.use_discriminator=False); unset '
                     'one of them.')
  path = tf.train.latest_checkpoint(disc_chkpt_dir)
  if path is None:
    raise FileNotFoundError(
        f'config.disc_chkpt_dir={disc_chkpt_dir} holds no checkpoint; point '
        'it at the logdir of a run trained with use_discriminator.')
  if not any(name.startswith('discriminator/')
             for name, _ in tf.train.list_variables(path)):
    raise ValueError(f'{path} (config.disc_chkpt_dir) holds no '
                     '`discriminator`; point it at a run trained with '
                     'use_discriminator.')
  tf.train.Checkpoint(discriminator=state.discriminator).restore(
      path).expect_partial()
  logging.info('Loaded the discriminator of %s.', path)


def train_dataset(config, strategy, chosen=None, step=0):
  """The distributed training input from `step` on, sharded per input
  pipeline; `chosen` is the train split's `selection.Selection` if made.

  Each input pipeline's stream is a function of the position in it, so a
  resumed run reads what an uninterrupted one would: the batches of the
  steps before `step` (one per replica the pipeline feeds) are skipped.
  """
  def dataset_fn(input_context):
    replicas = (input_context.num_replicas_in_sync //
                input_context.num_input_pipelines)
    return pipeline.get_dataset(config, config.batch_size, 'train',
                                input_context, start=step * replicas,
                                chosen=chosen)
  return strategy.distribute_datasets_from_function(dataset_fn)


def train(config, logdir, strategy, pretrain_dir=None, steps_per_summaries=100,
          allow_config_change=False):
  """Trains until `config.max_train_steps`, resuming from `logdir`.

  The config and the data are checked before anything is written; the
  chief then holds `<logdir>/train.lock` until training ends, so a second
  training on the same logdir is refused (runlock).
  """
  for key in ('max_train_steps', 'batch_size'):
    if config[key] < 1:
      raise ValueError(f'config.{key}={config[key]} must be >= 1.')
  tf.keras.utils.set_random_seed(config.seed)
  models.check_config(config)
  pipeline.check_config(config)
  chosen = selection.select(config, 'train')
  pipeline.export_targets(config, 'train')
  tf.io.gfile.makedirs(logdir)
  if not distribute.is_chief(strategy):
    return _train(config, logdir, strategy, chosen, pretrain_dir,
                  steps_per_summaries, allow_config_change)
  with runlock.hold(logdir, 'train'):
    return _train(config, logdir, strategy, chosen, pretrain_dir,
                  steps_per_summaries, allow_config_change)


def _train(config, logdir, strategy, chosen, pretrain_dir,
           steps_per_summaries, allow_config_change):
  """`train` once the data is checked and the logdir is held."""
  chief = distribute.is_chief(strategy)
  checkpoints.remove_stale_temp(strategy, logdir)
  changed = (runconfig.check_resume(config, logdir, allow_config_change)
             if checkpoints.saved_paths(logdir) else [])
  state = TrainState(config, strategy)
  logging.info(models.precision.describe(config))
  how = checkpoints.restore_or_pretrain(state.checkpoint, state.weights_only,
                                        logdir, pretrain_dir, config)
  if state.step > config.max_train_steps:
    raise ValueError(
        f'config.max_train_steps={config.max_train_steps} is below step '
        f'{state.step}, where the run in {logdir} is — raise it to train on, '
        'or use another --logdir')
  iterator = iter(train_dataset(config, strategy, chosen, state.step))
  if chief:
    with checkpoints.writing(runconfig.path_in(logdir), logdir):
      runconfig.write(config, logdir, state.step, changed)
  manager = checkpoints.make_manager(state.checkpoint, strategy, logdir)
  if config.disc_chkpt_dir and how != 'resumed':
    load_discriminator(state, config.disc_chkpt_dir)
  with _writing_summaries(logdir):
    writer = (tf.summary.create_file_writer(os.path.join(logdir, SUMMARIES))
              if chief else tf.summary.create_noop_writer())
  with stop.requests() as request:
    if state.step == 0:  # As upstream: a checkpoint of the starting weights.
      _save(manager, 0, request)
    logging.info('Training from step %d to %d (%s start).', state.step,
                 config.max_train_steps, how)
    _loop(state, logdir, manager, iterator, make_train_loop(state), writer,
          steps_per_summaries, request)
  with _writing_summaries(logdir):
    writer.flush()
  checkpoints.remove_worker_scratch(strategy, logdir)
  return state


def _writing_summaries(logdir):
  """Turns a failed write of the training summaries into one line."""
  summaries = os.path.join(logdir, SUMMARIES)
  return checkpoints.writing(f'the summaries in {summaries}', logdir)


def _save(manager, step, request):
  """Saves the checkpoint of `step` and returns its path; a second stop
  signal during the save waits for it."""
  with request.waiting_for(f'the checkpoint save of step {step}'):
    path = checkpoints.save(manager, step)
  logging.info('Saved checkpoint %s.', path)
  return path


def chunk_steps(secs_per_step, limit):
  """Steps of the next compiled call: as many as fit in CHUNK_SECS at the
  last measured pace (one before any), at least one and at most `limit`."""
  if secs_per_step is None:
    return 1
  return max(1, min(limit, int(CHUNK_SECS / max(secs_per_step, 1e-9))))


class _Interval:
  """The losses and time of the steps since the last summary."""

  def __init__(self, step):
    self.start, self.steps, self.secs, self.sums = step, 0, 0.0, {}

  def add(self, losses, num_steps, secs):
    self.steps += num_steps
    self.secs += secs
    for key, value in losses.items():
      self.sums[key] = self.sums.get(key, 0.0) + value * num_steps

  def means(self):
    return {k: v / self.steps for k, v in self.sums.items()}


def _run_chunk(state, loop, iterator, num_steps, logdir):
  """{loss: mean} of `num_steps` steps; a non-finite one stops the run."""
  start_step = state.step
  try:
    losses = {k: float(v) for k, v in
              loop(iterator, tf.constant(num_steps)).items()}
  except tf.errors.InvalidArgumentError:
    # A file changed since start-up: the scan names it (DataError).
    selection.select(state.config, 'train')
    raise
  bad = [k for k, v in losses.items() if not math.isfinite(v)]
  if bad:
    raise FloatingPointError(
        f'Non-finite {", ".join(bad)} between steps {start_step} and '
        f'{state.step}; lower config.optimizer.learning_rate or check the '
        'data. The last good checkpoint is kept in ' + logdir)
  return losses


def _summarize(state, interval, writer, tracker):
  """Writes the interval's summaries and its log line."""
  losses = interval.means()
  steps_per_sec = interval.steps / interval.secs
  tracker.update(state.step)
  with writer.as_default(step=state.step):
    for key, value in losses.items():
      tf.summary.scalar(key, value)
    tf.summary.scalar('steps_per_sec', steps_per_sec)
  eta = tracker.eta
  logging.info(
      'step %d/%d | loss %.4f bits/dim | total %.4f | %.2f steps/s | ETA %s',
      state.step, tracker.total, losses['loss'], losses['total_loss'],
      steps_per_sec, '?' if eta is None else progress.format_duration(eta))


def _loop(state, logdir, manager, iterator, loop, writer,
          steps_per_summaries, request):
  """Trains to `max_train_steps` in chunks of at most CHUNK_SECS, so the
  checkpoint clock and `request` are looked at every chunk; summaries go
  every `steps_per_summaries` steps. On a stop signal, saves and raises
  `stop.Stopped`; a second signal during a save waits for it."""
  config = state.config
  max_steps = config.max_train_steps
  tracker = progress.Progress(max_steps, done=state.step)
  last_save, secs_per_step = time.monotonic(), None
  while state.step < max_steps and not request.signal:
    interval = _Interval(state.step)
    end = min(state.step + steps_per_summaries, max_steps)
    while state.step < end and not request.signal:
      num_steps = chunk_steps(secs_per_step, end - state.step)
      start_time = time.monotonic()
      losses = _run_chunk(state, loop, iterator, num_steps, logdir)
      secs = time.monotonic() - start_time
      secs_per_step = secs / num_steps
      interval.add(losses, num_steps, secs)
      if time.monotonic() - last_save >= config.save_checkpoint_secs:
        _save(manager, state.step, request)
        last_save = time.monotonic()
    if interval.steps:
      with _writing_summaries(logdir):
        _summarize(state, interval, writer, tracker)
  newest = manager.latest_checkpoint
  if newest is None or checkpoints.step_of(newest) != state.step:
    newest = _save(manager, state.step, request)
  if request.signal:
    with _writing_summaries(logdir):
      writer.flush()
    name = os.path.basename(newest)
    logging.info('saved %s on %s', name, request.name)
    request.stop(f'stopped on {request.name} at step {state.step}: {newest} '
                 'is saved — run the same command again to resume')
