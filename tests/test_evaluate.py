"""Tests for evaluation/results.py and evaluate.py on the tiny synthetic set."""

import csv
import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import tiny_config_at
from datasets import pipeline
from datasets import tfrecords
from evaluation import baselines
from evaluation import metrics
from evaluation import results

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = 'cloudtran_core_test'
BINS = ['0-10%', '10-30%', '>30%']


@pytest.fixture(name='data', scope='module')
def _data(synthetic_data):
  """The valid subset's arrays, read from the pipeline: {key: (N, ...)}."""
  config = tiny_config_at(synthetic_data, CONFIG)
  batches = list(pipeline.get_dataset(config, 4, 'valid')
                 .as_numpy_iterator())
  data = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
  data['config'] = config
  return data


@pytest.fixture(name='samples', scope='module')
def _samples(data, tmp_path_factory):
  """Two sample dirs: 'truth' (slot 0 of targets_16) and 'noise' (32×32)."""
  root = tmp_path_factory.mktemp('samples')
  c = data['config'].n_channels
  truth = data['targets_16'][..., :c]
  noise = np.random.RandomState(0).randint(0, 256, data['image'].shape[:3] +
                                           (c,))
  for name, images in (('truth', truth), ('noise', noise)):
    (root / name).mkdir()
    tfrecords.write_images(str(root / name / 'gen0.tfrecords'), images)
  return {'truth': str(root / 'truth'), 'noise': str(root / 'noise')}


def read_csv(out_dir):
  with open(os.path.join(out_dir, 'results.csv'), newline='') as f:
    reader = csv.DictReader(f)
    assert tuple(reader.fieldnames) == results.COLUMNS
    return {(r['method'], int(r['resolution']), r['coverage']): r
            for r in reader}


def test_tables_without_inception(data, samples, tmp_path):
  results.evaluate(data['config'], 'valid', samples, str(tmp_path))
  rows = read_csv(tmp_path)
  n = len(data['tile'])
  methods = [('cloudy input', 16), ('mosaic', 16), ('truth', 16),
             ('cloudy input', 32), ('mosaic', 32), ('noise', 32)]
  assert sorted(rows) == sorted((m, s, g) for m, s in methods
                                for g in [results.ALL] + BINS)
  truth = rows['truth', 16, 'all']
  assert (truth['n'], truth['MSE'], truth['PSNR'], truth['SSIM']) == (
      str(n), '0', 'inf', '1')
  for method, side in methods:
    row = rows[method, side, 'all']
    assert (row['FID'], row['KID']) == ('n/a', 'n/a')
    if method != 'truth':
      assert float(row['MSE']) > 0 and np.isfinite(float(row['PSNR']))
  # The mosaic row is the mosaic of the pipeline's targets cube.
  mosaic = baselines.mosaic(data['targets_16'], data['mask_16'], 3)
  expected = metrics.mse(mosaic, data['targets_16'][..., :3]).mean()
  assert float(rows['mosaic', 16, 'all']['MSE']) == pytest.approx(expected)
  # Coverage bins partition the outputs as the pipeline's coverage says.
  counts = np.histogram(data['coverage'], [0, 10, 30, 100])[0]
  for label, count in zip(BINS, counts):
    row = rows['truth', 16, label]
    assert int(row['n']) == count
    assert row['MSE'] == ('0' if count else 'n/a')
  markdown = (tmp_path / 'results.md').read_text()
  overall, by_coverage = markdown.split('## By cloud coverage')
  assert '## All outputs' in overall and 'FID and KID: n/a' in overall
  assert overall.count('| truth | 16 |') == 1
  assert by_coverage.count('| truth | 16 |') == len(BINS)


def test_missing_weights_are_logged(tmp_path, caplog):
  with caplog.at_level(logging.WARNING):
    assert results.load_features(str(tmp_path / 'nowhere.h5')) is None
  assert 'nowhere.h5' in caplog.text and '--inception_weights' in caplog.text


def test_fid_kid_with_injected_inception(data, samples, tmp_path):
  features = metrics.InceptionFeatures(batch_size=8, random_weights=True)
  results.evaluate(data['config'], 'valid', {'truth': samples['truth']},
                   str(tmp_path), features=features, num_outputs=4)
  rows = read_csv(tmp_path)
  for method in ('cloudy input', 'mosaic', 'truth'):
    row = rows[method, 16, 'all']
    assert row['n'] == '4'
    assert np.isfinite([float(row['FID']), float(row['KID'])]).all()
  # Random weights: features ~1e-4, so FID/KID are tiny and not ranked.
  assert np.isfinite(float(rows['truth', 16, '0-10%']['KID']))
  assert rows['truth', 16, '>30%']['FID'] == 'n/a'
  assert 'FID and KID: n/a' not in (tmp_path / 'results.md').read_text()


def test_fid_in_the_data_span_equals_full_fid():
  a = np.random.RandomState(10).randn(10, 64)
  b = np.random.RandomState(11).randn(12, 64) * 1.5 + 0.2
  assert results.fid(a, b) == pytest.approx(
      metrics.fid_from_activations(a, b), rel=1e-9)
  assert results.fid(a, a) == pytest.approx(0, abs=1e-9)


def test_skip_outputs_and_numbering(data, samples, tmp_path):
  sample_dir = tmp_path / 'late'
  sample_dir.mkdir()
  tfrecords.write_images(str(sample_dir / 'gen0.tfrecords'),
                         data['targets_16'][2:, ..., :3])
  with open(sample_dir / 'metrics.csv', 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['output', 'tile', 'coverage', 'psnr', 'ssim', 'mse'])
    writer.writerows([i, data['tile'][i], 0, 0, 0, 0]
                     for i in range(2, len(data['tile'])))
  late = {'late': str(sample_dir)}
  results.evaluate(data['config'], 'valid', late, str(tmp_path),
                   skip_outputs=2)
  row = read_csv(tmp_path)['late', 16, 'all']
  assert (row['n'], row['MSE']) == (str(len(data['tile']) - 2), '0')
  with pytest.raises(ValueError, match='--skip_outputs=2'):
    results.evaluate(data['config'], 'valid', late, str(tmp_path))


def test_rejects_test_subset_and_bad_samples(data, samples, tmp_path):
  with pytest.raises(ValueError, match='cloudy'):
    results.evaluate(data['config'], 'test', samples, str(tmp_path))
  with pytest.raises(ValueError, match='NAME=DIR'):
    results.parse_samples(['no-name'])
  with pytest.raises(ValueError, match='twice'):
    results.parse_samples(['mosaic=x'])


def test_coverage_groups():
  groups = results.coverage_groups(np.array([0, 10, 10.5, 30, 31, 100]),
                                   [10, 30])
  assert [g[0] for g in groups] == [results.ALL] + BINS
  assert [g[1].tolist() for g in groups] == [
      [0, 1, 2, 3, 4, 5], [0, 1], [2, 3], [4, 5]]
  with pytest.raises(ValueError, match='increase'):
    results.coverage_groups(np.zeros(1), [30, 10])


def evaluate_py(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', CUDA_VISIBLE_DEVICES='')
  return subprocess.run([sys.executable, os.path.join(ROOT, 'evaluate.py'),
                         *args], capture_output=True, text=True, env=env,
                        check=False)


def test_cli_help():
  out = evaluate_py('--help').stdout
  for flag in ('--config', '--subset', '--samples', '--inception_weights',
               '--out', '--skip_outputs', '--num_outputs', '--coverage_bins'):
    assert flag in out


def test_cli_run(synthetic_data, samples, tmp_path):
  data = synthetic_data
  done = evaluate_py(
      f'--config={ROOT}/configs/{CONFIG}.py:tiny',
      f'--config.data_dir={data}/videos_final_testset',
      f'--config.mask_dir={data}/masks_final_testset',
      f'--config.jsonf={data}/testset.json',
      f'--samples=core (autoregressive)={samples["truth"]}',
      f'--inception_weights={tmp_path}/nowhere.h5', f'--out={tmp_path}',
      '--coverage_bins=12')
  assert done.returncode == 0, done.stderr
  assert '--inception_weights' in done.stderr
  rows = read_csv(tmp_path)
  row = rows['core (autoregressive)', 16, 'all']
  assert (row['MSE'], row['FID'], row['KID']) == ('0', 'n/a', 'n/a')
  assert {r[2] for r in rows} == {'all', '0-12%', '>12%'}
  assert (tmp_path / 'results.md').exists()
