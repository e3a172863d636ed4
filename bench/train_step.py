"""Seconds per training step of the default models on the CPU.

  .venv/bin/python bench/train_step.py [--models core,upsampler] [--steps 3]

One step = forward + backward + RMSprop update on a batch of
`config.batch_size` (1) random examples, compiled with `tf.function`, once
without and once with `jit_compile=True` (XLA). Prints one JSON object:
per model the trainable parameter count and, per compile mode, the seconds
of the first call (tracing and compilation included) and the mean seconds of
the following steps; `best` names the faster mode.

The pieces are functions so that other benchmarks (e.g. steps/s through the
training loop of run.py) can reuse them.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # pylint: disable=g-import-not-at-top

import measure  # pylint: disable=g-import-not-at-top
import models  # pylint: disable=g-import-not-at-top
from configs import cloudtran_core_train  # pylint: disable=g-import-not-at-top
from configs import upsampler_train  # pylint: disable=g-import-not-at-top

CONFIGS = {
    'core': cloudtran_core_train.get_config,
    'upsampler': upsampler_train.get_config,
}


def random_inputs(config, batch_size, seed=0):
  """A batch with the keys of `models.zero_inputs`, random pixel values."""
  inputs = {}
  for index, (key, zeros) in enumerate(
      sorted(models.zero_inputs(config, batch_size).items())):
    high = (config.n_channels if key == 'channel_index' else
            2 if key.startswith('mask') else 256)
    inputs[key] = tf.random.stateless_uniform(
        zeros.shape, [seed, index], maxval=high, dtype=tf.int32)
  return inputs


def trainable_parameters(model):
  return int(sum(v.shape.num_elements() for v in model.trainable_variables))


def make_train_step(model, optimizer, jit_compile):
  """A compiled training step: loss, gradients and optimizer update."""

  @tf.function(jit_compile=jit_compile)
  def train_step(inputs):
    with tf.GradientTape() as tape:
      logits, aux = model.get_logits(inputs, training=True)
      total, _ = model.loss(inputs, logits, aux, training=True)
    grads = tape.gradient(total, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return total

  return train_step


def time_step(step, inputs, steps):
  """Seconds of the first call; mean seconds and CPU seconds of `steps`
  later calls (CPU seconds move less with the load of a shared machine)."""
  start = time.perf_counter()
  float(step(inputs))
  first = time.perf_counter() - start
  start, start_cpu = time.perf_counter(), measure.cpu_seconds()
  for _ in range(steps):
    float(step(inputs))
  return {'first_call_seconds': round(first, 3),
          'seconds_per_step': round((time.perf_counter() - start) / steps, 4),
          'cpu_seconds_per_step': round((measure.cpu_seconds() - start_cpu) / steps,
                                        4)}


def time_mode(config, inputs, steps, jit_compile):
  """(trainable parameters, timings) of a fresh model and optimizer.

  Everything is local, so the model and its compiled step are freed before
  the next mode is timed (the default upsampler peaks near 18 GB).
  """
  tf.keras.utils.set_random_seed(config.seed)
  model = models.build(config)
  optimizer = tf.keras.optimizers.RMSprop(config.optimizer.learning_rate)
  step = make_train_step(model, optimizer, jit_compile)
  return trainable_parameters(model), time_step(step, inputs, steps)


def bench_model(config, steps, jit_modes=(False, True)):
  """Parameter count and step times of the model of `config`."""
  inputs = random_inputs(config, config.batch_size)
  result = {'batch_size': config.batch_size}
  for jit_compile in jit_modes:
    params, timing = time_mode(config, inputs, steps, jit_compile)
    result['trainable_parameters'] = params
    result[f'jit_compile={jit_compile}'] = timing
  timed = [k for k in result if k.startswith('jit_compile=')]
  result['best'] = min(timed, key=lambda k: result[k]['seconds_per_step'])
  return result


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--models', default='core,upsampler',
                      help='comma-separated subset of: ' + ','.join(CONFIGS))
  parser.add_argument('--steps', type=int, default=3,
                      help='timed steps after the first call')
  args = parser.parse_args(argv)
  report = {'device': 'CPU', 'tensorflow': tf.__version__}
  for name in args.models.split(','):
    config = CONFIGS[name]('')
    report[name] = dict(
        hidden_size=config.model.hidden_size,
        resolution=list(config.model.resolution if name == 'core' else
                        config.resolution),
        timeline=config.timeline, n_channels=config.n_channels,
        **bench_model(config, args.steps))
  print(json.dumps(report, indent=2))


if __name__ == '__main__':
  main()
