"""Encoder, forward-pass and sampler seconds per image of the core on the CPU.

  .venv/bin/python bench/sampler.py [--batches 1,8] [--graph_batches 1] \
      [--oracle_rows 2] [--upsampler_batches 1,8] \
      [--dtypes float32,bfloat16] [--variant small] \
      [--core_logdir RUN --upsampler_logdir RUN]

The default core (MODEL_SIZE=128, 64x64, T=6, C=3; `--variant small` or
`tiny` for those configs) with random weights (or the averaged weights of
the training run in `--core_logdir`, built from its config.yaml),
`mode='argmax'`, for each precision of `--dtypes` (`config.precision`; a
section per precision, with the same weights) at each batch size B of
`--batches` (`batch_<B>`):
- `encoder`: `CloudTranCore.encode` alone (XLA), which the sampler and the
  forward pass run first;
- `forward`: the teacher-forced forward pass `get_logits(training=False)`
  (XLA): encoder, parallel head and both decoders;
- `sampler`: the fast sampler (`CloudTranCore.sample`, XLA), with its
  compilation seconds (first call minus a steady call);
and at each batch size B of `--upsampler_batches`:
- `upsampler_batch_<B>`: the upsampler's `sample` (default D=512, 224x224;
  random weights or those of `--upsampler_logdir`; XLA, one channel map at
  a time), steady seconds per image, compilation seconds, GFLOP per image
  (as below), rates, and the process's peak resident memory so far.
Each gives steady seconds per image (the best of `--repeats` calls after a
warm-up call), GFLOP/s and that rate as a fraction of the section's
`matmul_peak`: the GFLOP/s of the best of a few 4096x4096 `tf.matmul`s in
that precision in the same run. `matmul_peak.dense_chain_gflops` is the
rate of the encoder's own dense shape, `(4096, D) @ (D, D)` chained in one
XLA loop: the most its dense layers can reach (the encoder's FLOPs at that
rate give its floor).
On a shared machine wall seconds swing with the other processes, so the CPU
seconds of the process (every thread) and GFLOP per CPU second, as a
fraction of the matmul's, are given too: they move much less with the load.
FLOPs per image are the matrix-product FLOPs of XLA's optimized HLO at batch
1 (`bench/hlo_flops.py`, loops counted by their trip counts).

With two or more precisions, `agreement` compares each with the first,
for the core and the upsampler on one random batch of `--batches`' first
size: the fraction of pixels whose argmax decode (`sample`) is equal, and
the largest and mean absolute difference of the logits
(`get_logits(training=False)`, teacher-forced for the core).

Also, optionally, in the first precision's section:
- `graph_batch_<B>`: the fast sampler without XLA (`jit_compile=False`);
- `oracle_batch_1`: the straightforward decode (`generate(..., reference=True)`, eager),
  timed over its first rows and extrapolated to the whole image (every row
  costs the same: it re-runs the decoders on the whole canvas); 0 rows skips
  it;
- `upsampler_eager_batch_<B>`: the upsampler's whole-batch eager logits
  and argmax, how `sample` ran before (one call; timed last, as it needs
  the most memory).
Prints one JSON object; `speedup` is oracle / fast seconds per image at
batch 1. `load_average` is the machine's 1-minute load at the start and the
end: on a shared machine the figures scale with it.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import tensorflow as tf  # pylint: disable=g-import-not-at-top

import hlo_flops  # pylint: disable=g-import-not-at-top
import measure  # pylint: disable=g-import-not-at-top
import models  # pylint: disable=g-import-not-at-top
import train_step  # pylint: disable=g-import-not-at-top
from jobs import checkpoints  # pylint: disable=g-import-not-at-top
from models import base  # pylint: disable=g-import-not-at-top
from models import sampler  # pylint: disable=g-import-not-at-top
from utils import runconfig  # pylint: disable=g-import-not-at-top


def dense_chain_peak(hidden_size, dtype='float32', rows=4096, length=240,
                     repeats=3):
  """GFLOP/s in `dtype` of `length` chained `(rows, D) @ (D, D)` products in
  one XLA loop: the encoder's dense layers (one 64x64 map) at their best,
  with nothing between them."""
  x = tf.cast(tf.random.stateless_normal([rows, hidden_size], [1, 0]), dtype)
  w = tf.cast(tf.random.stateless_normal([hidden_size, hidden_size], [1, 1],
                                         stddev=hidden_size**-0.5), dtype)

  @tf.function(jit_compile=True)
  def chain(x, w):
    return tf.while_loop(lambda i, x: i < length,
                         lambda i, x: (i + 1, x @ w), (0, x))[1]

  _, seconds, _ = measure.best_seconds(chain, (x, w), repeats)
  return round(length * 2 * rows * hidden_size**2 / seconds / 1e9, 1)


class CoreFunctions:
  """The compiled encoder, forward pass and sampler of one model."""

  def __init__(self, model):
    self.model = model
    self.encode = tf.function(
        lambda slots, offsets: model.encode(slots, offsets), jit_compile=True)
    self.forward = tf.function(
        lambda inputs: model.get_logits(inputs, training=False),
        jit_compile=True)

  def encoder_args(self, inputs):
    _, slots, offsets = self.model.split_inputs(inputs, training=False)
    return slots, offsets

  def flops(self, inputs, sample):
    """Matrix-product FLOPs of the encoder, forward pass and `sample`."""
    def count(function, *args):
      return hlo_flops.dot_flops(function.experimental_get_compiler_ir(
          *args)(stage='optimized_hlo'))
    _, slots, offsets = self.model.split_inputs(inputs, training=False)
    generate = sample._generate  # pylint: disable=protected-access
    return {'encoder': count(self.encode, slots, offsets),
            'forward': count(self.forward, inputs),
            'sampler': count(generate, slots, offsets, tf.zeros([2], tf.int32),
                             'argmax', False)}


def time_core(functions, config, batch_size, repeats, flops, peak):
  """Encoder, forward pass and sampler seconds per image at one batch size."""
  inputs = train_step.random_inputs(config, batch_size)
  sample = sampler.Sampler(functions.model)
  result = {}
  for name, function, args in (
      ('encoder', functions.encode, functions.encoder_args(inputs)),
      ('forward', functions.forward, (inputs,)),
      ('sampler', sample, (inputs,))):
    first, seconds, cpu = measure.best_seconds(function, args, repeats)
    result[name] = {'seconds_per_image': round(seconds / batch_size, 3),
                    'cpu_seconds_per_image': round(cpu / batch_size, 3),
                    **measure.rates(flops[name] * batch_size, seconds, cpu,
                                    peak)}
    result[name]['fraction_of_dense_chain'] = round(
        result[name]['gflops'] / peak['dense_chain_gflops'], 2)
    if name == 'sampler':
      result[name]['compile_seconds'] = round(first - seconds, 1)
  return result


def time_graph_sampler(model, config, batch_size):
  """Compilation and steady seconds per image of the sampler without XLA."""
  inputs = train_step.random_inputs(config, batch_size)
  first, seconds, _ = measure.best_seconds(
      sampler.Sampler(model, jit_compile=False), (inputs,), 1)
  return {'compile_seconds': round(first - seconds, 1),
          'seconds_per_image': round(seconds / batch_size, 3)}


def time_oracle(model, config, rows):
  """Seconds per image of the full-decoder decode, from its first `rows`."""
  height, _ = model.resolution
  inputs = train_step.random_inputs(config, 1)
  _, slots, offsets = model.split_inputs(inputs, training=False)
  z = base.fold_channels(model.encode(slots, offsets))
  folded = tf.reshape(tf.broadcast_to(offsets, [1, z.shape[0]]), [-1])
  seconds, _, _ = measure.timed(
      model._reference_decode,  # pylint: disable=protected-access
      z, folded, 'argmax', None, None, rows)
  return {'timed_rows': rows,
          'seconds_per_image': round(seconds * height / rows, 1)}


def upsampler_flops(model, inputs):
  """Matrix-product FLOPs of the upsampler's compiled sampling of `inputs`."""
  return hlo_flops.dot_flops(
      model.compiled_sampler().experimental_get_compiler_ir(
          *model.sampler_args(inputs, 'argmax'), mode='argmax')(
              stage='optimized_hlo'))


def build_model(name, variant, precision, logdir=None, weights_of=None):
  """(config, model) of `name` ('core' or 'upsampler') computing in
  `precision`: the `variant` config with random weights, or the run in
  `logdir` (its config.yaml, its averaged weights); `weights_of`, a model
  built before, gives it its weights."""
  if logdir:
    config = runconfig.load(logdir)
    if config is None:
      raise ValueError(f'{logdir} holds no config.yaml: give a training run.')
  else:
    config = train_step.CONFIGS[name](variant)
  config.precision = precision
  if weights_of is not None:
    model = models.build(config)
    for variable, value in zip(model.variables, weights_of.variables,
                               strict=True):
      variable.assign(value)
  elif logdir:
    model = checkpoints.restore_averaged_model(config, logdir)
  else:
    tf.keras.utils.set_random_seed(0)
    model = models.build(config)
  return config, model


def build_models(name, variant, dtypes, logdir=None):
  """{precision: (config, model)} of `name` for each of `dtypes`, all with
  the weights of the first (see `build_model`)."""
  built = {}
  for precision in dtypes:
    built[precision] = build_model(name, variant, precision, logdir,
                                   built[dtypes[0]][1] if built else None)
  return built


def agreement(built, reference, other, batch_size, forward):
  """How the models of two precisions with the same weights (`built`, from
  `build_models`) agree on a random batch: the fraction of pixels whose
  argmax decode (`sample`) is equal, and the largest and mean absolute
  logit differences; `forward` maps a model to its compiled
  `get_logits(training=False)`."""
  inputs = train_step.random_inputs(built[reference][0], batch_size)
  pair = [built[reference][1], built[other][1]]
  decoded = [model.sample(inputs, mode='argmax')[base.OUTPUT]
             for model in pair]
  logits = [forward(model)(inputs)[0] for model in pair]
  difference = tf.abs(logits[0] - logits[1])
  return {'argmax_equal_fraction': round(float(tf.reduce_mean(
              tf.cast(decoded[0] == decoded[1], tf.float32))), 4),
          'max_logit_difference': round(float(tf.reduce_max(difference)), 4),
          'mean_logit_difference': round(float(tf.reduce_mean(difference)),
                                         5)}


def compiled_logits(model):
  """`model.get_logits(inputs, training=False)`, compiled with XLA."""
  return tf.function(lambda inputs: model.get_logits(inputs, training=False),
                     jit_compile=True)


def time_upsampler(model, config, batch_size, peak):
  """Seconds per image of the upsampler's `sample` (XLA, one map at a
  time), its compilation seconds and the process's peak memory so far."""
  inputs = train_step.random_inputs(config, batch_size)
  first, seconds, cpu = measure.best_seconds(model.sample, (inputs,), 1)
  flops = upsampler_flops(model, train_step.random_inputs(config, 1))
  return {'hidden_size': config.model.hidden_size,
          'resolution': list(config.resolution),
          'seconds_per_image': round(seconds / batch_size, 2),
          'cpu_seconds_per_image': round(cpu / batch_size, 2),
          'compile_seconds': round(first - seconds, 1),
          'gflop_per_image': round(flops / 1e9, 1),
          **measure.rates(flops * batch_size, seconds, cpu, peak),
          'peak_resident_gb_so_far': measure.peak_resident_gb()}


def time_upsampler_logits(model, config, batch_size):
  """Seconds per image of the upsampler's whole-batch eager `get_logits`
  and argmax: how `sample` ran before its per-map XLA loop."""
  inputs = train_step.random_inputs(config, batch_size)
  def argmax(batch):
    logits, _ = model.get_logits(batch, training=False)
    return tf.argmax(logits, -1, output_type=tf.int32)
  seconds, cpu, _ = measure.timed(argmax, inputs)
  return {'seconds_per_image': round(seconds / batch_size, 2),
          'cpu_seconds_per_image': round(cpu / batch_size, 2),
          'peak_resident_gb_so_far': measure.peak_resident_gb()}


def batch_sizes(text):
  return [int(b) for b in text.split(',') if b]


def core_section(model, config, precision, batches, repeats):
  """The core's figures in one precision: peaks, FLOPs, `batch_<B>`."""
  peak = measure.matmul_peak(dtype=precision)
  peak['dense_chain_gflops'] = dense_chain_peak(config.model.hidden_size,
                                                precision)
  functions = CoreFunctions(model)
  flops = functions.flops(train_step.random_inputs(config, 1),
                          sampler.Sampler(model))
  section = {'matmul_peak': peak,
             'gflop_per_image': {k: round(v / 1e9, 2)
                                 for k, v in flops.items()}}
  for batch in batches:
    section[f'batch_{batch}'] = time_core(functions, config, batch, repeats,
                                          flops, peak)
  return section


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--batches', default='1,8',
                      help='batch sizes of the encoder, forward pass and '
                      'fast (XLA) sampler')
  parser.add_argument('--repeats', type=int, default=2,
                      help='timed calls after the warm-up call (the best '
                      'counts)')
  parser.add_argument('--graph_batches', default='1',
                      help='batch sizes of the sampler without XLA ("" for '
                      'none)')
  parser.add_argument('--oracle_rows', type=int, default=2,
                      help='rows of the oracle to time (0: skip it)')
  parser.add_argument('--upsampler_batches', default='1,8',
                      help='batch sizes of the upsampler ("" for none)')
  parser.add_argument('--upsampler_eager_batches', default='1',
                      help='batch sizes of the upsampler\'s eager '
                      'whole-batch logits, the path sample took before its '
                      'per-map loop ("" for none; batch 8 needs about 40 GB)')
  parser.add_argument('--dtypes', default='float32',
                      help='comma-separated config.precision values, each '
                      'timed with the same weights: float32, bfloat16')
  parser.add_argument('--variant', default='', choices=('', 'small', 'tiny'),
                      help='config variant of the models (default: upstream '
                      'sizes)')
  parser.add_argument('--core_logdir', help='a core training run: its '
                      'averaged weights instead of random ones')
  parser.add_argument('--upsampler_logdir', help='an upsampler training '
                      'run: its averaged weights instead of random ones')
  args = parser.parse_args(argv)
  dtypes = args.dtypes.split(',')
  batches = batch_sizes(args.batches)
  up_batches = batch_sizes(args.upsampler_batches)
  cores = build_models('core', args.variant, dtypes, args.core_logdir)
  config, model = cores[dtypes[0]]
  report = {'device': 'CPU', 'cpus': os.cpu_count(),
            'tensorflow': tf.__version__,
            'hidden_size': config.model.hidden_size,
            'resolution': list(config.model.resolution),
            'timeline': config.timeline, 'n_channels': config.n_channels,
            'weights': {'core': args.core_logdir or 'random',
                        'upsampler': args.upsampler_logdir or 'random'},
            'load_average': [round(os.getloadavg()[0], 2)],
            'flops_method': measure.FLOPS_METHOD}
  for precision, (config, model) in cores.items():
    report[precision] = core_section(model, config, precision, batches,
                                     args.repeats)
  upsamplers = (build_models('upsampler', args.variant, dtypes,
                             args.upsampler_logdir)
                if up_batches or len(dtypes) > 1 else {})
  for precision, (config, model) in upsamplers.items():
    for batch in up_batches:
      report[precision][f'upsampler_batch_{batch}'] = time_upsampler(
          model, config, batch, report[precision]['matmul_peak'])
  if len(dtypes) > 1:
    report['agreement'] = {
        f'{precision}_vs_{dtypes[0]}': {
            'core': agreement(cores, dtypes[0], precision, batches[0],
                              lambda core: CoreFunctions(core).forward),
            'upsampler': agreement(upsamplers, dtypes[0], precision,
                                   batches[0], compiled_logits)}
        for precision in dtypes[1:]}
  config, model = cores[dtypes[0]]
  first = report[dtypes[0]]
  for batch in batch_sizes(args.graph_batches):
    first[f'graph_batch_{batch}'] = time_graph_sampler(model, config, batch)
  if args.oracle_rows:
    first['oracle_batch_1'] = time_oracle(model, config, args.oracle_rows)
    fast = first.get('batch_1', {}).get('sampler', {}).get(
        'seconds_per_image')
    if fast:
      first['speedup'] = round(
          first['oracle_batch_1']['seconds_per_image'] / fast, 1)
  for batch in batch_sizes(args.upsampler_eager_batches):
    config, model = (upsamplers or build_models(
        'upsampler', args.variant, dtypes[:1], args.upsampler_logdir))[
            dtypes[0]]
    first[f'upsampler_eager_batch_{batch}'] = time_upsampler_logits(
        model, config, batch)
  report['load_average'].append(round(os.getloadavg()[0], 2))
  print(json.dumps(report, indent=2))


if __name__ == '__main__':
  main()
