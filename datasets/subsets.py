"""The subsets of a dataset, in one table.

What each subset means: docs/design.md, Subsets and reference dates.

Every part of the project that names a subset reads it here: the pipeline
(`get_dataset(config, batch_size, subset)`), the reference index and keep
rule of `selection`, the modes of `run.py` (`eval_<label>`) and `sample.py`
(`sample_<label>`), and `evaluate.py --subset=<label>`.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Subset:
  """What a subset is.

  name: the pipeline's name of the subset.
  label: its name in the commands' modes; `train` and `eval_train` share
    'train' (training reads one, evaluation and sampling the other).
  json_key: the key of a tile's reference index in `config.jsonf`.
  training: shuffled, repeated, random crops and channels, augmentation.
  clouds: the synthetic clouds multiplied into slot T-1: 'random' (a new
    draw each time, and one for each of slots 1..T-2), 'fixed' (one per
    tile, the same every pass) or '' (none).
  clear_reference: keep a tile only if its reference date is clear (it is
    then the truth to score against); otherwise only if it is not.
  """
  name: str
  label: str
  json_key: str
  training: bool
  clouds: str
  clear_reference: bool


SUBSETS = {s.name: s for s in (
    Subset('train', 'train', 'index', training=True, clouds='random',
           clear_reference=True),
    Subset('eval_train', 'train', 'index', training=False, clouds='fixed',
           clear_reference=True),
    Subset('valid', 'valid', 'val_index', training=False, clouds='fixed',
           clear_reference=True),
    Subset('test', 'test', 'test_index', training=False, clouds='',
           clear_reference=False),
)}
# The subsets evaluation and sampling read, by label.
EVALUATED = {s.label: s for s in SUBSETS.values() if not s.training}
# The labels of the evaluated subsets with a truth (a clear reference date).
WITH_TRUTH = tuple(label for label, s in EVALUATED.items()
                   if s.clear_reference)


def get(name):
  """The Subset called `name`; ValueError naming the choices otherwise."""
  if name not in SUBSETS:
    raise ValueError(f'subset must be one of {tuple(SUBSETS)}, got {name!r}.')
  return SUBSETS[name]


def modes(prefix):
  """{'<prefix>_<label>': Subset} of the evaluated subsets (command modes)."""
  return {f'{prefix}_{label}': s for label, s in EVALUATED.items()}
