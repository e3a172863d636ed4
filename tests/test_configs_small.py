"""The `:small` configs of `make reproduce-small`: sizes, data, one step."""

import importlib
import math

import pytest

from configs import common
import model_helpers
from jobs import train
from tools import recipe_dataset
from utils import distribute

CONFIGS = ['cloudtran_core_train', 'cloudtran_core_test', 'upsampler_train',
           'upsampler_test']


def load(name, variant='small'):
  return importlib.import_module(f'configs.{name}').get_config(variant)


@pytest.mark.parametrize('name', CONFIGS)
def test_small_sits_between_tiny_and_upstream(name, monkeypatch):
  monkeypatch.setenv('MODEL_SIZE', '999')   # the variants ignore it
  small = load(name)
  monkeypatch.delenv('MODEL_SIZE')
  tiny, full = load(name, 'tiny'), load(name, '')
  assert tiny.model.hidden_size < small.model.hidden_size < (
      full.model.hidden_size)
  assert tiny.downsample_res < small.downsample_res < full.downsample_res
  assert small.model.resolution == (32, 32)
  assert tiny.resolution < small.resolution < full.resolution
  # Upstream depth: only the width and the sizes are smaller.
  for key in ('num_heads', 'num_encoder_layers'):
    section = small.model.get('encoder', small.model)
    assert section[key] == full.model.get('encoder', full.model)[key]
  split = 'trainset' if name.endswith('train') else 'testset'
  assert small.data_dir == f'{common.SMALL_DATA}/videos_final_{split}'
  assert small.jsonf == f'{common.SMALL_DATA}/{split}.json'


@pytest.mark.parametrize('name', CONFIGS)
def test_small_is_the_kept_recipe_and_the_others_the_original(name):
  """`:small` trains and samples with the levers of docs/beat_classical.md
  (train and test configs alike, so a checkpoint samples with what it was
  trained with); the upstream and `:tiny` configs keep the original's
  inputs and logits."""
  small = load(name)
  assert (small.context_correction, small.classical_prior, small.prior_fill,
          small.use_discriminator) == ('local', True, 'similar', False)
  # XLA where it measured faster: the upsampler's training step.
  assert small.jit_compile == name.startswith('upsampler')
  for variant in ('', 'tiny'):
    other = load(name, variant)
    assert (other.context_correction, other.classical_prior,
            other.prior_fill, other.jit_compile) == ('none', False, 'local',
                                                     False)


def test_unknown_variant_names_the_choices():
  with pytest.raises(ValueError, match='"small"'):
    load('cloudtran_core_train', 'smal')


@pytest.fixture(scope='module')
def data(tmp_path_factory):
  out = str(tmp_path_factory.mktemp('small') / 'data')
  recipe_dataset.main([out, '--train', '3', '--valid', '1', '--holdout',
                       '1', '--size', '64'])
  return out


@pytest.mark.parametrize('name', ['cloudtran_core_train', 'upsampler_train'])
def test_small_trains_a_step(name, data, tmp_path, monkeypatch):
  """One step on the benchmark data: finite losses, every weight moved."""
  config = common.use_dataset(load(name), data, 'trainset')
  config.batch_size = 2
  config.max_train_steps = 1
  record = model_helpers.RecordedTraining(monkeypatch)
  state = train.train(config, str(tmp_path), distribute.make_strategy(
      'CPU', 1), steps_per_summaries=1)
  assert state.step == 1
  (losses,) = record.losses
  assert set(losses) == set(state.metric_keys)
  assert all(math.isfinite(v) for v in losses.values()), losses
  assert record.variables()
  assert not record.unchanged()
