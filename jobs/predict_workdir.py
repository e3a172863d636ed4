"""The resumable work directory of a prediction job, and its locks.

`<out>.work/` beside the output holds `manifest.json` (what the tiles depend
on: inputs, target, tiling, models, whether clear tiles are skipped, the
draws) and one record per finished tile: `tile_NNNNNN.npz`, the models'
output (with K draws, their median and their spread, kept as float16),
written under a temporary name and renamed into place, so a killed job
leaves only whole tiles; or an empty marker, `tile_NNNNNN.clear` (the target
is clear there: no model output is needed) or `tile_NNNNNN.unobserved` (no
pixel is clear on any of the model's dates: such tiles give the models the
same input, so they share one prediction, `unobserved.npz`). Each writer (a
shard, the assembly) holds a `runlock` file in the directory: a second
writer of the same part is refused, and a lock left by a dead process on
this host is taken over.
"""

import collections
import json
import os
import shutil
import socket

import numpy as np

from jobs import records
from utils import runlock
from utils import errors
from utils.errors import DataError

# How a tile was committed: the models' output, or a marker.
MODEL, CLEAR, UNOBSERVED = 'npz', 'clear', 'unobserved'
KINDS = (MODEL, CLEAR, UNOBSERVED)
# A committed tile's output (`WorkDir.load`); spread is None without draws.
Record = collections.namedtuple('Record', 'prediction no_clear spread')


def work_dir(out_path):
  """The work directory of output `out_path`."""
  return out_path + '.work'


class WorkDir:
  """Finished tiles of one prediction, beside its output file."""

  def __init__(self, out_path, manifest):
    self.dir = work_dir(out_path)
    os.makedirs(self.dir, exist_ok=True)
    path = os.path.join(self.dir, 'manifest.json')
    if os.path.exists(path):
      with open(path) as f:
        old = json.load(f)
      changed = records.differences(old, manifest)
      if changed:
        raise DataError(
            f'{self.dir} holds tiles of another run (different '
            f'{", ".join(changed)}) — use the same settings to resume, or '
            '--overwrite to start again.')
    else:
      with open(path + '.tmp', 'w') as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
      os.replace(path + '.tmp', path)

  def lock(self, name):
    """Holds `<name>.lock` for a block (`runlock`, the project's lock)."""
    return runlock.hold(self.dir, 'predict', name)

  def path(self, index, kind=MODEL):
    return os.path.join(self.dir, f'tile_{index:06d}.{kind}')

  def kind(self, index):
    """MODEL, CLEAR or UNOBSERVED: how tile `index` was committed; None if
    it is not done."""
    for kind in KINDS:
      if os.path.exists(self.path(index, kind)):
        return kind
    return None

  def done(self, index):
    return self.kind(index) is not None

  def save(self, index, prediction, no_clear, spread=None):
    """Commits one tile: its (h, w, C) uint8 prediction, (h, w) bool map of
    pixels with no clear date among the model's inputs and, with draws,
    their (h, w, C) spread."""
    _save_npz(self.path(index), self.path(index) + '.tmp',
              prediction=prediction, no_clear=no_clear,
              **_spread_array(spread))

  def mark(self, index, kind):
    """Commits tile `index` as CLEAR or UNOBSERVED (no output of its own)."""
    with open(self.path(index, kind), 'w'):
      pass

  @property
  def _unobserved_path(self):
    return os.path.join(self.dir, f'{UNOBSERVED}.npz')

  def save_unobserved(self, prediction, spread=None):
    """Keeps the (S, S, C) prediction (and spread) of the tiles marked
    UNOBSERVED."""
    # Shards may write it at once: each under a name of its own.
    tmp = f'{self._unobserved_path}.{socket.gethostname()}.{os.getpid()}.tmp'
    _save_npz(self._unobserved_path, tmp, prediction=prediction,
              **_spread_array(spread))

  def has_unobserved(self):
    return os.path.exists(self._unobserved_path)

  def load(self, index):
    """The `Record` of a committed tile, each array covering at least the
    tile's extent from its top-left corner; None for a CLEAR tile."""
    kind = self.kind(index)
    if kind == CLEAR:
      return None
    if kind == UNOBSERVED:
      with np.load(self._unobserved_path) as data:
        prediction = data['prediction']
        return Record(prediction, np.ones(prediction.shape[:2], bool),
                      _spread_of(data))
    with np.load(self.path(index)) as data:
      return Record(data['prediction'], data['no_clear'], _spread_of(data))

  def scratch(self, name):
    return os.path.join(self.dir, name)

  def remove(self):
    shutil.rmtree(self.dir)


def _spread_array(spread):
  """The npz entry of a spread: {} without one."""
  return {} if spread is None else {'spread': spread.astype(np.float16)}


def _spread_of(data):
  """The spread of a loaded npz as float32, or None."""
  return data['spread'].astype(np.float32) if 'spread' in data.files else None


def _save_npz(path, tmp, **arrays):
  """Writes `arrays` to `tmp`, then renames it to `path`."""
  with errors.writing(tmp), open(tmp, 'wb') as f:
    np.savez(f, **arrays)
  os.replace(tmp, path)
