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
the start of the same run (`matmul_peak`, one per precision), and the same
per CPU second (moves less with a shared machine's load). `--devices 2`
splits the CPU into two logical devices sharing the same cores: it shows the
overhead of mirroring, not a speed-up.

bench/train_step.py times one compiled step alone; this loop is what
training runs, and the figure of record.
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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


def run_child(args, model, batch, devices, precision, jit_compile):
  """Runs one case in a child process; its result, or why it failed."""
  command = [sys.executable, os.path.abspath(__file__), '--child',
             '--models', model, '--batches_one', str(batch),
             '--devices_one', str(devices), '--steps', str(args.steps),
             '--variant', args.variant, '--precision_one', precision,
             '--jit_one', str(jit_compile)]
  done = subprocess.run(command, capture_output=True, text=True, check=False)
  if done.returncode:
    tail = (done.stderr.strip().splitlines() or ['(no output)'])[-1]
    why = ('killed by signal %d (out of memory?)' % -done.returncode
           if done.returncode < 0 else tail[:300])
    return {'failed': why}
  return json.loads(done.stdout.strip().splitlines()[-1])


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
  parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
  parser.add_argument('--batches_one', type=int, help=argparse.SUPPRESS)
  parser.add_argument('--devices_one', type=int, help=argparse.SUPPRESS)
  parser.add_argument('--precision_one', help=argparse.SUPPRESS)
  parser.add_argument('--jit_one', type=parse_bool, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.child:
    return child(args)
  dtypes = args.dtypes.split(',')
  jit_modes = ([None] if args.jit_compile is None else
               [parse_bool(mode) for mode in args.jit_compile.split(',')])
  report = {'device': 'CPU', 'cpus': os.cpu_count(),
            'tensorflow': tf.__version__, 'variant': args.variant,
            'load_average': [round(os.getloadavg()[0], 2)],
            'matmul_peak': {precision: measure.matmul_peak(dtype=precision)
                            for precision in dtypes},
            'flops_method': measure.FLOPS_METHOD}
  for model in args.models.split(','):
    config = train_step.CONFIGS[model](args.variant)
    report[model] = {'hidden_size': config.model.hidden_size,
                     'use_discriminator': config.use_discriminator}
    for batch in args.batches.split(','):
      for devices in args.devices.split(','):
        for precision in dtypes:
          for jit_compile in jit_modes:
            jit_compile = (config.jit_compile if jit_compile is None
                           else jit_compile)
            result = run_child(args, model, int(batch), int(devices),
                               precision, jit_compile)
            if 'failed' not in result:
              result.update(measure.rates(
                  result['gflop_per_step'] * 1e9 * args.steps,
                  result.pop('seconds'), result.pop('cpu_seconds'),
                  report['matmul_peak'][precision]))
            mode = 'xla' if jit_compile else 'plain'
            report[model][f'batch_{batch}_devices_{devices}_{precision}_'
                          f'{mode}'] = result
  report['load_average'].append(round(os.getloadavg()[0], 2))
  print(json.dumps(report, indent=2))


if __name__ == '__main__':
  main()
