"""Steps/s through run.py's compiled training loop: the training figure of record.

  .venv/bin/python bench/train_loop.py [--models core,upsampler] \
      [--batches 1,8] [--devices 1] [--steps 3] [--variant small] \
      [--dtypes float32,bfloat16] [--jit_compile false,true]

Runs `jobs.train.make_train_loop`, the loop `run.py --mode=train`
compiles and calls once per summary period (forward, backward, RMSprop, EMA,
and the discriminator where the config enables it), on random in-memory
batches of the default (upstream-size) configs (`--variant small` or `tiny`
for those), `B` examples per replica for each `B` of `--batches`, in each
precision of `--dtypes` (`config.precision`) and each compile mode of
`--jit_compile` (`config.jit_compile`; default the config's). The loop is
called three times, as run.py does: a first call of one step (tracing
included, `first_call_seconds`), a second of one step, then `--steps` steps
timed (`steps_per_second`). A loop that works once and fails when called
again is reported as failing.

Each case, `batch_<B>_devices_<D>_<precision>_<plain|xla>`, runs in a child
process, so memory is freed between them and one that does not fit (the
upstream upsampler needs about 18 GB at batch 1) is reported as `failed`
without stopping the others.

Rates: `gflop_per_step` counts the matrix-product FLOPs of one model
training step (forward, backward, update; the discriminator not counted) in
XLA's optimized HLO at batch 1, times B (bench/hlo_flops.py); GFLOP/s and
their fraction of the `tf.matmul` peak in the case's precision measured at
the start of each round of the same run (`matmul_peak`, one per precision
per round), and the same per CPU second (moves less with a shared
machine's load). `--devices 2`
splits the CPU into two logical devices sharing the same cores: it shows the
overhead of mirroring, not a speed-up.

Side by side: `--trees` runs every case from each of several source trees
(e.g. an older commit unpacked with `git archive <commit> | tar -x -C DIR`),
and `--repeats` runs the whole list of cases that many times, alternating,
with the matmul peak measured again before each round, so old and new code
see the same load. Each result then also names its tree and round, and
`summary` gives per case the median CPU seconds and seconds per step and
the median fractions of peak.

bench/train_step.py times one compiled step alone; this loop is what
training runs, and the figure of record.
"""

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from utils import distribute  # pylint: disable=g-import-not-at-top

distribute.split_cpu(2)

import tensorflow as tf  # pylint: disable=g-import-not-at-top

import hlo_flops  # pylint: disable=g-import-not-at-top
import measure  # pylint: disable=g-import-not-at-top
import models  # pylint: disable=g-import-not-at-top
import train_step  # pylint: disable=g-import-not-at-top
from jobs import train  # pylint: disable=g-import-not-at-top


def step_flops(config):
  """Matrix-product FLOPs of one model training step at batch 1."""
  model = models.build(config)
  optimizer = tf.keras.optimizers.RMSprop(config.optimizer.learning_rate)
  step = train_step.make_train_step(model, optimizer, jit_compile=True)
  inputs = train_step.random_inputs(config, 1)
  return hlo_flops.dot_flops(
      step.experimental_get_compiler_ir(inputs)(stage='optimized_hlo'))


def time_loop(config, devices, steps):
  """Timings of the compiled loop on `devices` CPUs, called three times."""
  tf.keras.utils.set_random_seed(config.seed)
  strategy = distribute.make_strategy('CPU', devices)
  state = train.TrainState(config, strategy)
  batch = train_step.random_inputs(config, config.batch_size * devices)
  iterator = iter(strategy.experimental_distribute_dataset(
      tf.data.Dataset.from_tensors(batch).repeat()))
  loop = train.make_train_loop(state)
  start = time.perf_counter()
  float(loop(iterator, tf.constant(1))['loss'])
  first = time.perf_counter() - start
  float(loop(iterator, tf.constant(1))['loss'])
  start, start_cpu = time.perf_counter(), measure.cpu_seconds()
  float(loop(iterator, tf.constant(steps))['loss'])
  seconds, cpu = time.perf_counter() - start, measure.cpu_seconds() - start_cpu
  return {'first_call_seconds': round(first, 2),
          'steps_per_second': round(steps / seconds, 4),
          'seconds': seconds, 'cpu_seconds': cpu,
          'peak_resident_gb': measure.peak_resident_gb()}


def parse_bool(text):
  """'true'/'false' (any case) -> bool."""
  if text.lower() not in ('true', 'false'):
    raise argparse.ArgumentTypeError(f'{text!r} is not true or false')
  return text.lower() == 'true'


def child(args):
  """One measurement, printed as JSON: what the parent runs per case."""
  config = train_step.CONFIGS[args.models](args.variant)
  config.precision, config.jit_compile = args.precision_one, args.jit_one
  config.batch_size = args.batches_one
  result = time_loop(config, args.devices_one, args.steps)
  result['gflop_per_step'] = round(
      step_flops(config) * args.batches_one * args.devices_one / 1e9, 2)
  print(json.dumps(result))


def run_child(args, tree, model, batch, devices, precision, jit_compile):
  """Runs one case in a child process from the source tree `tree`; its
  result, or why it failed."""
  command = [sys.executable, os.path.join(tree, 'bench', 'train_loop.py'),
             '--child',
             '--models', model, '--batches_one', str(batch),
             '--devices_one', str(devices), '--steps', str(args.steps),
             '--variant', args.variant, '--precision_one', precision,
             '--jit_one', str(jit_compile)]
  load = os.getloadavg()[0]
  done = subprocess.run(command, capture_output=True, text=True, check=False,
                        cwd=tree)
  if done.returncode:
    tail = (done.stderr.strip().splitlines() or ['(no output)'])[-1]
    why = ('killed by signal %d (out of memory?)' % -done.returncode
           if done.returncode < 0 else tail[:300])
    return {'failed': why}
  result = json.loads(done.stdout.strip().splitlines()[-1])
  result['load_average'] = [round(load, 2), round(os.getloadavg()[0], 2)]
  return result


def with_rates(result, steps, peak):
  """`result` with seconds and CPU seconds per step and the rates of
  `measure.rates` against `peak`."""
  seconds, cpu = result.pop('seconds'), result.pop('cpu_seconds')
  result['seconds_per_step'] = round(seconds / steps, 3)
  result['cpu_seconds_per_step'] = round(cpu / steps, 3)
  result.update(measure.rates(result['gflop_per_step'] * 1e9 * steps,
                              seconds, cpu, peak))
  return result


def summary(results):
  """Median per-step seconds, CPU seconds and fractions of peak of the
  results that did not fail."""
  good = [r for r in results if 'failed' not in r]
  if not good:
    return {'failed': len(results)}
  return {key: round(statistics.median(r[key] for r in good), 3)
          for key in ('seconds_per_step', 'cpu_seconds_per_step',
                      'fraction_of_peak', 'fraction_of_peak_per_cpu_second')}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--models', default='core,upsampler',
                      help='comma-separated subset of: ' + ','.join(
                          train_step.CONFIGS))
  parser.add_argument('--batches', default='1,8',
                      help='examples per replica, comma-separated')
  parser.add_argument('--devices', default='1',
                      help='logical CPU devices, comma-separated (1,2)')
  parser.add_argument('--steps', type=int, default=3,
                      help='steps of the timed (third) loop call')
  parser.add_argument('--variant', default='', choices=('', 'small', 'tiny'),
                      help='config variant (default: upstream sizes)')
  parser.add_argument('--dtypes', default='float32',
                      help='config.precision values, comma-separated '
                      '(float32,bfloat16)')
  parser.add_argument('--jit_compile', default=None,
                      help='config.jit_compile values, comma-separated '
                      '(false,true); default the config\'s')
  parser.add_argument('--trees', default=ROOT,
                      help='source trees to run every case from, '
                      'comma-separated (default this one)')
  parser.add_argument('--repeats', type=int, default=1,
                      help='rounds of all the cases, alternating')
  parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
  parser.add_argument('--batches_one', type=int, help=argparse.SUPPRESS)
  parser.add_argument('--devices_one', type=int, help=argparse.SUPPRESS)
  parser.add_argument('--precision_one', help=argparse.SUPPRESS)
  parser.add_argument('--jit_one', type=parse_bool, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.child:
    return child(args)
  if args.repeats < 1 or args.steps < 1:
    parser.error('--repeats and --steps must be at least 1')
  trees = [os.path.abspath(tree) for tree in args.trees.split(',')]
  missing = [tree for tree in trees if not os.path.isfile(
      os.path.join(tree, 'bench', 'train_loop.py'))]
  if missing:
    parser.error(f'{", ".join(missing)} has no bench/train_loop.py')
  dtypes = args.dtypes.split(',')
  jit_modes = ([None] if args.jit_compile is None else
               [parse_bool(mode) for mode in args.jit_compile.split(',')])
  report = {'device': 'CPU', 'cpus': os.cpu_count(),
            'tensorflow': tf.__version__, 'variant': args.variant,
            'load_average': [round(os.getloadavg()[0], 2)],
            'matmul_peak': [], 'flops_method': measure.FLOPS_METHOD}
  cases = []
  for model in args.models.split(','):
    config = train_step.CONFIGS[model](args.variant)
    report[model] = {'hidden_size': config.model.hidden_size,
                     'use_discriminator': config.use_discriminator}
    for batch, devices, precision, jit_compile, tree in itertools.product(
        args.batches.split(','), args.devices.split(','), dtypes, jit_modes,
        trees):
      jit_compile = config.jit_compile if jit_compile is None else jit_compile
      name = (f'batch_{batch}_devices_{devices}_{precision}_'
              f'{"xla" if jit_compile else "plain"}')
      if len(trees) > 1:
        name += f'_tree_{trees.index(tree)}'
      cases.append((model, name, (tree, model, int(batch), int(devices),
                                  precision, jit_compile)))
  for round_index in range(args.repeats):
    peaks = {precision: measure.matmul_peak(dtype=precision)
             for precision in dtypes}
    report['matmul_peak'].append(peaks)
    for model, name, case in cases:
      result = run_child(args, *case)
      if 'failed' not in result:
        with_rates(result, args.steps, peaks[case[4]])
      if args.repeats == 1 and len(trees) == 1:
        report[model][name] = result
      else:
        result.update(tree=case[0], round=round_index)
        report[model].setdefault(name, []).append(result)
  if args.repeats > 1 or len(trees) > 1:
    report['summary'] = {f'{model} {name}': summary(report[model][name])
                         for model, name, _ in cases}
  report['load_average'].append(round(os.getloadavg()[0], 2))
  print(json.dumps(report, indent=2))


if __name__ == '__main__':
  main()
