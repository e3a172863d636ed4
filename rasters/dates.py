"""The acquisition date of a raster file, from its name or its tags.

Looked up in this order:
  1. the Sentinel-2 product name (`S2A_MSIL2A_20240714T103031_N0510_...`):
     its sensing date, not the later processing date;
  2. the first `YYYYMMDD` or `YYYY-MM-DD` in the file name (not preceded or
     followed by another digit, and a real calendar date);
  3. the GeoTIFF tag `TIFFTAG_DATETIME` (`YYYY:MM:DD HH:MM:SS`).
"""

import datetime
import os
import re

import rasterio

from utils.errors import DataError

PRODUCT = re.compile(r'S2[A-D]_MSI(?:L1C|L2A)_(\d{4})(\d{2})(\d{2})T\d{6}')
IN_NAME = re.compile(r'(?<!\d)(\d{4})(-?)(\d{2})\2(\d{2})(?!\d)')
TAG = re.compile(r'^\s*(\d{4})[:-](\d{2})[:-](\d{2})')


def _valid(year, month, day):
  try:
    return datetime.date(int(year), int(month), int(day))
  except ValueError:
    return None


def date_in_name(name):
  """The date written in a file name, or None."""
  match = PRODUCT.search(name)
  if match and _valid(*match.groups()):
    return _valid(*match.groups())
  for match in IN_NAME.finditer(name):
    date = _valid(match[1], match[3], match[4])
    if date:
      return date
  return None


def _date_in_tags(path):
  try:
    with rasterio.open(path) as src:
      stamp = src.tags().get('TIFFTAG_DATETIME', '')
  except rasterio.errors.RasterioIOError as e:
    raise DataError(f'Cannot read {path} ({e}); replace or remove it.'
                    ) from None
  match = TAG.match(stamp)
  return _valid(*match.groups()) if match else None


def date_of(path):
  """The acquisition date of `path` (a datetime.date).

  Raises:
    DataError: neither the name nor TIFFTAG_DATETIME holds a date.
  """
  date = date_in_name(os.path.basename(path)) or _date_in_tags(path)
  if date is None:
    raise DataError(
        f'No date in {path}: put YYYYMMDD or YYYY-MM-DD in its file name '
        '(or keep the Sentinel-2 product name), or set its TIFFTAG_DATETIME.')
  return date


def by_date(paths, what='input'):
  """{date: path} of files with one date each, in date order.

  Raises:
    DataError: two files with one date (naming both).
  """
  table = {}
  for path in paths:
    date = date_of(path)
    if date in table:
      raise DataError(
          f'{table[date]} and {path} are both {what} files of {date}; keep '
          'one file per date.')
    table[date] = path
  return dict(sorted(table.items()))
