"""run.py as a user runs it: flags, SIGKILL and resume, eval beside
training, and two workers on 127.0.0.1."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import tensorflow as tf

from jobs import checkpoints

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def data_flags(data, split):
  return [f'--config.data_dir={data}/videos_final_{split}',
          f'--config.mask_dir={data}/masks_final_{split}',
          f'--config.jsonf={data}/{split}.json']


def run_py(data, logdir, *extra, config='cloudtran_core_train', env=None):
  split = 'trainset' if config.endswith('_train') else 'testset'
  return [sys.executable, os.path.join(ROOT, 'run.py'),
          f'--config={ROOT}/configs/{config}.py:tiny', f'--logdir={logdir}',
          '--accelerator_type=CPU', *data_flags(data, split), *extra]


def environment(**extra):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', CUDA_VISIBLE_DEVICES='')
  env.update(extra)
  return env


def newest_step(logdir):
  path = tf.train.latest_checkpoint(logdir)
  return checkpoints.step_of(path) if path else -1


def test_help_lists_flags():
  out = subprocess.run([sys.executable, os.path.join(ROOT, 'run.py'),
                        '--helpfull'], capture_output=True, text=True,
                       env=environment(), check=False).stdout
  for flag in ('--mode', '--logdir', '--pretrain_dir', '--steps_per_summaries',
               '--accelerator_type', '--devices_per_worker', '--num_workers'):
    assert flag in out


def test_killed_run_resumes_from_last_checkpoint(synthetic_data, tmp_path):
  """The upsampler (the core's training from the command line: below), a
  checkpoint and a summary after each step."""
  logdir = str(tmp_path)
  cmd = run_py(synthetic_data, logdir, '--steps_per_summaries=1',
               '--config.save_checkpoint_secs=0',
               '--config.max_train_steps=100000', config='upsampler_train')
  proc = subprocess.Popen(cmd, env=environment(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  deadline = time.time() + 120
  while newest_step(logdir) < 3 and time.time() < deadline:
    time.sleep(0.2)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  killed_at = newest_step(logdir)
  assert killed_at >= 3

  target = killed_at + 2
  done = subprocess.run(run_py(synthetic_data, logdir,
                               '--steps_per_summaries=1',
                               f'--config.max_train_steps={target}',
                               config='upsampler_train'),
                        env=environment(), capture_output=True, text=True,
                        check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  assert f'Resumed from {logdir}/model-' in done.stderr
  assert 'steps/s' in done.stderr and 'ETA' in done.stderr
  assert newest_step(logdir) == target


def test_eval_valid_beside_training(synthetic_data, tmp_path):
  logdir = str(tmp_path)
  train = subprocess.Popen(
      run_py(synthetic_data, logdir, '--steps_per_summaries=2',
             '--config.save_checkpoint_secs=0', '--config.max_train_steps=6'),
      env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
      text=True)
  evaluate = subprocess.run(
      run_py(synthetic_data, logdir, '--mode=eval_valid',
             '--config.max_train_steps=6',
             '--config.eval_checkpoint_wait_secs=180',
             config='cloudtran_core_test'),
      env=environment(), capture_output=True, text=True, check=False,
      timeout=300)
  train.wait(timeout=300)
  assert train.returncode == 0
  assert evaluate.returncode == 0, evaluate.stderr[-3000:]
  assert 'eval valid step 6' in evaluate.stderr
  assert os.listdir(os.path.join(logdir, 'eval_valid_summaries_pyk_True'))


def free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(('127.0.0.1', 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def test_two_workers_train_together(synthetic_data, tmp_path):
  workers = [f'127.0.0.1:{p}' for p in free_ports(2)]
  logdir = str(tmp_path)
  procs = []
  for index in range(2):
    tf_config = json.dumps({'cluster': {'worker': workers},
                            'task': {'type': 'worker', 'index': index}})
    procs.append(subprocess.Popen(
        run_py(synthetic_data, logdir, '--num_workers=2',
               '--steps_per_summaries=2', '--config.max_train_steps=4',
               '--config.use_discriminator=False'),
        env=environment(TF_CONFIG=tf_config), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True))
  errors = [p.communicate(timeout=300)[1] for p in procs]
  for proc, err in zip(procs, errors):
    assert proc.returncode == 0, err[-3000:]
  assert 'with 2 replicas' in errors[0], errors[0][-2000:]
  assert newest_step(logdir) == 4
  assert not os.path.exists(os.path.join(logdir, 'workers', 'worker_1'))


def test_bad_optimizer_is_a_clear_error(synthetic_data, tmp_path):
  done = subprocess.run(run_py(synthetic_data, str(tmp_path),
                               '--config.optimizer.type=lamb'),
                        env=environment(), capture_output=True, text=True,
                        check=False)
  assert done.returncode != 0
  assert 'config.optimizer.type' in done.stderr
