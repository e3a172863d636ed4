"""Seconds per image of the core's samplers on the CPU.

  .venv/bin/python bench/sampler.py [--batches 1,8] [--oracle_rows 2]

The default core (MODEL_SIZE=128, 64x64, T=6, C=3) with random weights:
the fast compiled sampler (`CloudTranCore.sample`) at each batch size, and
the straightforward decode (`CloudTranCore.sample_reference`, the oracle) at
batch 1, timed over its first rows and extrapolated to the whole image.
Prints one JSON object; `speedup` is oracle / fast seconds per image at
batch 1.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import tensorflow as tf  # pylint: disable=g-import-not-at-top

import models  # pylint: disable=g-import-not-at-top
import train_step  # pylint: disable=g-import-not-at-top
from models import core  # pylint: disable=g-import-not-at-top


def time_fast(model, config, batch_size):
  """First call (with compilation) and steady seconds per image."""
  inputs = train_step.random_inputs(config, batch_size)
  start = time.perf_counter()
  model.sample(inputs)['auto_argmax'].numpy()
  first = time.perf_counter() - start
  start = time.perf_counter()
  model.sample(inputs)['auto_argmax'].numpy()
  seconds = time.perf_counter() - start
  return {'first_call_seconds': round(first, 2),
          'seconds_per_image': round(seconds / batch_size, 3)}


def time_oracle(model, config, rows):
  """Seconds per image of the full-decoder decode, from its first `rows`."""
  height, _ = model.resolution
  inputs = train_step.random_inputs(config, 1)
  _, slots, offsets = model.split_inputs(inputs, training=False)
  z = core.fold_channels(model.encode(slots, offsets))
  folded = tf.reshape(tf.broadcast_to(offsets, [1, z.shape[0]]), [-1])
  start = time.perf_counter()
  model._reference_decode(z, folded, 'argmax', None, num_rows=rows)  # pylint: disable=protected-access
  seconds = (time.perf_counter() - start) * height / rows
  return {'timed_rows': rows, 'seconds_per_image': round(seconds, 1)}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--batches', default='1,8')
  parser.add_argument('--oracle_rows', type=int, default=2)
  args = parser.parse_args(argv)
  config = train_step.CONFIGS['core']('')
  tf.keras.utils.set_random_seed(0)
  model = models.build(config)
  report = {'device': 'CPU', 'tensorflow': tf.__version__,
            'hidden_size': config.model.hidden_size,
            'resolution': list(config.model.resolution),
            'timeline': config.timeline, 'n_channels': config.n_channels}
  for batch in args.batches.split(','):
    report[f'fast_batch_{batch}'] = time_fast(model, config, int(batch))
  report['oracle_batch_1'] = time_oracle(model, config, args.oracle_rows)
  fast = report.get('fast_batch_1', {}).get('seconds_per_image')
  if fast:
    report['speedup'] = round(
        report['oracle_batch_1']['seconds_per_image'] / fast, 1)
  print(json.dumps(report, indent=2))


if __name__ == '__main__':
  main()
