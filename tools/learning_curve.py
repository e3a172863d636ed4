r"""Learning curves: training loss and valid cloudy-pixel PSNR against step.

  python -m tools.learning_curve \
      --core_config configs/cloudtran_core_test.py:small --core_logdir runs/small/core \
      --upsampler_config configs/upsampler_test.py:small \
      --upsampler_logdir runs/small/upsampler --out runs/small/learning_curve.png

Top row: the training loss (bits/dim) of each run, read from its
`train_summaries` TensorBoard events. Bottom row: the PSNR (dB, values / 255)
on the target's cloudy pixels of the first `--num_examples` examples of the
valid subset, for each checkpoint the run kept: the core's parallel head and
its autoregressive (argmax) output at downsample_res, the upsampler's output
at resolution (fed the low-resolution truth, as when `sample.gen_data_dir`
is unset). Scores are cached per run in `<logdir>/learning_curve_valid.json`,
so a second call scores only new checkpoints. A dashed red line marks the
best classical fill (`evaluation/baselines.py`, from the uncorrected inputs)
on the same examples at the same side: the bar a model has to clear.
"""

import glob
import json
import os

from absl import flags
import matplotlib
from ml_collections import config_flags
import numpy as np
import tensorflow as tf

from datasets import keys
from datasets import pipeline
from evaluation import metrics
from jobs import checkpoints
from jobs import evaluate
from utils import cli

matplotlib.use('Agg')
from matplotlib import pyplot  # pylint: disable=g-import-not-at-top,wrong-import-position

CACHE = 'learning_curve_valid.json'
# Legend of a scored method where its key alone would mislead.
LABELS = {'output': 'output (fed the low-res truth)'}


def scalars(event_dir, tag):
  """(steps, values) of scalar `tag` in every event file of `event_dir`,
  sorted by step (the last value written wins for a repeated step)."""
  found = {}
  for path in sorted(glob.glob(os.path.join(event_dir, 'events.*'))):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == tag:
          found[event.step] = float(
              tf.make_ndarray(value.tensor) if value.HasField('tensor')
              else value.simple_value)
  steps = sorted(found)
  return steps, [found[s] for s in steps]


def cloudy_psnr(outputs, truth, target_clear):
  """Mean over images of the protocol's PSNR (`metrics.psnr01`, values /
  255) on the cloudy pixels (target_clear == 0); images without a cloudy
  pixel are left out (None if none has one)."""
  masks = metrics.split_masks(target_clear)
  return metrics.average(metrics.psnr01(
      metrics.to_unit(outputs), metrics.to_unit(truth),
      masks[metrics.CLOUDY]))


def score_checkpoints(logdir, scorer):
  """{step: {method: PSNR}} of every checkpoint kept in `logdir`, from the
  cache where scored before; `scorer(path)` scores the others."""
  cache_path = os.path.join(logdir, CACHE)
  scores = {}
  if os.path.exists(cache_path):
    with open(cache_path) as f:
      scores = {int(k): v for k, v in json.load(f).items()}
  for path in checkpoints.saved_paths(logdir):
    step = checkpoints.step_of(path)
    if step not in scores:
      scores[step] = scorer(path)
      with open(cache_path + '.tmp', 'w') as f:
        json.dump(scores, f, indent=1)
      os.replace(cache_path + '.tmp', cache_path)
  return dict(sorted(scores.items()))


def model_scorer(config, num_examples):
  """scorer(path) -> {method: cloudy PSNR} of `config`'s model with the
  averaged weights of checkpoint `path` on the valid subset."""
  averaged = checkpoints.AveragedModel(config)
  model = averaged.model
  batches = list(pipeline.get_dataset(
      config, min(num_examples, config.eval_batch_size), 'valid').take(
          -(-num_examples // config.eval_batch_size)))
  methods = {'parallel': True, 'autoregressive': False} if (
      model.autoregressive) else {'output': True}
  c = config.n_channels

  def score(path):
    averaged.restore(path)
    result = {}
    for method, only_parallel in methods.items():
      outputs, truth, clear = [], [], []
      for batch in batches:
        output = model.sample(batch, only_parallel=only_parallel)['output']
        side = output.shape[1]
        outputs.append(output.numpy())
        truth.append(batch[keys.at_side('targets', side, config)][..., :c])
        clear.append(batch[keys.at_side('mask', side, config)][..., -1])
      result[method] = cloudy_psnr(*(np.concatenate(a)[:num_examples]
                                     for a in (outputs, truth, clear)))
    return result

  return score


def best_classical(config, num_examples, side):
  """(name, cloudy PSNR) of the best classical fill on the first
  `num_examples` valid examples at `side`, from the inputs as they are
  (config.context_correction aside); below full resolution the full
  resolution's best fill resized is a candidate too (`evaluate.py`'s
  rows)."""
  plain = pipeline.uncorrected(config)
  batch = next(pipeline.get_dataset(plain, num_examples,
                                    'valid').as_numpy_iterator())
  truth = batch[keys.at_side('targets', side, plain)][..., :plain.n_channels]
  clear = batch[keys.at_side('mask', side, plain)][..., -1]
  scores = {name: cloudy_psnr(fill, truth, clear)
            for name, fill in evaluate.fills_at(batch, side, plain).items()}
  return max(scores.items(), key=lambda item: item[1])


def plot(runs, out):
  """Writes the figure: runs = {name: (loss steps, losses, {step: {method:
  PSNR}}, (best classical fill, PSNR) or None)}, one column per run."""
  figure, axes = pyplot.subplots(2, len(runs), figsize=(5 * len(runs), 6),
                                 squeeze=False, sharex='col')
  for column, (name, (steps, losses, scores, classical)) in enumerate(
      runs.items()):
    top, bottom = axes[0, column], axes[1, column]
    top.plot(steps, losses, color='tab:grey', linewidth=0.8, marker='.')
    top.set_title(f'{name}: training loss')
    top.set_ylabel('bits/dim')
    methods = sorted({m for s in scores.values() for m in s})
    for method in methods:
      points = [(s, v[method]) for s, v in scores.items()
                if v.get(method) is not None]
      if points:
        bottom.plot(*zip(*points), marker='o',
                    label=LABELS.get(method, method))
    if classical:
      bottom.axhline(classical[1], color='tab:red', linestyle='--',
                     label=f'best classical: {classical[0]}')
    bottom.set_title(f'{name}: valid PSNR on cloudy pixels')
    bottom.set_ylabel('dB')
    bottom.set_xlabel('step')
    if methods or classical:
      # Headroom for the legend: the bar is often at the top of the data.
      low, high = bottom.get_ylim()
      bottom.set_ylim(low, high + 0.5 * (high - low))
      bottom.legend(loc='upper center', fontsize='small')
    for axis in (top, bottom):
      axis.grid(alpha=0.3)
  figure.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  figure.savefig(out, dpi=100)
  pyplot.close(figure)


def define_flags():
  """The command-line flags (defined only when run as a program, so that
  importing this module never clashes with another tool's flags)."""
  config_flags.DEFINE_config_file(
      'core_config', None, 'Test config of the core run (`:small` for the '
      'recipe); overrides as --core_config.<key>=value.', lock_config=True)
  config_flags.DEFINE_config_file(
      'upsampler_config', None, 'Test config of the upsampler run.',
      lock_config=True)
  flags.DEFINE_string('core_logdir', None, 'The core training run.')
  flags.DEFINE_string('upsampler_logdir', None, 'The upsampler training run '
                      '(optional).')
  flags.DEFINE_string('out', None, 'The figure (PNG).')
  flags.DEFINE_integer('num_examples', 48, 'Valid examples scored per '
                       'checkpoint.', lower_bound=1)
  flags.mark_flags_as_required(['core_config', 'core_logdir', 'out'])


def main(argv):
  del argv
  f = flags.FLAGS
  named = {'core': (f.core_config, f.core_logdir)}
  if f.upsampler_logdir:
    named['upsampler'] = (f.upsampler_config, f.upsampler_logdir)
  runs = {}
  for name, (config, logdir) in named.items():
    if config is None:
      raise ValueError(f'--{name}_logdir without --{name}_config — give the '
                       'test config the run was trained with')
    checkpoints.newest_checkpoint(logdir)    # a clear error if none
    steps, losses = scalars(os.path.join(logdir, 'train_summaries'), 'loss')
    scores = score_checkpoints(
        logdir, model_scorer(config, f.num_examples))
    classical = best_classical(config, f.num_examples,
                               config.downsample_res if name == 'core'
                               else config.resolution[0])
    runs[name] = (steps, losses, scores, classical)
    print(f'{name}: best classical fill {classical[0]} {classical[1]:.2f} dB')
    for step, values in scores.items():
      print(f'{name} step {step}: ' + ', '.join(
          f'{m} {"n/a" if v is None else f"{v:.2f} dB"}'
          for m, v in values.items()))
  plot(runs, f.out)
  print(f'Learning curves in {f.out}.')


if __name__ == '__main__':
  define_flags()
  cli.run(main)
