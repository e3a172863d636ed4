"""What every command shares: its common flags, flag parsing, and errors.

A command defines its flags, then hands its `main(argv)` to `run`:

    from utils import cli

    _CONFIG = cli.define_config('Experiment config file.')
    _LOGDIR = cli.define_logdir('Run directory.')

    def main(argv):
      ...  # raise ValueError / DataError / OSError on bad input

    if __name__ == '__main__':
      cli.run(main)

`run` replaces `absl.app.run`; a command parsing its own arguments with
`cli.ArgumentParser` (argparse) calls `cli.guard(main)` instead. A bad flag,
an unknown config key, a missing config file, extra arguments, or an error
of the kinds in `INPUT_ERRORS` (or a TensorFlow op error) raised by `main`
print one line on stderr, `error: <what> — <what to do>`, and exit with
status 2; any other exception prints one line too and exits with status 1. `--verbosity=1` (or higher) prints the traceback first.
A job that stopped on SIGTERM/SIGINT after saving its work (`utils.stop`)
prints its one line and exits with 143/130 at once, skipping the
interpreter's teardown (which takes from seconds to a minute once
TensorFlow has run, more than a Kubernetes pod's 30 s grace); a Ctrl-C
anywhere else exits with 130 and one line too.
`--config.<key>=None` (or an empty value) unsets an optional string key
(one declared with `config_dict.placeholder(str)`, such as `jsonf`).
`check_flags` and `check_range` check flag values as they are parsed, so
that a bad value is refused before any work. An OSError of a full disk or
of a permission names its path (`utils.errors.writing` adds the path to an
error raised without one) and what to do.
"""

import argparse
import difflib
import errno
import importlib.util
import logging
import math
import os
import signal
import sys
import traceback

from absl import app
from absl import flags
from ml_collections import config_dict
from ml_collections import config_flags

from utils import stop

FLAGS = flags.FLAGS
# Flags defined through this module belong to the command calling it, so its
# --help lists them.
flags.disclaim_key_flags()
# Exceptions that mean bad input; their message says what to do.
INPUT_ERRORS = (ValueError, OSError, FloatingPointError, app.UsageError,
                flags.Error)
USAGE_EXIT, BUG_EXIT = 2, 1
UNSET = ('None', '')
# The errnos of a full disk, and of a denied permission.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
NO_PERMISSION = (errno.EACCES, errno.EPERM, errno.EROFS)
# The messages of the `check_flags` checks that failed.
_CHECK_FAILURES = []


class InputError(Exception):
  """A command-line mistake found while parsing; `str` is the whole line."""


def define_config(help_text):
  """The `--config` flag, required (a configs/*.py file, `:tiny` appended
  for the small variant)."""
  holder = config_flags.DEFINE_config_file('config', None, help_text,
                                           lock_config=True)
  flags.mark_flag_as_required('config')
  return holder


def define_logdir(help_text):
  """The `--logdir` flag, required."""
  holder = flags.DEFINE_string('logdir', None, help_text)
  flags.mark_flag_as_required('logdir')
  return holder


def define_ignored(reasons):
  """Upstream flags this command accepts and ignores: {name: why}."""
  for name, why in reasons.items():
    flags.DEFINE_string(name, None, f'Accepted and ignored (upstream flag): '
                        f'{why}')


def check_flags(names, check):
  """Checks the values of flags `names` when they are parsed: `check(*values)`
  raises ValueError with the whole error line (`--name=value: what — what to
  do`), which the command prints as it is (exit 2)."""

  def verify(values):
    try:
      check(*(values[name] for name in names))
    except ValueError as e:
      _CHECK_FAILURES.append(_one_line(e))
      raise flags.ValidationError(_CHECK_FAILURES[-1]) from None
    return True

  flags.register_multi_flags_validator(list(names), verify)


def check_range(name, low=None, high=None, unit=''):
  """Refuses a number flag `--name` below `low`, above `high` (None: no
  bound) or not finite, when parsed; `unit` names what it counts."""

  def check(value):
    if value is None:
      return
    if (math.isfinite(value) and (low is None or value >= low) and
        (high is None or value <= high)):
      return
    if low is not None and high is not None:
      wanted = f'from {low:g} to {high:g}'
    elif low is not None:
      wanted = f'{low:g} or more'
    else:
      wanted = f'{high:g} or less'
    raise ValueError(f'--{name}={value:g} is out of range — give '
                     f'{unit + " " if unit else ""}{wanted}')

  check_flags([name], check)


def _one_line(text):
  return ' '.join(str(text).split())


def _argv_value(argv, name):
  """The value of `--name=V` or `--name V` in argv, or None."""
  for i, arg in enumerate(argv):
    if arg.startswith(f'--{name}='):
      return arg.split('=', 1)[1]
    if arg == f'--{name}' and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _config_flag_names():
  return [name for name in FLAGS
          if FLAGS[name].parser.flag_type() == 'config object']


def _load_config(name, argv):
  """The config `--name` names, loaded afresh (None if it cannot be)."""
  value = _argv_value(argv, name)
  if value is None:
    return None
  path, *arg = value.split(':', 1)
  try:
    spec = importlib.util.spec_from_file_location(f'{name}_defaults', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(*arg)
  except Exception:  # pylint: disable=broad-except
    return None
  return config if isinstance(config, config_dict.ConfigDict) else None


def _keys(config, prefix=''):
  """Every dotted key of a ConfigDict, depth first."""
  keys = []
  for key, value in config.items():
    keys.append(prefix + key)
    if isinstance(value, config_dict.ConfigDict):
      keys += _keys(value, f'{prefix}{key}.')
  return keys


def _lookup(config, path):
  """(value, None) at dotted `path`, or (None, first missing prefix)."""
  value, parts = config, path.split('.')
  for i, part in enumerate(parts):
    part = part.split('[')[0]
    if not isinstance(value, config_dict.ConfigDict) or part not in value:
      return None, '.'.join(parts[:i + 1])
    value = value[part]
  return value, None


def _unknown_key(name, argv):
  """The message for an override naming a key the config does not have."""
  config = _load_config(name, argv)
  if config is None:
    return None
  keys = _keys(config)
  for arg in argv:
    if not arg.startswith(f'--{name}.'):
      continue
    path = arg[len(name) + 3:].split('=', 1)[0]
    _, missing = _lookup(config, path)
    if missing is None:
      continue
    close = difflib.get_close_matches(missing, keys, n=3, cutoff=0.6)
    hint = ('did you mean ' + ', '.join(f'--{name}.{k}' for k in close) + '?'
            if close else 'the keys are listed in '
            f'{_argv_value(argv, name).split(":")[0]}')
    return (f'--{name}.{path}: the config has no key {missing!r} — {hint}')
  return None


def _is_optional_string(config, key):
  """True for a key declared with `config_dict.placeholder(str)`."""
  field = config._fields.get(key)  # pylint: disable=protected-access
  return (isinstance(field, config_dict.FieldReference) and
          field.get_type() is str)


def _unset_empty_keys(name):
  """Sets to None the optional string keys passed as `None` or empty."""
  config = FLAGS[name].value
  for path, value in config_flags.get_override_values(FLAGS[name]).items():
    parent, _, key = path.rpartition('.')
    target = _lookup(config, parent)[0] if parent else config
    if value in UNSET and _is_optional_string(target, key):
      target[key] = None


def _flag_error(error, argv):
  """The one line for an error raised while parsing the flags."""
  for name in _config_flag_names():
    message = _unknown_key(name, argv)
    if message:
      return message
  text = str(error)
  if isinstance(error, flags.IllegalFlagValueError):
    for line in text.splitlines():
      for message in _CHECK_FAILURES:
        if line.endswith(': ' + message):
          return message
  if 'Error whilst parsing config file' in text:
    lines = [line for line in text.splitlines() if line.strip()]
    flag = text.split(':', 1)[0].replace('flag ', '')
    return f'{flag}: {lines[-1].strip()} — fix the config file or its argument'
  return f'{_one_line(text)} — see --helpfull for the flags'


def parse_flags(argv, positional=False):
  """Parses argv into FLAGS; raises InputError with the message to print.

  Arguments that are not flags are refused unless `positional`.
  """
  try:
    rest = FLAGS(argv)
  except (flags.Error, AttributeError, KeyError) as e:
    raise InputError(_flag_error(e, argv)) from e
  for name in _config_flag_names():
    if not isinstance(FLAGS[name].value, config_dict.ConfigDict):
      path = _argv_value(argv, name) or FLAGS[name].default
      if path is None:
        continue
      raise InputError(f'--{name}={path}: cannot load this config file — '
                       'give the path of a configs/*.py file, with :tiny '
                       'appended for the small variant')
    _unset_empty_keys(name)
  if len(rest) > 1 and not positional:
    raise InputError(f'unexpected arguments {rest[1:]} — flags take the form '
                     '--name=value; see --helpfull')
  return rest


def _wants_traceback(argv):
  """--verbosity >= 1, from FLAGS or, if parsing failed, from argv."""
  if FLAGS.is_parsed():
    return FLAGS.verbosity >= 1
  value = _argv_value(argv, 'verbosity') or _argv_value(argv, 'v') or ''
  return value.lstrip('-').isdigit() and int(value) >= 1


def _report(message, status, show_traceback):
  if show_traceback:
    traceback.print_exc()
  sys.stderr.write(f'error: {message}\n')
  sys.stderr.flush()
  sys.exit(status)


def _error_line(error):
  """`<what> — <what to do>` for an exception raised by a command."""
  tf_error = getattr(sys.modules.get('tensorflow'), 'errors', None)
  if tf_error is not None and isinstance(error, tf_error.OpError):
    return _one_line(error.message.splitlines()[0]), USAGE_EXIT
  if isinstance(error, OSError) and (
      error.errno in NO_SPACE + NO_PERMISSION or (
          error.errno == errno.EIO and error.filename)):
    return _os_error_line(error), USAGE_EXIT
  if isinstance(error, OSError) and error.filename and error.strerror:
    return (f'{error.strerror}: {error.filename} — check the path and its '
            'permissions'), USAGE_EXIT
  if isinstance(error, INPUT_ERRORS):
    return _one_line(error), USAGE_EXIT
  return (f'{type(error).__name__}: {_one_line(error)} — this looks like a '
          'bug: rerun with --verbosity=1 to see the traceback, and report '
          'it'), BUG_EXIT


def _os_error_line(error):
  """The line of a full disk, a denied permission or a failed write (EIO),
  naming the path."""
  what = _one_line(error.strerror or os.strerror(error.errno))
  path = error.filename
  head = f'{what}: {path}' if path else what
  if error.errno in NO_SPACE:
    where = f'the disk of {path}' if path else 'the disk written to'
    return (f'{head} — free space on {where} (or write elsewhere), then run '
            'the command again')
  folder = os.path.dirname(os.path.abspath(path)) if path else 'the folder'
  if error.errno == errno.EIO:
    return (f'{head} — check the free space and the permissions of {folder}'
            ', then run the command again')
  return (f'{head} — give this user write access to {folder} (read access '
          'to read it), or use another path')


def exit_now(status):
  """Flushes the log and the standard streams and ends the process with
  `status`, without the interpreter's teardown: for a job whose work is
  saved, which a scheduler waits on."""
  for handler in logging.getLogger().handlers:
    handler.flush()
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(status)  # pylint: disable=protected-access


def guard(fn, *args, show_traceback=False):
  """fn(*args), with any exception reported as one line (and the exit)."""
  try:
    return fn(*args)
  except stop.Stopped as e:
    if show_traceback:
      traceback.print_exc()
    sys.stderr.write(f'{e}\n')
    exit_now(e.status)
  except KeyboardInterrupt:
    _report('interrupted (SIGINT) — run the command again to redo the '
            'unfinished work', 128 + signal.SIGINT, show_traceback)
  except Exception as e:  # pylint: disable=broad-except
    message, status = _error_line(e)
    _report(message, status, show_traceback)


def run(main, positional=False):
  """Parses the flags and runs `main(argv)`, reporting errors as one line.

  `main` gets argv without the flags; with `positional` it may hold
  arguments for `main` to check, otherwise any is refused.
  """

  def parse(args):
    try:
      return parse_flags(args, positional)
    except InputError as e:
      _report(str(e), USAGE_EXIT, _wants_traceback(args))

  app.run(lambda args: guard(main, args, show_traceback=_wants_traceback(
      args)), flags_parser=parse)


class ArgumentParser(argparse.ArgumentParser):
  """argparse for commands without absl flags, with one-line errors."""

  def error(self, message):
    _report(f'{message} — see {self.prog} --help', USAGE_EXIT, False)
