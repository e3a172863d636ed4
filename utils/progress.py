"""Rates and ETAs for log lines and progress bars."""

import time


def format_duration(seconds):
  """3725 -> '1h02m05s'; 65 -> '1m05s'; 5 -> '5s'."""
  seconds = int(round(seconds))
  hours, rest = divmod(seconds, 3600)
  minutes, secs = divmod(rest, 60)
  if hours:
    return f'{hours}h{minutes:02d}m{secs:02d}s'
  if minutes:
    return f'{minutes}m{secs:02d}s'
  return f'{secs}s'


class Progress:
  """Tracks work done towards `total` units and estimates the time left.

  The rate is measured from the first `update`, so start-up costs (tracing,
  compilation) do not distort it.
  """

  def __init__(self, total, done=0, clock=time.monotonic):
    self.total = total
    self._clock = clock
    self._start_done = done
    self._start_time = clock()
    self.done = done

  def update(self, done):
    """Records that `done` units are complete."""
    self.done = done

  @property
  def rate(self):
    """Units per second since the start (0 before any progress)."""
    elapsed = self._clock() - self._start_time
    work = self.done - self._start_done
    return work / elapsed if elapsed > 0 and work > 0 else 0.0

  @property
  def eta(self):
    """Seconds left at the current rate (None when unknown)."""
    rate = self.rate
    return (self.total - self.done) / rate if rate else None

  def bar(self, width=30):
    """'[#######.......] 12/40 1.5/s ETA 18s'."""
    fraction = min(self.done / self.total, 1.0) if self.total else 1.0
    filled = int(round(width * fraction))
    eta = 'ETA ?' if self.eta is None else f'ETA {format_duration(self.eta)}'
    return (f'[{"#" * filled}{"." * (width - filled)}] {self.done}/{self.total}'
            f' {self.rate:.2f}/s {eta}')
