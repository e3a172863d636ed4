"""Sampling jobs: outputs, TFRecords, PNGs and metrics, resumable per batch.

`sample(config, logdir, mode)` is what `sample.py` calls. Work is committed
one batch at a time: a batch's records and metric rows are written to
`<sample dir>/<gen_file>.parts/` under a temporary name and renamed into place
last, after its PNGs. A job that is killed and started again counts the
committed batches, skips them, and carries on; when every batch is done the
parts are joined into `<gen_file>.tfrecords` and `metrics.csv`.
"""

import csv
import io
import math
import os
import shutil

from absl import logging
import numpy as np
import tensorflow as tf

import datasets
from datasets import tfrecords
import models
from utils import ema as ema_lib
from utils import images
from utils import metrics
from utils import progress
from utils import runlock

# sample.py mode -> data pipeline subset
SUBSETS = {'sample_valid': 'valid', 'sample_test': 'test',
           'sample_train': 'eval_train'}
METRIC_FIELDS = ['output', 'tile', 'coverage', 'psnr', 'ssim', 'mse']


def sample_dir(config, logdir):
  """`<logdir>/<sample.log_dir>`, `_parallel` appended with only_parallel."""
  name = config.sample.log_dir
  if config.model.name == 'cloudtran_core' and config.sample.only_parallel:
    name += '_parallel'
  return os.path.join(logdir, name)


def restore_averaged_model(config, logdir):
  """Builds the model and loads the EMA weights of the newest checkpoint."""
  path = tf.train.latest_checkpoint(logdir)
  if path is None:
    raise FileNotFoundError(
        f'No checkpoint in {logdir}; train first (run.py --mode=train '
        f'--logdir {logdir}) or point --logdir at a training run.')
  model = models.build(config)
  ema = ema_lib.ExponentialMovingAverage(model.trainable_variables,
                                         config.polyak_decay)
  tf.train.Checkpoint(model=model, ema=ema).restore(path).expect_partial()
  ema.copy_to(model.trainable_variables)
  logging.info('Restored the averaged weights of %s.', path)
  return model


class Views:
  """The arrays of one batch that outputs and metrics are made from.

  Core outputs live at `downsample_res`, upsampler outputs at `resolution`.
  """

  def __init__(self, batch, config):
    c = config.n_channels
    suffix = (f'_{config.downsample_res}'
              if config.model.name == 'cloudtran_core' else '')
    targets = batch['targets' + suffix].numpy()
    self.truth = targets[..., :c]                         # _gt: slot 0
    self.cloudy = targets[..., -c:]                       # _tar: slot T-1
    self.unmasked = batch['image' + suffix].numpy()[..., :c]   # _unm
    self.clear_masks = batch['mask' + suffix].numpy()[..., 1:]  # _cov
    self.tile = batch['tile'].numpy()
    self.coverage = batch['coverage'].numpy()


class Generator:
  """Runs the model on a batch: returns (B, h, w, C) int32 outputs."""

  def __init__(self, config, model, gen_batches):
    self.config = config
    self.model = model
    self.gen_batches = gen_batches

  @property
  def output_name(self):
    """PNG suffix: 'gen' (core autoregressive) or 'sam'."""
    if (self.config.model.name == 'cloudtran_core' and
        not self.config.sample.only_parallel):
      return 'gen'
    return 'sam'

  def __call__(self, batch, seed):
    sample_cfg = self.config.sample
    if self.config.model.name == 'cloudtran_core':
      out = self.model.sample(batch, mode=sample_cfg.mode,
                              only_parallel=sample_cfg.only_parallel,
                              seed=seed)
      key = 'parallel' if sample_cfg.only_parallel else f'auto_{sample_cfg.mode}'
      return np.asarray(out[key])
    low_res = self.low_res(batch)
    return np.asarray(self.model.sample(batch, low_res, mode=sample_cfg.mode,
                                       seed=seed))

  def low_res(self, batch):
    """The upsampler's input: the core's output resized, or the truth."""
    c, h = self.config.n_channels, self.config.downsample_res
    if self.gen_batches is None:
      return batch[f'targets_{h}_up_back'][..., :c]
    generated = next(self.gen_batches)
    return datasets.resize_to(generated, self.config.resolution[0])


def check_sample_config(config):
  """Clear errors for `config.sample` values that cannot work."""
  s = config.sample
  if s.mode not in ('argmax', 'sample'):
    raise ValueError(f"config.sample.mode must be 'argmax' or 'sample', got "
                     f'{s.mode!r}.')
  if s.num_samples != 1:
    raise ValueError('config.sample.num_samples must be 1: run one job per '
                     'draw with its own sample.seed and gen_file.')
  if s.batch_size < 1 or s.num_outputs < 1 or s.skip_batches < 0:
    raise ValueError('config.sample.batch_size and num_outputs must be >= 1 '
                     'and skip_batches >= 0.')


class Parts:
  """The committed batches of a job in `<gen_file>.parts/`."""

  def __init__(self, directory, gen_file):
    self.dir = os.path.join(directory, f'{gen_file}.parts')
    os.makedirs(self.dir, exist_ok=True)

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


def write_pngs(directory, index, views, j, generated, name, config):
  """The PNG set of one output (SPEC §5)."""
  s = config.sample
  suffix = '_up' if config.model.name == 'upsampler' else ''
  factor = s.upsample_factor
  enhance = dict(brightness=s.png_brightness, contrast=s.png_contrast)
  arrays = {'unm': views.unmasked[j], 'gt': views.truth[j],
            'tar': views.cloudy[j], name: generated[j]}
  for key, array in arrays.items():
    images.save_png(os.path.join(directory, f'{index:05d}_{key}{suffix}.png'),
                    images.to_pil(images.enlarge(array, factor), **enhance))
  coverage = images.enlarge(images.coverage_image(views.clear_masks[j]), factor)
  images.save_png(os.path.join(directory, f'{index:05d}_cov{suffix}.png'),
                  images.to_pil(coverage))


def gen_batches_for(config, batch_size, skip):
  """Iterator over the core's generated batches, or None."""
  gen_dir = config.sample.gen_data_dir
  if config.model.name != 'upsampler' or not gen_dir:
    if config.model.name == 'upsampler':
      logging.info('No sample.gen_data_dir: upsampling the low-resolution '
                   'truth.')
    return None
  h = config.downsample_res
  shape = (h, h, config.n_channels)
  dataset = tfrecords.read_images(gen_dir, shape).batch(batch_size)
  return iter(dataset.skip(skip))


def sample(config, logdir, mode):
  """Runs a sampling job; returns {'dir', 'outputs', 'metrics'}."""
  if mode not in SUBSETS:
    raise ValueError(f'mode must be one of {sorted(SUBSETS)}, got {mode!r}.')
  check_sample_config(config)
  subset = SUBSETS[mode]
  s = config.sample
  out_dir = sample_dir(config, logdir)
  record_path = os.path.join(out_dir, f'{s.gen_file}.tfrecords')
  if os.path.exists(record_path):
    logging.info('%s exists: this job is complete.', record_path)
    return {'dir': out_dir, 'outputs': None, 'metrics': None}
  # Before anything is written: a wrong --logdir fails here.
  model = restore_averaged_model(config, logdir)
  os.makedirs(out_dir, exist_ok=True)
  with runlock.hold(out_dir, 'sample', f'{s.gen_file}.sample'):
    return _sample_into(config, logdir, subset, out_dir, model)


def _sample_into(config, logdir, subset, out_dir, model):
  """`sample` once the model is restored and `out_dir` is held."""
  s = config.sample
  record_path = os.path.join(out_dir, f'{s.gen_file}.tfrecords')
  csv_path = os.path.join(out_dir, 'metrics.csv') if subset != 'test' else None
  parts = Parts(out_dir, s.gen_file)
  done = parts.done()
  num_batches = math.ceil(s.num_outputs / s.batch_size)
  skip = s.skip_batches + done
  data = iter(datasets.get_dataset('custom', config, s.batch_size, subset)
              .skip(skip))
  generate = Generator(config, model, gen_batches_for(config, s.batch_size,
                                                      skip))
  writer = tf.summary.create_file_writer(
      os.path.join(logdir, f'sample_{subset}'))
  tracker = progress.Progress(num_batches, done=done)
  if done:
    logging.info('Resuming after %d complete batches.', done)
  for b in range(done, num_batches):
    try:
      batch = next(data)
    except StopIteration:
      logging.info('The %s subset ended after %d batches.', subset, b)
      num_batches = b
      break
    views = Views(batch, config)
    first = (s.skip_batches + b) * s.batch_size
    count = min(len(views.truth), s.num_outputs - b * s.batch_size)
    generated = generate(batch, seed=[s.seed, s.skip_batches + b])[:count]
    rows = []
    for j in range(count):
      index = first + j
      if s.im_outputs:
        write_pngs(out_dir, index, views, j, generated, generate.output_name,
                   config)
      if csv_path:
        truth = views.truth[j]
        row = [index, int(views.tile[j]), float(views.coverage[j]),
               float(metrics.psnr(generated[j], truth)),
               float(metrics.ssim(generated[j], truth)),
               float(metrics.mse(generated[j], truth))]
        rows.append(row)
        logging.info('output %05d tile %05d | PSNR %.3f SSIM %.4f MSE %.2f',
                     *row[:2], *row[3:])
        with writer.as_default(step=index):
          for name, value in zip(METRIC_FIELDS[3:], row[3:]):
            tf.summary.scalar(f'{name}_{generate.output_name}', value)
    parts.commit(b, generated.astype(np.int64), rows)
    tracker.update(b + 1)
    logging.info('%s %s', subset, tracker.bar())

  rows = parts.join(record_path, csv_path, num_batches)
  written = sum(1 for _ in tf.data.TFRecordDataset(record_path))
  summary = None
  if rows:
    values = np.array([[float(v) for v in r[3:]] for r in rows])
    finite = lambda x: x[np.isfinite(x)]
    summary = {name: float(np.mean(finite(values[:, i])))
               for i, name in enumerate(METRIC_FIELDS[3:])}
    logging.info('average over %d outputs | PSNR %.3f SSIM %.4f MSE %.2f',
                 len(rows), summary['psnr'], summary['ssim'], summary['mse'])
    with writer.as_default(step=0):
      for name, value in summary.items():
        tf.summary.scalar(f'average_{name}_{generate.output_name}', value)
  writer.flush()
  return {'dir': out_dir, 'outputs': written, 'metrics': summary}
