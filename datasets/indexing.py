"""Reference dates: `config.ref_index` or the per-tile JSON (`config.jsonf`).

Train JSON: {"TILE": {"index": "16"}, ...}; test JSON: {"TILE": {"val_index":
"21", "test_index": "25"}, ...} (upstream writes the numbers as strings; both
strings and integers are read).
"""

import json

from datasets import subsets
from utils.errors import DataError


def load_table(jsonf):
  """The JSON of `config.jsonf` as {tile name: entry}."""
  try:
    with open(jsonf) as f:
      table = json.load(f)
  except OSError as e:
    raise DataError(f'config.jsonf={jsonf!r} cannot be read ({e}); fix the '
                    'path or unset config.jsonf to use config.ref_index.'
                    ) from None
  except json.JSONDecodeError as e:
    raise DataError(f'config.jsonf={jsonf!r} is not valid JSON ({e}).'
                    ) from None
  if not isinstance(table, dict):
    raise DataError(f'config.jsonf={jsonf!r} must map tile names to entries.')
  return table


def reference_index(tile, subset, ref_index, table, jsonf=None):
  """The reference date index of `tile` for `subset`.

  Args:
    tile: an `ondisk.Tile`.
    subset: a name of `subsets.SUBSETS`.
    ref_index: `config.ref_index`, used when `table` is None.
    table: the loaded JSON or None.
    jsonf: the JSON path, for messages.
  """
  if table is None:
    return int(ref_index)
  key = subsets.get(subset).json_key
  name = tile.name
  if name not in table:
    raise DataError(f'Tile {name!r} (folder {tile.folder}) is not in '
                    f'config.jsonf={jsonf!r}; add it with its "{key}" or '
                    'remove the tile.')
  entry = table[name]
  value = entry.get(key) if isinstance(entry, dict) else None
  try:
    return int(value)
  except (TypeError, ValueError):
    raise DataError(f'config.jsonf={jsonf!r}: tile {name!r} needs an integer '
                    f'"{key}" for subset {subset!r}, got {value!r}.') from None


def slot_dates(tile, ref, timeline):
  """The `timeline - 1` distinct dates of an example, oldest first.

  Returns:
    (date r-T+2, ..., date r-1, date r): slots 1..T-2 then the reference
    (slots 0 and T-1 both show the reference date).
  """
  needed = range(ref - timeline + 2, ref + 1)
  missing = [i for i in needed if tile.date(i) is None]
  if missing:
    first, last = tile.dates[0].index, tile.dates[-1].index
    raise DataError(
        f'Tile {tile.folder} has too few dates: reference index {ref} with '
        f'config.timeline={timeline} needs indices {needed.start}..{ref}, '
        f'but {missing} are missing (it has {first}..{last}); fix the '
        'reference index (config.ref_index or config.jsonf) or lower '
        'config.timeline.')
  return tuple(tile.date(i) for i in needed)
