r"""Which fill works best on *my* area? A self-check on your own scene.

  python -m tools.selfcheck --core_logdir $CORE_LOGDIR \
      --upsampler_logdir $UP_LOGDIR --inputs 'scenes/*.tif' \
      --scl 'scenes/*_SCL*.tif' --pairs 4 --out selfcheck/

Takes the same series and model flags as predict.py (files or STAC Items);
without the model flags it ranks the classical fills alone.
Up to --pairs (target, mask date) pairs are drawn (--seed): a target date at
most --max_target_cloud % cloudy, with the real cloud mask of another date
moved onto it. The target is filled as predict.py would, by the model (on
the tiles the moved mask touches) and by every classical --method, and the
pixels it hides (clear in the target) are scored against the target's real
values: the evaluation protocol's metrics, per pair and overall, ranked,
with the best method named (`jobs.selfcheck`). Writes, in --out:
selfcheck.md, selfcheck.csv, selfcheck.json and pair_<k>.png (truth,
masked input, model, corrected mosaic). A killed run started again resumes from `<out>.work/`; a finished
report run again with the same inputs, models and settings is complete,
with others it is refused unless --overwrite (`jobs.records`).
"""

import os

from absl import flags

from commands import model_flags
from commands import series_flags
from jobs import selfcheck
from utils import cli

model_flags.define()
series_flags.define('grid_date', 'Date whose grid the others are read on '
                    '(YYYY-MM-DD); default the last date.')
flags.DEFINE_string('out', None, 'Directory of the report.')
flags.DEFINE_integer('pairs', 4, 'At most this many (target, mask date) '
                     'pairs.')
flags.DEFINE_integer('seed', 0, 'Seed of the draw of pairs.')
flags.DEFINE_float('max_target_cloud', 20., 'Percent of cloudy pixels above '
                   'which a date is not used as a target.')
flags.DEFINE_bool('overwrite', False, 'Replace a report made with other '
                  'inputs, models or settings (its files and pair '
                  'quicklooks); without it such a report is refused.')
flags.mark_flags_as_required(['out'])
cli.check_range('max_target_cloud', 0, 100, 'a percentage')

FLAGS = flags.FLAGS


def main(_):
  tile_size = timeline = load = None
  identify = lambda: None
  if model_flags.given(FLAGS):
    core_config, up_config = model_flags.configs(FLAGS)
    tile_size, timeline = up_config.resolution[0], core_config.timeline
    identify = lambda: model_flags.identity(FLAGS, core_config, up_config)
    load = lambda: model_flags.load(FLAGS, core_config, up_config)[0]
  options = selfcheck.Options(
      tile_size=tile_size, timeline=timeline, overlap=FLAGS.overlap,
      batch_size=FLAGS.batch_size, pairs=FLAGS.pairs, seed=FLAGS.seed,
      max_target_cloud=FLAGS.max_target_cloud, overwrite=FLAGS.overwrite)
  with series_flags.open_series(FLAGS, 'grid_date') as series:
    selfcheck.selfcheck(series, load, os.path.abspath(FLAGS.out), options,
                        identify)


if __name__ == '__main__':
  cli.run(main)
