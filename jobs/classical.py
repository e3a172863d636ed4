"""The classical fills of a scene, without a model: `predict.py --method`.

Each method of METHODS is a baseline of `evaluation.baselines.FILLS` under
its flag name (spaces as underscores), applied to the target date and every
date before it (the context dates): the mosaic (per pixel the most recent
clear date), the least cloudy date, and the corrected ones, which first
bring each context date into the target's light by a per-channel gain and
offset fitted by least squares on the pixels clear in both.

The gain and offset are fitted once for the whole scene (`fit`): one pass
streams, block by block, the sums of the least-squares fit per date and
channel (`baselines.solve_gain_offset`), the clear-pixel counts that choose
the least cloudy date, and the mean of the target's clear pixels (the fill
of a pixel clear on no date). Fitted per tile, the correction would change
from one tile to the next and show seams along tile edges (a tile mostly
under cloud fits on a few pixels); fitted on the scene, every block applies
the same numbers and each fill is per pixel, so the output is the baseline
run on the whole scene at once, with no seam, in one read of the scene for
the fit and one for the output. What a scene-wide fit cannot follow, light
or haze that changes across the scene, `local_corrected_mosaic` follows:
its gain and offset are fitted per pixel in a square window (the smallest
of LOCAL_WINDOWS with enough clear pixels), read with the widest one's
margin around each block, so it too is seamless; where no window holds
enough clear pixels it falls back to the scene's fit.
`similar_pixel_corrected_mosaic` adds to it, under the clouds, the error
its corrected dates make on similar clear pixels nearby, read with the
search radius more of margin.
"""

import collections

import numpy as np

from evaluation import baselines
from rasters import geotiff
from utils.errors import DataError

# The baselines that fill a scene, every one but the cloudy input (the
# target itself), by their flag names; the mosaic, the plainest, first.
_FILLED = tuple(name.replace(' ', '_').replace('-', '_')
                for name in baselines.FILLS if name != 'cloudy input')
METHODS = ('mosaic', *(name for name in _FILLED if name != 'mosaic'))
# Pixels read around a block: `local_corrected_mosaic`'s widest window,
# and for the similar-pixel fill that window around every pixel searched.
LOCAL_MARGIN = max(baselines.LOCAL_WINDOWS) // 2
MARGINS = {'local_corrected_mosaic': LOCAL_MARGIN,
           'similar_pixel_corrected_mosaic':
               LOCAL_MARGIN + baselines.SIMILAR_RADIUS}
CHANNELS = 3
# The corrected mosaics, which take the scene's fit and fill as they are.
_SCENE_FITTED = {'corrected_mosaic': baselines.corrected_mosaic,
                 'local_corrected_mosaic': baselines.local_corrected_mosaic,
                 'similar_pixel_corrected_mosaic':
                     baselines.similar_pixel_mosaic}

# A scene's fit: per context date and channel the gain and offset into the
# target's light, (D-1, C) each; the (C,) mean of the target's clear pixels
# (None if it has none); and per date the clear-pixel count.
SceneFit = collections.namedtuple('SceneFit', 'gain offset fill clear')


def dates(series):
  """Indices of the context dates (every date before the target) and then
  the target.

  Raises:
    DataError: no date before the target.
  """
  if series.target_index < 1:
    raise DataError(f'The classical fills need a date before the target '
                    f'{series.target}; add an earlier date or choose a later '
                    '--target.')
  return list(range(series.target_index + 1))


def fit(series, indices):
  """The `SceneFit` of dates `indices` (context dates, then the target),
  streamed over the scene's blocks."""
  count = len(indices)
  sums = np.zeros((5, count - 1, CHANNELS))
  target_sum, target_count = np.zeros(CHANNELS), 0
  clear_count = np.zeros(count, np.int64)
  for _, win in geotiff.block_windows(series.grid):
    rgb, cloudy, _ = series.read(win, indices)
    clear = ~cloudy
    clear_count += clear.sum(axis=(1, 2))
    target, target_clear = rgb[-1].astype(np.float64), clear[-1]
    target_sum += target[target_clear].sum(axis=0)
    target_count += int(target_clear.sum())
    for d in range(count - 1):
      valid = clear[d] & target_clear
      source, wanted = rgb[d][valid].astype(np.float64), target[valid]
      sums[:, d] += [np.full(CHANNELS, len(source)), source.sum(axis=0),
                     wanted.sum(axis=0), (source ** 2).sum(axis=0),
                     (source * wanted).sum(axis=0)]
  gain, offset, _ = baselines.solve_gain_offset(*sums)
  fill = target_sum / target_count if target_count else None
  return SceneFit(gain, offset, fill, clear_count)


def _newest_most_clear(counts):
  """Index of the largest count, the last of a tie (the newest date)."""
  counts = np.asarray(counts)
  return len(counts) - 1 - int(np.argmax(counts[::-1]))


def fill(series, method, indices, scene, area):
  """(values (h, w, C) uint8, no_clear (h, w) bool) of `method` over `area`
  (top, left, h, w) of the grid: the fill of every pixel (the target's clear
  pixels too) and the pixels clear on none of the dates `indices`, with the
  scene's fit `scene` (`fit`)."""
  margin = MARGINS.get(method, 0)
  grown, inner = geotiff.grown(area, series.grid, margin)
  rgb, cloudy, _ = series.read(geotiff.window(*grown), indices)
  clear = ~cloudy
  # Slot 0 (the truth the baselines never read) is zeros.
  cube = np.concatenate([np.zeros_like(rgb[0]), *rgb], axis=-1)
  masks = np.stack([np.zeros_like(clear[0]), *clear], axis=-1)
  fit_all = (scene.gain, scene.offset)
  if method == 'mosaic':
    values = baselines.mosaic(cube, masks, CHANNELS)
  elif method == 'least_cloudy':
    values = rgb[_newest_most_clear(scene.clear)]
  elif method == 'corrected_least_cloudy':
    d = _newest_most_clear(scene.clear[:-1])
    values = baselines.corrected_least_cloudy(
        np.concatenate([cube[..., :CHANNELS], rgb[d], rgb[-1]], axis=-1),
        masks[..., [0, d + 1, -1]], CHANNELS,
        fit=(scene.gain[d:d + 1], scene.offset[d:d + 1]))
  elif method in _SCENE_FITTED:
    values = _SCENE_FITTED[method](cube, masks, CHANNELS, fit=fit_all,
                                   fill=scene.fill)
  else:
    raise ValueError(f'Unknown method {method!r}; one of {METHODS}.')
  return values[inner], ~clear.any(axis=0)[inner]
