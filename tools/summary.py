"""Prints the first examples of an input pipeline (used by `make demo`).

  python -m tools.summary --config configs/cloudtran_core_train.py:tiny
"""

from absl import flags
import numpy as np

from datasets import pipeline
from datasets import subsets
from utils import cli

_CONFIG = cli.define_config('Experiment config.')
_SUBSET = flags.DEFINE_enum('subset', None, list(subsets.SUBSETS),
                            'Subset to read (default: train for a training '
                            'config, valid for a test config).')
_BATCHES = flags.DEFINE_integer('batches', 1, 'Batches to describe.')


def describe(batch):
  """Lines: key, shape, dtype and value range of each array of a batch."""
  lines = []
  width = max(len(k) for k in batch)
  for key in sorted(batch):
    value = np.asarray(batch[key])
    lines.append(f'  {key:<{width}}  {str(value.shape):<18} '
                 f'{value.dtype.name:<8} {value.min():g}..{value.max():g}')
  return lines


def per_example(batch):
  """Lines: tile, coverage and channel of each example of a batch."""
  lines = []
  for i, tile in enumerate(np.asarray(batch['tile'])):
    line = (f'  example {i}: tile {tile:05d}, slot T-1 cloud '
            f'{float(batch["coverage"][i]):.1f} %')
    if 'channel_index' in batch:
      line += f', channel {int(batch["channel_index"][i])}'
    lines.append(line)
  return lines


def summarize(config, subset, batches):
  """The printable summary of the first `batches` batches of `subset`."""
  dataset = pipeline.get_dataset(config, config.batch_size, subset)
  lines = [f'{subset} pipeline of {config.data_dir}: batch '
           f'{config.batch_size}, resolution {config.resolution}, timeline '
           f'{config.timeline}, {config.n_channels} channels.']
  for b, batch in enumerate(dataset.take(batches).as_numpy_iterator()):
    lines.append(f'batch {b}:')
    lines += describe(batch) + per_example(batch)
  return '\n'.join(lines)


def default_subset(config):
  """'valid' for a test config (it has a `sample` section), else 'train'."""
  return 'valid' if 'sample' in config else 'train'


def main(_):
  config = _CONFIG.value
  subset = _SUBSET.value or default_subset(config)
  print(summarize(config, subset, _BATCHES.value))


if __name__ == '__main__':
  cli.run(main)
