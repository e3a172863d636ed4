"""A polite stop: SIGTERM or SIGINT asks a job to finish what it is doing.

A job runs its work inside `requests()` and checks `request.signal` between
units of work (training steps, sampled batches, predicted tiles). Once it has
saved what is finished it raises `Stopped`; `utils.cli` turns that into the
exit status a shell expects from the signal (143 for SIGTERM, 130 for
SIGINT), with no traceback. A second signal while the job is finishing stops
it at once, as the signal would by default, except inside
`request.waiting_for(...)` (a checkpoint save): there it says on stderr that
it waits, and the job finishes what it saves.
"""

import contextlib
import signal as signal_lib
import sys
import threading

SIGNALS = (signal_lib.SIGTERM, signal_lib.SIGINT)


class Stopped(Exception):
  """Raised by a job that stopped on a signal after saving its work."""

  def __init__(self, signum, message):
    super().__init__(message)
    self.signum = signum

  @property
  def status(self):
    """The exit status of a process ended by the signal: 128 + its number."""
    return 128 + self.signum


class Request:
  """The stop signal received so far, if any."""

  def __init__(self):
    self.signal = None
    self.finishing = None

  @contextlib.contextmanager
  def waiting_for(self, what):
    """Inside, a further signal waits for `what` (e.g. 'the checkpoint save
    of step 12') instead of stopping the job at once."""
    previous, self.finishing = self.finishing, what
    try:
      yield
    finally:
      self.finishing = previous

  @property
  def name(self):
    """'SIGTERM' or 'SIGINT' (None before a signal)."""
    return None if self.signal is None else signal_lib.Signals(
        self.signal).name

  def stop(self, message):
    """Raises `Stopped` for the received signal with `message`."""
    raise Stopped(self.signal, message)


@contextlib.contextmanager
def requests():
  """Yields a `Request` set by the first SIGTERM/SIGINT while inside.

  The previous handlers come back on leaving. Off the main thread, where
  Python cannot catch signals, the request is never set.
  """
  request = Request()
  if threading.current_thread() is not threading.main_thread():
    yield request
    return

  def handle(signum, _):
    if request.signal is None:
      request.signal = signum
    elif request.finishing is not None:
      sys.stderr.write(f'{signal_lib.Signals(signum).name} again: waiting '
                       f'for {request.finishing} to finish, then stopping\n')
      sys.stderr.flush()
    else:                                  # a second signal: stop at once
      signal_lib.signal(signum, signal_lib.SIG_DFL)
      signal_lib.raise_signal(signum)

  previous = {s: signal_lib.signal(s, handle) for s in SIGNALS}
  try:
    yield request
  finally:
    for s, handler in previous.items():
      signal_lib.signal(s, handler)
