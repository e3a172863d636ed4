r"""Generates cloud-free images with a trained CloudTran model.

  MODEL_SIZE=128 python sample.py --config ./configs/cloudtran_core_test.py \
      --mode=sample_test --logdir $CORE_LOGDIR
  MODEL_SIZE=512 python sample.py --config ./configs/upsampler_test.py \
      --mode=sample_test --logdir $UP_LOGDIR \
      --config.sample.gen_data_dir=$CORE_LOGDIR/samples_core_test

Writes <logdir>/<sample.log_dir>/<sample.gen_file>.tfrecords (`{subset}` in
either name becomes valid, test or train), the PNGs (with sample.im_outputs),
<gen_file>.job.json (the job's subset, checkpoint and config) and, for
valid/train, metrics.csv. A killed job started again continues after its
last complete batch; outputs of another job (another subset, checkpoint or
config) are refused unless --restart deletes them and starts over.
"""

import os

from absl import flags
from absl import logging

from jobs import sample
from utils import cli

_CONFIG = cli.define_config('Test config file (configs/*_test.py, `:tiny` '
                            'for the small CPU variant).')
flags.DEFINE_enum('mode', 'sample_test', sorted(sample.MODES),
                  'Which subset to sample: valid, test or train.')
cli.define_logdir('Training run directory (its newest checkpoint is used); '
                  'samples go below it.')
cli.define_ignored({
    name: 'sampling runs on one device.' for name in (
        'accelerator_type', 'devices_per_worker', 'num_workers', 'master',
        'tpu_worker_name')})
cli.define_ignored({'summaries_log_dir': 'summaries go to '
                                         '<logdir>/sample_<subset>.',
                    'steps_per_summaries': 'every output is logged.'})
flags.DEFINE_bool('restart', False, 'Delete the outputs this job would '
                  'continue (e.g. sampled from an older checkpoint) and '
                  'start it over.')

FLAGS = flags.FLAGS


def main(_):
  config = _CONFIG.value
  if 'sample' not in config:
    raise ValueError(f'--config={FLAGS["config"].config_filename} has no '
                     '`sample` section — use a test config '
                     '(configs/*_test.py).')
  logdir = os.path.abspath(FLAGS.logdir)
  result = sample.sample(config, logdir, FLAGS.mode,
                         restart=FLAGS.restart)
  logging.info('Samples in %s.', result['dir'])


if __name__ == '__main__':
  cli.run(main)
