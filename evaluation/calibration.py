"""How well K draws of a sampler describe the truth: interval coverage and
spread against error, on chosen pixels.

Draws are (N, K, s, s, C) and the truth (N, s, s, C), in one unit (8-bit
values here); `pixels` (N, s, s) picks the pixels scored (the target's
cloudy pixels). Every (pixel, channel) is one value.

Coverage uses the truth's randomized PIT among the draws: its rank r (draws
below it, ties split at random with a fixed seed) and u = (r + V) / (K + 1),
V uniform in [0, 1). When draws and truth come from one distribution, u is
uniform for any K, so the truth lies in the draws' central L interval
(|u - 1/2| <= L/2) with probability L: a calibrated sampler scores its
nominal level, an overconfident one (draws too alike) less.

Spread against error: the spread of a value is the standard deviation of its
K draws, its error the absolute difference between the draws' median and the
truth; values are binned by spread decile and each bin reports its mean
spread and mean error. Spread that means something gives errors rising with
the bins.
"""

import csv
import os

import numpy as np

LEVELS = (0.5, 0.9)
BINS = 10
SEED = 0


def median_image(draws, axis=1):
  """The per-value median of draws along `axis`, rounded to uint8 (halves of
  an even K to the even neighbour, as np.rint)."""
  return np.rint(np.median(np.asarray(draws, np.float64), axis=axis)).astype(
      np.uint8)


def spread(draws, axis=1):
  """The per-value standard deviation of draws along `axis` (float32)."""
  return np.std(np.asarray(draws, np.float64), axis=axis).astype(np.float32)


def _values(draws, truth, pixels):
  """(P, K) draws and (P,) truth of the picked pixels, channels flattened."""
  draws = np.moveaxis(np.asarray(draws, np.float64), 1, -1)  # N s s C K
  picked = np.asarray(pixels, bool)
  k = draws.shape[-1]
  return (draws[picked].reshape(-1, k),
          np.asarray(truth, np.float64)[picked].reshape(-1))


def pit(draws, truth, seed=SEED):
  """Randomized PIT values (P,) of `truth` (P,) among `draws` (P, K)."""
  rng = np.random.default_rng(seed)
  below = np.sum(draws < truth[:, None], axis=1)
  ties = np.sum(draws == truth[:, None], axis=1)
  rank = below + np.floor(rng.random(len(truth)) * (ties + 1))
  return (rank + rng.random(len(truth))) / (draws.shape[1] + 1)


def coverage(draws, truth, pixels, levels=LEVELS, seed=SEED):
  """{level: share of truth values inside the draws' central interval}."""
  values, target = _values(draws, truth, pixels)
  if not len(target):
    return {level: float('nan') for level in levels}
  u = pit(values, target, seed)
  return {level: float(np.mean(np.abs(u - 0.5) <= level / 2))
          for level in levels}


def spread_error_bins(draws, truth, pixels, bins=BINS):
  """Rows {bin, values, mean_spread, mean_error} by spread quantile bin, and
  the Pearson correlation of spread and error over all values."""
  values, target = _values(draws, truth, pixels)
  if len(target) < 2:
    return [], float('nan')
  sd = values.std(axis=1)
  error = np.abs(np.rint(np.median(values, axis=1)) - target)
  edges = np.quantile(sd, np.linspace(0, 1, bins + 1))
  which = np.clip(np.searchsorted(edges, sd, side='right') - 1, 0, bins - 1)
  rows = [{'bin': b + 1, 'values': int(np.sum(which == b)),
           'mean_spread': float(sd[which == b].mean()),
           'mean_error': float(error[which == b].mean())}
          for b in range(bins) if np.any(which == b)]
  constant = sd.std() == 0 or error.std() == 0
  correlation = float('nan') if constant else float(
      np.corrcoef(sd, error)[0, 1])
  return rows, correlation


def report(name, draws, truth, pixels, levels=LEVELS, bins=BINS):
  """A method's calibration: draws, values scored, coverage, bins and
  correlation."""
  rows, correlation = spread_error_bins(draws, truth, pixels, bins)
  return {'method': name, 'draws': int(np.shape(draws)[1]),
          'values': int(np.sum(np.asarray(pixels, bool)) *
                        np.shape(truth)[-1]),
          'coverage': coverage(draws, truth, pixels, levels),
          'bins': rows, 'correlation': correlation}


def _number(value, digits=3):
  return 'n/a' if np.isnan(value) else f'{value:.{digits}f}'


def write(out_dir, reports, split_name):
  """Writes calibration.md, calibration.csv (one row per method and bin) and
  calibration.png (mean error against mean spread per bin)."""
  os.makedirs(out_dir, exist_ok=True)
  lines = [f'# Calibration of the draws ({split_name})', '',
           'Share of true values inside the draws\' central intervals '
           '(randomized PIT; a calibrated sampler scores the nominal level), '
           'and the correlation of spread (standard deviation of the draws) '
           'with the error of their median, 8-bit values.', '',
           '| method | draws | values | ' + ' | '.join(
               f'inside {level:.0%} (nominal {level:.2f})'
               for level in LEVELS) + ' | corr(spread, error) |',
           '|---|---|---|' + '---|' * len(LEVELS) + '---|']
  for r in reports:
    lines.append(f'| {r["method"]} | {r["draws"]} | {r["values"]} | ' + ' | '.join(
        _number(r['coverage'][level]) for level in LEVELS) +
                 f' | {_number(r["correlation"])} |')
  for r in reports:
    lines += ['', f'## {r["method"]}: mean error per spread decile', '',
              '| decile | values | mean spread | mean error |',
              '|---|---|---|---|']
    lines += [f'| {b["bin"]} | {b["values"]} | {b["mean_spread"]:.2f} | '
              f'{b["mean_error"]:.2f} |' for b in r['bins']]
  with open(os.path.join(out_dir, 'calibration.md'), 'w') as f:
    f.write('\n'.join(lines) + '\n')
  with open(os.path.join(out_dir, 'calibration.csv'), 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['method', 'draws', 'values'] +
                    [f'inside_{int(level * 100)}' for level in LEVELS] +
                    ['correlation', 'bin', 'bin_values', 'mean_spread',
                     'mean_error'])
    for r in reports:
      head = [r['method'], r['draws'], r['values']] + [
          r['coverage'][level] for level in LEVELS] + [r['correlation']]
      for b in r['bins'] or [{}]:
        writer.writerow(head + [b.get('bin'), b.get('values'),
                                b.get('mean_spread'), b.get('mean_error')])
  _figure(os.path.join(out_dir, 'calibration.png'), reports, split_name)


def _figure(path, reports, split_name):
  """Mean error against mean spread per decile, one line per method."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  figure, axes = pyplot.subplots(figsize=(4.5, 3.5), dpi=120)
  top = 1.0
  for r in reports:
    if r['bins']:
      x = [b['mean_spread'] for b in r['bins']]
      y = [b['mean_error'] for b in r['bins']]
      axes.plot(x, y, 'o-', label=r['method'])
      top = max(top, *x, *y)
  axes.plot([0, top], [0, top * np.sqrt(2 / np.pi)], ':', color='grey',
            label='calibrated normal')
  axes.set_xlabel('spread of the draws (8-bit, decile mean)')
  axes.set_ylabel('|median - truth| (decile mean)')
  axes.set_title(f'Spread against error ({split_name})', fontsize=9)
  axes.legend(fontsize=7)
  figure.tight_layout()
  figure.savefig(path)
  pyplot.close(figure)
