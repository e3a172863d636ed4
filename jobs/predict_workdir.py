"""The resumable work directory of a prediction job, and its locks.

`<out>.work/` beside the output holds `manifest.json` (what the tiles depend
on: inputs, target, tiling, models) and one `tile_NNNNNN.npz` per finished
tile, written under a temporary name and renamed into place, so a killed
job leaves only whole tiles. Each writer (a shard, the assembly) holds a
`runlock` file in the directory: a second writer of the same part is
refused, and a lock left by a dead process on this host is taken over.
"""

import json
import os
import shutil

import numpy as np

from utils import runlock
from utils.errors import DataError


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
      changed = sorted(k for k in set(old) | set(manifest)
                       if old.get(k) != manifest.get(k))
      if changed:
        raise DataError(
            f'{self.dir} holds tiles of another run (different '
            f'{", ".join(changed)}); use the same settings to resume, or '
            'delete that directory to start again.')
    else:
      with open(path + '.tmp', 'w') as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
      os.replace(path + '.tmp', path)

  def lock(self, name):
    """Holds `<name>.lock` for a block (`runlock`, the project's lock)."""
    return runlock.hold(self.dir, 'predict', name)

  def path(self, index):
    return os.path.join(self.dir, f'tile_{index:06d}.npz')

  def done(self, index):
    return os.path.exists(self.path(index))

  def save(self, index, prediction, no_clear):
    """Commits one tile: its (h, w, C) uint8 prediction and (h, w) bool
    map of pixels with no clear date among the model's inputs."""
    tmp = self.path(index) + '.tmp'
    with open(tmp, 'wb') as f:
      np.savez(f, prediction=prediction, no_clear=no_clear)
    os.replace(tmp, self.path(index))

  def load(self, index):
    with np.load(self.path(index)) as data:
      return data['prediction'], data['no_clear']

  def scratch(self, name):
    return os.path.join(self.dir, name)

  def remove(self):
    shutil.rmtree(self.dir)
