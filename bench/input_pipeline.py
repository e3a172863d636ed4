"""Input pipeline throughput: examples/s of the train and test subsets.

  python bench/input_pipeline.py [--batch_size 8] [--train_batches 30]

Writes a synthetic dataset (24 tiles per split, 256x256, 8 dates) to a
temporary directory, then reads it with the default core configs at
resolution (224, 224) and timeline 6, and prints one JSON object.
"""

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from configs import cloudtran_core_test  # pylint: disable=g-import-not-at-top
from configs import cloudtran_core_train  # pylint: disable=g-import-not-at-top
from configs import common  # pylint: disable=g-import-not-at-top
from datasets import pipeline  # pylint: disable=g-import-not-at-top
from tools import synthetic  # pylint: disable=g-import-not-at-top

TILES, DATES, SIZE, RESOLUTION, TIMELINE = 24, 8, 256, 224, 6


def point_at(config, root, split):
  """Bench geometry and the synthetic split `split` on `config`."""
  common.use_dataset(config, root, split)
  config.resolution = (RESOLUTION, RESOLUTION)
  config.timeline = TIMELINE
  return config


def examples_per_second(dataset, batches, warmup):
  """Examples/s over `batches` batches after `warmup` batches."""
  iterator = iter(dataset)
  for _ in range(warmup):
    next(iterator)
  count, start = 0, time.perf_counter()
  for _ in range(batches):
    count += int(next(iterator)['tile'].shape[0])
  return count / (time.perf_counter() - start)


def pass_rate(dataset, passes):
  """(examples/s, examples per pass) over `passes` full passes."""
  count, start = 0, time.perf_counter()
  for _ in range(passes):
    for batch in dataset:
      count += int(batch['tile'].shape[0])
  return count / (time.perf_counter() - start), count // passes


def timed(fn, *args):
  start = time.perf_counter()
  result = fn(*args)
  return result, time.perf_counter() - start


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batch_size', type=int, default=8)
  parser.add_argument('--train_batches', type=int, default=30)
  parser.add_argument('--test_passes', type=int, default=5)
  flags = parser.parse_args()
  with tempfile.TemporaryDirectory() as root:
    args = synthetic.parser().parse_args(
        [root, '--tiles', str(TILES), '--dates', str(DATES), '--size',
         str(SIZE), '--timeline', str(TIMELINE)])
    _, generate_s = timed(synthetic.make_dataset, root, args)

    train = point_at(cloudtran_core_train.get_config(), root, 'trainset')
    train_ds, train_build_s = timed(pipeline.get_dataset, train,
                                    flags.batch_size, 'train')
    train_rate = examples_per_second(train_ds, flags.train_batches, 2)

    test = point_at(cloudtran_core_test.get_config(), root, 'testset')
    test_ds, test_build_s = timed(pipeline.get_dataset, test,
                                  flags.batch_size, 'test')
    test_rate, test_examples = pass_rate(test_ds, flags.test_passes)
  print(json.dumps({
      'dataset': {'tiles_per_split': TILES, 'dates': DATES, 'size': SIZE,
                  'generate_s': round(generate_s, 2)},
      'resolution': RESOLUTION, 'timeline': TIMELINE,
      'downsample_res': train.downsample_res, 'n_channels': train.n_channels,
      'batch_size': flags.batch_size, 'cpus': os.cpu_count(),
      'train': {'examples_per_s': round(train_rate, 1),
                'startup_s': round(train_build_s, 2)},
      'test': {'examples_per_s': round(test_rate, 1),
               'startup_s': round(test_build_s, 2),
               'examples_per_pass': test_examples},
  }))


if __name__ == '__main__':
  main()
