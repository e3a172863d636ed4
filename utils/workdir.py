"""The resumable work directory of a prediction job, and its locks.

`<out>.work/` beside the output holds `manifest.json` (what the tiles depend
on: inputs, target, tiling, models) and one `tile_NNNNNN.npz` per finished
tile, written under a temporary name and renamed into place, so a killed
job leaves only whole tiles. Each writer (a shard, the assembly) holds a
lock file in the directory naming its host, pid and start time; a second
writer of the same part is refused, and a lock left by a dead process on
this host is taken over with a log line.
"""

import json
import os
import shutil
import socket
import time

from absl import logging
import numpy as np

from datasets.ondisk import DataError


def _alive(pid):
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


class LockHeld(DataError):
  """Another live process holds the lock."""


class Lock:
  """An exclusive lock file; use as a context manager."""

  def __init__(self, path):
    self.path = path

  def __enter__(self):
    holder = {'host': socket.gethostname(), 'pid': os.getpid(),
              'started': time.strftime('%Y-%m-%d %H:%M:%S')}
    while True:
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
      except FileExistsError:
        self._take_over_if_dead()
        continue
      with os.fdopen(fd, 'w') as f:
        json.dump(holder, f)
      return self

  def _take_over_if_dead(self):
    try:
      with open(self.path) as f:
        other = json.load(f)
    except (OSError, ValueError):
      other = {}
    if (other.get('host') == socket.gethostname() and
        not _alive(int(other.get('pid', -1)))):
      logging.info('Taking over %s, left by dead process %s.', self.path,
                   other.get('pid'))
      os.remove(self.path)
      return
    raise LockHeld(
        f'{self.path} is held by pid {other.get("pid")} on '
        f'{other.get("host")} (since {other.get("started")}): another job '
        'is writing this part; wait for it, or remove the file if that job '
        'is gone.')

  def __exit__(self, *exc):
    os.remove(self.path)


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
    return Lock(os.path.join(self.dir, f'{name}.lock'))

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
