"""Floating-point operations of an XLA-compiled function, from its HLO.

TensorFlow does not expose XLA's cost analysis to Python, so `dot_flops`
counts what it counts for matrix products in the optimized HLO text
(`experimental_get_compiler_ir(...)(stage='optimized_hlo')`): every `dot`
costs 2 · (output elements) · (contracted elements), fusions and calls add
the dots of the computations they call, and a `while` loop adds its body
times its trip count: XLA's `known_trip_count` when it records one, else
the bound `i < N` its condition compares a counter with (TensorFlow's loops
count from 0 by 1, so N iterations). Element-wise
work (softmax, norms, adds) is not counted: the figure is the matrix-product
work, which is where a transformer's FLOPs are.
"""

import math
import re

_COMPUTATION = re.compile(r'^(?:ENTRY )?%?([\w.\-]+) .*\{$')
_INSTRUCTION = re.compile(
    r'^\s*(?:ROOT )?%?([\w.\-]+) = \w+\[([\d,]*)\]\S* ([\w\-]+)\(([^)]*)\)')
_TUPLE_INSTRUCTION = re.compile(r'^\s*(?:ROOT )?%?([\w.\-]+) = \(.*\) while\(')
_CALLED = re.compile(r'\b(?:calls|body|to_apply)=%?([\w.\-]+)')
_TRIP_COUNT = re.compile(r'"known_trip_count":\{"n":"(\d+)"\}')
_CONDITION = re.compile(r'\bcondition=%?([\w.\-]+)')
_INT_CONSTANT = re.compile(r'^\s*%?([\w.\-]+) = s32\[\] constant\((\d+)\)')
_LESS_THAN = re.compile(
    r'compare\(%?[\w.\-]+, %?([\w.\-]+)\), direction=LT')
_LHS_CONTRACTING = re.compile(r'lhs_contracting_dims=\{([\d,]*)\}')


def _dims(text):
  return [int(d) for d in text.split(',') if d]


def _parse(hlo_text):
  """({computation: [instruction lines]}, {name: dims}, entry name)."""
  computations, shapes, entry, current = {}, {}, None, None
  for line in hlo_text.splitlines():
    match = _COMPUTATION.match(line)
    if match:
      current = computations.setdefault(match.group(1), [])
      if line.startswith('ENTRY'):
        entry = match.group(1)
      continue
    if current is None or not line.strip() or line.strip() == '}':
      continue
    current.append(line)
    match = _INSTRUCTION.match(line)
    if match:
      shapes[match.group(1)] = _dims(match.group(2))
  return computations, shapes, entry


def _condition_bound(computations, name):
  """The least N of the `counter < N` compares of a loop condition, or None."""
  constants, bounds, pending = {}, [], [name]
  while pending:
    for line in computations[pending.pop()]:
      constant = _INT_CONSTANT.match(line)
      if constant:
        constants[constant.group(1)] = int(constant.group(2))
      bounds += _LESS_THAN.findall(line)
      pending += _CALLED.findall(line)
  bounds = [constants[b] for b in bounds if b in constants]
  return min(bounds) if bounds else None


def dot_flops(hlo_text):
  """Matrix-product FLOPs of one run of an optimized HLO module."""
  computations, shapes, entry = _parse(hlo_text)
  cache = {}

  def flops(name):
    if name not in cache:
      total = 0
      for line in computations[name]:
        match = _INSTRUCTION.match(line)
        if match and match.group(3) == 'dot':
          lhs = shapes[match.group(4).split(',')[0].strip().lstrip('%')]
          contracted = math.prod(lhs[i] for i in _dims(
              _LHS_CONTRACTING.search(line).group(1)))
          total += 2 * math.prod(_dims(match.group(2))) * contracted
          continue
        called = _CALLED.findall(line)
        if _TUPLE_INSTRUCTION.match(line):
          trip_count = _TRIP_COUNT.search(line)
          if trip_count:
            trip_count = int(trip_count.group(1))
          else:
            trip_count = _condition_bound(
                computations, _CONDITION.search(line).group(1))
          if trip_count is None:
            raise ValueError('A while loop without a known trip count: '
                             f'{line.strip()[:200]}')
          total += trip_count * sum(map(flops, called))
        elif called:
          total += sum(map(flops, called))
      cache[name] = total
    return cache[name]

  return flops(entry)
