"""What made a result, and what a rerun does with the result it finds.

A record is a JSON-ready dict of everything a result's bytes depend on: the
inputs (per file its size and modification time, or per STAC Item its id),
the models (checkpoints, configs) and the settings that change bytes. A
command keeps it in its unfinished work directory (`manifest.json`) and,
once done, in the result itself (the STAC Item of `predict.py`, the JSON
report of the self-check). `claim` compares a rerun's record with the one
found:

- the same record: a finished result is complete (nothing is done), an
  unfinished one resumes, and one that lost a file is written again;
- another record, or a result with no record: refused, naming what
  differs, unless `overwrite`, which removes the old result and every
  companion file first.
"""

import json
import os
import shutil

from absl import logging

from utils.errors import DataError


def normalized(record):
  """`record` as it reads back from JSON (tuples as lists)."""
  return json.loads(json.dumps(record))


def _stamp(path):
  """{'path', 'size', 'mtime_ns'} of a local file; {'path'} otherwise."""
  try:
    stat = os.stat(path)
  except (OSError, TypeError, ValueError):
    return {'path': str(path)}
  return {'path': str(path), 'size': stat.st_size,
          'mtime_ns': stat.st_mtime_ns}


def inputs(series):
  """Per date of `series` (a `rasters.reader.Series`): its date, files and
  mask file stamped with size and modification time, or its STAC Item."""
  rows = []
  for t, day in enumerate(series.dates):
    files = series.paths[t]
    files = list(files) if isinstance(files, tuple) else [files]
    row = {'date': str(day)}
    if series.items:
      item = series.items[t]
      row['item'] = {'id': item.id, 'collection': item.collection_id}
    row['files'] = [_stamp(f) for f in files]
    row['mask'] = _stamp(series.mask_paths[t])
    rows.append(row)
  return rows


def series_record(series):
  """The parts of a record that `series` decides: inputs, grid, bands,
  masks and offsets."""
  return {'inputs': inputs(series), 'grid': series.grid.to_dict(),
          'bands': [str(b) for b in series.bands],
          'mask_kind': series.mask_kind,
          'cloud_threshold': series.cloud_threshold,
          'offsets': [int(o) for o in series.offsets]}


def differences(old, new):
  """The keys whose values differ between records `old` and `new`, sorted.

  A key recorded in only one of them (a setting that applies to one run
  only, as the seed of draws) is named only when nothing both record
  differs: the setting they share that differs is what changed.
  """
  old, new = normalized(old), normalized(new)
  shared = sorted(k for k in set(old) & set(new) if old[k] != new[k])
  return shared or sorted(set(old) ^ set(new))


def read_manifest(work_dir):
  """The record in `<work_dir>/manifest.json`, or None."""
  return read_json(os.path.join(work_dir, 'manifest.json'))


def read_json(path, key=None):
  """The JSON of `path` (its `key` entry), or None when absent or
  unreadable."""
  try:
    with open(path) as f:
      data = json.load(f)
  except (OSError, ValueError):
    return None
  return data.get(key) if key and isinstance(data, dict) else data


def remove(paths):
  """Removes the files and directories of `paths` that exist."""
  for path in paths:
    if os.path.isdir(path):
      shutil.rmtree(path)
    elif os.path.lexists(path):
      os.remove(path)
    else:
      continue
    logging.info('Removed %s (--overwrite).', path)


def _named(key, old, new):
  """'key', or 'key (old → new)' when both values are short scalars."""
  values = [old.get(key), new.get(key)]
  if all(isinstance(v, (bool, int, float, str)) and len(str(v)) <= 40
         for v in values):
    return f'{key} ({values[0]} → {values[1]})'
  return key


def _refuse(what, old, new, changed):
  names = ', '.join(_named(k, normalized(old), normalized(new))
                    for k in changed)
  raise DataError(f'{what} different {names} — rerun with the same '
                  'settings, or use --overwrite to replace it (with its '
                  'companion files) or another --out.')


def claim(result, record, kept, files, companions, work_dir, overwrite):
  """Decides what a run does with the result it finds (see the module doc).

  Args:
    result: the result's name in messages (its main file or directory).
    record: this run's record.
    kept: the record kept in the finished result, or None.
    files: the files this run writes (all there = complete).
    companions: every file any run of this command writes there; removed
      (with `work_dir`) before a result is replaced.
    work_dir: the work directory of an unfinished result.
    overwrite: replace a result made otherwise instead of refusing it.

  Returns:
    True when the result is complete; else False, with the old result gone
    unless its work directory is to be resumed.

  Raises:
    DataError: a result of another record, or one with none, without
      `overwrite`.
  """
  stale = [*companions, work_dir]
  if kept is not None:
    changed = differences(kept, record)
    if not changed:
      missing = [f for f in files if not os.path.exists(f)]
      if not missing:
        logging.info('%s exists with the same record: this result is '
                     'complete.', result)
        return True
      logging.info('%s is missing: writing %s again.', ', '.join(missing),
                   result)
    elif not overwrite:
      _refuse(f'{result} was made with', kept, record, changed)
    remove(stale)
    return False
  manifest = read_manifest(work_dir)
  if manifest is not None:
    changed = differences(manifest, record)
    if not changed:
      return False
    if not overwrite:
      _refuse(f'{work_dir} holds the unfinished work of a run with',
              manifest, record, changed)
    remove(stale)
    return False
  present = [p for p in companions if os.path.lexists(p)]
  if present and not overwrite:
    raise DataError(f'{present[0]} exists with no record of what made it — '
                    'use --overwrite to replace it (with its companion '
                    'files) or another --out.')
  remove(stale)
  return False
