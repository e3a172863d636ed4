r"""Writes a cloud-free GeoTIFF of one date from a series of dated rasters.

  python predict.py --core_logdir $CORE_LOGDIR --upsampler_logdir $UP_LOGDIR \
      --inputs 'scenes/*.tif' --scl 'scenes/*_SCL.tif' --target 2024-07-14 \
      --out clear_2024-07-14.tif

Inputs are one raster per date (date in the file name as YYYYMMDD,
YYYY-MM-DD or a Sentinel-2 product name, or in TIFFTAG_DATETIME), RGB bands
picked with --bands, or one file per band with --band_files. Cloud masks
come from exactly one of --masks (0 = clear), --scl (L2A scene
classification) or --cloud_prob with --cloud_threshold. Or STAC Items, one
per date: --stac_items FILE, or --stac_api URL --bbox W,S,E,N --datetime
START/END (`rasters.stac`). Every date is read on the target's grid (cropped
to --bbox, warped when a file's grid differs). The models are the averaged
weights of the newest checkpoints of a core run and an upsampler run, built
from each run's config.yaml (--core_config / --upsampler_config instead, or
--core_config.<key>=value to override one key).

The scene is cut into tiles of the upsampler's resolution overlapping by
--overlap pixels (default an eighth of the tile) and blended without seams;
tiles whose target is clear skip the models (unless --replace_all).
Outputs, beside --out: the image (a tiled, deflate-compressed GeoTIFF with
overviews, the target's CRS and transform; uint8 RGB, or reflectance in the
inputs' dtype with --output_reflectance), `<stem>_fill.tif` (0 = clear
target pixel kept, 1 = filled by the model, 2 = filled though none of the
model's dates was clear), `<stem>.png`, a quicklook, and `<stem>.stac.json`,
the STAC Item of the output (footprint, projection, inputs, models). With
--draws K > 1 the core samples K draws per cloudy tile (seeded by --seed
and the tile) and the image is their per-pixel median; `<stem>_spread.tif`
holds per band their standard deviation in the image's units (0 where the
target is kept) and `<stem>_spread.png` its quicklook. Clear
target pixels are kept bit for bit unless --replace_all. `--shard i/n` does
every n-th tile (for n machines sharing the output directory); the last
shard to finish, or `--merge`, writes the output. A killed run started again
resumes from `<out>.work/`.

--method names a classical fill instead of the models (no model flags,
seconds for a scene; `jobs.classical`): mosaic, least_cloudy,
corrected_least_cloudy, corrected_mosaic or local_corrected_mosaic, on the
target and every date before it, with the same outputs (the fill map's 1
and 2 then mean filled by the method, with or without a clear date).

The output's STAC Item keeps the record of what made it: the inputs (sizes
and modification times, or STAC Item ids), the models, and the flags that
change its bytes (`jobs.records`). Run again with the same record, a
finished output is complete (nothing is done), an unfinished one resumes
and one that lost a file is written again; any other record is refused,
naming what differs, unless --overwrite, which replaces the output with
all its companion files (spread, fill map, quicklooks, STAC Item, work
directory).
"""

import os

from absl import flags

from commands import model_flags
from commands import series_flags
from jobs import classical
from jobs import predict
from jobs import predict_draws
from utils import cli
from utils.errors import DataError

model_flags.define()
series_flags.define('target', 'Date to make cloud-free (YYYY-MM-DD); '
                    'default the last date.')
flags.DEFINE_string('out', None, 'Output GeoTIFF path.')
flags.DEFINE_string('shard', '0/1', 'i/n: do every n-th tile starting at i.')
flags.DEFINE_bool('merge', False, 'Only assemble the output from the tiles '
                  'the shards finished.')
flags.DEFINE_bool('replace_all', False, 'Use the model everywhere, clear '
                  'pixels too.')
flags.DEFINE_bool('output_reflectance', False, 'Write reflectance in the '
                  "inputs' dtype instead of 8-bit RGB.")
flags.DEFINE_bool('allow_unobserved', False, 'Go on, with a warning, when a '
                  "mask raster does not cover the target's grid or no pixel "
                  "is clear on any of the model's dates.")
flags.DEFINE_integer('draws', 1, '1: the core\'s argmax. K > 1: the median '
                     'of K draws of the core (each upsampled), and their '
                     'spread in <stem>_spread.tif; a model call is then one '
                     'tile\'s K draws.')
flags.DEFINE_integer('seed', 0, 'Seed of the draws (with the tile index).')
flags.DEFINE_enum('method', 'model', ['model', *classical.METHODS],
                  'model: the core and upsampler (--core_logdir, '
                  '--upsampler_logdir). Else a classical fill, no model: '
                  'the mosaic, the least cloudy date, or those corrected to '
                  "the target's light (`jobs.classical`).")
flags.DEFINE_bool('overwrite', False, 'Replace an output made with other '
                  'inputs, models or settings, with all its companion files; '
                  'without it such an output is refused.')
flags.mark_flags_as_required(['out'])
# Checked as parsed: bad draws are refused before the models load TensorFlow.
cli.check_flags(['draws', 'seed'], predict_draws.check)
cli.check_flags(['draws', 'only_parallel'], predict_draws.check_sampler)

FLAGS = flags.FLAGS


def parse_shard(text):
  """'i/n' -> (i, n); `predict.Options` checks the range."""
  try:
    index, count = (int(v) for v in text.split('/'))
  except ValueError:
    raise DataError(f'--shard={text!r}: write it i/n, e.g. 0/4.') from None
  return index, count


def main(_):
  modelled = FLAGS.method == 'model'
  if model_flags.given(FLAGS) != modelled:
    raise DataError(
        '--method=model needs --core_logdir and --upsampler_logdir — give '
        'them, or a classical --method (e.g. corrected_mosaic)' if modelled
        else f'--method={FLAGS.method} uses no model — drop the model flags '
        '(--core_logdir, --upsampler_logdir, ...).')
  tile_size = timeline = predictor = identity = None
  if modelled:
    core_config, up_config = model_flags.configs(FLAGS)
    tile_size, timeline = up_config.resolution[0], core_config.timeline
  options = predict.Options(
      tile_size=tile_size, timeline=timeline, overlap=FLAGS.overlap,
      batch_size=FLAGS.batch_size,
      shard=parse_shard(FLAGS.shard), merge=FLAGS.merge,
      replace_all=FLAGS.replace_all,
      output_reflectance=FLAGS.output_reflectance,
      allow_unobserved=FLAGS.allow_unobserved, draws=FLAGS.draws,
      seed=FLAGS.seed, method=FLAGS.method, overwrite=FLAGS.overwrite)
  out = os.path.abspath(FLAGS.out)
  if modelled:
    # The checkpoints are checked against the configs before the inputs.
    predictor, identity = model_flags.load(FLAGS, core_config, up_config)
  with series_flags.open_series(FLAGS, 'target') as series:
    predict.predict(series, predictor, out, options, identity)


if __name__ == '__main__':
  cli.run(main)
