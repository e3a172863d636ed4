"""Tests for jobs/evaluate.py and evaluate.py on the tiny synthetic set."""

import csv
import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
from skimage import metrics as sk_metrics

from conftest import tiny_config_at
from datasets import pipeline
from datasets import tfrecords
from datasets import transforms
from evaluation import baselines
from evaluation import metrics
from evaluation import tables
from jobs import evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = 'cloudtran_core_test'
BINS = ['0-10%', '10-30%', '30-50%', '>50%']
SPLITS = ['all', 'cloudy', 'clear']
RMSE, PSNR, SSIM, SAM = 'RMSE [0-1]', 'PSNR [dB, range 1]', 'SSIM [0-1]', 'SAM [°]'
POOLED, DELTA = 'PSNR pooled [dB, range 1]', 'Δ PSNR vs best classical [dB]'
MSE8, PSNR8, SSIM8 = 'MSE [0-255]', 'PSNR [dB, 0-255]', 'SSIM [0-255]'


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
    assert tuple(reader.fieldnames) == tables.COLUMNS
    return {(r['method'], int(r['resolution']), r['pixels'], r['coverage']): r
            for r in reader}


def test_tables_without_inception(data, samples, tmp_path):
  evaluate.evaluate(data['config'], 'valid', samples, str(tmp_path))
  rows = read_csv(tmp_path)
  n = len(data['tile'])
  baseline_names = ['cloudy input', 'least cloudy', 'mosaic',
                    'corrected least cloudy', 'corrected mosaic',
                    'local corrected mosaic', baselines.SIMILAR_FILL]
  # Below full resolution, the full resolution's best fills resized too.
  resized = {16: list(baselines.RESIZED_FILLS), 32: []}
  methods = [(m, s) for s, method in ((16, 'truth'), (32, 'noise'))
             for m in baseline_names + resized[s] +
             [method, method + ' [composite]']]
  assert sorted(rows) == sorted((m, s, p, g) for m, s in methods
                                for p in SPLITS for g in ['all'] + BINS)
  check_best_classical(rows, baseline_names + list(baselines.RESIZED_FILLS))
  truth = rows['truth', 16, 'all', 'all']
  assert (truth['n'], truth[MSE8], truth[PSNR8], truth[SSIM8]) == (
      str(n), '0', 'inf', '1')
  assert (truth[RMSE], truth[PSNR], truth[SSIM], truth[SAM]) == (
      '0', '100', '1', '0')
  for method, side in methods:
    row = rows[method, side, 'all', 'all']
    assert (row['FID'], row['KID']) == ('n/a', 'n/a')
    if not method.startswith('truth'):
      assert float(row[MSE8]) > 0 and np.isfinite(float(row[PSNR8]))
    # Upstream's scores are whole-image ones: n/a in a pixel split.
    cloudy = rows[method, side, 'cloudy', 'all']
    assert cloudy[MSE8] == cloudy['FID'] == 'n/a' != cloudy[RMSE]
  # The mosaic row is the mosaic of the pipeline's targets cube.
  mosaic = baselines.mosaic(data['targets_16'], data['mask_16'], 3)
  expected = metrics.mse(mosaic, data['targets_16'][..., :3]).mean()
  assert float(rows['mosaic', 16, 'all', 'all'][MSE8]) == pytest.approx(
      expected)
  # Coverage bins partition the outputs as the pipeline's coverage says.
  counts = np.histogram(data['coverage'], [0, 10, 30, 50, 100])[0]
  for label, count in zip(BINS, counts):
    row = rows['truth', 16, 'all', label]
    assert int(row['n']) == count
    assert row[MSE8] == ('0' if count else 'n/a')
  markdown = (tmp_path / 'results.md').read_text()
  for title in ('## All pixels', '## Cloudy pixels', '## Clear pixels',
                '## By cloud coverage of the target date: cloudy pixels',
                '## Upstream\'s metrics', 'FID and KID: n/a',
                '| method | resolution | n | RMSE [0-1] |', 'SAM [°]',
                f'| {PSNR} | {DELTA} | {POOLED} |',
                'whole image\'s SSIM map averaged over the split\'s pixels'):
    assert title in markdown
  cloudy_md = markdown.split('## Cloudy pixels')[1].split('##')[0]
  for side in (16, 32):
    best = rows['mosaic', side, 'all', 'all']['best classical']
    assert cloudy_md.count(f'| **{best}** (best classical) | {side} |') == 1
  assert cloudy_md.count('(best classical)') == 2
  assert cloudy_md.count('| truth [composite] | 16 |') == 1
  # Bins without outputs are left out of results.md.
  by_coverage = markdown.split('## By cloud coverage')[1]
  filled = [label for label, count in zip(BINS, counts) if count]
  assert 0 < len(filled) < len(BINS)
  assert by_coverage.count('| truth | 16 |') == len(filled)
  for label in filled:
    assert f'| {label} | truth | 16 |' in by_coverage


def check_best_classical(rows, baseline_names):
  """Per resolution, the best classical row is the baseline with the highest
  cloudy-pixel PSNR over all outputs, and every row's Δ is its PSNR minus
  that baseline's in its own split and group."""
  for side in {key[1] for key in rows}:
    best = max((m for m in baseline_names
                if (m, side, 'cloudy', 'all') in rows),
               key=lambda m: float(rows[m, side, 'cloudy', 'all'][PSNR]))
    for (method, s, split, group), row in rows.items():
      if s != side:
        continue
      assert row['best classical'] == best
      base = rows[best, side, split, group][PSNR]
      if 'n/a' in (row[PSNR], base):
        assert row[DELTA] == 'n/a'
      else:
        assert float(row[DELTA]) == pytest.approx(
            float(row[PSNR]) - float(base), abs=1e-7)


def _expected_row(out, truth, selected):
  """Mean protocol scores over the images with selected pixels, and the
  pooled PSNR, computed here from the arrays (numpy and skimage), not with
  evaluation/metrics."""
  x, y = out / 255., truth / 255.
  pooled = np.mean(((x - y) ** 2)[selected])
  scores = {RMSE: [], 'MAE [0-1]': [], PSNR: [], SSIM: [], SAM: [],
            POOLED: [10 * np.log10(1 / max(pooled, 1e-10))]}
  for xi, yi, m in zip(x, y, selected):
    if not m.any():
      continue
    error = (xi - yi)[m]                       # (pixels, C)
    rmse = np.sqrt(np.mean(error ** 2))
    scores[RMSE].append(rmse)
    scores['MAE [0-1]'].append(np.mean(np.abs(error)))
    scores[PSNR].append(min(20 * np.log10(1 / rmse), 100.) if rmse else 100.)
    _, full = sk_metrics.structural_similarity(
        xi, yi, data_range=1, channel_axis=-1, gaussian_weights=True,
        sigma=1.5, use_sample_covariance=False, full=True)
    scores[SSIM].append(full.mean(axis=-1)[m].mean())
    a, b = xi[m], yi[m]
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cosine = np.sum(a * b, axis=1) / norms   # no zero vector in these
    scores[SAM].append(np.mean(np.degrees(np.arccos(np.clip(cosine, -1, 1)))))
  return int(sum(m.any() for m in selected)), {
      k: np.mean(v) for k, v in scores.items()}


def test_rows_match_independent_computation(data, samples, tmp_path):
  evaluate.evaluate(data['config'], 'valid', samples, str(tmp_path))
  rows = read_csv(tmp_path)
  c = 3
  noise = tfrecords_images(samples['noise'], 32)
  targets, mask = data['targets'], data['mask']
  truth, target = targets[..., :c], targets[..., -c:]
  clear = mask[..., -1] == 1
  composite = np.where(clear[..., None], target, noise)
  # Least cloudy: the input slot (1..T-1) with the most clear pixels, the
  # newest of a tie, whole.
  t = mask.shape[-1]
  least = np.stack([
      targets[i, ..., s * c:(s + 1) * c] for i, s in enumerate(
          [max(range(1, t), key=lambda s, i=i: (mask[i, ..., s].sum(), s))
           for i in range(len(mask))])])
  assert not np.array_equal(least, target)   # the check means something
  for name, out in (('noise', noise), ('noise [composite]', composite),
                    ('least cloudy', least),
                    ('corrected least cloudy', corrected_least_cloudy(
                        targets, mask, c))):
    for split, selected in (('all', np.ones_like(clear)), ('cloudy', ~clear),
                            ('clear', clear)):
      n, expected = _expected_row(out.astype(float), truth.astype(float),
                                  selected)
      row = rows[name, 32, split, 'all']
      assert int(row['n']) == n
      for key, value in expected.items():
        # arccos here is off by ~1e-6° at equal vectors (round-off).
        tolerance = 1e-5 if key == SAM else 0
        assert float(row[key]) == pytest.approx(value, rel=1e-8,
                                                abs=tolerance), (
                                                    name, split, key)
  # A composite is exact on the clear pixels.
  clear_row = rows['noise [composite]', 32, 'clear', 'all']
  assert (clear_row[RMSE], clear_row[PSNR]) == ('0', '100')


def corrected_least_cloudy(targets, mask, c):
  """The context slot (1..T-2) with the most clear pixels (the newest of a
  tie), mapped to the target per channel by np.polyfit on the pixels clear
  in both (every image here has enough), rounded and clipped."""
  out = []
  for cube, clear in zip(targets, mask > 0):
    t = clear.shape[-1]
    slot = max(range(1, t - 1), key=lambda s, m=clear: (m[..., s].sum(), s))
    both = clear[..., slot] & clear[..., -1]
    assert both.sum() >= 16
    date = cube[..., slot * c:(slot + 1) * c].astype(float)
    target = cube[..., -c:].astype(float)
    channels = []
    for k in range(c):
      gain, offset = np.polyfit(date[..., k][both], target[..., k][both], 1)
      channels.append(gain * date[..., k] + offset)
    out.append(np.clip(np.rint(np.stack(channels, -1)), 0, 255))
  return np.stack(out)


def tfrecords_images(path, side):
  record = evaluate.record_file(path)
  return np.stack(list(tfrecords.read_images(record, (side, side, 3))
                       .as_numpy_iterator()))


def test_results_json(data, samples, tmp_path):
  rows = evaluate.evaluate(data['config'], 'valid', samples, str(tmp_path),
                           num_outputs=3)
  with open(tmp_path / 'results.json') as f:
    document = json.load(f)
  assert document['subset'] == 'valid' and document['outputs'] == 3
  assert (tmp_path / 'results.md').read_text().startswith(
      '# Results on the valid subset\n')
  assert document['config']['downsample_res'] == 16
  assert [s['method'] for s in document['samples']] == ['truth', 'noise']
  assert document['samples'][0]['path'] == samples['truth']
  assert document['samples'][0]['step'] is None   # no job record
  assert len(document['rows']) == len(rows)
  truth = [r for r in document['rows'] if r['method'] == 'truth' and
           r['pixels'] == r['coverage'] == 'all'][0]
  assert (truth[PSNR8], truth[PSNR], truth['FID']) == ('inf', 100., None)
  assert document['protocol']['ssim']['sigma'] == 1.5


def write_job(directory, config, subset='valid', first_output=0,
              checkpoint='model-1500', num_samples=1, **config_changes):
  config = config.copy_and_resolve_references()
  config.unlock()
  for key, value in config_changes.items():
    config[key] = value
  job = {'subset': subset, 'checkpoint': checkpoint,
         'first_output': first_output, 'num_samples': num_samples,
         'inputs': [],
         'config': json.loads(json.dumps(config.to_dict()))}
  with open(os.path.join(directory, 'gen0.job.json'), 'w') as f:
    json.dump(job, f)


def test_job_records_are_checked(data, samples, tmp_path):
  sample_dir = tmp_path / 'recorded'
  sample_dir.mkdir()
  tfrecords.write_images(str(sample_dir / 'gen0.tfrecords'),
                         data['targets_16'][..., :3])
  one = {'core': str(sample_dir)}
  config = data['config']
  write_job(sample_dir, config, subset='test')
  with pytest.raises(ValueError, match='test subset, not valid — pass '
                     '--subset=test'):
    evaluate.evaluate(config, 'valid', one, str(tmp_path))
  write_job(sample_dir, config, downsample_res=8)
  with pytest.raises(ValueError, match='downsample_res 8'):
    evaluate.evaluate(config, 'valid', one, str(tmp_path))
  write_job(sample_dir, config, first_output=4)
  with pytest.raises(ValueError, match='--skip_outputs=4'):
    evaluate.evaluate(config, 'valid', one, str(tmp_path))
  write_job(sample_dir, config)
  evaluate.evaluate(config, 'valid', one, str(tmp_path), num_outputs=2)
  with open(tmp_path / 'results.json') as f:
    source = json.load(f)['samples'][0]
  assert (source['checkpoint'], source['step'], source['subset']) == (
      'model-1500', 1500, 'valid')


def _drawn(tmp_path, name, draws, config):
  """A sample directory of K draws side by side (sample.num_samples=K)."""
  sample_dir = tmp_path / name
  sample_dir.mkdir()
  side_by_side = np.concatenate(list(np.moveaxis(draws, 1, 0)), axis=2)
  tfrecords.write_images(str(sample_dir / 'gen0.tfrecords'), side_by_side)
  write_job(sample_dir, config, num_samples=draws.shape[1])
  return str(sample_dir)


def test_draws_are_scored_by_their_median_and_calibrated(data, tmp_path):
  """The table scores the draws' median; calibration.md/.csv/.png describe
  the draws on cloudy pixels: draws exchangeable with the truth cover it at
  the nominal levels, draws 4 times too narrow do not."""
  config = data['config']
  truth = data['targets_16'][..., :3].astype(np.int64)
  rng = np.random.default_rng(0)
  # The truth and K = 4 draws are 5 independent noisy copies of one centre:
  # its PIT among the draws is uniform. The noise stays within half the
  # distance to 0 and 255, so no draw is clipped (that would bias the PIT).
  amplitude = np.minimum(20, np.minimum(truth, 255 - truth) // 2)[:, None]
  noise = rng.integers(-amplitude, amplitude + 1,
                       (len(truth), 5) + truth.shape[1:])
  centre = truth[:, None] - noise[:, :1]
  samples = {'calibrated': centre + noise[:, 1:],
             'narrow': centre + np.rint(noise[:, 1:] / 4).astype(int)}
  paths = {name: _drawn(tmp_path, name, draws, config)
           for name, draws in samples.items()}
  median = evaluate.read_entry('calibrated', paths['calibrated'], 3,
                               {16, 32}, 4)
  np.testing.assert_array_equal(median.draws, samples['calibrated'])
  np.testing.assert_array_equal(
      median.images,
      np.rint(np.median(samples['calibrated'], axis=1)).astype(np.uint8))
  out = tmp_path / 'out'
  evaluate.evaluate(config, 'valid', paths, str(out))
  text = (out / 'calibration.md').read_text()
  assert '| calibrated | 4 |' in text and 'mean error per spread decile' in text
  assert (out / 'calibration.png').stat().st_size > 0
  assert 'per-pixel median of their draws' in (out / 'results.md').read_text()
  with open(out / 'calibration.csv', newline='') as f:
    rows = {r['method']: r for r in csv.DictReader(f)}
  cloudy = int(np.sum(data['mask_16'][..., -1] == 0)) * 3
  assert {int(r['values']) for r in rows.values()} == {cloudy} == {612}
  # 612 values: the calibrated shares are within 4 standard errors of their
  # levels; the narrow draws seldom hold the truth in their middle half.
  calibrated = rows['calibrated']
  assert float(calibrated['inside_90']) == pytest.approx(0.9, abs=0.05)
  assert float(calibrated['inside_50']) == pytest.approx(0.5, abs=0.08)
  assert float(rows['narrow']['inside_50']) < 0.25


def test_baselines_alone(data, tmp_path):
  """No samples: the baselines at every resolution the config provides, the
  truth's own mask taken from slot 0 of the mask cube."""
  config = data['config']
  gathered = evaluate.gather(config, 'valid', {16}, 1, 3)
  np.testing.assert_array_equal(gathered[16]['known'],
                                data['mask_16'][1:4, ..., 0])
  np.testing.assert_array_equal(
      gathered[16]['corrected mosaic'], baselines.corrected_mosaic(
          data['targets_16'][1:4], data['mask_16'][1:4], 3))
  rows = evaluate.evaluate(config, 'valid', {}, str(tmp_path))
  assert {(r['method'], r['resolution']) for r in rows} == {
      (m, s) for m in tables.BASELINES for s in (16, 32)} - {
          (name, 32) for name in baselines.RESIZED_FILLS}
  # The resized fill: the full resolution's best fill, area-resized.
  np.testing.assert_array_equal(
      gathered[16][baselines.RESIZED_FILL],
      transforms.resize_values(np.clip(baselines.local_corrected_mosaic(
          data['targets'][1:4], data['mask'][1:4], 3), 0, 255), 16))
  assert {r['n'] for r in rows if r['pixels'] == r['coverage'] == 'all'} == {
      len(data['tile'])}
  check_best_classical(read_csv(tmp_path), list(tables.BASELINES))
  with open(tmp_path / 'results.json') as f:
    document = json.load(f)
  assert document['samples'] == [] and document['outputs'] == len(
      data['tile'])


def test_fills_beyond_8_bits_are_clipped_not_wrapped(data, monkeypatch):
  """A corrected fill that overshoots 0..255 scores as 0 or 255."""
  def overshoot(cube, mask, n_channels):
    out = np.full(cube.shape[:-1] + (n_channels,), 300)
    out[..., 0, :] = -5
    return out
  monkeypatch.setitem(baselines.FILLS, 'corrected mosaic', overshoot)
  gathered = evaluate.gather(data['config'], 'valid', {16}, 0, 2)
  fill = gathered[16]['corrected mosaic']
  assert (fill[..., 0, :] == 0).all() and (fill[..., 1:, :] == 255).all()


def test_the_baselines_read_the_inputs_uncorrected(data):
  """A config whose models read corrected context dates still scores the
  fills on the inputs as they are."""
  config = data['config'].copy_and_resolve_references()
  config.context_correction = 'local'
  gathered = evaluate.gather(config, 'valid', {16}, 1, 3)
  np.testing.assert_array_equal(gathered[16]['mosaic'], baselines.mosaic(
      data['targets_16'][1:4], data['mask_16'][1:4], 3))


def test_empty_split_is_refused():
  clear = np.ones((2, 16, 16), np.int32)
  with pytest.raises(ValueError, match='no .* cloudy pixel|No evaluated '
                     'output has a cloudy pixel'):
    evaluate.check_splits({16: {'clear': clear}}, {16})
  clear[0, 0, 0] = 0
  evaluate.check_splits({16: {'clear': clear}}, {16})


def test_missing_weights_are_logged(tmp_path, caplog):
  with caplog.at_level(logging.WARNING):
    assert evaluate.load_features(str(tmp_path / 'nowhere.h5')) is None
  assert 'nowhere.h5' in caplog.text and '--inception_weights' in caplog.text


def test_fid_kid_with_injected_inception(data, samples, tmp_path):
  features = metrics.InceptionFeatures(batch_size=8, random_weights=True)
  evaluate.evaluate(data['config'], 'valid', {'truth': samples['truth']},
                    str(tmp_path), features=features, num_outputs=4)
  rows = read_csv(tmp_path)
  for method in ('cloudy input', 'least cloudy', 'mosaic', 'truth',
                 'truth [composite]'):
    row = rows[method, 16, 'all', 'all']
    assert row['n'] == '4'
    assert np.isfinite([float(row['FID']), float(row['KID'])]).all()
  # Random weights: features ~1e-4, so FID/KID are tiny and not ranked.
  assert np.isfinite(float(rows['truth', 16, 'all', '0-10%']['KID']))
  assert rows['truth', 16, 'all', '>50%']['FID'] == 'n/a'
  assert 'FID and KID: n/a' not in (tmp_path / 'results.md').read_text()


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
  evaluate.evaluate(data['config'], 'valid', late, str(tmp_path),
                    skip_outputs=2)
  row = read_csv(tmp_path)['late', 16, 'all', 'all']
  assert (row['n'], row[MSE8]) == (str(len(data['tile']) - 2), '0')
  with pytest.raises(ValueError, match='--skip_outputs=2'):
    evaluate.evaluate(data['config'], 'valid', late, str(tmp_path))


def test_rejects_test_subset_and_bad_samples(data, samples, tmp_path):
  with pytest.raises(ValueError, match='cloudy'):
    evaluate.evaluate(data['config'], 'test', samples, str(tmp_path))
  with pytest.raises(ValueError, match='does not name its method'):
    evaluate.parse_samples(['no-name'])
  for taken in ('mosaic=x', 'least cloudy=x', 'a [composite]=x'):
    with pytest.raises(ValueError, match='is taken'):
      evaluate.parse_samples([taken])
  with pytest.raises(ValueError, match='is taken'):
    evaluate.parse_samples(['a=x', 'a=y'])


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
  assert ('Without any, the baselines alone are scored at every resolution '
          'of --config (give --out)') in ' '.join(out.split())


def data_flags(data):
  return [f'--config={ROOT}/configs/{CONFIG}.py:tiny',
          f'--config.data_dir={data}/videos_final_testset',
          f'--config.mask_dir={data}/masks_final_testset',
          f'--config.jsonf={data}/testset.json']


def test_cli_run(synthetic_data, samples, tmp_path):
  done = evaluate_py(
      *data_flags(synthetic_data),
      f'--samples=core (autoregressive)={samples["truth"]}',
      f'--inception_weights={tmp_path}/nowhere.h5', f'--out={tmp_path}',
      '--coverage_bins=12', '--split_name=holdout split')
  assert done.returncode == 0, done.stderr
  assert (tmp_path / 'results.md').read_text().startswith(
      '# Results on the holdout split\n')
  assert '--inception_weights' in done.stderr
  rows = read_csv(tmp_path)
  row = rows['core (autoregressive)', 16, 'all', 'all']
  assert (row[MSE8], row['FID'], row['KID']) == ('0', 'n/a', 'n/a')
  assert {r[3] for r in rows} == {'all', '0-12%', '>12%'}
  for name in ('results.md', 'results.json'):
    assert (tmp_path / name).exists()


def test_cli_bad_input_is_one_line(synthetic_data, data, tmp_path):
  """--samples without NAME=, samples of another subset or resolution."""
  no_name = evaluate_py(*data_flags(synthetic_data), f'--samples={tmp_path}')
  no_out = evaluate_py(*data_flags(synthetic_data))
  other = tmp_path / 'other'
  other.mkdir()
  tfrecords.write_images(str(other / 'gen0.tfrecords'),
                         data['targets_16'][..., :3])
  write_job(other, data['config'], subset='train')
  other_subset = evaluate_py(*data_flags(synthetic_data),
                             f'--samples=core={other}')
  write_job(other, data['config'], resolution=(64, 64))
  other_resolution = evaluate_py(*data_flags(synthetic_data),
                                 f'--samples=core={other}')
  for done, expected in (
      (no_name, 'does not name its method — give --samples "NAME=DIR"'),
      (no_out, 'without --samples (the baselines alone) there is no sample '
               'directory to write beside — pass --out DIR'),
      (other_subset, 'holds outputs of the train subset, not valid — pass '
                     '--subset=train'),
      (other_resolution, 'was sampled with resolution [64, 64] (--config: '
                         '[32, 32])')):
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert lines[-1].startswith('error: ') and expected in lines[-1], lines
    assert not [line for line in lines if line.startswith('Traceback')]
