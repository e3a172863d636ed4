"""The project's one error type for bad input, and `writing`, which names
the file of an error raised while writing it."""

import contextlib
import errno
import os

# Errnos recognised in the text of an error that has none (a GDAL message).
_KNOWN = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS)


class DataError(ValueError):
  """Bad input on disk or in the config; the message says what to do."""


def _errno_in(text):
  """The errno whose message `text` holds (EIO when none does)."""
  for code in _KNOWN:
    if os.strerror(code).lower() in text.lower():
      return code
  return errno.EIO


def _naming(error, path):
  """An OSError like `error` naming `path`; the errno and its words are read
  from the text of an error that has none."""
  text = ' '.join(str(error).split())
  # GDAL's errors have an `errno` of their own: GDAL's error class.
  system = isinstance(error, OSError)
  code = (system and error.errno) or _errno_in(text)
  words = (system and error.strerror) or (
      text if code == errno.EIO else os.strerror(code))
  return OSError(code, words, path)


@contextlib.contextmanager
def writing(path, others=()):
  """Re-raises an error of the block as an OSError naming `path`: an
  OSError without a file name (a full disk while `write` runs), or one of
  the exception types `others` (GDAL's)."""
  try:
    yield
  except OSError as e:
    if e.filename is not None:
      raise
    raise _naming(e, path) from e
  except others as e:
    raise _naming(e, path) from e
