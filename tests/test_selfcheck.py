"""Tests of the self-check (jobs/selfcheck.py, python -m tools.selfcheck) on
GeoTIFF scenes written here, with stand-in predictors whose scores are known,
and once with tiny models through the command."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from bench import predict as bench_predict
from datasets import transforms
from evaluation import metrics
from jobs import classical
from jobs import predict_workdir
from jobs import selfcheck
from rasters import geotiff
from rasters import reader
from rasters import tiling
from tests import test_predict_classical
from tools import synthetic_geotiff
from utils.errors import DataError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TILE, OVERLAP, TIMELINE = 32, 8, 4
CONSTANT = 77


def truth(rgb, clear):
  """The target's real values: what an oracle would fill."""
  del clear
  return rgb[:, -1].copy()


def cloudy_input(rgb, clear):
  """The target as the models see it, cloudy pixels at 40."""
  return np.where(clear[:, -1, ..., None], rgb[:, -1],
                  transforms.MASK_VALUE).astype(np.uint8)


def constant(rgb, clear):
  del clear
  return np.full(rgb.shape[:1] + rgb.shape[2:], CONSTANT, np.uint8)


def mirrored(rgb, clear):
  """A position-dependent stand-in: the target date, mirrored."""
  del clear
  return rgb[:, -1, :, ::-1].copy()


@pytest.fixture(scope='module')
def scene(tmp_path_factory):
  """5 dates, 70x50 px (6 tiles); cloudy 0, 18, 83, 74, 19 %: the last
  date is the only target, the three cloudy ones its masks."""
  out = str(tmp_path_factory.mktemp('scene'))
  synthetic_geotiff.write_scene(out, width=70, height=50, dates=5, seed=1)
  return out


def open_scene(root):
  return reader.open_series(os.path.join(root, 'images', '*.tif'),
                            scl=os.path.join(root, 'scl', '*.tif'))


def run(root, out, predictor, **kwargs):
  options = selfcheck.Options(**{'tile_size': TILE, 'timeline': TIMELINE,
                                 'overlap': OVERLAP, 'max_target_cloud': 30.,
                                 **kwargs})
  with open_scene(root) as series:
    return selfcheck.selfcheck(series, lambda: predictor, str(out),
                               options)


def whole_scene(root):
  """Dates, (D, H, W, 3) uint8 values and (D, H, W) cloudy of the scene."""
  with open_scene(root) as series:
    rgb, cloudy, _ = series.read(series.grid.window)
    return [str(d) for d in series.dates], rgb, cloudy


def test_a_model_returning_the_truth_scores_zero_and_the_mosaic_does_not(
    scene, tmp_path):
  report = run(scene, tmp_path / 'out', truth)
  assert len(report['pairs']) == 3
  for scores in [r['scores'] for r in report['pairs']] + [report['overall']]:
    assert scores['model'] == {'rmse': 0., 'mae': 0., 'psnr01': 100.,
                               'ssim01': 1., 'sam': 0.}
    for method in classical.METHODS:
      assert scores[method]['rmse'] > 0.01, method
  assert report['best'] == 'model' and report['ranking'][0] == 'model'
  text = open(tmp_path / 'out' / 'selfcheck.md').read()
  assert '| all |  |  | 5020 | model | 0.0000 | 0.0000 | 100.0000 |' in text
  best = report['best_classical']
  assert text.endswith(
      'Best on this area: **model** (100.00 dB PSNR on the hidden pixels, '
      'over all pairs); fill a date with it: `predict.py --method model`.\n'
      f'The model: {100 - report["overall"][best]["psnr01"]:+.2f} dB against '
      f'the best classical fill, {best}.\n')
  for name in ('selfcheck.csv', 'pair_1.png', 'pair_2.png', 'pair_3.png'):
    assert os.path.exists(tmp_path / 'out' / name)
  assert not os.path.exists(predict_workdir.work_dir(str(tmp_path / 'out')))


def test_a_model_returning_the_cloudy_input_scores_the_cloudy_input_row(
    scene, tmp_path):
  report = run(scene, tmp_path / 'out', cloudy_input)
  for scores in [r['scores'] for r in report['pairs']] + [report['overall']]:
    assert scores['model'] == scores['cloudy_input']
    assert scores['model'] != scores['mosaic']


def test_only_pixels_clear_in_the_target_and_hidden_are_scored(scene,
                                                               tmp_path):
  report = run(scene, tmp_path / 'out', constant)
  dates, rgb, cloudy = whole_scene(scene)
  for pair in report['pairs']:
    target, mask = dates.index(pair['target']), dates.index(pair['mask_date'])
    hidden = ~cloudy[target] & cloudy[mask]
    both = cloudy[target] & cloudy[mask]
    assert both.any() and pair['hidden_pixels'] == hidden.sum()
    model = metrics.to_unit(np.full_like(rgb[target], CONSTANT))
    real = metrics.to_unit(rgb[target])
    for name in ('rmse', 'mae', 'sam'):
      fn = metrics.PROTOCOL[name].fn
      np.testing.assert_allclose(pair['scores']['model'][name],
                                 fn(model, real, hidden), rtol=1e-12)
      # Scoring the target's own cloudy pixels too would differ.
      assert not np.isclose(pair['scores']['model'][name],
                            fn(model, real, cloudy[mask]), rtol=1e-6)


def test_windowed_scores_equal_whole_scene_scores(scene, tmp_path,
                                                  monkeypatch):
  whole = run(scene, tmp_path / 'whole', mirrored)
  monkeypatch.setattr(geotiff, 'BLOCK', 16)
  blocks = run(scene, tmp_path / 'blocks', mirrored)
  for a, b in zip(whole['pairs'] + [whole], blocks['pairs'] + [blocks]):
    for method, scores in a.get('scores', a.get('overall')).items():
      other = b.get('scores', b.get('overall'))[method]
      for name, value in scores.items():
        np.testing.assert_allclose(other[name], value, rtol=1e-9, atol=1e-12,
                                   err_msg=f'{method} {name}')


def test_only_the_tiles_holding_a_hidden_pixel_are_predicted(scene, tmp_path):
  calls = []
  report = run(scene, tmp_path / 'out', lambda rgb, clear: (
      calls.append(len(rgb)), constant(rgb, clear))[1], batch_size=1)
  dates, _, cloudy = whole_scene(scene)
  expected = 0
  for pair in report['pairs']:
    target, mask = dates.index(pair['target']), dates.index(pair['mask_date'])
    hidden = ~cloudy[target] & cloudy[mask]
    touched = [t for t in tiling.grid(50, 70, TILE, OVERLAP)
               if hidden[t.top:t.top + t.height,
                         t.left:t.left + t.width].any()]
    assert pair['tiles'] == len(touched)
    expected += len(touched)
  assert len(calls) == expected < 3 * 6


class Failing:
  """Runs `predictor` for `calls` batches, then fails like a killed job."""

  def __init__(self, predictor, calls):
    self.predictor, self.calls = predictor, calls

  def __call__(self, rgb, clear):
    if self.calls == 0:
      raise KeyboardInterrupt('killed')
    self.calls -= 1
    return self.predictor(rgb, clear)


def test_a_killed_run_resumes_to_the_same_report(scene, tmp_path):
  run(scene, tmp_path / 'clean', mirrored, batch_size=2)
  out = tmp_path / 'killed'
  with pytest.raises(KeyboardInterrupt):
    run(scene, out, Failing(mirrored, 5), batch_size=2)
  work = predict_workdir.work_dir(str(out))
  assert os.path.exists(os.path.join(work, 'pair_1.json'))
  assert os.listdir(os.path.join(work, 'pair_2.work'))
  calls = []
  run(scene, out, lambda rgb, clear: (calls.append(1), mirrored(rgb, clear))[1],
      batch_size=2)
  report = json.load(open(out / 'selfcheck.json'))
  assert len(calls) < sum((p['tiles'] + 1) // 2 for p in report['pairs'])
  for name in ('selfcheck.json', 'selfcheck.md', 'selfcheck.csv',
               'pair_1.png', 'pair_3.png'):
    assert (open(out / name, 'rb').read() ==
            open(tmp_path / 'clean' / name, 'rb').read()), name


class Dates:
  def __init__(self, count):
    self.dates = [f'd{i}' for i in range(count)]


def test_pairs_are_seeded_and_spread_over_targets_and_masks():
  # Dates 2..4 can be targets (3 % cloudy); every other date hides pixels.
  counts = {'pixels': 100, 'cloudy': [50, 50, 3, 3, 3],
            'hidden': [[0 if t == m else 10 for m in range(5)]
                       for t in range(5)]}
  options = lambda seed, pairs=3: selfcheck.Options(
      tile_size=TILE, timeline=TIMELINE, overlap=OVERLAP, seed=seed,
      pairs=pairs)
  pairs = selfcheck.draw_pairs(Dates(5), counts, options(0))
  assert pairs == selfcheck.draw_pairs(Dates(5), counts, options(0))
  assert len({t for t, _ in pairs}) == 3 and len({m for _, m in pairs}) == 3
  draws = {tuple(selfcheck.draw_pairs(Dates(5), counts, options(s)))
           for s in range(5)}
  assert len(draws) > 1
  assert len(selfcheck.draw_pairs(Dates(5), counts, options(0, 50))) == 12
  for seed in range(10):
    # Every mask date serves before any serves twice; targets too.
    pairs = selfcheck.draw_pairs(Dates(5), counts, options(seed, 5))
    assert sorted(m for _, m in pairs) == [0, 1, 2, 3, 4], pairs
    assert len({t for t, _ in pairs[:3]}) == 3, pairs
  counts['hidden'] = [[0] * 5 for _ in range(5)]
  with pytest.raises(DataError, match='No date is cloudy where a target'):
    selfcheck.draw_pairs(Dates(5), counts, options(0))


def command(*args):
  return subprocess.run(
      [sys.executable, '-m', 'tools.selfcheck', *args], cwd=ROOT,
      capture_output=True, text=True, timeout=600,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))


def tiny_flags(core='none', upsampler='none'):
  return ['--core_config=configs/cloudtran_core_test.py:tiny',
          '--upsampler_config=configs/upsampler_test.py:tiny',
          f'--core_logdir={core}', f'--upsampler_logdir={upsampler}',
          '--overlap=8']


def scene_flags(root):
  return [f'--inputs={root}/images/*.tif', f'--scl={root}/scl/*.tif']


@pytest.mark.parametrize('dates,flags,message', [
    (3, ['--max_target_cloud=1'],
     r'No date clear enough to be a target: .*2024-\S+, is \d+\.\d % '
     'cloudy, above --max_target_cloud=1 '),
    (2, [], r'a target needs 2 earlier dates .* the inputs have 2 '),
    (3, ['--pairs=0'], r'--pairs=0: .* at least one pair'),
])
def test_bad_input_is_one_error_line(dates, flags, message, tmp_path):
  # The tiny models take 4 slots: a target needs 2 earlier dates, and only
  # the last date (moderately cloudy) of 3 has them.
  root = str(tmp_path / 'scene')
  synthetic_geotiff.write_scene(root, width=40, height=36, dates=dates,
                                seed=1)
  done = command(*tiny_flags(), *scene_flags(root), f'--out={tmp_path}/o',
                 *flags)
  assert done.returncode == 2, done.stderr[-2000:]
  lines = [l for l in done.stderr.splitlines() if l.startswith('error: ')]
  assert len(lines) == 1 and 'Traceback' not in done.stderr, done.stderr
  assert re.search(message, lines[0]), lines[0]


def test_the_command_with_tiny_models(tmp_path):
  root = str(tmp_path / 'scene')
  synthetic_geotiff.write_scene(root, width=70, height=50, dates=6, seed=0)
  models = bench_predict.save_random_models(str(tmp_path / 'models'), 'tiny')
  done = command(*tiny_flags(*models), *scene_flags(root), '--pairs=1',
                 f'--out={tmp_path}/out')
  assert done.returncode == 0, done.stderr[-2000:]
  assert 'tiles [' in done.stderr and '/s ETA' in done.stderr
  report = json.load(open(tmp_path / 'out' / 'selfcheck.json'))
  assert len(report['pairs']) == 1 and report['models']['core']
  assert report['pairs'][0]['hidden_pixels'] > 0
  assert os.path.exists(tmp_path / 'out' / 'pair_1.png')


def never(rgb, clear):
  raise AssertionError('a complete report ran the models')


def test_a_rerun_is_complete_or_refused_by_its_record(scene, tmp_path):
  out = tmp_path / 'out'
  report = run(scene, out, mirrored)
  assert len(report['pairs']) == 3
  assert run(scene, out, never) == report
  with pytest.raises(DataError, match=r'out was made with different pairs '
                     r'\(4 → 1\), seed \(0 → 3\) — .* use --overwrite'):
    run(scene, out, mirrored, pairs=1, seed=3)
  run(scene, out, mirrored, pairs=1, seed=3, overwrite=True)
  assert sorted(os.listdir(out)) == ['pair_1.png', 'selfcheck.csv',
                                     'selfcheck.json', 'selfcheck.md']
  with pytest.raises(DataError, match=r'--out=.*selfcheck\.md is a file'):
    run(scene, out / 'selfcheck.md', mirrored)


def test_classical_rows_score_the_baselines_and_rank_without_a_model(
    scene, tmp_path):
  """No model: each classical row scores the `evaluation.baselines` function
  of that name on the whole pair (every date before the target, the mask
  date's clouds moved onto the target), and the best PSNR is named."""
  options = selfcheck.Options(tile_size=None, timeline=None, pairs=2,
                              max_target_cloud=30.)
  with open_scene(scene) as series:
    report = selfcheck.selfcheck(series, None, str(tmp_path / 'out'),
                                 options)
  dates, rgb, cloudy = whole_scene(scene)
  functions = test_predict_classical.FUNCTIONS
  for pair in report['pairs']:
    assert set(pair['scores']) == {*functions, 'cloudy_input'}
    target, mask = dates.index(pair['target']), dates.index(pair['mask_date'])
    hidden = ~cloudy[target] & cloudy[mask]
    seen = ~cloudy[:target + 1]
    seen[-1] &= ~cloudy[mask]
    cube = np.concatenate([np.zeros_like(rgb[0]), *rgb[:target + 1]], -1)
    masks = np.stack([np.zeros_like(seen[0]), *seen], -1)
    real = metrics.to_unit(rgb[target])
    for method, function in functions.items():
      image = np.where(hidden[..., None], function(cube, masks, 3),
                       rgb[target])
      for name in ('rmse', 'mae', 'sam'):
        np.testing.assert_allclose(
            pair['scores'][method][name], metrics.PROTOCOL[name].fn(
                metrics.to_unit(image), real, hidden), rtol=1e-9,
            err_msg=f'{method} {name}')
  psnr = {m: report['overall'][m]['psnr01'] for m in functions}
  assert report['best'] == report['best_classical'] == max(psnr,
                                                           key=psnr.get)
  assert report['ranking'] == sorted(psnr, key=psnr.get, reverse=True)
  text = open(tmp_path / 'out' / 'selfcheck.md').read()
  assert f'Best on this area: **{report["best"]}**' in text
  assert 'The model' not in text
