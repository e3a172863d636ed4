r"""Imports a checkpoint of the original CloudTran into this project's layout.

  python -m tools.import_original \
      --original_ckpt $ORIGINAL_LOGDIR --config ./configs/cloudtran_core_test.py \
      --logdir $OUT [--original_disc_ckpt $DISC_CHKPT_DIR]

The original's `run.py` saves a `tf.train.Checkpoint` whose entries are the
model's variables keyed by their Keras names (`cloud_tran_core/outer_decoder/
conditional_layer_norm_3/dense_21/kernel:0`), their exponential moving
averages (`.../kernel/ExponentialMovingAverage:0`) and the optimizer (not
imported). Keras numbers layer names by creation order, and some weights (the
feed-forward layers, the `conv` aggregation's Conv3D) carry no parent scope,
so names are matched by structure: every numbered name is replaced by its
rank among its siblings of the same kind (`dense_21` -> `dense`, the first
dense of its norm), and the weights without scope are taken in the order the
original creates them. The discriminator comes from the separate checkpoint
the original's `disc.py` writes; its weights are matched in layer order.

Every variable on both sides must be used exactly once with equal shapes.
Before anything is written, the first one that is not (missing, left over,
of another shape) stops the import with the one line the other commands
give for a checkpoint that does not fit (`checkpoints.refuse_misfit`): it
names the config keys that differ from the original run's config.yaml
(beside its checkpoints, as the original's run.py writes it) and the fix.
The output, `<logdir>/model-<step>` with `model`, `ema` (and
`discriminator`), is read by `run.py --pretrain_dir`, `sample.py --logdir`
and hence `evaluate.py`.

Import cores with `config.model.decoder.cond_ln_sampling='row'` to sample as the
original did (docs/differences.md).
"""

import collections
import os
import re

from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

from jobs import checkpoints
import models
from models import layers
from utils import cli
from utils import ema as ema_lib

VALUE_SUFFIX = '/.ATTRIBUTES/VARIABLE_VALUE'
EMA_SUFFIX = '/ExponentialMovingAverage'
# Keras scope of the original's models.
SCOPES = {'cloudtran_core': 'cloud_tran_core', 'upsampler': 'upsampler'}


def _unescape(key):
  """Object-graph key -> attribute name ('.S' is '/', '..' is '.')."""
  return re.sub(r'\.([S.])', lambda m: '/' if m.group(1) == 'S' else '.', key)


def _split_counter(component):
  """('dense', 21) for 'dense_21', ('dense', 0) for 'dense'."""
  match = re.fullmatch(r'(.*?)_(\d+)', component)
  if match:
    return match.group(1), int(match.group(2))
  return component, 0


def structural_names(names):
  """Maps Keras variable names to names independent of creation counters.

  Each scope component is replaced by its base name and its rank (by Keras
  counter) among the components of the same base under the same (already
  structural) parent: `base` for the first, `base#k` for the k-th. The last
  component, the weight's own name, is kept.
  """
  parts = {name: name.split('/') for name in names}
  structural = {name: [] for name in names}
  depth = max((len(p) for p in parts.values()), default=0)
  for level in range(depth - 1):
    siblings = collections.defaultdict(set)
    for name, path in parts.items():
      if level < len(path) - 1:
        base = _split_counter(path[level])[0]
        siblings[(tuple(structural[name]), base)].add(path[level])
    for name, path in parts.items():
      if level < len(path) - 1:
        base = _split_counter(path[level])[0]
        ranked = sorted(siblings[(tuple(structural[name]), base)],
                        key=lambda c: _split_counter(c)[1])
        rank = ranked.index(path[level])
        structural[name].append(f'{base}#{rank}' if rank else base)
  return {name: '/'.join(structural[name] + [parts[name][-1]])
          for name in names}


def read_original(path):
  """The model weights, EMA averages and step of an original checkpoint.

  Returns ({structural name: (Keras name, array)} of the weights, the same
  for the averages (keyed by the weight's structural name), step). Optimizer
  entries are skipped.
  """
  reader = tf.train.load_checkpoint(path)
  weights, averages, step = {}, {}, 0
  for key in reader.get_variable_to_shape_map():
    if not key.endswith(VALUE_SUFFIX) or '.OPTIMIZER_SLOT' in key:
      continue
    name = _unescape(key[:-len(VALUE_SUFFIX)])
    if name.startswith('optimizer/'):
      if name.split('/')[-1] in ('_iterations', 'iter'):
        step = int(reader.get_tensor(key))
      continue
    if name == 'save_counter':
      continue
    name = name.removesuffix(':0')
    if name.endswith(EMA_SUFFIX):
      averages[name[:-len(EMA_SUFFIX)]] = reader.get_tensor(key)
    else:
      weights[name] = reader.get_tensor(key)
  stray = sorted(set(averages) - set(weights))
  if stray:
    raise ValueError(f'{path}: moving averages without their weight: {stray}.')
  structural = structural_names(weights)
  return ({structural[n]: (n, weights[n]) for n in weights},
          {structural[n]: (n, averages[n]) for n in averages}, step)


class Mapping:
  """Pairs of (original structural name, variable of this project's model)."""

  def __init__(self):
    self.pairs = []
    # How many unscoped original layers of each kind are mapped so far.
    self._orphans = collections.defaultdict(int)
    # Frozen original weights this project does not have: name -> value
    # they must hold.
    self.fixed = {}

  def add(self, name, variable):
    self.pairs.append((name, variable))

  def dense(self, name, layer):
    """A Keras Dense (kernel, and bias when it has one)."""
    self.add(f'{name}/kernel', layer.kernel)
    if layer.bias is not None:
      self.add(f'{name}/bias', layer.bias)

  def orphan(self, kind):
    """Name of the next unscoped original layer of `kind` (creation order)."""
    rank = self._orphans[kind]
    self._orphans[kind] += 1
    return f'{kind}#{rank}' if rank else kind

  def feed_forward(self, feed_forward):
    self.dense(self.orphan('dense'), feed_forward.hidden)
    self.dense(self.orphan('dense'), feed_forward.output_dense)

  def layer_norm(self, name, layer):
    self.add(f'{name}/gamma', layer.gamma)
    self.add(f'{name}/beta', layer.beta)

  def position(self, name, layer):
    for axis, table in enumerate(layer.tables):
      self.add(f'{name}/position_embedding_{axis}', table)

  def attention(self, name, layer):
    """SelfAttentionND: q, k, v, output, relative bias, conditioning."""
    for part, weight in (('q', layer.q_kernel), ('k', layer.k_kernel),
                         ('v', layer.v_kernel), ('output', layer.output_kernel),
                         ('cond_q', layer.cond_q_kernel),
                         ('cond_k', layer.cond_k_kernel),
                         ('cond_v', layer.cond_v_kernel)):
      if weight is not None:
        self.add(f'{name}/{part}/kernel', weight)
    # Upstream names the bias after the attended axis of (rows, columns).
    self.add(f'{name}/relative_attention_bias_{int(layer.axis == "row")}',
             layer.relative_bias)

  def norm(self, scope, index, norm):
    """The index-th norm of a decoder: conditional or plain."""
    if isinstance(norm, layers.ConditionalLayerNorm):
      name = _ranked('conditional_layer_norm', index, scope)
      self.dense(f'{name}/dense', norm.project)
      if norm.spatial_weights is not None:
        self.add(f'{name}/spatial_average', norm.spatial_weights)
      # Upstream's normalisation has a frozen gain and bias (ones, zeros).
      self.fixed[f'{name}/normalize/gamma'] = 1.0
      self.fixed[f'{name}/normalize/beta'] = 0.0
    else:
      self.layer_norm(_ranked('layer_normalization', index, scope),
                      norm.norm)


def _ranked(base, rank, parent):
  return f'{parent}/{base}#{rank}' if rank else f'{parent}/{base}'


def _post_norm_blocks(mapping, blocks, attention_base, scope):
  """Unconditioned (attention, norm, feed-forward, norm) blocks in order."""
  for index, (attention, attention_norm, feed_forward, ff_norm) in enumerate(
      blocks):
    mapping.attention(_ranked(attention_base, index, scope), attention)
    mapping.layer_norm(_ranked('layer_normalization', 2 * index, scope),
                       attention_norm)
    mapping.feed_forward(feed_forward)
    mapping.layer_norm(_ranked('layer_normalization', 2 * index + 1, scope),
                       ff_norm)


def _axial_encoder(mapping, scope, encoder):
  """FactorizedAttention: position, then per sub-layer attention and norms."""
  name = f'{scope}/factorized_attention'
  mapping.position(f'{name}/position_embed', encoder.position)
  _post_norm_blocks(mapping, encoder.blocks, 'self_attention_nd', name)


def _decoder(mapping, scope, decoder, attention_names, mlp_names):
  """Outer or inner decoder; names are per block (row/column alternate)."""
  mapping.position(f'{scope}/position_embed', decoder.position)
  per_layer = len(attention_names)
  for index, block in enumerate(decoder.blocks):
    attention, attention_norm, feed_forward, cond_mlp, ff_norm = block
    layer, kind = divmod(index, per_layer)
    mapping.attention(_ranked(attention_names[kind], layer, scope),
                      attention)
    mapping.norm(scope, 2 * index, attention_norm)
    mapping.feed_forward(feed_forward)
    prefix = 'shift' if cond_mlp.mode == 'shift' else 'affine'
    mapping.dense(_ranked(f'{prefix}_{mlp_names[kind]}', layer, scope),
                  cond_mlp.project)
    mapping.norm(scope, 2 * index + 1, ff_norm)


def core_mapping(model):
  """Mapping of a `CloudTranCore`, in the original's creation order."""
  mapping = Mapping()
  scope = SCOPES['cloudtran_core']
  encoder = model.encoder
  enc = f'{scope}/timeseries_encoder'
  mapping.dense(f'{scope}/dense', model.pixel_embedding)
  mapping.dense(f'{enc}/dense', encoder.embedding)
  if encoder.aggregation != 'sum':
    mapping.position(f'{enc}/position_embed', encoder.temporal_position)
  if encoder.aggregation == 'attention':
    _post_norm_blocks(mapping, encoder.temporal_blocks, 'unmask_temp_att',
                      enc)
    mapping.add(f'{enc}/aggregate/kernel', encoder.contraction)
  elif encoder.aggregation == 'conv':
    mapping.dense(mapping.orphan('conv3d'), encoder.time_hidden)
    mapping.dense(mapping.orphan('conv3d'), encoder.time_output)
  _axial_encoder(mapping, enc, encoder.encoder)
  _decoder(mapping, f'{scope}/outer_decoder', model.outer_decoder,
           ('unmask_row_att', 'mask_col_att'), ('r', 'c'))
  _decoder(mapping, f'{scope}/inner_decoder', model.inner_decoder,
           ('mask_row_att',), ('c',))
  mapping.layer_norm(f'{scope}/layer_normalization', model.final_norm)
  mapping.dense(f'{scope}/auto_logits', model.final_dense)
  if model.parallel_head is not None:
    mapping.dense(f'{scope}/parallel_logits', model.parallel_head)
  return mapping


def upsampler_mapping(model):
  """Mapping of an `Upsampler`: channel, time, input and final denses."""
  mapping = Mapping()
  scope = SCOPES['upsampler']
  mapping.dense(f'{scope}/dense', model.channel_embedding)
  mapping.dense(f'{scope}/dense#1', model.time_embedding)
  mapping.dense(f'{scope}/dense#2', model.input_dense)
  mapping.dense(f'{scope}/dense#3', model.final_dense)
  _axial_encoder(mapping, scope, model.encoder)
  return mapping


def _fit(value, variable):
  """value reshaped to the variable's shape when only unit axes differ."""
  shape = tuple(variable.shape)
  squeezed = tuple(s for s in value.shape if s != 1)
  if value.shape != shape and squeezed == tuple(s for s in shape if s != 1):
    return value.reshape(shape)
  return value


def misfit(mapping, weights):
  """The first difference between the original's weights and the model's
  variables they map to, as one phrase, or None when every name and shape
  is in place: a weight the model needs and the checkpoint lacks, one of
  another shape, or one the model has no place for."""
  for name, variable in mapping.pairs:
    if name not in weights:
      return f'{variable.path}: not in the checkpoint (as {name})'
    value = weights[name][1]
    if tuple(_fit(value, variable).shape) != tuple(variable.shape):
      return (f'{weights[name][0]}: {value.shape} in the checkpoint, '
              f'{tuple(variable.shape)} in the model')
  absent = sorted(set(mapping.fixed) - set(weights))
  if absent:
    return f'{absent[0]}: not in the checkpoint'
  unused = sorted(set(weights) - {n for n, _ in mapping.pairs} -
                  set(mapping.fixed))
  if unused:
    more = f' (and {len(unused) - 1} more)' if len(unused) > 1 else ''
    return f'{weights[unused[0]][0]}: in the checkpoint, not in the model{more}'
  return None


def match(mapping, weights, averages, model):
  """{id(variable): (value, average or None)} for every model variable, once
  `misfit` found every name and shape in place.

  Raises one ValueError listing what is still wrong: names mapped twice or
  model variables not set (the mapping's faults), frozen weights that are
  not at their fixed value, weights without moving average.
  """
  seen = collections.Counter(name for name, _ in mapping.pairs)
  problems = [f'mapped twice: {n}' for n, k in seen.items() if k > 1]
  values = {
      id(variable): (_fit(weights[name][1], variable),
                     _fit(averages[name][1], variable) if name in averages
                     else None)
      for name, variable in mapping.pairs}
  for name, expected in mapping.fixed.items():
    if not np.all(weights[name][1] == expected):
      problems.append(f'{weights[name][0]} must be all {expected} (this '
                      'project has no such weight)')
  mapped = {id(v) for _, v in mapping.pairs}
  problems += [f'variable not set: {v.path}' for v in model.variables
               if id(v) not in mapped]
  missing_averages = sorted(n for n, _ in mapping.pairs
                            if averages and n not in averages)
  problems += [f'no moving average in the original: {weights[n][0]}'
               for n in missing_averages]
  if problems:
    raise ValueError(f'The original checkpoint does not fit this {model.name} '
                     '(check the config: sizes, layers, aggregation, '
                     'conditioning):\n  ' + '\n  '.join(problems))
  return values


def disc_weights(path):
  """The weights of an original `disc.py` checkpoint, unsorted.

  Returns (layer order, weight name, key, array) tuples; the layer order is
  the tuple of `layer_with_weights-<i>` indices (nested in the Sequential
  blocks).
  """
  reader = tf.train.load_checkpoint(path)
  found = []
  for key in reader.get_variable_to_shape_map():
    if not (key.startswith('discriminator/') and key.endswith(VALUE_SUFFIX)):
      continue
    if '.OPTIMIZER_SLOT' in key:
      continue
    path_parts = key[:-len(VALUE_SUFFIX)].split('/')[1:]
    order = tuple(int(p.split('-')[1]) for p in path_parts
                  if p.startswith('layer_with_weights-'))
    found.append((order, path_parts[-1], key, reader.get_tensor(key)))
  return found


# Order of a layer's weights in Keras (kernel, bias; BN gamma, beta, means).
_WEIGHT_ORDER = ('kernel', 'bias', 'gamma', 'beta', 'moving_mean',
                 'moving_variance')


def load_discriminator(discriminator, path):
  """Assigns an original discriminator checkpoint; ValueError on mismatch."""
  found = disc_weights(path)
  found.sort(key=lambda f: (f[0], _WEIGHT_ORDER.index(f[1])
                            if f[1] in _WEIGHT_ORDER else len(_WEIGHT_ORDER)))
  targets = discriminator.weights
  problems = []
  if len(found) != len(targets):
    problems.append(f'{len(found)} weights in {path}, {len(targets)} in the '
                    'discriminator')
  for (_, _, key, value), variable in zip(found, targets):
    if tuple(value.shape) != tuple(variable.shape):
      problems.append(f'shape {key} {value.shape} != {variable.path} '
                      f'{tuple(variable.shape)}')
  if problems:
    raise ValueError('The original discriminator checkpoint does not fit:\n  '
                     + '\n  '.join(problems))
  for (_, _, _, value), variable in zip(found, targets):
    variable.assign(value)


def _latest(path, what):
  """A checkpoint prefix from a prefix or a directory."""
  if tf.io.gfile.isdir(path):
    latest = tf.train.latest_checkpoint(path)
    if latest is None:
      raise FileNotFoundError(f'{what}: no checkpoint in {path}.')
    return latest
  return path


def import_checkpoint(config, original_ckpt, logdir, original_disc_ckpt=None):
  """Writes `<logdir>/model-<step>` from an original checkpoint.

  Args:
    config: this project's config of the same model (sizes, layers,
      aggregation and conditioning as the original run).
    original_ckpt: the original run's logdir or checkpoint prefix.
    logdir: output directory; must hold no checkpoint yet.
    original_disc_ckpt: optional original discriminator checkpoint (directory
      or prefix), written as `discriminator`.

  Returns:
    The path of the written checkpoint.
  """
  if tf.train.latest_checkpoint(logdir):
    raise FileExistsError(f'{logdir} already holds a checkpoint; import into '
                          'an empty directory.')
  path = _latest(original_ckpt, '--original_ckpt')
  weights, averages, step = read_original(path)
  model = models.build(config)
  name = config.model.name
  mapping = (core_mapping if name == 'cloudtran_core'
             else upsampler_mapping)(model)
  mismatch = misfit(mapping, weights)
  if mismatch:
    checkpoints.refuse_misfit(path, mismatch, config)
  values = match(mapping, weights, averages, model)
  for variable in model.variables:
    variable.assign(values[id(variable)][0])
  ema = ema_lib.ExponentialMovingAverage(model.trainable_variables,
                                         config.polyak_decay)
  if not averages:
    logging.warning('%s has no moving averages: the EMA starts at the '
                    'weights.', path)
  for shadow, variable in zip(ema.shadows, model.trainable_variables):
    average = values[id(variable)][1]
    if average is not None:
      shadow.assign(average)
  parts = dict(model=model, ema=ema)
  if original_disc_ckpt:
    discriminator = models.build_discriminator(config)
    load_discriminator(discriminator,
                       _latest(original_disc_ckpt, '--original_disc_ckpt'))
    parts['discriminator'] = discriminator
  manager = tf.train.CheckpointManager(
      tf.train.Checkpoint(**parts), logdir,
      checkpoint_name=checkpoints.CHECKPOINT_NAME, max_to_keep=1)
  written = manager.save(checkpoint_number=step)
  logging.info('Imported %d variables (%d averages) of %s into %s.',
               len(mapping.pairs), len(averages), path, written)
  return written


def define_flags():
  """The command line's flags (defined only when run as a program)."""
  cli.define_config('This project\'s config of the same model as the '
                    'original run (e.g. configs/cloudtran_core_test.py with '
                    'the same MODEL_SIZE and overrides).')
  flags.DEFINE_string('original_ckpt', None, 'Logdir (or checkpoint prefix) '
                      'of the original run.py.')
  flags.DEFINE_string('original_disc_ckpt', None, 'Optional: directory (or '
                      'prefix) of the original disc.py checkpoint.')
  cli.define_logdir('Output directory (empty).')
  flags.mark_flag_as_required('original_ckpt')


def main(_):
  f = flags.FLAGS
  written = import_checkpoint(f.config, f.original_ckpt,
                              os.path.abspath(f.logdir), f.original_disc_ckpt)
  logging.info('Wrote %s.', written)


if __name__ == '__main__':
  define_flags()
  cli.run(main)
