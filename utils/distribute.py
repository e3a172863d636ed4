"""Chooses the `tf.distribute` strategy a run executes under.

Every run goes through a strategy (the default one on a single device), so the
training and evaluation code never branches on "is there a strategy".
"""

import json
import os

from absl import logging
import tensorflow as tf


def num_workers_in_tf_config():
  """Number of workers TF_CONFIG names (0 when unset)."""
  raw = os.environ.get('TF_CONFIG')
  if not raw:
    return 0
  try:
    cluster = json.loads(raw).get('cluster', {})
  except json.JSONDecodeError as e:
    raise ValueError(f'TF_CONFIG is not valid JSON: {e}') from None
  return len(cluster.get('worker', [])) + len(cluster.get('chief', []))


def split_cpu(num_devices):
  """Splits the CPU into `num_devices` logical devices (before TF starts)."""
  cpus = tf.config.list_physical_devices('CPU')
  existing = tf.config.get_logical_device_configuration(cpus[0])
  if existing and len(existing) == num_devices:
    return
  try:
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_devices)
  except RuntimeError as e:
    raise RuntimeError(
        f'Cannot split the CPU into {num_devices} devices once TensorFlow has '
        'initialised its devices; create the strategy first.') from e


def make_strategy(accelerator_type='GPU', devices_per_worker=1, num_workers=1,
                  master=''):
  """Returns the strategy for the flags of `run.py` / `sample.py`.

  Args:
    accelerator_type: 'CPU', 'GPU' or 'TPU'.
    devices_per_worker: replicas per machine. On the CPU this many logical
      devices are made, so multi-replica runs work without accelerators.
    num_workers: machines; more than one needs TF_CONFIG.
    master: the TPU address (TPU only).
  """
  if accelerator_type not in ('CPU', 'GPU', 'TPU'):
    raise ValueError(f'--accelerator_type must be CPU, GPU or TPU, got '
                     f'{accelerator_type!r}.')
  if devices_per_worker < 1:
    raise ValueError('--devices_per_worker must be at least 1.')
  if accelerator_type == 'TPU':
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=master)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)

  tf_config_workers = num_workers_in_tf_config()
  if num_workers > 1 and tf_config_workers != num_workers:
    raise ValueError(
        f'--num_workers={num_workers} but TF_CONFIG names {tf_config_workers} '
        'workers; set TF_CONFIG on every machine (cluster.worker addresses and '
        'task.index).')
  if accelerator_type == 'CPU' and devices_per_worker > 1:
    split_cpu(devices_per_worker)
  if tf_config_workers > 1:
    # Must come before anything initialises TensorFlow's devices.
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
  else:
    devices = local_devices(accelerator_type, devices_per_worker)
    if len(devices) == 1:
      strategy = tf.distribute.OneDeviceStrategy(devices[0])
    else:
      # Logical CPUs share memory: reducing on one device is simplest, and
      # it avoids collective keys clashing between strategies in a process.
      cross_device_ops = (tf.distribute.ReductionToOneDevice()
                          if accelerator_type == 'CPU' else None)
      strategy = tf.distribute.MirroredStrategy(
          devices=devices, cross_device_ops=cross_device_ops)
  logging.info('Strategy %s with %d replicas.', type(strategy).__name__,
               strategy.num_replicas_in_sync)
  return strategy


def local_devices(accelerator_type, count):
  """Names of the first `count` local CPU or GPU devices."""
  if accelerator_type == 'CPU':
    return [d.name for d in tf.config.list_logical_devices('CPU')][:count]
  gpus = tf.config.list_logical_devices('GPU')
  if not gpus:
    raise ValueError(
        'No GPU found (--accelerator_type=GPU is the default) — pass '
        '--accelerator_type=CPU to run on the CPU.')
  if len(gpus) < count:
    raise ValueError(f'--devices_per_worker={count} but only {len(gpus)} '
                     'GPUs are visible.')
  return [d.name for d in gpus[:count]]


def is_chief(strategy):
  """True on the worker that writes checkpoints, summaries and logs."""
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None or not resolver.task_type:
    return True
  return (resolver.task_type == 'chief' or
          (resolver.task_type == 'worker' and resolver.task_id == 0))


def worker_dir(strategy, logdir):
  """Where this worker writes: `logdir` on the chief, a scratch dir else."""
  if is_chief(strategy):
    return logdir
  task = strategy.cluster_resolver.task_id
  return os.path.join(logdir, 'workers', f'worker_{task}')
