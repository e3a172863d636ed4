r"""A residual CNN over the classical prior: the strongest simple learned fill.

  python -m tools.residual_cnn \
      --train_config configs/cloudtran_core_train.py:small \
      --valid_config configs/cloudtran_core_test.py:small \
      --steps 1000 --out runs/exp/residual_cnn.json

What a plain network learns over the classical fill the models start from
(`config.prior_fill`, given as `config.classical_prior`), in a point
estimate trained for it: a stack of dilated residual 3×3 convolutions at the
core's side (downsample_res) reads the input slots 1..T-1 of `targets` and
`mask`, the fill, and each date's difference from the fill where it is
clear; it outputs fill + a correction, trained with the squared error on the
target's cloudy pixels. Its last layer starts at zero, so the untrained
network is the fill to the bit. Every `--eval_every` steps it prints the
cloudy-pixel PSNR on the valid subset (per image, values / 255, as
`evaluate.py`) beside the fill's own, and writes the curve to `--out`
(JSON). If this network cannot move the fill, the transformer's prior head
is not what holds the models back (docs/beat_classical.md, Session 15).
"""

import json
import os
import time

from absl import flags
from ml_collections import config_flags
import numpy as np
import tensorflow as tf

from datasets import keys
from datasets import pipeline
from tools import learning_curve
from utils import cli
from utils import progress

# Dilations of the residual blocks: a receptive field of 79 px.
DILATIONS = (1, 2, 4, 8, 1, 2, 4, 8)
# The correction is the network's output times this, in values / 255.
SCALE = 0.1


def side_cubes(batch, config):
  """(features, fill) at the core's side, values / 255: the features are
  slots 1..T-1 of `targets` and `mask`, the fill, and each of those slots
  minus the fill where it is clear."""
  side = pipeline.prior_side(config)
  c = config.n_channels
  at = lambda key: tf.cast(batch[keys.at_side(key, side, config)], tf.float32)
  slots = at('targets')[..., c:] / 255.
  clear = at('mask')[..., 1:]
  fill = at('prior') / 255.
  shape = tf.concat([tf.shape(clear), [c]], 0)
  diff = (tf.reshape(slots, shape) - fill[..., None, :]) * clear[..., None]
  features = tf.concat(
      [slots, clear, fill, tf.reshape(diff, tf.shape(slots))], -1)
  return features, fill


def truth_and_cloudy(batch, config):
  """Slot 0 of `targets` (the truth, values / 255) and the target's cloudy
  pixels `(B, s, s, 1)` (1 = cloudy) at the core's side."""
  side = pipeline.prior_side(config)
  truth = batch[keys.at_side('targets', side, config)][..., :config.n_channels]
  clear = batch[keys.at_side('mask', side, config)][..., -1:]
  return (tf.cast(truth, tf.float32) / 255.,
          1. - tf.cast(clear, tf.float32))


def build(num_features, num_channels, width, seed):
  """The network: features `(B, s, s, F)` -> correction `(B, s, s, C)`."""
  init = lambda i: tf.keras.initializers.GlorotUniform(seed + i)
  inputs = tf.keras.Input((None, None, num_features))
  x = tf.keras.layers.Conv2D(width, 3, padding='same', activation='gelu',
                             kernel_initializer=init(0))(inputs)
  for i, dilation in enumerate(DILATIONS):
    y = tf.keras.layers.Conv2D(width, 3, padding='same',
                               dilation_rate=dilation, activation='gelu',
                               kernel_initializer=init(2 * i + 1))(x)
    y = tf.keras.layers.Conv2D(width, 3, padding='same',
                               kernel_initializer=init(2 * i + 2))(y)
    x = tf.keras.layers.Activation('gelu')(x + y)
  outputs = tf.keras.layers.Conv2D(num_channels, 1,
                                   kernel_initializer='zeros')(x)
  return tf.keras.Model(inputs, outputs)


def check_config(config, flag):
  if not config.classical_prior:
    raise ValueError(f'--{flag} has no classical prior: the network corrects '
                     f'one — set --{flag}.classical_prior=True.')


def cloudy_scores(model, batches, config):
  """(network, fill) cloudy-pixel PSNR over the images of `batches`
  (`learning_curve.cloudy_psnr`), the outputs rounded to 8-bit values as
  written."""
  outputs, fills, truths, clears = [], [], [], []
  for batch in batches:
    features, fill = side_cubes(batch, config)
    truth, cloudy = truth_and_cloudy(batch, config)
    output = fill + model(features, training=False) * SCALE
    for values, into in ((output, outputs), (fill, fills)):
      into.append(np.round(np.clip(values.numpy(), 0., 1.) * 255.))
    truths.append(truth.numpy() * 255.)
    clears.append(1. - cloudy.numpy()[..., 0])
  truth, clear = np.concatenate(truths), np.concatenate(clears)
  return tuple(learning_curve.cloudy_psnr(np.concatenate(v), truth, clear)
               for v in (outputs, fills))


def train(train_config, valid_config, steps, eval_every, batch_size, width,
          learning_rate, num_examples, seed):
  """Trains the network; yields (step, mean training loss in values², valid
  PSNR of the network, of the fill) every `eval_every` steps and at 0."""
  check_config(train_config, 'train_config')
  check_config(valid_config, 'valid_config')
  batches = list(pipeline.get_dataset(
      valid_config, min(num_examples, valid_config.eval_batch_size),
      'valid').take(-(-num_examples // valid_config.eval_batch_size)))
  features, _ = side_cubes(batches[0], valid_config)
  model = build(features.shape[-1], valid_config.n_channels, width, seed)
  optimizer = tf.keras.optimizers.Adam(
      tf.keras.optimizers.schedules.CosineDecay(learning_rate, steps))

  @tf.function
  def step(batch):
    features, fill = side_cubes(batch, train_config)
    truth, cloudy = truth_and_cloudy(batch, train_config)
    with tf.GradientTape() as tape:
      output = fill + model(features, training=True) * SCALE
      loss = tf.reduce_sum(tf.square(output - truth) * cloudy) / tf.maximum(
          tf.reduce_sum(cloudy) * train_config.n_channels, 1.)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  yield (0, None, *cloudy_scores(model, batches, valid_config))
  stream = iter(pipeline.get_dataset(train_config, batch_size, 'train'))
  losses = []
  for i in range(1, steps + 1):
    losses.append(float(step(next(stream))))
    if i % eval_every == 0 or i == steps:
      yield (i, float(np.mean(losses)) * 255. ** 2,
             *cloudy_scores(model, batches, valid_config))
      losses = []


def define_flags():
  """The command-line flags (defined only when run as a program, so that
  importing this module never clashes with another tool's flags)."""
  config_flags.DEFINE_config_file(
      'train_config', None, 'Training config of the core (`:small` for the '
      'recipe); overrides as --train_config.<key>=value.', lock_config=True)
  config_flags.DEFINE_config_file(
      'valid_config', None, 'Test config of the core: its valid subset is '
      'scored.', lock_config=True)
  flags.DEFINE_integer('steps', 1000, 'Training steps.', lower_bound=1)
  flags.DEFINE_integer('eval_every', 250, 'Steps between valid scores.',
                       lower_bound=1)
  flags.DEFINE_integer('batch_size', 16, 'Training batch size.',
                       lower_bound=1)
  flags.DEFINE_integer('width', 64, 'Channels of every convolution.',
                       lower_bound=1)
  flags.DEFINE_float('learning_rate', 1e-3, 'Adam\'s peak learning rate '
                     '(cosine decay to 0 over --steps).', lower_bound=0.)
  flags.DEFINE_integer('num_examples', 48, 'Valid examples scored.',
                       lower_bound=1)
  flags.DEFINE_integer('seed', 0, 'Seed of the weights.')
  flags.DEFINE_string('out', None, 'The curve (JSON).')
  flags.mark_flags_as_required(['train_config', 'valid_config', 'out'])


def main(argv):
  del argv
  f = flags.FLAGS
  start, rows = time.time(), []
  run = progress.Progress(f.steps)
  for step, loss, network, fill in train(
      f.train_config, f.valid_config, f.steps, f.eval_every, f.batch_size,
      f.width, f.learning_rate, f.num_examples, f.seed):
    elapsed = time.time() - start
    run.update(step)
    left = 'n/a' if run.eta is None else progress.format_duration(run.eta)
    rows.append(dict(step=step, train_loss=loss, network=network, fill=fill,
                     seconds=round(elapsed, 1)))
    loss_text = '' if loss is None else f'train loss {loss:.2f} (values²), '
    print(f'step {step}: {loss_text}valid cloudy pixels: network '
          f'{network:.2f} dB, fill {fill:.2f} dB ({network - fill:+.2f}); '
          f'{progress.format_duration(elapsed)} in, ETA {left}', flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(f.out)), exist_ok=True)
    with open(f.out, 'w') as out:
      json.dump(dict(steps=f.steps, width=f.width, batch_size=f.batch_size,
                     rows=rows), out, indent=1)
  print(f'Curve in {f.out}.')


if __name__ == '__main__':
  define_flags()
  cli.run(main)
