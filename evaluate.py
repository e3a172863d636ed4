r"""Scores generated images, their composites and the baselines against the
truth, with the cloud-removal literature's protocol.

  python evaluate.py --config ./configs/cloudtran_core_test.py --subset=valid \
      --samples "core (autoregressive)=$CORE_LOGDIR/samples_core_valid" \
      --samples "core (parallel)=$CORE_LOGDIR/samples_core_valid_parallel" \
      --samples "upsampler=$UP_LOGDIR/samples_sup_valid" \
      --inception_weights=$INCEPTION_NOTOP_H5

Each --samples names a method and a directory written by sample.py (its one
*.tfrecords, or a .tfrecords file); the record length tells the resolution:
downsample_res (core) or resolution (upsampler). Record k is output
--skip_outputs + k of the subset, in the data pipeline's order, so give the
same config and subset that sample.py ran with: the job record beside the
samples (<gen_file>.job.json) is checked for it. The truth is slot 0 of the
targets cube at that resolution; its own cloudy pixels (slot 0 of the mask
cube) have no truth and are scored in no pixel split. The baselines, at
every resolution present, come from the inputs alone: the cloudy input
(slot T-1), the least cloudy input date, the mosaic of the latest clear
dates, and the classical fills in the target's light: the least cloudy
earlier date with a least-squares gain and offset per channel, the mosaic
of the earlier dates so corrected, and that mosaic with a gain and offset
per pixel from a moving window. The tables name the best classical one
(highest PSNR on cloudy pixels, per resolution) and give every row's PSNR
difference to it. Every method is also scored as a composite
(`<method> [composite]`: its output where the target is cloudy, the
target's pixels where clear). Only valid and train have a truth: the test
subset's reference date is cloudy.

Without --samples the baselines alone are scored, at every resolution the
config provides, on every output of the subset (or --num_outputs); --out
is then required:

  python evaluate.py --config ./configs/cloudtran_core_test.py:small \
      --subset=valid --out runs/small/eval_baselines

Scores (README, "Evaluation protocol"): RMSE, MAE, PSNR, SSIM and SAM on
values / 255, over all pixels and split into the target's cloudy and clear
pixels, per coverage bin of the target date, and PSNR pooled over every
pixel of the set; and upstream's PSNR, SSIM, MSE on 8-bit values and FID,
KID (these need the Inception-v3 weights: without them they are 'n/a'). Writes results.csv (a row per method, resolution, pixel
split and coverage group, 'all' for the whole set; 'n/a' where undefined),
results.md (the tables) and results.json (the rows, the config, and the
checkpoints and sample directories scored). Samples with K > 1 draws per
input (sample.num_samples) are scored by their per-pixel median, and
calibration.md/.csv/.png report how well the draws cover the truth on the
cloudy pixels.
"""

from absl import flags

from datasets import subsets
from jobs import evaluate
from utils import cli

_CONFIG = cli.define_config(
    'Test config the samples were made with (configs/*_test.py, `:tiny` for '
    'the small CPU variant): its dataset, resolution, downsample_res, '
    'n_channels and timeline are used.')
flags.DEFINE_enum('subset', 'valid', sorted(subsets.WITH_TRUTH),
                  'Subset the samples were drawn from (sample.py --mode=sample'
                  '_<subset>). Not test: its reference date is cloudy, so '
                  'there is no truth.')
flags.DEFINE_multi_string('samples', None, 'NAME=DIR: a method name and its '
                          'sample directory (or .tfrecords file); repeat for '
                          'several methods. Without any, the baselines alone '
                          'are scored at every resolution of --config (give '
                          '--out)')
flags.DEFINE_string('inception_weights', None, 'Inception-v3 no-top weights '
                    'file for FID/KID; default: Keras\' cache. Without one, '
                    'FID/KID are n/a.')
flags.DEFINE_string('out', None, 'Directory for results.csv, results.md and '
                    'results.json; default: the directory holding the first '
                    'sample directory (required without --samples).')
flags.DEFINE_integer('skip_outputs', 0, 'Global index of the first record in '
                     'every file: sample.skip_batches × sample.batch_size of '
                     'the sampling job.', lower_bound=0)
flags.DEFINE_integer('num_outputs', None, 'Evaluate at most this many outputs '
                     '(default: as many as the shortest method has; without '
                     '--samples, every output of the subset).',
                     lower_bound=1)
flags.DEFINE_list('coverage_bins', ['10', '30', '50'], 'Bin edges (percent) '
                  'of the per-coverage breakdown, by the cloud coverage of '
                  'the target date: 10,30,50 gives 0-10%, 10-30%, 30-50%, '
                  '>50%.')
flags.DEFINE_string('split_name', None, 'What the tables\' titles call the '
                    'split (default: "<subset> subset"), e.g. "holdout '
                    'split" for a held-out dataset root read as its valid '
                    'subset.')
FLAGS = flags.FLAGS


def main(_):
  samples = evaluate.parse_samples(FLAGS.samples or [])
  if not samples and not FLAGS.out:
    raise ValueError('without --samples (the baselines alone) there is no '
                     'sample directory to write beside — pass --out DIR')
  evaluate.evaluate(
      _CONFIG.value, FLAGS.subset, samples,
      FLAGS.out or evaluate.default_out_dir(samples),
      features=evaluate.load_features(FLAGS.inception_weights),
      skip_outputs=FLAGS.skip_outputs, num_outputs=FLAGS.num_outputs,
      coverage_bins=FLAGS.coverage_bins, split_name=FLAGS.split_name)


if __name__ == '__main__':
  cli.run(main)
