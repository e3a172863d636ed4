"""tools.learning_curve on fabricated event files and checkpoints."""

import json
import os

import numpy as np
from PIL import Image
import tensorflow as tf

from evaluation import baselines
from tools import learning_curve


def write_events(event_dir, points, tag='loss'):
  writer = tf.summary.create_file_writer(event_dir)
  with writer.as_default():
    for step, value in points:
      tf.summary.scalar(tag, value, step=step)
      tf.summary.scalar('steps_per_sec', 1.0, step=step)
  writer.close()


def test_scalars_reads_every_file_in_step_order(tmp_path):
  events = str(tmp_path / 'train_summaries')
  write_events(events, [(100, 5.0), (200, 4.0)])
  write_events(events, [(50, 6.0), (200, 3.5)])   # a resumed run's file
  steps, values = learning_curve.scalars(events, 'loss')
  assert steps == [50, 100, 200]
  assert values[:2] == [6.0, 5.0]
  assert values[2] in (4.0, 3.5)
  assert learning_curve.scalars(events, 'missing') == ([], [])


def test_cloudy_psnr_counts_only_cloudy_pixels():
  truth = np.zeros((2, 4, 4, 3))
  outputs = truth.copy()
  clear = np.ones((2, 4, 4))
  clear[:, :2] = 0                       # the top half is cloudy
  outputs[:, 2:] = 255                   # wrong only where clear
  outputs[0, :2] = 25.5                  # RMSE 0.1 on cloudy pixels: 20 dB
  outputs[1, :2] = 2.55                  # RMSE 0.01: 40 dB
  assert np.isclose(learning_curve.cloudy_psnr(outputs, truth, clear), 30.0)
  assert learning_curve.cloudy_psnr(outputs, truth, np.ones((2, 4, 4))) is (
      None)


def fake_checkpoints(logdir, steps):
  """Index files of checkpoints `steps`, and only those."""
  for name in os.listdir(logdir):
    if name.endswith('.index'):
      os.remove(os.path.join(logdir, name))
  for step in steps:
    open(os.path.join(logdir, f'model-{step}.index'), 'w').close()


def test_score_checkpoints_scores_each_kept_checkpoint_once(tmp_path):
  logdir = str(tmp_path)
  fake_checkpoints(logdir, [0, 10])
  calls = []
  scorer = lambda path: calls.append(path) or {'parallel': len(calls) * 1.0}
  assert learning_curve.score_checkpoints(logdir, scorer) == {
      0: {'parallel': 1.0}, 10: {'parallel': 2.0}}
  fake_checkpoints(logdir, [10, 20])     # 0 rotated out, 20 new
  scores = learning_curve.score_checkpoints(logdir, scorer)
  assert [os.path.basename(p) for p in calls] == [
      'model-0', 'model-10', 'model-20']
  assert scores == {0: {'parallel': 1.0}, 10: {'parallel': 2.0},
                    20: {'parallel': 3.0}}
  with open(os.path.join(logdir, learning_curve.CACHE)) as f:
    assert json.load(f) == {'0': {'parallel': 1.0}, '10': {'parallel': 2.0},
                            '20': {'parallel': 3.0}}


# The colours the figure draws with: the loss, then the first two methods.
GREY, BLUE, ORANGE = (127, 127, 127), (31, 119, 180), (255, 127, 14)
# The best classical fill's line.
RED = (214, 39, 40)


def pixels_of(image, colour):
  return np.abs(image - np.array(colour)).sum(axis=-1) <= 6


def inside_axes(panel):
  """The part of a panel inside its axes' frame: the dark rows and columns
  of the frame found, one pixel kept off each."""
  dark = panel.sum(axis=-1) < 300
  rows = np.flatnonzero(dark.mean(axis=1) > 0.5)
  cols = np.flatnonzero(dark.mean(axis=0) > 0.5)
  return panel[rows.min() + 2:rows.max() - 1, cols.min() + 2:cols.max() - 1]


def test_plot_draws_each_runs_curves_in_its_column(tmp_path):
  """Read back: per run, the loss falls across its top panel (grey), and its
  methods' PSNR marks are in its bottom panel, orange only where a run has a
  second method."""
  out = str(tmp_path / 'figures' / 'curve.png')
  learning_curve.plot({
      'core': ([1, 2, 3], [5.0, 4.0, 3.5],
               {0: {'parallel': 20.0, 'autoregressive': None},
                3: {'parallel': 25.0, 'autoregressive': 27.0}}, None),
      'upsampler': ([1, 2], [4.0, 3.0], {2: {'output': 30.0}},
                    ('mosaic', 31.0))}, out)
  with Image.open(out) as image:
    figure = np.asarray(image.convert('RGB')).astype(int)
  height, width = figure.shape[0] // 2, figure.shape[1] // 2
  panels = [[figure[r * height:(r + 1) * height, c * width:(c + 1) * width]
             for c in (0, 1)] for r in (0, 1)]
  for top in panels[0]:
    rows, cols = np.nonzero(pixels_of(inside_axes(top), GREY))
    assert len(cols) > 20, 'no loss curve'
    assert cols.max() - cols.min() > 0.5 * inside_axes(top).shape[1]
    # Image rows grow downwards: a falling loss has a positive slope here.
    assert np.polyfit(cols, rows, 1)[0] > 0.2
  core, upsampler = (inside_axes(p) for p in panels[1])
  # The core's parallel PSNR (orange), two points, is a line: more pixels
  # than the upsampler's output, one mark (blue, as the core's one
  # autoregressive mark); no second method in the upsampler's panel.
  assert pixels_of(core, ORANGE).sum() > 2 * pixels_of(upsampler, BLUE).sum()
  assert pixels_of(core, BLUE).sum() > 20
  assert pixels_of(upsampler, BLUE).sum() > 20
  assert not pixels_of(upsampler, ORANGE).any()
  # The best classical fill: a dashed horizontal red line across the
  # upsampler's panel (its legend's swatch aside), above its one mark at
  # 30 dB; none in the core's panel.
  rows, cols = np.nonzero(pixels_of(upsampler, RED))
  line = np.bincount(rows).argmax()
  assert (rows == line).sum() > 0.4 * upsampler.shape[1]
  # The mark is the lowest blue (the legend's swatch sits above the line).
  assert line < np.nonzero(pixels_of(upsampler, BLUE))[0].max()
  assert not pixels_of(core, RED).any()


def test_best_classical_reads_the_inputs_uncorrected(tiny_config):
  config = tiny_config('cloudtran_core_test')
  name, psnr = learning_curve.best_classical(config, 4, config.downsample_res)
  assert name in list(baselines.FILLS) + list(baselines.RESIZED_FILLS)
  assert 10 < psnr < 60
  config.context_correction = 'global'
  assert learning_curve.best_classical(
      config, 4, config.downsample_res) == (name, psnr)
