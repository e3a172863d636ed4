r"""Trains CloudTran models and evaluates them beside training.

  MODEL_SIZE=128 python run.py --config ./configs/cloudtran_core_train.py \
      --mode=train --logdir $LOGDIR
  MODEL_SIZE=128 python run.py --config ./configs/cloudtran_core_test.py \
      --mode=eval_valid --logdir $LOGDIR

Training resumes from the newest checkpoint in --logdir. Any config key can be
overridden with --config.<key>=<value>.
"""

import os

from absl import flags
from absl import logging

from jobs import eval_checkpoints
from jobs import train
from utils import cli
from utils import distribute

_CONFIG = cli.define_config('Experiment config file (configs/*.py, `:tiny` '
                            'for the small CPU variant).')
flags.DEFINE_enum('mode', 'train', ['train', *sorted(eval_checkpoints.MODES)],
                  'train, or evaluate each new checkpoint on a subset.')
cli.define_logdir('Run directory: checkpoints, summaries, config.yaml.')
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
flags.DEFINE_enum('dataset', 'custom', ['custom'], 'Upstream flag: only the '
                  'on-disk layout, custom, exists.')
flags.DEFINE_string('data_dir', None, 'Overrides config.data_dir.')
flags.DEFINE_string('master', '', 'TPU address (TPU only).')
flags.DEFINE_integer('eval_timeout_secs', None, 'eval_* modes: stop when no '
                     'new checkpoint appears for this long; sets '
                     'config.eval_checkpoint_wait_secs (<= 0: wait until the '
                     'checkpoint of the run\'s max_train_steps).')
flags.DEFINE_bool('allow_config_change', False, 'train: resume although the '
                  'config differs from the run\'s config.yaml in more than '
                  'run length and logging; the old one is kept as '
                  'config-<step>.yaml.')
cli.define_ignored({
    'summaries_log_dir': 'summaries go to <logdir>/train_summaries and '
                         '<logdir>/eval_<subset>_summaries_pyk_True.',
    'tpu_worker_name': 'a TPU is reached through --master alone.',
})

FLAGS = flags.FLAGS


def main(_):
  config = _CONFIG.value
  if FLAGS.data_dir:
    config.data_dir = FLAGS.data_dir
  if FLAGS.eval_timeout_secs is not None:
    config.eval_checkpoint_wait_secs = FLAGS.eval_timeout_secs
  strategy = distribute.make_strategy(
      FLAGS.accelerator_type, FLAGS.devices_per_worker, FLAGS.num_workers,
      FLAGS.master)
  logdir = os.path.abspath(FLAGS.logdir)
  logging.info('Mode %s, logdir %s.', FLAGS.mode, logdir)
  if FLAGS.mode == 'train':
    train.train(config, logdir, strategy, FLAGS.pretrain_dir,
                FLAGS.steps_per_summaries, FLAGS.allow_config_change)
  else:
    eval_checkpoints.evaluate(config, logdir, strategy, FLAGS.mode)


if __name__ == '__main__':
  cli.run(main)
