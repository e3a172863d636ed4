"""tools.residual_cnn on the synthetic dataset with the :tiny configs."""

import numpy as np
import pytest

from datasets import pipeline
from tools import residual_cnn


def with_prior(config):
  config.classical_prior = True
  config.prior_fill = 'similar'
  config.context_correction = 'local'
  return config


def test_untrained_network_is_the_fill_and_training_moves_it(tiny_config):
  train = with_prior(tiny_config('cloudtran_core_train'))
  valid = with_prior(tiny_config('cloudtran_core_test'))
  rows = list(residual_cnn.train(train, valid, steps=4, eval_every=2,
                                 batch_size=2, width=8, learning_rate=0.05,
                                 num_examples=4, seed=0))
  assert [row[0] for row in rows] == [0, 2, 4]
  assert rows[0][1] is None and all(row[1] > 0 for row in rows[1:])
  fill = rows[0][3]
  assert rows[0][2] == fill and 10 < fill < 60
  assert all(row[3] == fill for row in rows)
  assert rows[-1][2] != fill


def test_features_leave_out_the_truth(tiny_config):
  """Slot 0 (the truth) is in no feature: changing it changes none."""
  config = with_prior(tiny_config('cloudtran_core_test'))
  batch = next(iter(pipeline.get_dataset(config, 2, 'valid')))
  key = f'targets_{config.downsample_res}'
  features, fill = residual_cnn.side_cubes(batch, config)
  changed = dict(batch)
  changed[key] = batch[key].numpy().copy()
  changed[key][..., :config.n_channels] = 0
  np.testing.assert_array_equal(
      residual_cnn.side_cubes(changed, config)[0].numpy(), features.numpy())
  # slots 1..T-1 of targets and mask, the fill, and slots 1..T-1 minus it.
  t, c = config.timeline, config.n_channels
  assert features.shape[-1] == 2 * (t - 1) * c + (t - 1) + c
  assert fill.shape[-1] == c


def test_a_config_without_a_prior_is_refused(tiny_config):
  valid = with_prior(tiny_config('cloudtran_core_test'))
  with pytest.raises(ValueError, match='--train_config.classical_prior=True'):
    next(residual_cnn.train(tiny_config('cloudtran_core_train'), valid, 1, 1,
                            1, 4, 1e-3, 1, 0))
