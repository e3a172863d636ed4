"""Seconds per image of the core's samplers on the CPU.

  .venv/bin/python bench/sampler.py [--batches 1,8] [--graph_batches 1] \
      [--oracle_rows 2]

The default core (MODEL_SIZE=128, 64x64, T=6, C=3) with random weights,
`mode='argmax'`:
- `fast_batch_<B>`: the fast sampler (`CloudTranCore.generate`, XLA) at each
  batch size: compilation (first call minus a steady call) and steady seconds
  per image, with the share of the encoder (compiled alone), which the
  sampler runs once per batch before decoding;
- `graph_batch_<B>`: the same sampler without XLA (`jit_compile=False`);
- `oracle_batch_1`: the straightforward decode (`reference=True`, eager),
  timed over its first rows and extrapolated to the whole image (every row
  costs the same: it re-runs the decoders on the whole canvas).
Prints one JSON object; `speedup` is oracle / fast seconds per image at
batch 1. `load_average` is the machine's 1-minute load before and after:
on a shared machine the figures scale with it.
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
from models import base  # pylint: disable=g-import-not-at-top
from models import sampler  # pylint: disable=g-import-not-at-top


def timed(function, *args):
  """(seconds, result) of one call, outputs fetched."""
  start = time.perf_counter()
  result = tf.nest.map_structure(lambda t: t.numpy(), function(*args))
  return time.perf_counter() - start, result


def time_sampler(model, config, batch_size, jit_compile):
  """Compilation and steady seconds of a fresh sampler on one batch."""
  inputs = train_step.random_inputs(config, batch_size)
  sample = sampler.Sampler(model, jit_compile=jit_compile)
  first, _ = timed(sample, inputs)
  steady, _ = timed(sample, inputs)
  return {'compile_seconds': round(first - steady, 1),
          'seconds_per_batch': round(steady, 2),
          'seconds_per_image': round(steady / batch_size, 3)}


def time_encoder(model, config, batch_size):
  """Steady seconds per image of the XLA-compiled encoder alone."""
  inputs = train_step.random_inputs(config, batch_size)
  _, slots, offsets = model.split_inputs(inputs, training=False)
  encode = tf.function(model.encode, jit_compile=True)
  timed(encode, slots, offsets)
  seconds, _ = timed(encode, slots, offsets)
  return round(seconds / batch_size, 3)


def time_oracle(model, config, rows):
  """Seconds per image of the full-decoder decode, from its first `rows`."""
  height, _ = model.resolution
  inputs = train_step.random_inputs(config, 1)
  _, slots, offsets = model.split_inputs(inputs, training=False)
  z = base.fold_channels(model.encode(slots, offsets))
  folded = tf.reshape(tf.broadcast_to(offsets, [1, z.shape[0]]), [-1])
  seconds, _ = timed(
      model._reference_decode,  # pylint: disable=protected-access
      z, folded, 'argmax', None, rows)
  return {'timed_rows': rows,
          'seconds_per_image': round(seconds * height / rows, 1)}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--batches', default='1,8',
                      help='batch sizes of the fast (XLA) sampler')
  parser.add_argument('--graph_batches', default='1',
                      help='batch sizes of the sampler without XLA ("" for '
                      'none)')
  parser.add_argument('--oracle_rows', type=int, default=2)
  args = parser.parse_args(argv)
  config = train_step.CONFIGS['core']('')
  tf.keras.utils.set_random_seed(0)
  model = models.build(config)
  report = {'device': 'CPU', 'cpus': os.cpu_count(),
            'tensorflow': tf.__version__,
            'hidden_size': config.model.hidden_size,
            'resolution': list(config.model.resolution),
            'timeline': config.timeline, 'n_channels': config.n_channels,
            'load_average': [round(os.getloadavg()[0], 2)]}
  for batch in map(int, filter(None, args.batches.split(','))):
    result = time_sampler(model, config, batch, jit_compile=True)
    result['encoder_seconds_per_image'] = time_encoder(model, config, batch)
    report[f'fast_batch_{batch}'] = result
  for batch in map(int, filter(None, args.graph_batches.split(','))):
    report[f'graph_batch_{batch}'] = time_sampler(model, config, batch,
                                                  jit_compile=False)
  report['oracle_batch_1'] = time_oracle(model, config, args.oracle_rows)
  fast = report.get('fast_batch_1', {}).get('seconds_per_image')
  if fast:
    report['speedup'] = round(
        report['oracle_batch_1']['seconds_per_image'] / fast, 1)
  report['load_average'].append(round(os.getloadavg()[0], 2))
  print(json.dumps(report, indent=2))


if __name__ == '__main__':
  main()
