"""The project's one error type for bad input."""


class DataError(ValueError):
  """Bad input on disk or in the config; the message says what to do."""
