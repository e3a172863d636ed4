r"""Trains CloudTran models and evaluates them beside training.

  MODEL_SIZE=128 python run.py --config ./configs/cloudtran_core_train.py \
      --mode=train --logdir $LOGDIR
  MODEL_SIZE=128 python run.py --config ./configs/cloudtran_core_test.py \
      --mode=eval_valid --logdir $LOGDIR

Training resumes from the newest checkpoint in --logdir. Any config key can be
overridden with --config.<key>=<value>.
"""

import os

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from utils import distribute
from utils import eval_loop
from utils import train_loop

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file (configs/*.py, `:tiny` for the '
    'small CPU variant).', lock_config=True)
flags.DEFINE_enum('mode', 'train', ['train', *sorted(eval_loop.MODES)],
                  'train, or evaluate each new checkpoint on a subset.')
flags.DEFINE_string('logdir', None, 'Run directory: checkpoints, summaries, '
                    'config.yaml.')
flags.DEFINE_string('pretrain_dir', None, 'Start training from the newest '
                    'checkpoint of this run directory (weights only).')
flags.DEFINE_integer('steps_per_summaries', 100, 'Training steps per compiled '
                     'loop call, summary and log line.')
flags.DEFINE_enum('accelerator_type', 'GPU', ['CPU', 'GPU', 'TPU'],
                  'Devices to run on.')
flags.DEFINE_integer('devices_per_worker', 1, 'Replicas per machine (with CPU, '
                     'the CPU is split into this many logical devices).')
flags.DEFINE_integer('num_workers', 1, 'Machines; more than one needs '
                     'TF_CONFIG on each.')
flags.DEFINE_enum('dataset', 'custom', ['custom'], 'Dataset kind (upstream '
                  'flag; only the on-disk custom format exists).')
flags.DEFINE_string('data_dir', None, 'Overrides config.data_dir.')
flags.DEFINE_string('master', '', 'TPU address (TPU only).')
flags.DEFINE_string('summaries_log_dir', 'summaries', 'Upstream flag, kept for '
                    'compatibility: summaries go to <logdir>/train_summaries '
                    'and <logdir>/eval_<subset>_summaries_pyk_True.')
flags.mark_flags_as_required(['config', 'logdir'])

FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  config = _CONFIG.value
  if FLAGS.data_dir:
    config.data_dir = FLAGS.data_dir
  config.dataset = FLAGS.dataset
  strategy = distribute.make_strategy(
      FLAGS.accelerator_type, FLAGS.devices_per_worker, FLAGS.num_workers,
      FLAGS.master)
  logdir = os.path.abspath(FLAGS.logdir)
  logging.info('Mode %s, logdir %s.', FLAGS.mode, logdir)
  if FLAGS.mode == 'train':
    train_loop.train(config, logdir, strategy, FLAGS.pretrain_dir,
                     FLAGS.steps_per_summaries)
  else:
    eval_loop.evaluate(config, logdir, strategy, FLAGS.mode)


if __name__ == '__main__':
  app.run(main)
