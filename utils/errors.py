"""The project's one error type for bad input, and the errnos of writes
that failed for want of space or permission."""

import errno

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
NO_PERMISSION = (errno.EACCES, errno.EPERM, errno.EROFS)


class DataError(ValueError):
  """Bad input on disk or in the config; the message says what to do."""
