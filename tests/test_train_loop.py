"""jobs/train.py and jobs/eval_checkpoints.py driven in-process."""

import copy
import glob
import importlib
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import yaml

from conftest import tiny_config_at
from configs import common
import model_helpers
from datasets import pipeline
from jobs import checkpoints
from jobs import eval_checkpoints
from jobs import train
from utils import distribute
from utils import runconfig


def one_device():
  return distribute.make_strategy('CPU', 1)


def small(config, steps):
  config.max_train_steps = steps
  config.save_checkpoint_secs = 0
  return config


@pytest.fixture(scope='module')
def trained(synthetic_data, tmp_path_factory):
  """A core trained for 4 steps, one per compiled call, with a checkpoint
  after each (save_checkpoint_secs=0): (config, logdir, state)."""
  config = small(tiny_config_at(synthetic_data, 'cloudtran_core_train'), 4)
  logdir = str(tmp_path_factory.mktemp('trained'))
  fresh_keras_names()
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(train, 'CHUNK_SECS', 0)
    state = train.train(config, logdir, one_device(), steps_per_summaries=2)
  return config, logdir, state


def fresh_keras_names():
  """Layer names as in a fresh process. The compiled step's float sums
  follow the graph's op names, which hold Keras's per-process layer
  counters: the 4th identical run in one process ends ~1e-4 away from the
  1st, while runs in fresh processes agree bit for bit."""
  tf.keras.backend.clear_session(free_memory=False)


def test_train_writes_checkpoints_summaries_config(trained):
  _, logdir, state = trained
  assert state.step == 4
  assert checkpoints.step_of(tf.train.latest_checkpoint(logdir)) == 4
  saved = [checkpoints.step_of(p) for p in tf.train.get_checkpoint_state(
      logdir).all_model_checkpoint_paths]
  assert saved == [0, 1, 2, 3, 4]   # step 0 too, as upstream
  assert os.listdir(os.path.join(logdir, 'train_summaries'))
  with open(os.path.join(logdir, 'config.yaml')) as f:
    assert 'max_train_steps: 4' in f.read()


def test_resume_continues_at_the_saved_step(trained, tmp_path):
  config, logdir, _ = trained
  run_dir = str(tmp_path / 'run')
  shutil.copytree(logdir, run_dir)
  config = copy.deepcopy(config)
  config.max_train_steps = 6
  config.save_checkpoint_secs = 3600        # only the final checkpoint
  state = train.train(config, run_dir, one_device(),
                      steps_per_summaries=2)
  assert state.step == 6
  saved = [checkpoints.step_of(p) for p in tf.train.get_checkpoint_state(
      run_dir).all_model_checkpoint_paths]
  assert saved == [0, 1, 2, 3, 4, 6]


def checkpointed_values(state):
  """Every variable a training checkpoint holds, as arrays."""
  parts = [state.model, state.optimizer, state.discriminator,
           state.disc_optimizer]
  return [v.numpy() for part in parts for v in part.variables] + [
      v.numpy() for v in state.ema.shadows]


def test_resumed_run_ends_bit_identical_to_an_uninterrupted_one(
    trained, tmp_path, caplog):
  """The run of `trained`, resumed from its step-2 checkpoint (as after a
  stop there) with a save killed midway left behind: the data stream goes
  on where it was, so every variable ends equal, bit for bit. Before, the
  stream restarted at its first batch."""
  caplog.set_level('INFO')
  config, logdir, whole = trained
  assert config.use_discriminator
  run_dir = str(tmp_path / 'run')
  shutil.copytree(logdir, run_dir)
  for step in (3, 4):
    for path in glob.glob(os.path.join(run_dir, f'model-{step}.*')):
      os.remove(path)
  checkpoints.write_index(run_dir, checkpoints.saved_paths(run_dir))
  stale = os.path.join(run_dir, 'model-3_temp')
  os.makedirs(stale)
  open(os.path.join(stale, 'part-00000-of-00001.data-00000-of-00001'),
       'w').close()
  fresh_keras_names()
  resumed = train.train(copy.deepcopy(config), run_dir, one_device(),
                        steps_per_summaries=2)
  assert f'Resumed from {run_dir}/model-2' in caplog.text
  assert (f'Removed {stale}, left by a checkpoint save that did not finish'
          in caplog.text)
  assert not os.path.exists(stale)
  assert resumed.step == whole.step == 4
  for a, b in zip(checkpointed_values(whole), checkpointed_values(resumed),
                  strict=True):
    np.testing.assert_array_equal(a, b)


def test_stale_temp_of_another_worker_is_left_to_it(tmp_path):
  """The chief removes its own `_temp` folders, not a worker's scratch."""
  scratch = tmp_path / 'workers' / 'worker_1' / 'model-5_temp'
  os.makedirs(scratch)
  os.makedirs(tmp_path / 'model-5_temp')
  checkpoints.remove_stale_temp(one_device(), str(tmp_path))
  assert os.path.isdir(scratch)
  assert not os.path.exists(tmp_path / 'model-5_temp')


def test_disc_chkpt_dir_loads_a_pretrained_discriminator(trained, tmp_path,
                                                        monkeypatch):
  config, source, trained_state = trained
  config = copy.deepcopy(config)
  monkeypatch.setattr(train, '_loop', lambda *args: None)  # start-up only
  fresh = train.train(config, str(tmp_path / 'fresh'), one_device())
  config.disc_chkpt_dir = source
  loaded = train.train(config, str(tmp_path / 'loaded'), one_device())
  # The step-0 checkpoint holds it too.
  restored = train.TrainState(config, one_device())
  restored.checkpoint.restore(tf.train.latest_checkpoint(
      str(tmp_path / 'loaded'))).expect_partial()
  for state in (loaded, restored):
    for a, b in zip(trained_state.discriminator.variables,
                    state.discriminator.variables):
      np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert any(not np.array_equal(a.numpy(), b.numpy()) for a, b in zip(
      trained_state.discriminator.variables, fresh.discriminator.variables))


def test_disc_chkpt_dir_errors(trained, tmp_path):
  config, source, _ = trained
  config = copy.deepcopy(config)
  config.disc_chkpt_dir = str(tmp_path / 'empty')
  with pytest.raises(FileNotFoundError, match='disc_chkpt_dir'):
    train.train(config, str(tmp_path / 'a'), one_device())
  config.disc_chkpt_dir = source
  config.use_discriminator = False
  with pytest.raises(ValueError, match='use_discriminator'):
    train.train(config, str(tmp_path / 'b'), one_device())


def test_config_yaml_round_trips(tiny_config, tmp_path):
  config = tiny_config('upsampler_train')
  runconfig.write(config, str(tmp_path), 0, [])
  with open(tmp_path / 'config.yaml') as f:
    loaded = yaml.unsafe_load(f)
  assert loaded['model']['name'] == 'upsampler'
  assert tuple(loaded['resolution']) == tuple(config.resolution)
  assert loaded['model']['ff_size'] == config.model.ff_size  # derived


def test_loss_falls_when_overfitting(tiny_config, tmp_path):
  """A fixed tiny set: the loss must drop by over 40% in 300 steps."""
  config = small(tiny_config('cloudtran_core_train'), 300)
  config.use_discriminator = False
  config.resolution = (32, 32)  # = the image size: no random crop.
  config.optimizer.learning_rate = 3e-3
  state = train.TrainState(config, one_device())
  iterator = iter(train.train_dataset(config, state.strategy))
  loop = train.make_train_loop(state)
  first = float(loop(iterator, tf.constant(10))['loss'])
  loop(iterator, tf.constant(270))
  last = float(loop(iterator, tf.constant(20))['loss'])
  assert last < 0.6 * first, (first, last)


# Upstream depth (layers, heads, discriminator) at sizes a CPU test affords;
# the core's is the smallest found where the compiled loop of a per-map
# encoder under the gradient failed on its second call.
AT_DEPTH = {
    'cloudtran_core_train': dict(MODEL_SIZE='64', DOWNSAMPLE_SIZE='32',
                                 batch_size=4),
    'upsampler_train': dict(MODEL_SIZE='32', DOWNSAMPLE_SIZE='16',
                            batch_size=2),
}


@pytest.mark.parametrize('name', sorted(AT_DEPTH))
def test_training_loop_runs_several_periods_at_upstream_depth(
    name, synthetic_data, tmp_path, monkeypatch):
  """Three summary periods of `train`, so its compiled loop, traced once,
  is called again; every loss is finite, and every weight of the model's
  layers (and of the core's discriminator) moved: each took part."""
  sizes = dict(AT_DEPTH[name])
  batch_size = sizes.pop('batch_size')
  for key, value in sizes.items():
    monkeypatch.setenv(key, value)
  config = importlib.import_module(f'configs.{name}').get_config('')
  common.use_dataset(config, str(synthetic_data), 'trainset')
  config.resolution = (32, 32)
  config.timeline, config.ref_index = 4, 3
  config.max_coverage = 50
  config.batch_size = batch_size
  config = small(config, 3)
  record = model_helpers.RecordedTraining(monkeypatch)
  state = train.train(config, str(tmp_path), one_device(),
                      steps_per_summaries=1)
  assert state.step == 3
  assert len(record.losses) == 3
  assert record.loop.experimental_get_tracing_count() == 1
  # As upstream, the core trains with a discriminator, the upsampler without.
  assert (state.discriminator is not None) == name.startswith('cloudtran_core')
  for losses in record.losses:
    assert set(losses) == set(state.metric_keys)
    assert all(np.isfinite(v) for v in losses.values()), losses
  assert record.variables()
  assert not record.unchanged()


def test_pretrain_loads_weights_with_fresh_optimizer(trained, tmp_path):
  config, source, trained_state = trained
  state = train.TrainState(config, one_device())
  how = checkpoints.restore_or_pretrain(state.checkpoint, state.weights_only,
                                        str(tmp_path / 'new'), source,
                                        config)
  assert how == 'pretrained'
  assert state.step == 0 and trained_state.step == 4
  for a, b in zip(trained_state.model.trainable_variables,
                  state.model.trainable_variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  for a, b in zip(trained_state.ema.shadows, state.ema.shadows):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_bad_model_config_is_refused_before_the_logdir_is_made(
    tiny_config, tmp_path):
  config = tiny_config('cloudtran_core_train')
  config.model.encoder.num_fused_layers = -1
  with pytest.raises(ValueError, match='num_fused_layers=-1'):
    train.train(config, str(tmp_path / 'new_run'), one_device())
  assert not os.path.exists(tmp_path / 'new_run')


def test_pretrain_dir_without_checkpoint_is_a_clear_error(tiny_config,
                                                          tmp_path):
  state = train.TrainState(tiny_config('cloudtran_core_train'),
                           one_device())
  with pytest.raises(FileNotFoundError, match='pretrain_dir'):
    checkpoints.restore_or_pretrain(state.checkpoint, state.weights_only,
                                    str(tmp_path / 'a'), str(tmp_path),
                                    state.config)


def _one_step_weights(config, strategy, batch, weights):
  state = train.TrainState(config, strategy)
  for var, value in zip(state.model.trainable_variables, weights):
    var.assign(value)
  dataset = strategy.experimental_distribute_dataset(
      tf.data.Dataset.from_tensors(batch))
  train.make_train_loop(state)(iter(dataset), tf.constant(1))
  return [v.numpy() for v in state.model.trainable_variables]


@pytest.mark.parametrize('name', ['cloudtran_core_train', 'upsampler_train'])
def test_two_replicas_match_one_device(tiny_config, name):
  """Same weights, same global batch: same update to 1e-5 (SGD).

  The discriminator trains too (its batch-norm statistics are per replica,
  so it gets no say in the generator's update here: factor 0).
  """
  config = tiny_config(name)
  config.use_discriminator = name == 'cloudtran_core_train'
  config.generator_loss_factor = 0.0
  config.optimizer.type = 'sgd'
  config.optimizer.learning_rate = 0.5
  config.batch_size = 2
  batch = next(iter(pipeline.get_dataset(config, 2, 'train')))
  start = train.TrainState(config, one_device())
  weights = [v.numpy() for v in start.model.trainable_variables]
  single = _one_step_weights(config, one_device(), batch, weights)
  mirrored = _one_step_weights(config, distribute.make_strategy('CPU', 2),
                               batch, weights)
  moved = max(np.abs(a - w).max() for a, w in zip(single, weights))
  assert moved > 1e-4
  for a, b in zip(single, mirrored):
    np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize('relaxation,has_gradient', [('soft', True),
                                                     ('argmax', False)])
def test_gan_relaxation_gradient(tiny_config, relaxation, has_gradient):
  config = tiny_config('cloudtran_core_train')
  config.gan_relaxation = relaxation
  state = train.TrainState(config, one_device())
  batch = next(iter(pipeline.get_dataset(config, 2, 'train')))
  with tf.GradientTape() as tape:
    _, _, losses = train.losses_on_batch(state, batch)
  grads = tape.gradient(losses['generator'],
                        state.model.trainable_variables)
  norm = sum(float(tf.reduce_sum(tf.abs(g))) for g in grads if g is not None)
  assert (norm > 0) == has_gradient


def test_eval_uses_averaged_weights_and_stops_at_last_checkpoint(
    trained, tiny_config):
  _, logdir, trained_state = trained
  eval_config = tiny_config('cloudtran_core_test')
  eval_config.max_train_steps = 4
  eval_config.eval_checkpoint_wait_secs = 5
  results = eval_checkpoints.evaluate(eval_config, logdir, one_device(),
                                      'eval_valid')
  assert list(results) == [4]
  assert np.isfinite(results[4]['loss']) and results[4]['loss'] > 0
  assert os.listdir(eval_checkpoints.summary_dir(logdir, 'eval_valid'))

  state = checkpoints.AveragedModel(eval_config, one_device())
  state.restore(tf.train.latest_checkpoint(logdir))
  for var, shadow in zip(state.model.trainable_variables,
                         trained_state.ema.shadows):
    np.testing.assert_array_equal(var.numpy(), shadow.numpy())
  assert any(not np.array_equal(s.numpy(), r.numpy()) for s, r in zip(
      trained_state.ema.shadows, trained_state.model.trainable_variables))
