"""The results tables: rows of scores per method, resolution, pixel split
and coverage group, and the text of results.md.

From the arrays of an evaluated set (the truth, the target's and the
truth's clear-masks, the baselines and the methods' outputs at each
resolution), `table_rows` scores every baseline, method and its
*composite* (`baselines.composite`: its output where the target is cloudy,
the target's pixels where clear) with `metrics.score` per pixel split,
averaged per output with `metrics.average`, and every set (pooled PSNR;
FID, KID on features) over all outputs and per coverage bin of the target
date (`coverage_groups`); it names the *best classical* baseline per
resolution (`best_classical`) and gives every row's PSNR difference to it.
`results_page` is results.md. `jobs/evaluate.py` gathers the arrays and
writes the files.
"""

import collections

import numpy as np

from evaluation import baselines
from evaluation import metrics

# The fills at each side, and below full resolution the resized best ones.
BASELINES = tuple(baselines.FILLS) + tuple(baselines.RESIZED_FILLS)
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
# Titles of the pixel splits in results.md.
SPLIT_TITLES = {
    metrics.ALL: 'All pixels',
    metrics.CLOUDY: 'Cloudy pixels (cloudy in the target\'s mask: the '
                    'reconstructed ones)',
    metrics.CLEAR: 'Clear pixels (clear in the target\'s mask)'}
# Under the tables of a pixel split other than all pixels.
SSIM_NOTE = ('SSIM of a pixel split: the whole image\'s SSIM map averaged '
             'over the split\'s pixels; each pixel\'s 11×11 window also sees '
             'pixels outside the split.')

# images: (N, s, s, C) uint8 scored in the tables; draws: (N, K, s, s, C)
# uint8 when a job drew K > 1 outputs per input (images is then their
# median), else None.
Entry = collections.namedtuple('Entry', 'name side images draws',
                               defaults=(None,))


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
  """The baselines at `side` (the resized fill below full resolution
  only), then each method at `side` and its
  composite (its output where the target is cloudy, the target's pixels
  where clear)."""
  entries = [Entry(name, side, data[side][name]) for name in BASELINES
             if name in data[side]]
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
    data: {side: {'truth', *BASELINES: (N, s, s, C) uint8, 'clear': (N, s,
      s) the target's clear-mask, 'known': (N, s, s) the truth's own
      clear-mask}} (the evaluation job's `gather`).
    sides: the resolutions to score (those of `methods`, or any).
    methods: Entries, as many images as `data` has examples.
    groups: [(label, indices)] from `coverage_groups`.
    features: callable (N, s, s, C) uint8 -> (N, d) activations, or None
      (FID and KID are then None).

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


def markdown_table(rows, columns, digits=6):
  """A Markdown table of `rows` (dicts) with `columns`."""
  lines = ['| ' + ' | '.join(columns) + ' |',
           '|' + '|'.join('---' for _ in columns) + '|']
  lines += ['| ' + ' | '.join(format_value(r[k], digits) for k in columns) +
            ' |' for r in rows]
  return lines


def protocol_notes():
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
      'a gain and offset per pixel from the smallest window of '
      f'{" or ".join(f"{w}×{w}" for w in baselines.LOCAL_WINDOWS)} px that '
      'holds enough clear pixels), *similar-pixel corrected mosaic* (the '
      'local one plus, at each cloudy pixel, the mean error the corrected '
      f'dates make on the {baselines.SIMILAR_COUNT} clear target pixels '
      f'within {baselines.SIMILAR_RADIUS} px whose corrected values are '
      'nearest its own), *resized*: made at full resolution, area-resized. '
      '**Best classical**: per '
      'resolution, the baseline with the highest PSNR on the cloudy pixels '
      'of all outputs, the same row in every table; '
      f'*{DELTA_PSNR}*: a row\'s PSNR minus that baseline\'s, in the same '
      'pixel split and coverage group. '
      f'`<method>{COMPOSITE}`: the method\'s output where the target is '
      'cloudy, the target\'s own pixels where clear (what predict.py '
      'writes).']


def results_page(rows, split_name, notes, digits=4):
  """results.md: the protocol's tables per pixel split, then by coverage
  (all and cloudy pixels; clear ones, and empty bins, are in results.csv),
  then upstream's metrics; each resolution's best classical row is marked.
  `notes`: lines after the protocol's notes."""

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

  lines = [f'# Results on the {split_name}', '', *protocol_notes(),
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
  return '\n'.join(lines)


def protocol_settings():
  """The protocol's settings, for results.json."""
  return {
      'scale': f'value / {metrics.UNIT_SCALE:g}',
      'splits': list(metrics.SPLITS),
      'psnr_cap_db': metrics.PSNR_CAP_DB,
      'ssim': dict(metrics.SSIM_SETTINGS, window=11),
      'sam': 'degrees',
      'ssim_of_a_split': SSIM_NOTE,
      'psnr': 'mean over outputs of each one\'s PSNR',
      'psnr_pooled': '10·log10(1 / MSE over every pixel of the split in the '
                     'outputs)',
      'no_truth': 'pixels cloudy in the truth\'s own mask (slot 0 of the '
                  'mask cube) are in no pixel split',
      'baselines': list(BASELINES),
      'best_classical': 'per resolution, the baseline with the highest PSNR '
                        'on the cloudy pixels of all outputs',
      'composite_suffix': COMPOSITE}
