"""`<logdir>/config.yaml`: the config a training run was made with.

Training writes it once the model is built and restored. A resumed run may
change only the keys in `FREE_KEYS` (how long to run, how often to save, how
to evaluate); any other change is refused unless allowed, and then the old
file is kept as `config-<step>.yaml`. Evaluation jobs read the run's
`max_train_steps` from it, and predict.py builds the run's model from it.
"""

import os

from absl import logging
import ml_collections
import tensorflow as tf
import yaml

FILE_NAME = 'config.yaml'
# Keys a resumed run may change freely (`precision` and `jit_compile` leave
# the variables and checkpoints as they are).
FREE_KEYS = ('max_train_steps', 'num_epochs', 'save_checkpoint_secs',
             'eval_num_examples', 'eval_batch_size',
             'eval_checkpoint_wait_secs', 'precision', 'jit_compile')
# Keys added to the configs after runs were started without them: a
# config.yaml that lacks one ran with this value (the behaviour before the
# key existed), so resuming with it is no change.
ADDED_KEYS = {'synthetic_clouds': 'dataset'}


def path_in(logdir):
  return os.path.join(logdir, FILE_NAME)


def _text(config):
  """config.yaml's text: values, not references (a derived reference holds a
  function that YAML cannot load back)."""
  return ml_collections.ConfigDict(config.to_dict()).to_yaml()


def flatten(tree, prefix=''):
  """{'a': {'b': 1}} -> {'a.b': 1}: nested config values by dotted key."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(flatten(value, f'{prefix}{key}.'))
    else:
      flat[prefix + key] = value
  return flat


class _Loader(yaml.SafeLoader):
  """Reads `ConfigDict.to_yaml()` as plain values, constructing no object."""


def _python_tag(loader, suffix, node):
  """ConfigDict -> its fields, FieldReference -> its value, tuple -> tuple,
  a name (a field's type) -> the name."""
  if isinstance(node, yaml.MappingNode):
    value = loader.construct_mapping(node, deep=True)
    if '_fields' in value:
      return value['_fields']
    return value.get('_value') if '_field_type' in value else value
  if isinstance(node, yaml.SequenceNode):
    return tuple(loader.construct_sequence(node, deep=True))
  return suffix


_Loader.add_multi_constructor('tag:yaml.org,2002:python/', _python_tag)


def _load(text):
  return flatten(yaml.load(text, Loader=_Loader) or {})


def load(logdir):
  """The run's config.yaml as a ConfigDict (plain values), or None."""
  path = path_in(logdir)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return ml_collections.ConfigDict(yaml.load(f.read(), Loader=_Loader))


def as_flat(config):
  """{dotted key: value} of `config` as config.yaml records it."""
  return _load(_text(config))


def read(logdir):
  """{dotted key: value} of the run's config.yaml, or None if it has none."""
  path = path_in(logdir)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return _load(f.read())


def changes(config, logdir):
  """['key: old -> new'] of the keys outside FREE_KEYS that differ."""
  old = read(logdir)
  if old is None:
    return []
  new = as_flat(config)
  old = {**{k: v for k, v in ADDED_KEYS.items() if k in new}, **old}
  return [f'{key}: {old.get(key)!r} -> {new.get(key)!r}'
          for key in sorted(old.keys() | new.keys())
          if key not in FREE_KEYS and old.get(key) != new.get(key)]


def check_resume(config, logdir, allow_change):
  """Refuses a resumed run whose config changed, unless `allow_change`.

  Returns the list of changes (empty when there are none).
  """
  changed = changes(config, logdir)
  if changed and not allow_change:
    shown = '; '.join(changed[:5]) + ('; ...' if len(changed) > 5 else '')
    raise ValueError(
        f'The config differs from {path_in(logdir)}, which this run was '
        f'started with ({shown}) — pass the same config to resume, '
        '--allow_config_change to resume anyway, or use another --logdir')
  return changed


def write(config, logdir, step, changed):
  """Writes config.yaml, keeping a changed old one as config-<step>.yaml."""
  path = path_in(logdir)
  if changed:
    kept = os.path.join(logdir, f'config-{step}.yaml')
    tf.io.gfile.rename(path, kept, overwrite=True)
    logging.warning('The config changed at step %d (%s); the old one is kept '
                    'as %s.', step, '; '.join(changed), kept)
  with tf.io.gfile.GFile(path, 'w') as f:
    f.write(_text(config))


def max_train_steps(config, logdir):
  """The training run's `max_train_steps`, from its config.yaml if written."""
  recorded = read(logdir)
  if recorded is None or 'max_train_steps' not in recorded:
    return config.max_train_steps
  return recorded['max_train_steps']
