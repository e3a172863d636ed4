r"""How well will the models fill *my* area? A self-check on your own scene.

  python -m tools.selfcheck --core_logdir $CORE_LOGDIR \
      --upsampler_logdir $UP_LOGDIR --inputs 'scenes/*.tif' \
      --scl 'scenes/*_SCL*.tif' --pairs 4 --out selfcheck/

Takes the same series and model flags as predict.py (files or STAC Items).
Up to --pairs (target, mask date) pairs are drawn (--seed): a target date at
most --max_target_cloud % cloudy, with the real cloud mask of another date
moved onto it. The target is filled as predict.py would, on the tiles the
moved mask touches, and the pixels it hides (clear in the target) are
scored against the target's real values: the evaluation protocol's metrics
for the model, the mosaic, the least cloudy date and the cloudy input, per
pair and overall (`jobs.selfcheck`). Writes, in --out: selfcheck.md,
selfcheck.csv, selfcheck.json and pair_<k>.png (truth, masked input, model,
mosaic). A killed run started again resumes from `<out>.work/`.
"""

import os

from absl import flags
from ml_collections import config_flags

from jobs import predict
from jobs import selfcheck
from rasters import reader_flags
from utils import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The model flags are predict.py's.
_CORE_CONFIG = config_flags.DEFINE_config_file(
    'core_config', os.path.join(ROOT, 'configs', 'cloudtran_core_test.py'),
    'Test config of the core (`:tiny` for the small CPU variant); '
    'overrides as --core_config.<key>=value.', lock_config=True)
_UP_CONFIG = config_flags.DEFINE_config_file(
    'upsampler_config', os.path.join(ROOT, 'configs', 'upsampler_test.py'),
    'Test config of the upsampler; its resolution is the tile size.',
    lock_config=True)
flags.DEFINE_string('core_logdir', None, 'Core training run (newest '
                    'checkpoint, averaged weights).')
flags.DEFINE_string('upsampler_logdir', None, 'Upsampler training run.')
reader_flags.define('grid_date', 'Date whose grid the others are read on '
                    '(YYYY-MM-DD); default the last date.')
flags.DEFINE_string('out', None, 'Directory of the report.')
flags.DEFINE_integer('overlap', 32, 'Pixels shared by neighbouring tiles '
                     '(at most half the tile).')
flags.DEFINE_integer('batch_size', 4, 'Tiles per model call.')
flags.DEFINE_bool('only_parallel', False, "Use the core's fast parallel head "
                  'instead of its autoregressive argmax.')
flags.DEFINE_integer('pairs', 4, 'At most this many (target, mask date) '
                     'pairs.')
flags.DEFINE_integer('seed', 0, 'Seed of the draw of pairs.')
flags.DEFINE_float('max_target_cloud', 20., 'Percent of cloudy pixels above '
                   'which a date is not used as a target.')
flags.mark_flags_as_required(['core_logdir', 'upsampler_logdir', 'out'])

FLAGS = flags.FLAGS


def main(_):
  core_config, up_config = _CORE_CONFIG.value, _UP_CONFIG.value
  predict.check_configs(core_config, up_config)
  options = selfcheck.Options(
      tile_size=up_config.resolution[0], timeline=core_config.timeline,
      overlap=FLAGS.overlap, batch_size=FLAGS.batch_size, pairs=FLAGS.pairs,
      seed=FLAGS.seed, max_target_cloud=FLAGS.max_target_cloud)
  load = lambda: predict.load_predictor(
      core_config, FLAGS.core_logdir, up_config, FLAGS.upsampler_logdir,
      FLAGS.only_parallel)
  with reader_flags.open_series(FLAGS, 'grid_date') as series:
    selfcheck.selfcheck(series, load, os.path.abspath(FLAGS.out), options)


if __name__ == '__main__':
  cli.run(main)
