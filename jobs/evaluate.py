"""The evaluation job: generated outputs and baselines against the truth.

`evaluate(config, subset, samples, out_dir)` is what `evaluate.py` calls:
1. read each method's `*.tfrecords` (written by `sample.py`); the record
   length gives its resolution, `downsample_res` (core) or `resolution`
   (upsampler), and the job record beside it (`<gen_file>.job.json`) must
   name the same subset, geometry and first output. Record k is global
   output `skip_outputs + k`, the k-th example of the subset after
   `skip_outputs` (a job run with `sample.skip_batches` starts at
   `skip_batches · sample.batch_size`);
2. take the truth from the data pipeline (`gather`): slot 0 of the
   `targets` cube at each resolution present (`targets_{h}` or `targets`) —
   the `_gt` image that `sample.py` and upstream score against — and its
   own clear-mask (slot 0 of `mask`: its cloudy pixels have no truth and
   are scored in no pixel split), the target's clear-mask (slot T-1 of
   `mask`) that splits the pixels into cloudy and clear, the coverage of
   the target date (cloud % of slot T-1's mask), and the baselines
   (`baselines.FILLS`) from the model's inputs at that resolution;
3. score them into the rows of `evaluation/tables.py` (every method also
   as a composite, per pixel split and coverage bin, with the best
   classical baseline per resolution). A method sampled with K > 1 draws
   per input is scored by their per-pixel median, and `calibration.py`
   reports the draws' coverage and spread on the cloudy pixels;
4. write `results.csv` (one row per method, resolution, pixel split and
   coverage group, `coverage` = 'all' for the whole set), `results.md` (the
   tables) and `results.json` (the rows, the config, and the checkpoints and
   sample directories scored).

Without samples, the baselines alone are scored at every resolution the
config provides (the benchmark without models).

Only the valid and train subsets have a truth: the test subset's reference
date is the cloudy image to restore.
"""

import collections
import csv
import json
import os
import re

from absl import logging
import numpy as np
import tensorflow as tf

from datasets import keys
from datasets import pipeline
from datasets import sample_outputs
from datasets import subsets
from datasets import tfrecords
from datasets import transforms
from evaluation import baselines
from evaluation import calibration
from evaluation import metrics
from evaluation import tables

# Examples per batch of the data pipeline while gathering (order-neutral).
PIPELINE_BATCH = 16
# Config keys a samples directory's job must share with --config: the
# geometry of the examples its outputs belong to.
JOB_KEYS = ('resolution', 'downsample', 'downsample_res', 'n_channels',
            'timeline')


def parse_samples(specs):
  """['NAME=PATH', ...] -> {name: path}, in the given order."""
  samples = {}
  for spec in specs:
    name, sep, path = spec.partition('=')
    name = name.strip()
    if not sep or not name or not path:
      raise ValueError(f'--samples={spec!r} does not name its method — give '
                       '--samples "NAME=DIR", e.g. --samples '
                       '"core=runs/demo/core/samples_core_valid"')
    if (name in samples or name in tables.BASELINES or
        name.endswith(tables.COMPOSITE)):
      raise ValueError(f'--samples: the method name {name!r} is taken — '
                       f'give each method its own name, not one of the '
                       f'baselines {tables.BASELINES} or ending in '
                       f'{tables.COMPOSITE!r}')
    samples[name] = path
  return samples


def default_out_dir(samples):
  """The directory holding the first sample directory (or file's directory)."""
  path = os.path.abspath(next(iter(samples.values())))
  if not os.path.isdir(path):
    path = os.path.dirname(path)
  return os.path.dirname(path)


def record_file(path):
  """The one `*.tfrecords` file of a sample directory, or `path` itself."""
  files = tfrecords.record_files(path, '--samples')
  if len(files) > 1:
    raise ValueError(f'{path} holds several TFRecord files ({files}); pass '
                     'the one to evaluate as --samples NAME=FILE.')
  return files[0]


def sample_job(path):
  """The job record (`sample_outputs.identity`) beside a sample directory's
  TFRecord file, or None when there is none (older or hand-made samples)."""
  record = record_file(path)
  stem = os.path.basename(record)[:-len(tfrecords.SUFFIX)]
  return sample_outputs.read(
      sample_outputs.job_path(os.path.dirname(record), stem))


def _as_json(value):
  return json.loads(json.dumps(value))


def check_job(name, path, job, subset, config, skip_outputs):
  """Refuses samples whose job record says they belong to other examples:
  another subset, another geometry (JOB_KEYS) or another first output.
  `job` None (no record) is not checked here."""
  if job is None:
    return
  where = f'--samples {name}={path}'
  if job['subset'] != subset:
    raise ValueError(
        f'{where} holds outputs of the {job["subset"]} subset, not '
        f'{subset} — pass --subset={job["subset"]}, or the directory of a '
        f'sample.py --mode=sample_{subset} job')
  recorded = job['config']
  differing = [f'{key} {recorded.get(key)!r} (--config: '
               f'{_as_json(config[key])!r})' for key in JOB_KEYS
               if _as_json(recorded.get(key)) != _as_json(config[key])]
  if differing:
    raise ValueError(
        f'{where} was sampled with {", ".join(differing)} — give the '
        '--config (and overrides) the samples were made with, or sample '
        'again with this one')
  if job['first_output'] != skip_outputs:
    raise ValueError(
        f'{where} starts at output {job["first_output"]} — pass '
        f'--skip_outputs={job["first_output"]}')


def checkpoint_step(job):
  """The training step of the checkpoint a job sampled (`model-<step>`), or
  None."""
  match = re.search(r'-(\d+)$', (job or {}).get('checkpoint') or '')
  return int(match.group(1)) if match else None


def record_side(path, n_channels, sides, draws=1):
  """Side of the square (s, s, C) images of a TFRecord file, s in `sides`;
  `draws` images side by side in each record, (s, draws·s, C)."""
  first = next(iter(tf.data.TFRecordDataset(path).take(1)), None)
  if first is None:
    raise ValueError(f'{path} holds no image.')
  example = tf.train.Example.FromString(first.numpy())
  length = len(example.features.feature['image'].int64_list.value)
  for side in sides:
    if length == side * side * n_channels * draws:
      return side
  raise ValueError(f'The images of {path} have {length} values, not s·'
                   f'{draws}s·{n_channels} for a resolution s in '
                   f'{sorted(sides)}: check --config (n_channels, resolution, '
                   'downsample_res).')


def read_entry(name, path, n_channels, sides, draws=1):
  """A method's outputs as a `tables.Entry`: (N, s, s, C) uint8 images, and
  with `draws` K > 1 per record (sample.num_samples) the (N, K, s, s, C)
  draws and their per-pixel median as the images."""
  path = record_file(path)
  side = record_side(path, n_channels, sides, draws)
  records = np.stack(list(tfrecords.read_images(
      path, (side, side * draws, n_channels)).as_numpy_iterator()))
  if records.min() < 0 or records.max() > 255:
    raise ValueError(f'{path} holds values outside 0..255.')
  logging.info('%s: %d outputs at %dx%d (%d draws each) from %s.', name,
               len(records), side, side, draws, path)
  records = records.astype(np.uint8)
  if draws == 1:
    return tables.Entry(name, side, records)
  stacked = np.moveaxis(
      records.reshape(len(records), side, draws, side, n_channels), 2, 1)
  return tables.Entry(name, side, calibration.median_image(stacked), stacked)


def resolutions(config):
  """Sides of the resolutions the pipeline provides (see `keys.at_side`)."""
  sides = {config.resolution[0]}
  if config.downsample:
    sides.add(config.downsample_res)
  return sides


def resized_fill(cube, mask_cube, n_channels, side, name):
  """The fill `name` (`baselines.FILLS`) of a full-resolution 8-bit cube,
  clipped and area-resized to (side, side) as the data pipeline resizes
  (rounded): (..., side, side, C) uint8 (`baselines.RESIZED_FILLS`)."""
  fill = baselines.fill_8bit(name, cube, mask_cube, n_channels)
  return transforms.resize_values(fill, side).numpy().astype(np.uint8)


def fills_at(batch, side, config):
  """Every baseline at `side` of a pipeline batch of uncorrected inputs
  (numpy): {name: (N, s, s, C) uint8} for each of `baselines.FILLS`, and
  below full resolution each of `baselines.RESIZED_FILLS`."""
  c = config.n_channels
  targets = batch[keys.at_side('targets', side, config)]
  mask = batch[keys.at_side('mask', side, config)]
  fills = {name: baselines.fill_8bit(name, targets, mask, c)
           for name in baselines.FILLS}
  if side != config.resolution[0]:
    for name, full in baselines.RESIZED_FILLS.items():
      fills[name] = resized_fill(batch['targets'], batch['mask'], c, side,
                                 full)
  return fills


def gather(config, subset, sides, skip, count=None):
  """Truth, masks, baselines, tiles and coverage of outputs
  skip..skip+count-1 (count None: every output after `skip`).

  Returns:
    {'tile': (N,), 'coverage': (N,), side: {'truth', *tables.BASELINES: (N,
    s, s, C) uint8 (the resized fill below full resolution only), 'clear':
    (N, s, s) the target's clear-mask, 'known': (N, s, s) the truth's own
    clear-mask, 1 = clear}} for each side of `sides`.
  """
  c = config.n_channels
  # The fills read the inputs as they are, whatever the models were fed.
  ds = pipeline.get_dataset(pipeline.uncorrected(config), PIPELINE_BATCH,
                            subsets.EVALUATED[subset].name)
  ds = ds.unbatch().skip(skip).take(-1 if count is None else count).batch(
      PIPELINE_BATCH)
  parts = collections.defaultdict(list)
  for batch in ds.as_numpy_iterator():
    parts['tile'].append(batch['tile'])
    parts['coverage'].append(batch['coverage'])
    for side in sides:
      targets = batch[keys.at_side('targets', side, config)]
      mask = batch[keys.at_side('mask', side, config)]
      parts[side, 'truth'].append(targets[..., :c])
      parts[side, 'known'].append(mask[..., 0])
      parts[side, 'clear'].append(mask[..., -1])
      for name, fill in fills_at(batch, side, config).items():
        parts[side, name].append(fill)
  found = sum(len(t) for t in parts['tile'])
  if not found or (count is not None and found < count):
    raise ValueError(f'The {subset} subset has {found} examples after the '
                     f'first {skip}, fewer than the {count or 1} outputs to '
                     'evaluate: check --config, --subset and --skip_outputs.')
  out = {key: np.concatenate(parts.pop(key)) for key in ('tile', 'coverage')}
  for side in sides:
    out[side] = {name: np.concatenate(parts[side, name]).astype(np.uint8)
                 for name in ('truth',) + tables.BASELINES
                 if (side, name) in parts}
    for mask in ('clear', 'known'):
      out[side][mask] = np.concatenate(parts[side, mask])
  return out


def check_splits(data, sides):
  """Refuses a pixel split that no evaluated output has a pixel in."""
  for side in sorted(sides):
    for split, mask in metrics.split_masks(
        data[side]['clear'], data[side].get('known')).items():
      if not mask.any():
        raise ValueError(
            f'No evaluated output has a {split} pixel in its target\'s mask '
            f'at {side}x{side}, so the {split} scores are undefined — '
            'evaluate more outputs (--num_outputs, --skip_outputs) or a '
            'subset whose targets are partly cloudy (valid, train)')


def check_numbering(path, skip, tiles):
  """Checks a sample directory's metrics.csv against the matched examples.

  `sample.py` numbers each output and names its tile there; a mismatch means
  a wrong `--skip_outputs`, `--subset` or dataset.
  """
  csv_path = os.path.join(os.path.dirname(record_file(path)), 'metrics.csv')
  if not os.path.exists(csv_path):
    return
  with open(csv_path, newline='') as f:
    rows = [(int(r['output']), int(r['tile'])) for r in csv.DictReader(f)]
  if rows and rows[0][0] != skip:
    raise ValueError(f'{csv_path} numbers its first output {rows[0][0]}; '
                     f'pass --skip_outputs={rows[0][0]} (got {skip}).')
  for output, tile in rows:
    if output - skip < len(tiles) and tiles[output - skip] != tile:
      raise ValueError(f'{csv_path}: output {output} is tile {tile} but the '
                       f'{output - skip}-th example evaluated is tile '
                       f'{tiles[output - skip]}: the dataset config or '
                       'subset differs from the sampling job\'s.')


def write_csv(path, rows):
  """All rows, columns `tables.COLUMNS`."""
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(tables.COLUMNS)
    writer.writerows([tables.format_value(r[k], 10) for k in tables.COLUMNS]
                     for r in rows)


def _json_value(value):
  """A cell for results.json: inf and -inf as strings, the rest as is."""
  if isinstance(value, float) and not np.isfinite(value):
    return str(value)
  return value


def write_json(path, rows, config, subset, sources, count, skip_outputs,
               coverage_bins):
  """results.json: what was scored (config, outputs, sample directories and
  their checkpoints), the protocol's settings and every row (None = n/a)."""
  document = {
      'subset': subset,
      'outputs': count,
      'skip_outputs': skip_outputs,
      'coverage_bins': [float(e) for e in coverage_bins],
      'protocol': tables.protocol_settings(),
      'samples': sources,
      'config': _as_json(config.to_dict()),
      'columns': list(tables.COLUMNS),
      'rows': [{k: _json_value(r[k]) for k in tables.COLUMNS} for r in rows],
  }
  with open(path + '.tmp', 'w') as f:
    json.dump(document, f, indent=1, ensure_ascii=False)
  os.replace(path + '.tmp', path)


def load_features(weights_path=None, batch_size=32):
  """InceptionFeatures, or None (logged: FID and KID become n/a)."""
  try:
    return metrics.InceptionFeatures(weights_path, batch_size=batch_size)
  except metrics.InceptionWeightsMissing as error:
    logging.warning('FID and KID will be %s. %s', tables.MISSING, error)
    return None


def evaluate(config, subset, samples, out_dir, features=None, skip_outputs=0,
             num_outputs=None, coverage_bins=(10, 30, 50), split_name=None):
  """Scores methods, composites and baselines; writes results.csv,
  results.md and results.json.

  Args:
    config: a config with the data keys (configs/common.py).
    subset: 'valid' or 'train' (the test subset has no truth).
    samples: {method name: sample directory or TFRecord file}; empty: the
      baselines alone, at every resolution the config provides.
    out_dir: where the results go.
    features: callable (N, s, s, C) uint8 -> (N, d) activations (e.g.
      `load_features()`), or None: FID and KID are then n/a.
    skip_outputs: global index of every file's first record.
    num_outputs: evaluate at most this many outputs.
    coverage_bins: increasing bin edges in percent.
    split_name: what the tables' titles call the outputs' split (default
      '<subset> subset'), e.g. a held-out root read as its valid subset.

  Returns:
    The rows written, dicts keyed by `tables.COLUMNS`.
  """
  if subset not in subsets.WITH_TRUTH:
    raise ValueError(f'subset must be one of {subsets.WITH_TRUTH}, got '
                     f'{subset!r}: the test subset\'s reference date is '
                     'cloudy, so there is no truth to compare with.')
  jobs = {name: sample_job(path) for name, path in samples.items()}
  for name, path in samples.items():
    check_job(name, path, jobs[name], subset, config, skip_outputs)
  sides = resolutions(config)
  methods = [read_entry(name, path, config.n_channels, sides,
                        (jobs[name] or {}).get('num_samples', 1))
             for name, path in samples.items()]
  # None (baselines alone, no num_outputs): every output of the subset.
  count = min([len(m.images) for m in methods] +
              ([num_outputs] if num_outputs else []), default=None)
  for m in methods:
    if len(m.images) > count:
      logging.info('%s: evaluating the first %d of %d outputs.', m.name,
                   count, len(m.images))
  methods = [m._replace(images=m.images[:count],
                        draws=None if m.draws is None else m.draws[:count])
             for m in methods]
  scored_sides = {m.side for m in methods} or sides
  data = gather(config, subset, scored_sides, skip_outputs, count)
  count = len(data['tile'])
  for path in samples.values():
    check_numbering(path, skip_outputs, data['tile'])
  check_splits(data, scored_sides)
  groups = tables.coverage_groups(data['coverage'], coverage_bins)
  rows = tables.table_rows(data, scored_sides, methods, groups, features)
  split_name = split_name or f'{subset} subset'

  os.makedirs(out_dir, exist_ok=True)
  notes = ['', f'{tables.MISSING}: undefined (no output with pixels of the '
           'split in the group; SAM of one channel; upstream\'s scores of a '
           'pixel split; FID and KID need 2 outputs).']
  if features is None:
    notes += ['', f'FID and KID: {tables.MISSING}, no Inception-v3 weights '
              '(pass --inception_weights; see the log).']
  sources = [{'method': m.name, 'resolution': m.side,
              'path': os.path.abspath(samples[m.name]),
              'file': os.path.abspath(record_file(samples[m.name])),
              'subset': (jobs[m.name] or {}).get('subset'),
              'checkpoint': (jobs[m.name] or {}).get('checkpoint'),
              'step': checkpoint_step(jobs[m.name]),
              'first_output': (jobs[m.name] or {}).get('first_output')}
             for m in methods]
  drawn = [m for m in methods if m.draws is not None]
  if drawn:
    notes += ['', 'Methods sampled with K > 1 draws per input are scored by '
              'the per-pixel median of their draws; calibration.md has how '
              'well the draws cover the truth.']
    cloudy = {side: metrics.split_masks(
        data[side]['clear'], data[side]['known'])[metrics.CLOUDY]
              for side in scored_sides}
    calibration.write(out_dir, [
        calibration.report(m.name, m.draws, data[m.side]['truth'],
                           cloudy[m.side]) for m in drawn],
                      f'{split_name}, the target\'s cloudy pixels')
  write_csv(os.path.join(out_dir, 'results.csv'), rows)
  with open(os.path.join(out_dir, 'results.md'), 'w') as f:
    f.write(tables.results_page(rows, split_name, notes))
  write_json(os.path.join(out_dir, 'results.json'), rows, config, subset,
             sources, count, skip_outputs, coverage_bins)
  logging.info('Wrote results.csv, results.md and results.json (%d outputs) '
               'to %s.', count, out_dir)
  return rows
