"""Where a training step's time goes: per-op time by class, from a trace.

  .venv/bin/python bench/profile_step.py --variant small --models core \
      [--steps 3] [--jit_compile false] [--top 15]

Runs `jobs.train.make_train_loop` (the loop run.py compiles) as
bench/train_loop.py does, on random in-memory batches of
`config.batch_size`, twice untraced (tracing, warm-up), then one call of
`--steps` steps under the TensorFlow profiler (tf.profiler.experimental).
Every op the executor ran is read from the trace (`<name>:<type>` events of
the host plane) and its time added to one class (CLASSES, the first that
matches), e.g. matmul/einsum, softmax, layer norm, element-wise,
transposes/reshapes, the discriminator, EMA, optimizer, input. Op times are
summed over the executor's threads: they are CPU-side op seconds (two ops
running at once both count), shown per step and as shares of their sum;
`wall_seconds_per_step` is the traced call's wall time. With
`--jit_compile true` the XLA-compiled part is one op (class `xla`).

Prints one JSON object: the classes, the `--top` op types by time, and the
`--top` single ops.
"""

import argparse
import collections
import glob
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import tensorflow as tf  # pylint: disable=g-import-not-at-top
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=g-import-not-at-top

import measure  # pylint: disable=g-import-not-at-top
import train_step  # pylint: disable=g-import-not-at-top
from jobs import train  # pylint: disable=g-import-not-at-top
from utils import distribute  # pylint: disable=g-import-not-at-top

MATMUL_TYPES = {'MatMul', 'BatchMatMulV2', 'BatchMatMulV3', 'Einsum',
                '_MklMatMul', '_FusedMatMul', '_MklBatchMatMulV2'}
SOFTMAX_TYPES = {'Softmax', 'LogSoftmax', 'SoftmaxCrossEntropyWithLogits',
                 'SparseSoftmaxCrossEntropyWithLogits'}
LAYOUT_TYPES = {'Transpose', 'Reshape', 'ConcatV2', 'Split', 'SplitV', 'Pad',
                'Slice', 'StridedSlice', 'StridedSliceGrad', 'Tile',
                'BroadcastTo', 'GatherV2', 'ResourceGather', 'Pack', 'Unpack',
                'UnsortedSegmentSum', 'Identity', 'Squeeze', 'ExpandDims',
                'ZerosLike', 'Fill', 'Cast', 'Select', 'SelectV2',
                'BroadcastArgs', 'BroadcastGradientArgs', 'Shape', 'Range',
                'TensorScatterAdd', 'ScatterNd', 'IdentityN', 'InvertPermutation',
                'ConcatOffset'}
# (class, test of (op name, op type)): an op is in the first class whose
# test passes. Name scopes come from the step (jobs/train.py) and Keras.
CLASSES = (
    ('input', lambda name, kind: kind in ('IteratorGetNext',
                                          'MultiDeviceIteratorGetNextFromShard')),
    # Convolutions are the discriminator's only (some of its gradient ops,
    # made by a custom gradient, are outside its name scope).
    ('discriminator', lambda name, kind: 'discriminator' in name
     or kind.startswith('Conv2D')),
    ('ema', lambda name, kind: '/ema/' in name or name.startswith('ema/')
     or 'ema_update' in name),
    ('optimizer', lambda name, kind: 'rmsprop' in name.lower()
     or 'optimizer' in name.lower()),
    ('xla', lambda name, kind: kind.startswith(('_Xla', 'Xla'))
     or 'cluster' in kind),
    ('matmul/einsum', lambda name, kind: kind in MATMUL_TYPES),
    ('softmax', lambda name, kind: kind in SOFTMAX_TYPES),
    ('layer norm', lambda name, kind: 'layer_norm' in name
     or 'normalization' in name or 'normalize' in name),
    ('transposes/reshapes/gathers', lambda name, kind: kind in LAYOUT_TYPES),
    ('element-wise', lambda name, kind: True),
)


def classify(name, kind):
  return next(label for label, test in CLASSES if test(name, kind))


def op_events(logdir):
  """(name, type, seconds) of every op event in the trace under `logdir`."""
  path = glob.glob(os.path.join(logdir, '**', '*.xplane.pb'),
                   recursive=True)[0]
  space = xplane_pb2.XSpace()
  with open(path, 'rb') as f:
    space.ParseFromString(f.read())
  events = []
  for plane in space.planes:
    if plane.name != '/host:CPU':
      continue
    for line in plane.lines:
      if line.name == 'python':
        continue
      for event in line.events:
        label = plane.event_metadata[event.metadata_id].name
        if ':' not in label or label.startswith('ThreadpoolListener'):
          continue
        name, kind = label.rsplit(':', 1)
        if '::' in label or not kind or ' ' in kind:
          continue
        events.append((name, kind, event.duration_ps * 1e-12))
  return events


def breakdown(events, steps, top):
  """Per-class, per-type and per-op seconds per step, with shares."""
  total = sum(seconds for _, _, seconds in events)
  by_class, by_type, by_op = (collections.Counter() for _ in range(3))
  for name, kind, seconds in events:
    by_class[classify(name, kind)] += seconds
    by_type[kind] += seconds
    by_op[f'{name}:{kind}'] += seconds

  def table(counter, limit=None):
    return {key: {'seconds_per_step': round(value / steps, 4),
                  'share': round(value / total, 3)}
            for key, value in counter.most_common(limit)}
  return {'op_seconds_per_step': round(total / steps, 3),
          'classes': table(by_class), 'types': table(by_type, top),
          'ops': table(by_op, top)}


def profile(config, steps, top):
  """Runs and traces the loop; the breakdown of the traced call."""
  tf.keras.utils.set_random_seed(config.seed)
  strategy = distribute.make_strategy('CPU', 1)
  state = train.TrainState(config, strategy)
  batch = train_step.random_inputs(config, config.batch_size)
  iterator = iter(strategy.experimental_distribute_dataset(
      tf.data.Dataset.from_tensors(batch).repeat()))
  loop = train.make_train_loop(state)
  for _ in range(2):
    float(loop(iterator, tf.constant(1))['loss'])
  logdir = tempfile.mkdtemp(prefix='profile_step_')
  tf.profiler.experimental.start(logdir)
  start, start_cpu = time.perf_counter(), measure.cpu_seconds()
  float(loop(iterator, tf.constant(steps))['loss'])
  seconds, cpu = time.perf_counter() - start, measure.cpu_seconds() - start_cpu
  tf.profiler.experimental.stop()
  result = {'wall_seconds_per_step': round(seconds / steps, 3),
            'cpu_seconds_per_step': round(cpu / steps, 3)}
  result.update(breakdown(op_events(logdir), steps, top))
  return result


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--models', default='core', choices=tuple(
      train_step.CONFIGS))
  parser.add_argument('--variant', default='small',
                      choices=('', 'small', 'tiny'))
  parser.add_argument('--steps', type=int, default=3)
  parser.add_argument('--jit_compile', default=None,
                      choices=('true', 'false'))
  parser.add_argument('--top', type=int, default=15)
  args = parser.parse_args(argv)
  config = train_step.CONFIGS[args.models](args.variant)
  if args.jit_compile is not None:
    config.jit_compile = args.jit_compile == 'true'
  report = {'model': args.models, 'variant': args.variant,
            'batch_size': config.batch_size,
            'jit_compile': config.jit_compile,
            'load_average': round(os.getloadavg()[0], 2)}
  report.update(profile(config, args.steps, args.top))
  print(json.dumps(report, indent=2))


if __name__ == '__main__':
  main()
