"""Sampling jobs: outputs, TFRecords, PNGs and metrics, resumable per batch.

`sample(config, logdir, mode, restart)` is what `sample.py` calls. Work is
committed one batch at a time: a batch's records and metric rows are written
to `<sample dir>/<gen_file>.parts/` under a temporary name and renamed into
place last, after its PNGs. A job that is killed and started again counts the
committed batches, skips them, and carries on; SIGTERM or SIGINT stops a
job after its current batch (`utils.stop`). When every batch is done the
parts are joined into `<gen_file>.tfrecords` and `metrics.csv`. A job only
continues its own outputs: `sample_outputs` records each job's identity
(subset, checkpoint, config) beside them and refuses another's.

With `sample.num_samples` = n > 1 each input gets n draws: its record holds
them side by side, (h, n·w, C) as upstream writes it, its PNGs are numbered
(`_gen`, `_gen_1`, ...) and metrics.csv has a row per draw.

Any model works the same way: the job writes and scores `model.sample`'s
OUTPUT at its resolution, and with `sample.gen_data_dir` it first hands the
earlier model's outputs to `model.with_low_res`.
"""

import csv
import io
import math
import os
import shutil

from absl import logging
import numpy as np
import tensorflow as tf

from datasets import keys
from datasets import pipeline
from datasets import sample_outputs
from datasets import subsets
from datasets import tfrecords
from evaluation import metrics
from jobs import checkpoints
from models import base
from utils import images
from utils import progress
from utils import runlock
from utils import stop

# sample.py mode (sample_<label>) -> the subset it samples.
MODES = subsets.modes('sample')
# metrics.csv: an output's number, draw, tile and coverage, then the metric
# table (`metrics.COLUMNS`: the protocol's scores per pixel split,
# `<split>_<name>`, and upstream's psnr, ssim, mse), the columns evaluate.py's
# tables average; MISSING where a split has no pixel.
METRIC_KEYS = [column.key for column in metrics.COLUMNS]
METRIC_FIELDS = ['output', 'draw', 'tile', 'coverage', *METRIC_KEYS]
MISSING = 'n/a'


class Views:
  """The arrays of one batch that outputs and metrics are compared with.

  Taken at `side`, the resolution of the model's outputs.
  """

  def __init__(self, batch, config, side):
    c = config.n_channels
    at_side = lambda key: batch[keys.at_side(key, side, config)].numpy()
    targets = at_side('targets')
    self.truth = targets[..., :c]                          # _gt: slot 0
    self.cloudy = targets[..., -c:]                        # _tar: slot T-1
    self.unmasked = at_side('image')[..., :c]              # _unm
    masks = at_side('mask')
    self.clear_masks = masks[..., 1:]                      # _cov
    self.target_clear = self.clear_masks[..., -1]          # splits pixels
    self.truth_clear = masks[..., 0]                       # truth-bearing
    self.tile = batch['tile'].numpy()
    self.coverage = batch['coverage'].numpy()


def output_name(config, model):
  """PNG name of the outputs: 'gen' (autoregressive) or 'sam' (parallel)."""
  if model.autoregressive and not config.sample.only_parallel:
    return 'gen'
  return 'sam'


def check_sample_config(config):
  """Clear errors for `config.sample` values that cannot work."""
  s = config.sample
  if s.mode not in base.SAMPLE_MODES:
    raise ValueError(f'config.sample.mode must be one of {base.SAMPLE_MODES}, '
                     f'got {s.mode!r}.')
  if (s.batch_size < 1 or s.num_outputs < 1 or s.num_samples < 1 or
      s.skip_batches < 0):
    raise ValueError('config.sample.batch_size, num_outputs and num_samples '
                     'must be >= 1 and skip_batches >= 0.')


class Parts:
  """The committed batches of a job in `<gen_file>.parts/`."""

  def __init__(self, directory, gen_file):
    self.dir = os.path.join(directory, f'{gen_file}.parts')

  def _path(self, index, ext):
    return os.path.join(self.dir, f'batch_{index:06d}.{ext}')

  def done(self):
    """Number of consecutive batches committed from the start."""
    count = 0
    while os.path.exists(self._path(count, 'tfrecords')):
      count += 1
    return count

  def commit(self, index, outputs, rows):
    """Writes a batch's metric rows, then its records (the commit marker)."""
    os.makedirs(self.dir, exist_ok=True)
    if rows:
      with open(self._path(index, 'csv.tmp'), 'w', newline='') as f:
        csv.writer(f).writerows(rows)
      os.replace(self._path(index, 'csv.tmp'), self._path(index, 'csv'))
    tmp = self._path(index, 'tfrecords.tmp')
    tfrecords.write_images(tmp, outputs)
    os.replace(tmp, self._path(index, 'tfrecords'))

  def join(self, record_path, csv_path, count):
    """Concatenates the parts into the final files and removes them."""
    tmp = record_path + '.tmp'
    with open(tmp, 'wb') as out:
      for index in range(count):
        with open(self._path(index, 'tfrecords'), 'rb') as part:
          shutil.copyfileobj(part, out)
    os.replace(tmp, record_path)
    rows = []
    for index in range(count):
      if os.path.exists(self._path(index, 'csv')):
        with open(self._path(index, 'csv'), newline='') as f:
          rows.extend(csv.reader(f))
    if csv_path and rows:
      buffer = io.StringIO()
      writer = csv.writer(buffer)
      writer.writerow(METRIC_FIELDS)
      writer.writerows(rows)
      with open(csv_path + '.tmp', 'w', newline='') as f:
        f.write(buffer.getvalue())
      os.replace(csv_path + '.tmp', csv_path)
    shutil.rmtree(self.dir)
    return rows


def write_pngs(directory, index, views, j, draws, name, config):
  """The PNG set of one output; `_up` at full resolution.

  `draws` (n, s, s, C): draw 0 is `_<name>`, draw k `_<name>_<k>`. As
  upstream, every image is enlarged `sample.upsample_factor` times but the
  truth (`_gt`) twice over (factor²), and `_cov` is a palette image.
  """
  s = config.sample
  suffix = '' if draws.shape[1] == config.downsample_res else '_up'
  factor = s.upsample_factor
  enhance = dict(brightness=s.png_brightness, contrast=s.png_contrast)
  arrays = {'unm': (views.unmasked[j], factor),
            'gt': (views.truth[j], factor * factor),
            'tar': (views.cloudy[j], factor)}
  for k, draw in enumerate(draws):
    arrays[f'{name}_{k}' if k else name] = (draw, factor)
  for key, (array, times) in arrays.items():
    images.save(os.path.join(directory, f'{index:05d}_{key}{suffix}.png'),
                images.to_pil(images.enlarge(array, times), **enhance))
  images.save(os.path.join(directory, f'{index:05d}_cov{suffix}.png'),
              images.coverage_png(views.clear_masks[j], factor))


def write_image_summaries(writer, first, views, draws, name):
  """TensorBoard images of each output at step = its number, as upstream:
  `truth_<name>`, `input_<name>` (the cloudy slot T-1) and `output_<name>`
  (its draws)."""
  as_images = lambda x: np.asarray(x).astype(np.uint8)
  with writer.as_default():
    for j in range(draws.shape[1]):
      step = first + j
      tf.summary.image(f'truth_{name}', as_images(views.truth[j:j + 1]),
                       step=step)
      tf.summary.image(f'input_{name}', as_images(views.cloudy[j:j + 1]),
                       step=step)
      tf.summary.image(f'output_{name}', as_images(draws[:, j]), step=step,
                       max_outputs=len(draws))


def draw_seed(seed, batch_index, draw):
  """The seed of draw `draw` of a batch: [seed, batch_index] for the first,
  that pair folded with `draw` for the others."""
  pair = [seed, batch_index]
  if draw == 0:
    return pair
  return tf.random.experimental.stateless_fold_in(pair, draw)


def previous_outputs(config, batch_size, skip):
  """Batches of the outputs `sample.gen_data_dir` holds, or None if unset.

  They are the outputs of the model before this one in the chain (the core's
  for the upsampler), at `downsample_res`, batched and skipped like the
  subset.
  """
  gen_dir = config.sample.gen_data_dir
  if not gen_dir:
    return None
  h = config.downsample_res
  shape = (h, h, config.n_channels)
  dataset = tfrecords.read_images(gen_dir, shape).batch(batch_size)
  return iter(dataset.skip(skip))


def sample_draws(model, batch, sample_config, batch_index):
  """(num_samples, B, s, s, C) outputs of `model.sample` for a batch."""
  s = sample_config
  return np.stack([
      np.asarray(model.sample(batch, mode=s.mode,
                              only_parallel=s.only_parallel,
                              seed=draw_seed(s.seed, batch_index, k))[
                                  base.OUTPUT])
      for k in range(s.num_samples)])


def _cell(value):
  """A metrics.csv cell: MISSING for NaN (no pixel in the split)."""
  return MISSING if np.isnan(value) else float(value)


def _number(cell):
  """A metrics.csv cell back to a float (MISSING -> NaN)."""
  return float('nan') if cell == MISSING else float(cell)


def score_rows(first, views, draws, name, writer):
  """metrics.csv rows of a batch's draws (n, B, s, s, C), one per output and
  draw (`metrics.score`); logs each output's scores averaged over its draws
  (`metrics.average`), and their scalars `<column>_<name>`."""
  count = draws.shape[1]
  scores = [metrics.score(draw, views.truth[:count],
                          views.target_clear[:count],
                          views.truth_clear[:count]) for draw in draws]
  rows = []
  for j in range(count):
    index = first + j
    per_draw = np.array([[score[key][j] for key in METRIC_KEYS]
                         for score in scores])
    for k, values in enumerate(per_draw):
      rows.append([index, k, int(views.tile[j]), float(views.coverage[j]),
                   *map(_cell, values)])
    means = {key: metrics.average(per_draw[:, i])
             for i, key in enumerate(METRIC_KEYS)}
    logging.info('output %05d tile %05d | %s', index, views.tile[j],
                 ' '.join(f'{key} {_format(value)}'
                          for key, value in means.items()))
    with writer.as_default(step=index):
      for key, value in means.items():
        if value is not None:
          tf.summary.scalar(f'{key}_{name}', value)
  return rows


def _format(value):
  return MISSING if value is None else f'{value:.4g}'


def sample(config, logdir, mode, restart=False):
  """Runs a sampling job; returns {'dir', 'outputs', 'metrics'}.

  Args:
    config: a test config (with a `sample` section).
    logdir: the training run; the newest checkpoint is used.
    mode: a key of MODES.
    restart: delete this job's outputs and start over, instead of refusing
      outputs of another job (see `sample_outputs.start`).
  """
  if mode not in MODES:
    raise ValueError(f'mode must be one of {sorted(MODES)}, got {mode!r}.')
  check_sample_config(config)
  subset = MODES[mode]
  s = config.sample
  checkpoint = checkpoints.newest_checkpoint(logdir)
  inputs = (sample_outputs.chained_inputs(s.gen_data_dir, subset.label)
            if s.gen_data_dir else [])
  job = sample_outputs.identity(config, subset.label, checkpoint, inputs)
  out_dir = sample_outputs.sample_dir(config, logdir, subset.label)
  gen_file = sample_outputs.gen_file(config, subset.label)
  # Before anything is written: a wrong --logdir fails here.
  model = checkpoints.restore_averaged_model(config, logdir, checkpoint)
  os.makedirs(out_dir, exist_ok=True)
  with runlock.hold(out_dir, 'sample', f'{gen_file}.sample'):
    return _sample_into(config, logdir, subset, out_dir, gen_file, job, model,
                        restart)


def _sample_into(config, logdir, subset, out_dir, gen_file, job, model,
                 restart):
  """`sample` once the model is restored and `out_dir` is held."""
  s = config.sample
  record_path = os.path.join(out_dir, f'{gen_file}.tfrecords')
  csv_path = (os.path.join(out_dir, 'metrics.csv') if subset.clear_reference
              else None)
  parts = Parts(out_dir, gen_file)
  sample_outputs.start(
      out_dir, gen_file, job,
      has_outputs=os.path.exists(record_path) or parts.done() > 0,
      restart=restart,
      owned=[record_path, parts.dir] + ([csv_path] if csv_path else []))
  if os.path.exists(record_path):
    logging.info('%s exists: this job is complete.', record_path)
    return {'dir': out_dir, 'outputs': None, 'metrics': None}
  done = parts.done()
  num_batches = math.ceil(s.num_outputs / s.batch_size)
  name = output_name(config, model)
  data, previous = _open_inputs(config, subset, s.skip_batches + done)
  writer = tf.summary.create_file_writer(
      os.path.join(logdir, f'sample_{subset.name}'))
  tracker = progress.Progress(num_batches, done=done)
  if done:
    logging.info('Resuming after %d complete batches.', done)
  with stop.requests() as request:
    for b in range(done, num_batches):
      batch = _next_input(data, previous, model, config, subset, b)
      if batch is None:
        logging.info('The %s subset ended after %d batches.', subset.name, b)
        num_batches = b
        break
      _sample_batch(config, model, batch, b, out_dir, name, writer, parts,
                    score=csv_path is not None)
      tracker.update(b + 1)
      logging.info('%s %s', subset.name, tracker.bar())
      if request.signal and b + 1 < num_batches:
        writer.flush()
        request.stop(f'stopped on {request.name} after batch {b + 1} of '
                     f'{num_batches}: the finished batches are kept in '
                     f'{parts.dir} — run the same command again to resume')

  rows = parts.join(record_path, csv_path, num_batches)
  written = sum(1 for _ in tf.data.TFRecordDataset(record_path))
  summary = _average(rows, s.num_samples, name, writer)
  writer.flush()
  return {'dir': out_dir, 'outputs': written, 'metrics': summary}


def _open_inputs(config, subset, skip):
  """The subset's batches after the first `skip`, and the earlier model's
  outputs beside them (None without `sample.gen_data_dir`)."""
  s = config.sample
  pipeline.export_targets(config, subset.name)
  data = iter(pipeline.get_dataset(config, s.batch_size, subset.name)
              .skip(skip))
  return data, previous_outputs(config, s.batch_size, skip)


def _next_input(data, previous, model, config, subset, b):
  """Batch `b` with the earlier model's outputs handed to the model, or
  None once the subset has ended."""
  s = config.sample
  batch = next(data, None)
  if batch is None or previous is None:
    return batch
  low_res = next(previous, None)
  if low_res is None:
    raise ValueError(f'config.sample.gen_data_dir={s.gen_data_dir} holds '
                     f'fewer outputs than the {subset.name} subset '
                     f'after {s.skip_batches + b} batches; sample them '
                     'first or lower sample.num_outputs.')
  return model.with_low_res(batch, low_res)


def _sample_batch(config, model, batch, b, out_dir, name, writer, parts,
                  score):
  """Draws batch `b`'s outputs, writes its PNGs and summaries, scores it
  (with `score`) and commits it to `parts`."""
  s = config.sample
  first = (s.skip_batches + b) * s.batch_size
  count = min(len(batch['tile']), s.num_outputs - b * s.batch_size)
  draws = sample_draws(model, batch, s, s.skip_batches + b)[:, :count]
  views = Views(batch, config, draws.shape[2])
  if s.im_outputs:
    for j in range(count):
      write_pngs(out_dir, first + j, views, j, draws[:, j], name, config)
  write_image_summaries(writer, first, views, draws, name)
  rows = score_rows(first, views, draws, name, writer) if score else []
  side_by_side = np.concatenate(list(draws), axis=2)
  parts.commit(b, side_by_side.astype(np.int64), rows)


def _average(rows, num_samples, name, writer):
  """The mean of each metric column over `rows` (`metrics.average`), logged
  and written as summaries; None without rows."""
  if not rows:
    return None
  values = np.array([[_number(v) for v in r[4:]] for r in rows])
  summary = {key: metrics.average(values[:, i])
             for i, key in enumerate(METRIC_KEYS)}
  logging.info('average over %d outputs (%d draws each) | %s',
               len(rows) // num_samples, num_samples,
               ' '.join(f'{key} {_format(value)}'
                        for key, value in summary.items()))
  with writer.as_default(step=0):
    for key, value in summary.items():
      if value is not None:
        tf.summary.scalar(f'average_{key}_{name}', value)
  return summary
