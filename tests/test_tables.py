"""Tests for evaluation/tables.py: rows of hand-made arrays."""

import numpy as np
import pytest

from evaluation import metrics
from evaluation import tables
from tests.test_evaluate import BINS, POOLED, PSNR, RMSE, SAM


def test_pixels_without_truth_are_scored_nowhere():
  rng = np.random.default_rng(3)
  truth = rng.integers(1, 256, (3, 16, 16, 3)).astype(np.uint8)
  clear = np.ones((3, 16, 16), np.int32)
  clear[:, 8:] = 0
  known = np.ones_like(clear)
  known[0, 12:, :4] = 0                  # some of image 0's cloudy pixels
  known[1, 8:] = 0                       # all of image 1's
  # Cloudy in the truth is cloudy in the target (the pipeline's rule); an
  # output exact wherever there is a truth and wrong where there is none.
  output = np.where(known[..., None] > 0, truth, 255 - truth)
  groups = tables.coverage_groups(np.full(3, 50.), [10])
  rows = tables.score_rows(tables.Entry('m', 16, output), truth, clear,
                           known, groups)
  for row in rows:
    if row['coverage'] == 'all':
      assert (row[RMSE], row[PSNR], row[POOLED], row[SAM]) == (
          0, 100, 100, 0), row['pixels']
      assert row['n'] == (2 if row['pixels'] == 'cloudy' else 3)


def test_fid_in_the_data_span_equals_full_fid():
  a = np.random.RandomState(10).randn(10, 64)
  b = np.random.RandomState(11).randn(12, 64) * 1.5 + 0.2
  assert tables.fid(a, b) == pytest.approx(
      metrics.fid_from_activations(a, b), rel=1e-9)
  assert tables.fid(a, a) == pytest.approx(0, abs=1e-9)


def test_coverage_groups():
  groups = tables.coverage_groups(
      np.array([0, 10, 10.5, 30, 31, 50, 100]), [10, 30, 50])
  assert [g[0] for g in groups] == [tables.ALL] + BINS
  assert [g[1].tolist() for g in groups] == [
      [0, 1, 2, 3, 4, 5, 6], [0, 1], [2, 3], [4, 5], [6]]
  with pytest.raises(ValueError, match='increase'):
    tables.coverage_groups(np.zeros(1), [30, 10])
