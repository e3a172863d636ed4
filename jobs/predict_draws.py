"""K draws of a tile's fill, their median and spread: `predict.py --draws`.

With K > 1 the core samples (`mode='sample'`) instead of taking its argmax,
and each of its draws is upsampled (the upsampler's argmax: deterministic
given its input). One model call holds one tile's K draws as its batch,
seeded by the pair [seed, key] with key the tile's index: the draws differ
by their row in the call (the core's stateless draws are per row), and a
tile's draws do not depend on the job, shard or batch that ran it, so
reruns, resumed runs and shards write the same bytes. The tiles with no
clear pixel on any of the model's dates all give the models one input; they
take the key UNOBSERVED_KEY instead of their index, so they draw alike and
still share one prediction (`jobs.predict.model_batches`).

A tile's output is the per-pixel median of its draws
(`evaluation.calibration.median_image`) and their spread, the standard
deviation (`calibration.spread`), both in 8-bit values.
"""

import numpy as np

from evaluation import calibration
from utils.errors import DataError

# The seed key of the tiles with no clear pixel on any of the model's dates.
UNOBSERVED_KEY = -1
# Seeds are int32 (`models.base.seed_pair`).
MAX_SEED = 2**31 - 1


def check(draws, seed):
  """DataError unless `draws` >= 1 and 0 <= `seed` <= MAX_SEED."""
  if draws < 1:
    raise DataError(f'--draws={draws}: give 1 (the argmax fill) or more '
                    '(the median of that many draws, and their spread).')
  if not 0 <= seed <= MAX_SEED:
    raise DataError(f'--seed={seed}: give a seed between 0 and {MAX_SEED}.')


def check_sampler(draws, only_parallel):
  """DataError when K > 1 draws would all be the same: the core's parallel
  head (`only_parallel`) is deterministic."""
  if draws > 1 and only_parallel:
    raise DataError(f'--draws={draws} with --only_parallel: the parallel '
                    'head gives one deterministic output, so its draws '
                    'would not differ — drop --only_parallel (the '
                    'autoregressive core samples) or use --draws=1.')


class Draws:
  """K draws per tile from one seed."""

  def __init__(self, count, seed):
    self.count, self.seed = count, seed

  def tile(self, predictor, rgb, clear, key):
    """(median (S, S, C) uint8, spread (S, S, C) float32) of the K draws of
    one tile: `predictor` (as `jobs.predict_models.ModelPredictor`) on K copies of
    its (T-1, S, S, C) dates and (T-1, S, S) clear masks, seeded by
    [seed, key]."""
    copies = lambda a: np.repeat(a[None], self.count, axis=0)
    draws = predictor(copies(rgb), copies(clear), seed=[self.seed, key])
    return (calibration.median_image(draws, axis=0),
            calibration.spread(draws, axis=0))
