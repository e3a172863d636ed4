"""Steps/s through run.py's compiled training loop, on 1 and 2 CPU devices.

  .venv/bin/python bench/train_loop.py [--models core,upsampler] \
      [--devices 1,2] [--steps 4]

Runs `jobs.train.make_train_loop` (the loop `run.py --mode=train`
compiles: forward, backward, RMSprop, EMA, and the discriminator where the
config enables it) on random in-memory batches of the default configs, with
`config.batch_size` examples per replica. The CPU is split into logical
devices, so 2 devices share the same cores: the figure shows the overhead of
mirroring, not a speed-up. Prints one JSON object.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from utils import distribute  # pylint: disable=g-import-not-at-top

distribute.split_cpu(2)

import tensorflow as tf  # pylint: disable=g-import-not-at-top

import train_step  # pylint: disable=g-import-not-at-top
from jobs import train  # pylint: disable=g-import-not-at-top


def steps_per_second(config, devices, steps):
  """(first call seconds, steps/s) of the compiled loop on `devices` CPUs."""
  strategy = distribute.make_strategy('CPU', devices)
  state = train.TrainState(config, strategy)
  batch = train_step.random_inputs(config, config.batch_size * devices)
  dataset = strategy.experimental_distribute_dataset(
      tf.data.Dataset.from_tensors(batch).repeat())
  iterator = iter(dataset)
  loop = train.make_train_loop(state)
  start = time.perf_counter()
  float(loop(iterator, tf.constant(1))['loss'])
  first = time.perf_counter() - start
  start = time.perf_counter()
  float(loop(iterator, tf.constant(steps))['loss'])
  return {'first_call_seconds': round(first, 2),
          'steps_per_second': round(steps / (time.perf_counter() - start), 4)}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--models', default='core,upsampler')
  parser.add_argument('--devices', default='1,2')
  parser.add_argument('--steps', type=int, default=4)
  args = parser.parse_args(argv)
  report = {'device': 'CPU', 'tensorflow': tf.__version__}
  for name in args.models.split(','):
    config = train_step.CONFIGS[name]('')
    report[name] = {f'{d}_devices': steps_per_second(config, int(d),
                                                     args.steps)
                    for d in args.devices.split(',')}
    report[name]['use_discriminator'] = config.use_discriminator
  print(json.dumps(report, indent=2))


if __name__ == '__main__':
  main()
