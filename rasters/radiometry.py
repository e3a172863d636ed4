"""Reflectance digital numbers <-> the 8-bit values the models see.

Sentinel-2 L1C/L2A store reflectance as uint16 digital numbers (DN):

    reflectance = (DN - offset) / QUANTIFICATION        QUANTIFICATION = 10000

where `offset` is 1000 from processing baseline 04.00 on (products from
25 January 2022; the metadata's BOA_ADD_OFFSET / RADIO_ADD_OFFSET = -1000)
and 0 before. The models see a linear true-colour stretch of reflectance
0..MAX_REFLECTANCE (0.3) onto 0..255:

    value8 = clip(round((DN - offset) * 255 / (QUANTIFICATION * 0.3)), 0, 255)
    DN     = offset + round(value8 * QUANTIFICATION * 0.3 / 255)

so one 8-bit step is about 11.8 DN and `to_uint8(from_uint8(v)) == v`.
Inputs that already are 8-bit pass unchanged both ways. This module is the
only place the mapping lives (`predict.py` and `tools.prepare` use it).
"""

import re

import numpy as np

QUANTIFICATION = 10000
MAX_REFLECTANCE = 0.3
BASELINE_OFFSET = 1000
# Processing baseline from which DN carry the offset.
OFFSET_BASELINE = (4, 0)
PRODUCT_BASELINE = re.compile(r'_N(\d{2})(\d{2})_')
OFFSET_TAGS = ('BOA_ADD_OFFSET', 'RADIO_ADD_OFFSET')


def _span(max_reflectance):
  return QUANTIFICATION * max_reflectance


def to_uint8(values, offset=0, max_reflectance=MAX_REFLECTANCE):
  """Reflectance DN (any shape, any dtype) -> uint8 model values.

  Args:
    values: digital numbers; a uint8 array is returned unchanged.
    offset: the DN of zero reflectance (1000 for baseline >= 04.00).
    max_reflectance: the reflectance mapped to 255.
  """
  values = np.asarray(values)
  if values.dtype == np.uint8:
    return values
  scaled = (values.astype(np.float32) - np.float32(offset)) * np.float32(
      255.0 / _span(max_reflectance))
  return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def from_uint8(values8, offset=0, dtype=np.uint16,
               max_reflectance=MAX_REFLECTANCE):
  """uint8 model values -> reflectance DN of `dtype` (the inverse mapping).

  An 8-bit `dtype` returns the values unchanged.
  """
  values8 = np.asarray(values8, np.uint8)
  dtype = np.dtype(dtype)
  if dtype == np.uint8:
    return values8
  values = np.rint(values8.astype(np.float32) * np.float32(
      _span(max_reflectance) / 255.0)) + np.float32(offset)
  if np.issubdtype(dtype, np.integer):
    info = np.iinfo(dtype)
    values = np.clip(values, info.min, info.max)
  return values.astype(dtype)


def step(dtype, max_reflectance=MAX_REFLECTANCE):
  """The DN of one 8-bit step in `dtype` (1 for uint8; about 11.8 for the
  DN of the mapping above): the scale of a spread or a difference."""
  if np.dtype(dtype) == np.uint8:
    return 1.0
  return _span(max_reflectance) / 255.0


def baseline_offset(major, minor):
  """The DN offset of processing baseline `major.minor`."""
  return BASELINE_OFFSET if (major, minor) >= OFFSET_BASELINE else 0


def offset_from_metadata(tags, name=''):
  """The DN offset a file's metadata gives, or None if it says nothing.

  Reads, in order: an add-offset tag (BOA_ADD_OFFSET / RADIO_ADD_OFFSET,
  whose negation is the offset), a PROCESSING_BASELINE tag ("04.00"), and
  the baseline `_Nxxyy_` of a Sentinel-2 product name in `name`.

  Args:
    tags: the file's metadata tags (dict of str).
    name: the file's path or name.
  """
  for key in OFFSET_TAGS:
    if key in tags:
      return -int(round(float(tags[key])))
  if 'PROCESSING_BASELINE' in tags:
    major, _, minor = str(tags['PROCESSING_BASELINE']).partition('.')
    return baseline_offset(int(major), int(minor or 0))
  match = PRODUCT_BASELINE.search(name)
  if match:
    return baseline_offset(int(match[1]), int(match[2]))
  return None
