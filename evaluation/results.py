"""Results tables: generated outputs and baselines against the truth.

`evaluate(config, subset, samples, out_dir)` is what `evaluate.py` calls:
1. read each method's `*.tfrecords` (written by `sample.py`); the record
   length gives its resolution, `downsample_res` (core) or `resolution`
   (upsampler), and the job record beside it (`<gen_file>.job.json`) must
   name the same subset, geometry and first output. Record k is global
   output `skip_outputs + k`, the k-th example of the subset after
   `skip_outputs` (a job run with `sample.skip_batches` starts at
   `skip_batches · sample.batch_size`);
2. take the truth from the data pipeline: slot 0 of the `targets` cube at
   each resolution present (`targets_{h}` or `targets`) — the `_gt` image
   that `sample.py` and upstream score against — and its own clear-mask
   (slot 0 of `mask`: its cloudy pixels have no truth and are scored in no
   pixel split), the target's clear-mask (slot T-1 of `mask`) that splits
   the pixels into cloudy and clear, and the baselines (`baselines.FILLS`)
   from the model's inputs at that resolution; every method is also scored as a
   *composite* (`baselines.composite`: its output where the target is
   cloudy, the target's pixels where clear);
3. score every output with `metrics.score` (the protocol's metrics per pixel
   split, upstream's 8-bit PSNR, SSIM and MSE) and average per method with
   `metrics.average`, and every set (pooled PSNR; FID, KID on Inception-v3
   features), over all outputs and per coverage bin of the target date (the
   pipeline's `coverage`: cloud % of slot T-1's mask); name the *best
   classical* baseline per resolution (`best_classical`) and give every
   row's PSNR difference to it;
   A method sampled with K > 1 draws per input is scored by their
   per-pixel median, and `calibration.py` reports the draws' coverage and
   spread on the cloudy pixels;
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
from evaluation import baselines
from evaluation import calibration
from evaluation import metrics

BASELINES = tuple(baselines.FILLS)
# A method's composite is named `<method>` + COMPOSITE.
COMPOSITE = ' [composite]'
PSNR = metrics.PROTOCOL['psnr01'].header
POOLED_PSNR = 'PSNR pooled [dB, range 1]'
DELTA_PSNR = 'Δ PSNR vs best classical [dB]'
BEST = 'best classical'
# The protocol's columns (on [0, 1] values, per pixel split; PSNR per output
# then its difference to the best classical row's and the set's pooled
# PSNR), then upstream's (8-bit values, whole images): headers with scale
# and unit.
_HEADERS = [m.header for m in metrics.PROTOCOL.values()]
PROTOCOL_SCORES = tuple(_HEADERS[:_HEADERS.index(PSNR) + 1] +
                        [DELTA_PSNR, POOLED_PSNR] +
                        _HEADERS[_HEADERS.index(PSNR) + 1:])
UPSTREAM_SCORES = tuple(metrics.UPSTREAM_HEADERS[name]
                        for name in metrics.PER_IMAGE) + ('FID', 'KID')
COLUMNS = ('method', 'resolution', 'pixels', 'coverage', 'n',
           *PROTOCOL_SCORES, *UPSTREAM_SCORES, BEST)
ALL = 'all'
MISSING = 'n/a'
# Examples per batch of the data pipeline while gathering (order-neutral).
PIPELINE_BATCH = 16
# Config keys a samples directory's job must share with --config: the
# geometry of the examples its outputs belong to.
JOB_KEYS = ('resolution', 'downsample', 'downsample_res', 'n_channels',
            'timeline')
# Titles of the pixel splits in results.md.
SPLIT_TITLES = {
    metrics.ALL: 'All pixels',
    metrics.CLOUDY: 'Cloudy pixels (cloudy in the target\'s mask: the '
                    'reconstructed ones)',
    metrics.CLEAR: 'Clear pixels (clear in the target\'s mask)'}

# images: (N, s, s, C) uint8 scored in the tables; draws: (N, K, s, s, C)
# uint8 when a job drew K > 1 outputs per input (images is then their
# median), else None.
Entry = collections.namedtuple('Entry', 'name side images draws',
                               defaults=(None,))


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
    if name in samples or name in BASELINES or name.endswith(COMPOSITE):
      raise ValueError(f'--samples: the method name {name!r} is taken — '
                       f'give each method its own name, not one of the '
                       f'baselines {BASELINES} or ending in {COMPOSITE!r}')
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
  return sample_outputs.read(sample_outputs.job_path(os.path.dirname(record), stem))


def _as_json(value):
  return json.loads(json.dumps(value))


def check_job(name, path, job, subset, config, skip_outputs):
  """Refuses samples whose job record says they belong to other examples:
  another subset, another geometry (JOB_KEYS) or another first output. `job` None (no record) is not checked here."""
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
  """A method's outputs as an Entry: (N, s, s, C) uint8 images, and with
  `draws` K > 1 per record (sample.num_samples) the (N, K, s, s, C) draws
  and their per-pixel median as the images."""
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
    return Entry(name, side, records)
  stacked = np.moveaxis(
      records.reshape(len(records), side, draws, side, n_channels), 2, 1)
  return Entry(name, side, calibration.median_image(stacked), stacked)


def resolutions(config):
  """Sides of the resolutions the pipeline provides (see `keys.at_side`)."""
  sides = {config.resolution[0]}
  if config.downsample:
    sides.add(config.downsample_res)
  return sides


def gather(config, subset, sides, skip, count=None):
  """Truth, masks, baselines, tiles and coverage of outputs
  skip..skip+count-1 (count None: every output after `skip`).

  Returns:
    {'tile': (N,), 'coverage': (N,), side: {'truth', *BASELINES: (N, s, s,
    C) uint8, 'clear': (N, s, s) the target's clear-mask, 'known': (N, s, s)
    the truth's own clear-mask, 1 = clear}} for each side of `sides`.
  """
  c = config.n_channels
  ds = pipeline.get_dataset(config, PIPELINE_BATCH,
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
      for name, fill in baselines.FILLS.items():
        parts[side, name].append(fill(targets, mask, c))
  found = sum(len(t) for t in parts['tile'])
  if not found or (count is not None and found < count):
    raise ValueError(f'The {subset} subset has {found} examples after the '
                     f'first {skip}, fewer than the {count or 1} outputs to '
                     'evaluate: check --config, --subset and --skip_outputs.')
  out = {key: np.concatenate(parts.pop(key)) for key in ('tile', 'coverage')}
  for side in sides:
    out[side] = {name: np.concatenate(parts[side, name]).astype(np.uint8)
                 for name in ('truth',) + BASELINES}
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


def score_rows(entry, truth, clear, known, groups, features=None):
  """The table rows of one method or baseline: one per pixel split and
  coverage group.

  Args:
    entry: an Entry.
    truth: (N, s, s, C) truth images at the entry's side.
    clear: (N, s, s) the target's clear-masks, 1 = clear.
    known: (N, s, s) the truth's own clear-masks: its cloudy pixels are in
      no split.
    groups: [(label, indices)] from `coverage_groups`.
    features: None, or (features of the outputs, features of the truth).

  Returns:
    [dict keyed by COLUMNS], split-major; a value that cannot be computed is
    None: a protocol score without a pixel of the split in the group,
    upstream's scores outside the 'all' split, FID and KID without features
    or 2 outputs, and the best classical columns (`best_classical` fills
    them). `n` counts the outputs with pixels in the split.
  """
  table = metrics.score(entry.images, truth, clear, known)
  masks = metrics.split_masks(clear, known)
  x, y = metrics.to_unit(entry.images), metrics.to_unit(truth)
  rows = []
  for split in metrics.SPLITS:
    selected = masks[split].any(axis=(1, 2))
    for label, idx in groups:
      row = dict.fromkeys(COLUMNS)
      row.update(method=entry.name, resolution=entry.side, pixels=split,
                 coverage=label, n=int(selected[idx].sum()))
      for column in metrics.COLUMNS:
        if column.split == split:
          row[column.header] = metrics.average(table[column.key][idx])
      if row['n']:
        row[POOLED_PSNR] = metrics.pooled_psnr01(x[idx], y[idx],
                                                 masks[split][idx])
      if split == metrics.ALL and features is not None and len(idx) >= 2:
        out, ref = features[0][idx], features[1][idx]
        row.update(FID=fid(out, ref),
                   KID=metrics.kid_from_activations(out, ref))
      rows.append(row)
  return rows


def entries_at(data, side, methods):
  """The baselines at `side`, then each method at `side` and its
  composite (its output where the target is cloudy, the target's pixels
  where clear)."""
  entries = [Entry(name, side, data[side][name]) for name in BASELINES]
  # The target date as a one-slot cube, its clear-mask as its mask cube.
  target, clear = data[side]['cloudy input'], data[side]['clear'][..., None]
  for m in methods:
    if m.side == side:
      entries += [m, Entry(m.name + COMPOSITE, side, baselines.composite(
          m.images, target, clear, target.shape[-1]))]
  return entries


def best_classical(rows):
  """Names each resolution's best classical baseline in every row (BEST)
  and gives each row's PSNR minus that baseline's in the same pixel split
  and coverage group (DELTA_PSNR).

  The best classical baseline is the one with the highest PSNR (mean over
  outputs) on the cloudy pixels of the whole set at that resolution (the
  first in BASELINES of a tie): one choice per resolution, in every table.
  """
  best = {}
  for side in {r['resolution'] for r in rows}:
    candidates = [r for r in rows if r['resolution'] == side and
                  r['method'] in BASELINES and r['coverage'] == ALL and
                  r['pixels'] == metrics.CLOUDY and r[PSNR] is not None]
    if candidates:
      best[side] = max(candidates, key=lambda r: r[PSNR])['method']
  reference = {(r['resolution'], r['pixels'], r['coverage']): r[PSNR]
               for r in rows if r['method'] == best.get(r['resolution'])}
  for row in rows:
    row[BEST] = best.get(row['resolution'])
    base = reference.get((row['resolution'], row['pixels'], row['coverage']))
    if row[PSNR] is not None and base is not None:
      row[DELTA_PSNR] = row[PSNR] - base


def table_rows(data, sides, methods, groups, features=None):
  """Rows of every resolution: its baselines, then its methods and their
  composites, each with its difference to the best classical baseline.

  Args:
    data: `gather`'s result.
    sides: the resolutions to score (those of `methods`, or any).
    methods: Entries, as many images as `data` has examples.
    groups: [(label, indices)] from `coverage_groups`.
    features: as for `evaluate`.

  Returns:
    `score_rows` rows, ordered by pixel split, coverage group, resolution,
    then entry.
  """
  rows = []
  for side in sorted(sides):
    truth, known = data[side]['truth'], data[side]['known']
    truth_features = None if features is None else features(truth)
    for entry in entries_at(data, side, methods):
      pair = (None if features is None
              else (features(entry.images), truth_features))
      rows += score_rows(entry, truth, data[side]['clear'], known, groups,
                         pair)
  best_classical(rows)
  labels = [label for label, _ in groups]
  return sorted(rows, key=lambda r: (metrics.SPLITS.index(r['pixels']),
                                     labels.index(r['coverage'])))


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


def markdown_table(rows, columns, digits=6):
  """A Markdown table of `rows` (dicts) with `columns`."""
  lines = ['| ' + ' | '.join(columns) + ' |',
           '|' + '|'.join('---' for _ in columns) + '|']
  lines += ['| ' + ' | '.join(format_value(r[k], digits) for k in columns) +
            ' |' for r in rows]
  return lines


def _protocol_notes():
  """What the protocol's tables hold, for results.md."""
  return [
      'Truth: slot 0 of the targets cube (the clear reference date, as '
      'sample.py scores it) at each method\'s resolution. Its own cloudy '
      'pixels (slot 0 of the mask cube) have no truth: they are in no pixel '
      'split (upstream\'s whole-image scores keep them).',
      '',
      'Protocol (README, "Evaluation protocol"): values / 255 in [0, 1]; '
      'per output RMSE, MAE, PSNR = 20·log10(1 / RMSE) (capped at '
      f'{metrics.PSNR_CAP_DB:g} dB: an exact output), SSIM (11×11 Gaussian '
      'window, σ 1.5, its map averaged over the pixels scored) and SAM (mean '
      'spectral angle, degrees), then the mean over the n outputs that have '
      'pixels of the split. *PSNR pooled*: 10·log10(1 / MSE) with the MSE '
      'over every pixel of the split in all n outputs (an output counts by '
      'its pixels). Cloudy / clear: by the target date\'s cloud mask '
      '(slot T-1) at the method\'s resolution.',
      '',
      'Baselines, from the inputs alone: *cloudy input* (the target date as '
      'the model sees it), *least cloudy* (the input date with the fewest '
      'cloudy pixels, whole), *mosaic* (per pixel the most recent clear '
      'date), *corrected least cloudy* (the least cloudy earlier date with a '
      'least-squares gain and offset per channel fitted on the pixels clear '
      'in both it and the target), *corrected mosaic* (the mosaic of the '
      'earlier dates corrected so), *local corrected mosaic* (the same with '
      f'a gain and offset per pixel from a {baselines.LOCAL_WINDOW}×'
      f'{baselines.LOCAL_WINDOW} window). **Best classical**: per '
      'resolution, the baseline with the highest PSNR on the cloudy pixels '
      'of all outputs, the same row in every table; '
      f'*{DELTA_PSNR}*: a row\'s PSNR minus that baseline\'s, in the same '
      'pixel split and coverage group. '
      f'`<method>{COMPOSITE}`: the method\'s output where the target is '
      'cloudy, the target\'s own pixels where clear (what predict.py '
      'writes).']


# Under the tables of a pixel split other than all pixels.
SSIM_NOTE = ('SSIM of a pixel split: the whole image\'s SSIM map averaged '
             'over the split\'s pixels; each pixel\'s 11×11 window also sees '
             'pixels outside the split.')


def write_markdown(path, rows, split_name, notes, digits=4):
  """The protocol's tables per pixel split, then by coverage (all and cloudy
  pixels; clear ones, and empty bins, are in results.csv), then upstream's
  metrics; each resolution's best classical row is marked."""

  # Coverage bins without any output are left out (results.csv has them).
  filled = {r['coverage'] for r in rows
            if r['pixels'] == metrics.ALL and r['n']}

  def pick(split, overall):
    return [dict(r, method=f'**{r["method"]}** ({BEST})'
                 if r['method'] == r[BEST] else r['method'])
            for r in rows if r['pixels'] == split and
            (r['coverage'] == ALL) == overall and r['coverage'] in filled]

  def table(split, overall, scores):
    columns = ('method', 'resolution', 'n') + scores
    if not overall:
      columns = ('coverage',) + columns
    lines = markdown_table(pick(split, overall), columns, digits)
    return lines + ([] if split == metrics.ALL or scores != PROTOCOL_SCORES
                    else ['', SSIM_NOTE])

  lines = [f'# Results on the {split_name}', '', *_protocol_notes(),
           *notes]
  for split in metrics.SPLITS:
    lines += ['', f'## {SPLIT_TITLES[split]}', '',
              *table(split, True, PROTOCOL_SCORES)]
  for split in (metrics.ALL, metrics.CLOUDY):
    lines += ['', f'## By cloud coverage of the target date: {split} pixels',
              '', 'Bins without outputs are left out.', '',
              *table(split, False, PROTOCOL_SCORES)]
  lines += ['', '## Upstream\'s metrics (8-bit values, whole images)', '',
            'PSNR, SSIM (as tf.image.ssim: the 5-pixel border left out) and '
            'MSE on values 0..255, means over the outputs; FID and KID '
            'compare the sets (Inception-v3 pool features).', '',
            *table(metrics.ALL, True, UPSTREAM_SCORES), '',
            '### By cloud coverage of the target date', '',
            *table(metrics.ALL, False, UPSTREAM_SCORES), '']
  with open(path, 'w') as f:
    f.write('\n'.join(lines))


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
      'protocol': {
          'scale': f'value / {metrics.UNIT_SCALE:g}',
          'splits': list(metrics.SPLITS),
          'psnr_cap_db': metrics.PSNR_CAP_DB,
          'ssim': dict(metrics.SSIM_SETTINGS, window=11),
          'sam': 'degrees',
          'ssim_of_a_split': SSIM_NOTE,
          'psnr': 'mean over outputs of each one\'s PSNR',
          'psnr_pooled': '10·log10(1 / MSE over every pixel of the split '
                         'in the outputs)',
          'no_truth': 'pixels cloudy in the truth\'s own mask (slot 0 of '
                      'the mask cube) are in no pixel split',
          'baselines': list(BASELINES),
          'best_classical': 'per resolution, the baseline with the highest '
                            'PSNR on the cloudy pixels of all outputs',
          'composite_suffix': COMPOSITE},
      'samples': sources,
      'config': _as_json(config.to_dict()),
      'columns': list(COLUMNS),
      'rows': [{k: _json_value(r[k]) for k in COLUMNS} for r in rows],
  }
  with open(path + '.tmp', 'w') as f:
    json.dump(document, f, indent=1, ensure_ascii=False)
  os.replace(path + '.tmp', path)


def load_features(weights_path=None, batch_size=32):
  """InceptionFeatures, or None (logged: FID and KID become n/a)."""
  try:
    return metrics.InceptionFeatures(weights_path, batch_size=batch_size)
  except metrics.InceptionWeightsMissing as error:
    logging.warning('FID and KID will be %s. %s', MISSING, error)
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
    The rows written, dicts keyed by COLUMNS.
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
  groups = coverage_groups(data['coverage'], coverage_bins)
  rows = table_rows(data, scored_sides, methods, groups, features)
  split_name = split_name or f'{subset} subset'

  os.makedirs(out_dir, exist_ok=True)
  notes = ['', f'{MISSING}: undefined (no output with pixels of the split in '
           'the group; SAM of one channel; upstream\'s scores of a pixel '
           'split; FID and KID need 2 outputs).']
  if features is None:
    notes += ['', f'FID and KID: {MISSING}, no Inception-v3 weights (pass '
              '--inception_weights; see the log).']
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
  write_markdown(os.path.join(out_dir, 'results.md'), rows, split_name,
                 notes)
  write_json(os.path.join(out_dir, 'results.json'), rows, config, subset,
             sources, count, skip_outputs, coverage_bins)
  logging.info('Wrote results.csv, results.md and results.json (%d outputs) '
               'to %s.', count, out_dir)
  return rows
