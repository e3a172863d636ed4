"""Tests for evaluation/calibration.py: coverage and spread of draws against
stand-in samplers whose distribution is known."""

from statistics import NormalDist

import numpy as np
import pytest

from evaluation import calibration

N, S, C = 40, 8, 3


def normal_draws(rng, k, truth_sd=20.0, draw_sd=20.0, rounded=False):
  """Truth and K draws of one normal per value; (N, K, S, S, C), (N, S, S,
  C), and all pixels picked."""
  center = rng.uniform(60, 190, (N, 1, S, S, C))
  truth = center[:, 0] + rng.normal(0, truth_sd, (N, S, S, C))
  draws = center + rng.normal(0, draw_sd, (N, k, S, S, C))
  if rounded:
    truth, draws = np.rint(truth), np.rint(draws)
  return draws, truth, np.ones((N, S, S), bool)


@pytest.mark.parametrize('k', [1, 4, 8])
@pytest.mark.parametrize('rounded', [False, True])
def test_a_calibrated_sampler_scores_the_nominal_levels(k, rounded):
  draws, truth, pixels = normal_draws(np.random.default_rng(k), k,
                                      rounded=rounded)
  covered = calibration.coverage(draws, truth, pixels)
  for level in calibration.LEVELS:
    assert covered[level] == pytest.approx(level, abs=0.015)


def test_an_overconfident_sampler_scores_the_known_lower_coverage():
  # Draws with half the truth's spread: with many draws the PIT is
  # Phi(2z), inside the central 90 % when |z| < 1.645 / 2.
  draws, truth, pixels = normal_draws(np.random.default_rng(0), 200,
                                      draw_sd=10.0)
  covered = calibration.coverage(draws, truth, pixels)
  for level in calibration.LEVELS:
    z = NormalDist()
    known = 2 * z.cdf(z.inv_cdf(0.5 + level / 2) / 2) - 1
    assert covered[level] == pytest.approx(known, abs=0.015)


def test_a_sampler_that_always_draws_one_value_has_zero_spread():
  truth = np.full((2, S, S, C), 100.0)
  draws = np.full((2, 30, S, S, C), 90, np.uint8)
  assert not calibration.spread(draws).any()
  np.testing.assert_array_equal(calibration.median_image(draws), draws[:, 0])
  rows, correlation = calibration.spread_error_bins(
      draws, truth, np.ones((2, S, S), bool))
  assert [r['mean_error'] for r in rows] == [10.0] and np.isnan(correlation)
  # All 30 draws below the truth: its PIT is in [30/31, 1), outside the
  # central 90 % interval.
  covered = calibration.coverage(draws, truth, np.ones((2, S, S), bool))
  assert covered == {0.5: 0.0, 0.9: 0.0}


def test_error_rises_with_spread_when_spread_means_something():
  rng = np.random.default_rng(1)
  sd = rng.uniform(1, 40, (N, 1, S, S, C))
  truth = 128 + sd[:, 0] * rng.normal(size=(N, S, S, C))
  draws = 128 + sd * rng.normal(size=(N, 16, S, S, C))
  rows, correlation = calibration.spread_error_bins(
      draws, truth, np.ones((N, S, S), bool))
  errors = [r['mean_error'] for r in rows]
  assert len(rows) == calibration.BINS and errors[-1] > 4 * errors[0]
  assert sum(r['values'] for r in rows) == N * S * S * C
  assert correlation > 0.3


def test_only_picked_pixels_count(tmp_path):
  draws, truth, _ = normal_draws(np.random.default_rng(2), 4)
  pixels = np.zeros((N, S, S), bool)
  pixels[:, :2] = True
  report = calibration.report('m', draws, truth, pixels)
  assert report['values'] == N * 2 * S * C and report['draws'] == 4
  none = calibration.report('m', draws, truth, np.zeros((N, S, S), bool))
  assert np.isnan(none['coverage'][0.9]) and none['bins'] == []
  calibration.write(str(tmp_path), [report, none], 'a split')
  text = (tmp_path / 'calibration.md').read_text()
  assert f'| m | 4 | {N * 2 * S * C} |' in text and '| m | 4 | 0 | n/a | n/a | n/a |' in text
