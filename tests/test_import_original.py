"""tools/import_original.py: parity with the original CloudTran's numbers.

The fixtures under tests/data/original/ were written by the original code
(see tests/data/original/README.md): a checkpoint with perturbed weights and
moving averages, a fixed batch, the original's logits and argmax decode.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import yaml

from configs import cloudtran_core_test
from configs import upsampler_test
from jobs import checkpoints
from jobs import train
import models
from tools import import_original
from utils import distribute

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, 'tests', 'data', 'original')
CORES = ['core_conv', 'core_attention', 'core_sum']
TOLERANCE = 1e-4


def original_config(name):
  with open(os.path.join(DATA, name, 'config.json')) as f:
    return json.load(f)


def overrides(name):
  """{dotted key: value} making a `:tiny` test config equal the original's."""
  original = original_config(name)
  keys = {key: original[key] for key in (
      'n_channels', 'timeline', 'downsample_res', 'resolution')}
  for key, value in original['model'].items():
    if isinstance(value, dict):
      keys.update({f'model.{key}.{k}': v for k, v in value.items()})
    elif key != 'name':
      keys[f'model.{key}'] = value
  if original['model']['name'] == 'cloudtran_core':
    keys['model.decoder.cond_ln_sampling'] = 'row'
  return {k: tuple(v) if isinstance(v, list) else v for k, v in keys.items()}


def project_config(name):
  kind = original_config(name)['model']['name']
  module = cloudtran_core_test if kind == 'cloudtran_core' else upsampler_test
  config = module.get_config('tiny')
  for key, value in overrides(name).items():
    *parents, leaf = key.split('.')
    section = config
    for parent in parents:
      section = section[parent]
    section[leaf] = value
  return config


def arrays(name):
  with np.load(os.path.join(DATA, name, 'arrays.npz')) as loaded:
    return dict(loaded)


def inputs(config, fixture, batch_size):
  """`models.zero_inputs` with the fixture's arrays in place."""
  batch = models.zero_inputs(config, batch_size)
  batch.update({k: tf.constant(v) for k, v in fixture.items()
                if k in batch and v.shape[0] == batch_size})
  return batch


@pytest.fixture(scope='module', name='imported')
def _imported(tmp_path_factory):
  """name -> (config, logdir of the imported checkpoint)."""
  done = {}

  def get(name):
    if name not in done:
      config = project_config(name)
      logdir = str(tmp_path_factory.mktemp(name))
      import_original.import_checkpoint(
          config, os.path.join(DATA, name, 'ckpt'), logdir)
      done[name] = config, logdir
    return done[name]
  return get


def raw_model(config, logdir):
  """The imported model with its own (not averaged) weights."""
  model = models.build(config)
  tf.train.Checkpoint(model=model).restore(
      tf.train.latest_checkpoint(logdir)).expect_partial()
  return model


@pytest.mark.parametrize('name', CORES + ['upsampler'])
def test_averaged_logits_equal_the_original(imported, name):
  config, logdir = imported(name)
  fixture = arrays(name)
  model = checkpoints.restore_averaged_model(config, logdir)
  batch_size = fixture['logits'].shape[0]
  logits, aux = model.get_logits(inputs(config, fixture, batch_size),
                                 training=False)
  np.testing.assert_allclose(logits, fixture['logits'], atol=TOLERANCE,
                             rtol=0)
  if 'encoder_logits' in fixture:
    np.testing.assert_allclose(aux['encoder_logits'],
                               fixture['encoder_logits'], atol=TOLERANCE,
                               rtol=0)


@pytest.mark.parametrize('name', CORES + ['upsampler'])
def test_raw_training_logits_equal_the_original(imported, name):
  """One random channel per example, with the weights (not the averages)."""
  config, logdir = imported(name)
  fixture = arrays(name)
  model = raw_model(config, logdir)
  batch_size = fixture['channel_index'].shape[0]
  logits, aux = model.get_logits(inputs(config, fixture, batch_size),
                                 training=True)
  np.testing.assert_allclose(logits, fixture['raw_train_logits'],
                             atol=TOLERANCE, rtol=0)
  if 'raw_train_encoder_logits' in fixture:
    np.testing.assert_allclose(aux['encoder_logits'],
                               fixture['raw_train_encoder_logits'],
                               atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize('name', CORES + ['core_conv16'])
def test_argmax_decode_equals_the_original(imported, name):
  config, logdir = imported(name)
  fixture = arrays(name)
  model = checkpoints.restore_averaged_model(config, logdir)
  out = model.generate(inputs(config, fixture, 1), mode='argmax')
  np.testing.assert_array_equal(out['parallel'], fixture['parallel'])
  np.testing.assert_array_equal(out['auto_argmax'], fixture['auto_argmax'])


def test_image_wide_sampling_differs_from_the_original(imported):
  """The default (training-consistent) norms change the decode."""
  config, logdir = imported('core_conv')
  config.model.decoder.cond_ln_sampling = 'image'
  fixture = arrays('core_conv')
  model = checkpoints.restore_averaged_model(config, logdir)
  out = model.generate(inputs(config, fixture, 1), mode='argmax')
  assert np.any(out['auto_argmax'].numpy() != fixture['auto_argmax'])


def test_upsampler_argmax_equals_the_original(imported):
  config, logdir = imported('upsampler')
  fixture = arrays('upsampler')
  model = checkpoints.restore_averaged_model(config, logdir)
  batch = inputs(config, fixture, fixture['targets'].shape[0])
  np.testing.assert_array_equal(model.sample(batch)['output'],
                                fixture['high_res_argmax'])


def test_training_starts_from_an_imported_checkpoint(imported, tmp_path):
  """What `run.py --pretrain_dir` does: weights and averages, step 0."""
  config, logdir = imported('upsampler')
  state = train.TrainState(config, distribute.make_strategy('CPU', 1))
  how = checkpoints.restore_or_pretrain(state.checkpoint, state.weights_only,
                                        str(tmp_path), logdir, state.config)
  assert how == 'pretrained' and state.step == 0
  reference = raw_model(config, logdir)
  for mine, theirs in zip(state.model.variables, reference.variables,
                          strict=True):
    np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
  averaged = checkpoints.restore_averaged_model(config, logdir)
  for shadow, variable in zip(state.ema.shadows,
                              averaged.trainable_variables, strict=True):
    np.testing.assert_array_equal(shadow.numpy(), variable.numpy())


def plain(value):
  """A config.json value as the original's config had it (tuples, not
  lists)."""
  if isinstance(value, dict):
    return {k: plain(v) for k, v in value.items()}
  return tuple(value) if isinstance(value, list) else value


def original_logdir(tmp_path, name):
  """A copy of fixture `name`'s checkpoint directory with the config.yaml
  the original's run.py writes beside its checkpoints
  (`yaml.dump(config.to_dict())`)."""
  logdir = tmp_path / 'original'
  shutil.copytree(os.path.join(DATA, name, 'ckpt'), logdir)
  with open(logdir / 'config.yaml', 'w') as f:
    yaml.dump(plain(original_config(name)), f)
  return str(logdir)


@pytest.mark.parametrize('change, message', [
    (('encoder', 'aggregation', 'attention'),
     'model.encoder.aggregation conv in {yaml}, attention in the config '
     'given — give the config the run was trained with, or override those '
     'keys'),
    (('model', 'hidden_size', 16),
     'model.hidden_size 8 in {yaml}, 16 in the config given — set '
     'MODEL_SIZE=8 as the run was trained (no variant)'),
])
def test_a_mismatched_config_is_one_line_naming_keys_and_fix(
    tmp_path, change, message):
  section, key, value = change
  config = project_config('core_conv')
  (config.model if section == 'model' else config.model[section])[key] = (
      value)
  original = original_logdir(tmp_path, 'core_conv')
  out = str(tmp_path / 'out')
  with pytest.raises(ValueError) as error:
    import_original.import_checkpoint(config, original, out)
  assert str(error.value) == (
      f'Checkpoint {original}/model-1 does not fit the config: ' +
      message.format(yaml=f'{original}/config.yaml'))
  assert tf.train.latest_checkpoint(out) is None


def test_without_config_yaml_the_first_difference_is_named(tmp_path):
  config = project_config('core_conv')
  config.model.decoder.num_inner_layers = 1
  original = os.path.join(DATA, 'core_conv', 'ckpt')
  with pytest.raises(ValueError, match=(
      rf'^Checkpoint {original}/model-1 does not fit the model the config '
      r'builds \(cloud_tran_core/inner_decoder/affine_c_1/bias: in the '
      r'checkpoint, not in the model \(and 23 more\)\) — give the config '
      r'\(and MODEL_SIZE\) the run was trained with$')):
    import_original.import_checkpoint(config, original, str(tmp_path))
  assert tf.train.latest_checkpoint(str(tmp_path)) is None


def test_refuses_to_overwrite(imported):
  config, logdir = imported('upsampler')
  with pytest.raises(FileExistsError, match='already holds a checkpoint'):
    import_original.import_checkpoint(
        config, os.path.join(DATA, 'upsampler', 'ckpt'), logdir)


def test_structural_names_ignore_creation_counters():
  names = ['m/dense_7/kernel', 'm/dense_3/kernel', 'dense_12/bias',
           'm/norm_4/dense_9/kernel', 'm/norm/dense_2/kernel']
  assert import_original.structural_names(names) == {
      'm/dense_7/kernel': 'm/dense#1/kernel',
      'm/dense_3/kernel': 'm/dense/kernel',
      'dense_12/bias': 'dense/bias',
      'm/norm_4/dense_9/kernel': 'm/norm#1/dense/kernel',
      'm/norm/dense_2/kernel': 'm/norm/dense/kernel'}


def save_original_layout_discriminator(path, weights):
  """A checkpoint laid out as the original's disc.py writes it.

  `weights` are the arrays in layer order; the original's first three
  blocks are Sequentials (conv, then batch norm for the 2nd and 3rd).
  """
  names = iter(weights)

  def layer(*keys):
    return tf.train.Checkpoint(**{k: tf.Variable(next(names)) for k in keys})

  batch_norm = ('gamma', 'beta', 'moving_mean', 'moving_variance')

  def block(with_norm):
    parts = {'layer_with_weights-0': layer('kernel')}
    if with_norm:
      parts['layer_with_weights-1'] = layer(*batch_norm)
    return tf.train.Checkpoint(**parts)
  disc = tf.train.Checkpoint(**{
      'layer_with_weights-0': block(False), 'layer_with_weights-1': block(True),
      'layer_with_weights-2': block(True),
      'layer_with_weights-3': layer('kernel'),
      'layer_with_weights-4': layer(*batch_norm),
      'layer_with_weights-5': layer('kernel', 'bias')})
  return tf.train.Checkpoint(discriminator=disc).save(path)


def test_discriminator_is_imported_in_layer_order(tmp_path):
  config = project_config('upsampler')
  shapes = [tuple(w.shape) for w in
            models.build_discriminator(config).weights]
  rng = np.random.default_rng(0)
  values = [rng.normal(size=s).astype(np.float32) for s in shapes]
  disc_path = save_original_layout_discriminator(
      str(tmp_path / 'disc' / 'ckpt'), values)
  logdir = str(tmp_path / 'out')
  import_original.import_checkpoint(
      config, os.path.join(DATA, 'upsampler', 'ckpt'), logdir, disc_path)
  disc = models.build_discriminator(config)
  tf.train.Checkpoint(discriminator=disc).restore(
      tf.train.latest_checkpoint(logdir)).assert_existing_objects_matched()
  for weight, value in zip(disc.weights, values, strict=True):
    np.testing.assert_array_equal(weight.numpy(), value)


def test_discriminator_of_another_shape_is_refused(tmp_path):
  config = project_config('upsampler')
  shapes = [tuple(w.shape) for w in
            models.build_discriminator(config).weights]
  shapes[0] = (4, 4, 2, 32)
  disc_path = save_original_layout_discriminator(
      str(tmp_path / 'disc' / 'ckpt'), [np.zeros(s, np.float32)
                                        for s in shapes])
  with pytest.raises(ValueError, match=r'\(4, 4, 2, 32\)'):
    import_original.import_checkpoint(
        config, os.path.join(DATA, 'upsampler', 'ckpt'),
        str(tmp_path / 'out'), disc_path)


def _flags(name):
  flags = []
  for key, value in overrides(name).items():
    if isinstance(value, tuple):
      value = '(' + ','.join(map(str, value)) + ')'
    flags.append(f'--config.{key}={value}')
  return flags


def test_imported_core_runs_through_sample_and_evaluate(synthetic_data,
                                                        tmp_path):
  """The command lines: import, sample.py sample_valid, evaluate.py."""
  # 16×16: the SSIM of sample.py and evaluate.py needs 11×11 at least.
  config = [os.path.join(ROOT, 'configs', 'cloudtran_core_test.py:tiny'),
            *_flags('core_conv16'),
            f'--config.data_dir={synthetic_data}/videos_final_testset',
            f'--config.mask_dir={synthetic_data}/masks_final_testset',
            f'--config.jsonf={synthetic_data}/testset.json',
            '--config.sample.num_outputs=2', '--config.sample.batch_size=2',
            '--config.sample.im_outputs=False']
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  logdir = str(tmp_path / 'imported')

  def run(*args):
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
  run('-m', 'tools.import_original', '--config', *config, '--logdir',
      logdir, '--original_ckpt', os.path.join(DATA, 'core_conv16', 'ckpt'))
  assert os.path.basename(tf.train.latest_checkpoint(logdir)) == 'model-0'  # the original's step
  run('sample.py', '--config', *config, '--mode=sample_valid',
      '--logdir', logdir)
  samples = os.path.join(logdir, 'samples_core_valid')
  assert os.path.exists(os.path.join(samples, 'gen0.tfrecords'))
  run('evaluate.py', '--config', *config, '--subset=valid',
      f'--samples=imported={samples}', f'--out={tmp_path}')
  with open(tmp_path / 'results.csv') as f:
    assert 'imported' in f.read()
