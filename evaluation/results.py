"""Results tables: generated outputs and baselines against the truth (issue 6).

`evaluate(config, subset, samples, out_dir)` is what `evaluate.py` calls:
1. read each method's `*.tfrecords` (written by `sample.py`); the record
   length gives its resolution, `downsample_res` (core) or `resolution`
   (upsampler). Record k is global output `skip_outputs + k`, the k-th example
   of the subset after `skip_outputs` (a job run with `sample.skip_batches`
   starts at `skip_batches · sample.batch_size`);
2. take the truth from the data pipeline: slot 0 of the `targets` cube at
   each resolution present (`targets_{h}` or `targets`) — the `_gt` image
   that `sample.py` and upstream score against — and the two
   baselines from the model's inputs at that resolution: *cloudy input*
   (slot T-1 of `targets`) and *mosaic* (`baselines.mosaic` of `targets`);
3. score every output (PSNR, SSIM, MSE, averaged) and every set (FID, KID on
   Inception-v3 features), over all outputs and per coverage bin of the
   target date (the pipeline's `coverage`: cloud % of slot T-1's mask);
4. write `results.csv` (one row per method, resolution and coverage group,
   `coverage` = 'all' for the whole set) and `results.md` (two tables).

Only the valid and train subsets have a truth: the test subset's reference
date is the cloudy image to restore (SPEC §1.2).
"""

import collections
import csv
import os

from absl import logging
import numpy as np
import tensorflow as tf

from datasets import keys
from datasets import pipeline
from datasets import subsets
from datasets import tfrecords
from evaluation import baselines
from evaluation import metrics

BASELINES = ('cloudy input', 'mosaic')
# The per-image scores' columns: metrics.PER_IMAGE's names in upper case.
SCORES = tuple(name.upper() for name in metrics.PER_IMAGE)
COLUMNS = ('method', 'resolution', 'coverage', 'n', *SCORES, 'FID', 'KID')
ALL = 'all'
MISSING = 'n/a'
# Examples per batch of the data pipeline while gathering (order-neutral).
PIPELINE_BATCH = 16

Entry = collections.namedtuple('Entry', 'name side images')


def parse_samples(specs):
  """['NAME=PATH', ...] -> {name: path}, in the given order."""
  samples = {}
  for spec in specs:
    name, sep, path = spec.partition('=')
    name = name.strip()
    if not sep or not name or not path:
      raise ValueError(f'--samples takes NAME=DIR, got {spec!r}.')
    if name in samples or name in BASELINES:
      raise ValueError(f'Method name {name!r} is used twice (baselines are '
                       f'named {BASELINES}).')
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


def record_side(path, n_channels, sides):
  """Side of the square (s, s, C) images of a TFRecord file, s in `sides`."""
  first = next(iter(tf.data.TFRecordDataset(path).take(1)), None)
  if first is None:
    raise ValueError(f'{path} holds no image.')
  example = tf.train.Example.FromString(first.numpy())
  length = len(example.features.feature['image'].int64_list.value)
  for side in sides:
    if length == side * side * n_channels:
      return side
  raise ValueError(f'The images of {path} have {length} values, not s·s·'
                   f'{n_channels} for a resolution s in {sorted(sides)}: '
                   'check --config (n_channels, resolution, downsample_res).')


def read_entry(name, path, n_channels, sides):
  """A method's outputs as an Entry of (N, s, s, C) uint8 images."""
  path = record_file(path)
  side = record_side(path, n_channels, sides)
  images = np.stack(list(tfrecords.read_images(
      path, (side, side, n_channels)).as_numpy_iterator()))
  if images.min() < 0 or images.max() > 255:
    raise ValueError(f'{path} holds values outside 0..255.')
  logging.info('%s: %d outputs at %dx%d from %s.', name, len(images), side,
               side, path)
  return Entry(name, side, images.astype(np.uint8))


def resolutions(config):
  """Sides of the resolutions the pipeline provides (see `keys.at_side`)."""
  sides = {config.resolution[0]}
  if config.downsample:
    sides.add(config.downsample_res)
  return sides


def gather(config, subset, sides, skip, count):
  """Truth, baselines, tiles and coverage of outputs skip..skip+count-1.

  Returns:
    {'tile': (N,), 'coverage': (N,), side: {'truth', 'cloudy input',
    'mosaic'} (N, s, s, C) uint8} for each side of `sides`.
  """
  c = config.n_channels
  ds = pipeline.get_dataset(config, PIPELINE_BATCH,
                            subsets.EVALUATED[subset].name)
  ds = ds.unbatch().skip(skip).take(count).batch(PIPELINE_BATCH)
  parts = collections.defaultdict(list)
  for batch in ds.as_numpy_iterator():
    parts['tile'].append(batch['tile'])
    parts['coverage'].append(batch['coverage'])
    for side in sides:
      targets = batch[keys.at_side('targets', side, config)]
      parts[side, 'truth'].append(targets[..., :c])
      parts[side, 'cloudy input'].append(baselines.cloudy_input(targets, c))
      parts[side, 'mosaic'].append(baselines.mosaic(
          targets, batch[keys.at_side('mask', side, config)], c))
  found = sum(len(t) for t in parts['tile'])
  if found < count:
    raise ValueError(f'The {subset} subset has {found} examples after the '
                     f'first {skip}, fewer than the {count} outputs to '
                     'evaluate: check --config, --subset and --skip_outputs.')
  out = {key: np.concatenate(parts.pop(key)) for key in ('tile', 'coverage')}
  for side in sides:
    out[side] = {name: np.concatenate(parts[side, name]).astype(np.uint8)
                 for name in ('truth',) + BASELINES}
  return out


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


def coverage_groups(coverage, edges):
  """[(label, indices)]: 'all', then the bins cut at `edges` (percent).

  A bin holds coverages in (lower, upper]; the first also holds 0.
  """
  edges = [float(e) for e in edges]
  if any(not 0 < e < 100 for e in edges) or edges != sorted(set(edges)):
    raise ValueError(f'Coverage bin edges must increase within (0, 100), got '
                     f'{edges}.')
  bounds = [0.] + edges + [100.]
  bins = np.digitize(coverage, edges, right=True)
  labels = [f'{lo:g}-{hi:g}%' for lo, hi in zip(bounds[:-2], bounds[1:-1])]
  labels.append(f'>{edges[-1]:g}%')
  groups = [(ALL, np.arange(len(coverage)))]
  return groups + [(label, np.flatnonzero(bins == i))
                   for i, label in enumerate(labels)]


def fid(a, b):
  """`metrics.fid_from_activations`, computed in the span of the data.

  Both covariances and the mean difference live in the span of the centred
  activations, so projecting onto an orthonormal basis of it leaves every
  term unchanged while the matrix roots shrink from d×d to at most
  (N+M-1)×(N+M-1).
  """
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
  spread = np.concatenate([a - mean_a, b - mean_b, [mean_a - mean_b]])
  if len(spread) >= a.shape[1]:
    return metrics.fid_from_activations(a, b)
  _, s, vt = np.linalg.svd(spread, full_matrices=False)
  basis = vt[s > s.max() * max(spread.shape) * np.finfo(float).eps]
  if not len(basis):  # every activation equal
    return 0.
  return metrics.fid_from_activations(a @ basis.T, b @ basis.T)


def score_rows(entry, truth, groups, features=None):
  """The table rows of one method or baseline: one per coverage group.

  Args:
    entry: an Entry.
    truth: (N, s, s, C) truth images at the entry's side.
    groups: [(label, indices)] from `coverage_groups`.
    features: None, or (features of the outputs, features of the truth).

  Returns:
    [dict keyed by COLUMNS]; a value that cannot be computed is None (FID
    and KID need features and 2 outputs, the means 1 output).
  """
  scores = {name.upper(): values for name, values in
            metrics.per_image(entry.images, truth).items()}
  rows = []
  for label, idx in groups:
    row = dict.fromkeys(COLUMNS)
    row.update(method=entry.name, resolution=entry.side, coverage=label,
               n=len(idx))
    if len(idx):
      row.update({key: float(np.mean(v[idx])) for key, v in scores.items()})
    if features is not None and len(idx) >= 2:
      out, ref = features[0][idx], features[1][idx]
      row.update(FID=fid(out, ref),
                 KID=metrics.kid_from_activations(out, ref))
    rows.append(row)
  return rows


def table_rows(data, methods, groups, features=None):
  """Rows of every resolution: its baselines, then its methods.

  Args:
    data: `gather`'s result.
    methods: Entries, as many images as `data` has examples.
    groups: [(label, indices)] from `coverage_groups`.
    features: as for `evaluate`.

  Returns:
    `score_rows` rows, ordered by coverage group, resolution, then entry.
  """
  rows = []
  for side in sorted({m.side for m in methods}):
    truth = data[side]['truth']
    truth_features = None if features is None else features(truth)
    entries = [Entry(name, side, data[side][name]) for name in BASELINES]
    entries += [m for m in methods if m.side == side]
    for entry in entries:
      pair = (None if features is None
              else (features(entry.images), truth_features))
      rows += score_rows(entry, truth, groups, pair)
  labels = [label for label, _ in groups]
  return sorted(rows, key=lambda r: labels.index(r['coverage']))


def format_value(value, digits=6):
  """A table cell: None -> 'n/a', floats to `digits` significant digits."""
  if value is None:
    return MISSING
  if isinstance(value, float):
    return f'{value:.{digits}g}'
  return str(value)


def write_csv(path, rows):
  """All rows, columns COLUMNS."""
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(COLUMNS)
    writer.writerows([format_value(r[k], 10) for k in COLUMNS] for r in rows)


def markdown_table(rows, columns):
  """A Markdown table of `rows` (dicts) with `columns`."""
  lines = ['| ' + ' | '.join(columns) + ' |',
           '|' + '|'.join('---' for _ in columns) + '|']
  lines += ['| ' + ' | '.join(format_value(r[k]) for k in columns) + ' |'
            for r in rows]
  return lines


def write_markdown(path, rows, subset, notes):
  """Two tables: all outputs, then per coverage group."""
  overall = [r for r in rows if r['coverage'] == ALL]
  by_coverage = [r for r in rows if r['coverage'] != ALL]
  lines = [f'# Results on the {subset} subset', '',
           'Truth: slot 0 of the targets cube (the clear reference date, '
           'as sample.py scores it) at each method\'s resolution. PSNR, SSIM and MSE are means '
           'over the outputs; FID and KID compare the sets (Inception-v3 pool '
           'features).', *notes, '', '## All outputs', '',
           *markdown_table(overall, [k for k in COLUMNS if k != 'coverage']),
           '', '## By cloud coverage of the target date', '',
           *markdown_table(by_coverage, ('coverage',) + tuple(
               k for k in COLUMNS if k != 'coverage')), '']
  with open(path, 'w') as f:
    f.write('\n'.join(lines))


def load_features(weights_path=None, batch_size=32):
  """InceptionFeatures, or None (logged: FID and KID become n/a)."""
  try:
    return metrics.InceptionFeatures(weights_path, batch_size=batch_size)
  except metrics.InceptionWeightsMissing as error:
    logging.warning('FID and KID will be %s. %s', MISSING, error)
    return None


def evaluate(config, subset, samples, out_dir, features=None, skip_outputs=0,
             num_outputs=None, coverage_bins=(10, 30)):
  """Scores methods and baselines, writes results.csv and results.md.

  Args:
    config: a config with the data keys (configs/common.py).
    subset: 'valid' or 'train' (the test subset has no truth).
    samples: {method name: sample directory or TFRecord file}.
    out_dir: where results.csv and results.md go.
    features: callable (N, s, s, C) uint8 -> (N, d) activations (e.g.
      `load_features()`), or None: FID and KID are then n/a.
    skip_outputs: global index of every file's first record.
    num_outputs: evaluate at most this many outputs.
    coverage_bins: increasing bin edges in percent.

  Returns:
    The rows written, dicts keyed by COLUMNS.
  """
  if not samples:
    raise ValueError('No method to evaluate: give at least one sample '
                     'directory.')
  if subset not in subsets.WITH_TRUTH:
    raise ValueError(f'subset must be one of {subsets.WITH_TRUTH}, got '
                     f'{subset!r}: the test subset\'s reference date is '
                     'cloudy, so there is no truth to compare with.')
  sides = resolutions(config)
  methods = [read_entry(name, path, config.n_channels, sides)
             for name, path in samples.items()]
  count = min(len(m.images) for m in methods)
  if num_outputs:
    count = min(count, num_outputs)
  for m in methods:
    if len(m.images) > count:
      logging.info('%s: evaluating the first %d of %d outputs.', m.name,
                   count, len(m.images))
  methods = [m._replace(images=m.images[:count]) for m in methods]
  data = gather(config, subset, {m.side for m in methods}, skip_outputs,
                count)
  for path in samples.values():
    check_numbering(path, skip_outputs, data['tile'])
  groups = coverage_groups(data['coverage'], coverage_bins)
  rows = table_rows(data, methods, groups, features)

  os.makedirs(out_dir, exist_ok=True)
  notes = ['', f'{MISSING}: undefined (an empty group; FID and KID need 2 '
           'outputs).']
  if features is None:
    notes += ['', f'FID and KID: {MISSING}, no Inception-v3 weights (pass '
              '--inception_weights; see the log).']
  write_csv(os.path.join(out_dir, 'results.csv'), rows)
  write_markdown(os.path.join(out_dir, 'results.md'), rows, subset, notes)
  logging.info('Wrote results.csv and results.md (%d outputs) to %s.', count,
               out_dir)
  return rows
