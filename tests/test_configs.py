"""The configs: upstream keys, env sizes, tiny variant, overrides."""

import importlib
import os
import pathlib
import subprocess
import sys

import pytest

from configs import common

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = ['cloudtran_core_train', 'cloudtran_core_test', 'upsampler_train',
           'upsampler_test']

UPSTREAM_DATA_KEYS = [
    'dataset', 'downsample', 'random_channel', 'downsample_res', 'resolution',
    'n_channels', 'timeline', 'ref_index', 'jsonf', 'max_coverage', 'mask_dir',
    'data_dir', 'flip_masks', 'use_discriminator', 'batch_size',
    'max_train_steps', 'save_checkpoint_secs', 'num_epochs', 'polyak_decay',
    'eval_num_examples', 'eval_batch_size', 'eval_checkpoint_wait_secs',
    'optimizer.type', 'optimizer.learning_rate', 'model.name',
    'model.hidden_size', 'model.resolution', 'model.n_channels']
CORE_KEYS = [
    'loss_factor', 'encoder_loss_factor', 'generator_loss_factor',
    'model.stage'] + [f'model.encoder.{k}' for k in (
        'ff_size', 'hidden_size', 'num_heads', 'num_encoder_layers',
        'num_temp_layers', 'dropout', 'posemb', 'aggregation')] + [
            f'model.decoder.{k}' for k in (
                'ff_size', 'hidden_size', 'resolution', 'num_heads',
                'num_inner_layers', 'num_outer_layers', 'dropout', 'skip',
                'cond_mlp', 'cond_mlp_act', 'cond_ln', 'cond_ln_act',
                'cond_ln_seq', 'cond_ln_sp_ave', 'cond_ln_init',
                'cond_att_init', 'cond_att_v', 'cond_att_q', 'cond_att_k',
                'cond_att_scale', 'cond_att_act')]
UPSAMPLER_KEYS = ['model.ff_size', 'model.num_heads', 'model.num_encoder_layers']
SAMPLE_KEYS = ['n_channels', 'log_dir', 'im_outputs', 'batch_size', 'mode',
               'num_samples', 'num_outputs', 'skip_batches', 'gen_file',
               'only_parallel', 'upsample_factor', 'gen_data_dir']


def _load(name, variant=''):
  return importlib.import_module(f'configs.{name}').get_config(variant)


def _get(config, dotted):
  for part in dotted.split('.'):
    config = config[part]
  return config


@pytest.mark.parametrize('name', CONFIGS)
def test_upstream_keys_present(name):
  config = _load(name)
  keys = UPSTREAM_DATA_KEYS + (CORE_KEYS if 'core' in name else UPSAMPLER_KEYS)
  for key in keys:
    _get(config, key)
  if name.endswith('_test'):
    for key in SAMPLE_KEYS:
      _get(config.sample, key)


def test_env_sizes(monkeypatch):
  monkeypatch.setenv('MODEL_SIZE', '64')
  monkeypatch.setenv('DOWNSAMPLE_SIZE', '32')
  monkeypatch.setenv('NUM_CHANNELS', '4')
  config = _load('cloudtran_core_train')
  assert config.model.hidden_size == config.model.decoder.hidden_size == 64
  assert config.downsample_res == 32
  assert config.model.resolution == (32, 32)
  assert config.n_channels == config.model.encoder.n_channels == 4


def test_bad_env_value_names_variable(monkeypatch):
  monkeypatch.setenv('MODEL_SIZE', 'big')
  with pytest.raises(ValueError, match='MODEL_SIZE'):
    _load('upsampler_train')


def test_defaults_follow_upstream():
  core = _load('cloudtran_core_train')
  assert core.model.hidden_size == 128 and core.resolution == (224, 224)
  assert core.random_channel and core.use_discriminator
  test = _load('cloudtran_core_test')
  assert not test.random_channel and not test.use_discriminator
  assert test.sample.log_dir == 'samples_core_valid'
  up = _load('upsampler_test')
  assert up.model.hidden_size == 512 and up.sample.batch_size == 5


def test_shared_keys_propagate():
  config = _load('cloudtran_core_train', 'tiny')
  config.model.hidden_size = 32
  config.n_channels = 1
  assert config.model.encoder.hidden_size == config.model.decoder.hidden_size
  assert config.model.encoder.hidden_size == 32
  assert config.model.decoder.n_channels == 1


@pytest.mark.parametrize('name', CONFIGS)
def test_downsample_res_sets_the_model_resolution(name):
  config = _load(name)
  config.downsample_res = 32
  assert config.model.resolution == (32, 32)
  if 'decoder' in config.model:
    assert config.model.decoder.resolution == (32, 32)


@pytest.mark.parametrize('name', CONFIGS)
def test_hidden_size_sets_the_feed_forward_size(name):
  config = _load(name)
  config.model.hidden_size = 48
  if name.startswith('cloudtran_core'):
    for section in (config.model.encoder, config.model.decoder):
      assert section.hidden_size == section.ff_size == 48
    config.model.encoder.ff_size = 24
    assert config.model.hidden_size == config.model.decoder.ff_size == 48
    assert config.model.encoder.ff_size == 24
  else:
    assert config.model.ff_size == 48
    config.model.ff_size = 24
    assert config.model.hidden_size == 48


@pytest.mark.parametrize('name', CONFIGS)
def test_n_channels_sets_every_section(name):
  config = _load(name)
  config.n_channels = 4
  sections = [config.model]
  if name.startswith('cloudtran_core'):
    sections += [config.model.encoder, config.model.decoder]
  if name.endswith('_test'):
    sections.append(config.sample)
  assert [s.n_channels for s in sections] == [4] * len(sections)


def test_overrides_on_the_command_line_propagate(tmp_path):
  script = tmp_path / 'show.py'
  script.write_text(
      'from absl import app\n'
      'from ml_collections import config_flags\n'
      "C = config_flags.DEFINE_config_file('config', lock_config=True)\n"
      'def main(_):\n'
      '  m = C.value.model\n'
      '  print(m.resolution, m.decoder.resolution, m.encoder.ff_size)\n'
      'app.run(main)\n')
  done = subprocess.run(
      [sys.executable, str(script), '--config',
       str(ROOT / 'configs' / 'cloudtran_core_test.py'),
       '--config.downsample_res=32', '--config.model.hidden_size=64'],
      cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
      capture_output=True, text=True, check=True)
  assert done.stdout.split('\n')[0] == '(32, 32) (32, 32) 64'


def test_unknown_variant():
  with pytest.raises(ValueError, match='variant'):
    _load('cloudtran_core_train', 'huge')


def test_environment_yaml_matches_requirements():
  reqs = (ROOT / 'requirements.txt').read_text().split()
  env = (ROOT / 'environment.yaml').read_text()
  for pin in reqs:
    assert f'- {pin}\n' in env, pin


def test_tiny_points_at_demo_data():
  config = _load('upsampler_test', 'tiny')
  assert config.data_dir.startswith(common.DEMO_DATA)
  assert config.jsonf.endswith('testset.json')
