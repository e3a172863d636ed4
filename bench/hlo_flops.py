"""Floating-point operations of an XLA-compiled function, from its HLO.

TensorFlow does not expose XLA's cost analysis to Python, so `dot_flops`
counts what it counts for matrix products in the optimized HLO text
(`experimental_get_compiler_ir(...)(stage='optimized_hlo')`): every `dot`
costs 2 · (output elements) · (contracted elements), fusions and calls add
the dots of the computations they call, and a `while` loop adds its body
times its trip count, which XLA records as `known_trip_count` when it can
derive it (else the caller says it: `unknown_trip_count`). Element-wise
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


def dot_flops(hlo_text, unknown_trip_count=None):
  """Matrix-product FLOPs of one run of an optimized HLO module.

  `unknown_trip_count` is the trip count of the while loops XLA did not
  derive one for (None: such a loop raises ValueError).
  """
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
          elif unknown_trip_count:
            trip_count = unknown_trip_count
          else:
            raise ValueError('A while loop without a known trip count: '
                             f'{line.strip()[:200]}')
          total += trip_count * sum(map(flops, called))
        elif called:
          total += sum(map(flops, called))
      cache[name] = total
    return cache[name]

  return flops(entry)
