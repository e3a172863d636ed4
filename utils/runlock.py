"""One writer per directory: a lock file naming the job that holds it.

    with runlock.hold(logdir, 'train'):
      ...

The lock is `<dir>/<job>.lock` (or another name), created atomically, holding the host, pid and
start time of its holder; it is removed when the block ends. A second writer
is refused with `LockHeld`. A lock whose holder ran on this host and is no
longer alive (killed with -9, power cut) is taken over with a warning; a lock
from another host cannot be checked and is only ever removed by hand.
"""

import contextlib
import datetime
import json
import os
import socket

from absl import logging

from utils import errors


class LockHeld(OSError):
  """Another live job writes to the directory."""


def _holder():
  return {'host': socket.gethostname(), 'pid': os.getpid(),
          'started': datetime.datetime.now().isoformat(timespec='seconds')}


def _alive(pid):
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def _read(path):
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def _create(path, holder):
  """Creates the lock file; False if it exists."""
  try:
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
  except FileExistsError:
    return False
  try:
    with errors.writing(path), os.fdopen(fd, 'w') as f:
      json.dump(holder, f)
  except OSError:                          # a full disk: no half lock left
    os.remove(path)
    raise
  return True


def acquire(directory, job, name=None):
  """Takes `<directory>/<name or job>.lock`; returns its path.

  Raises:
    LockHeld: a live `job` holds it.
  """
  path = os.path.join(directory, f'{name or job}.lock')
  holder = _holder()
  if _create(path, holder):
    return path
  other = _read(path)
  if (other and other.get('host') == holder['host'] and
      isinstance(other.get('pid'), int) and not _alive(other['pid'])):
    logging.warning('Taking over %s, left by %s job pid %d (started %s), '
                    'which is no longer running.', path, job, other['pid'],
                    other.get('started'))
    with contextlib.suppress(FileNotFoundError):
      os.remove(path)
    if _create(path, holder):
      return path
    other = _read(path)
  who = (f'pid {other.get("pid")} on {other.get("host")}, started '
         f'{other.get("started")}' if other else 'an unreadable lock file')
  raise LockHeld(
      f'{directory} is in use by another {job} job ({who}) — wait for it to '
      f'end or use another directory; if that job is dead, delete {path}')


def release(path):
  """Removes the lock file if this process still holds it."""
  holder = _read(path)
  if holder and holder.get('pid') == os.getpid():
    os.remove(path)


@contextlib.contextmanager
def hold(directory, job, name=None):
  """Holds `<directory>/<name or job>.lock` for the block (the directory
  exists)."""
  path = acquire(directory, job, name)
  try:
    yield path
  finally:
    release(path)
