"""Timing, CPU seconds, memory and the matmul peak shared by the benchmarks."""

import resource
import time

import tensorflow as tf

FLOPS_METHOD = ('matrix-product FLOPs (2*M*N*K per dot) of the XLA-optimized '
                'HLO at batch 1, while loops times their trip counts '
                '(bench/hlo_flops.py); element-wise work not counted')


def cpu_seconds():
  """CPU seconds (user and system, every thread) of this process so far."""
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def timed(function, *args):
  """(seconds, CPU seconds, result) of one call, outputs fetched."""
  start, start_cpu = time.perf_counter(), cpu_seconds()
  result = tf.nest.map_structure(lambda t: t.numpy(), function(*args))
  return time.perf_counter() - start, cpu_seconds() - start_cpu, result


def best_seconds(function, args, repeats):
  """Seconds of the first call; best seconds and CPU seconds of `repeats`
  later calls."""
  first, _, _ = timed(function, *args)
  later = [timed(function, *args)[:2] for _ in range(repeats)]
  return first, min(s for s, _ in later), min(c for _, c in later)


def matmul_peak(size=4096, repeats=3, dtype='float32'):
  """GFLOP/s and GFLOP per CPU second of the best of `repeats`
  (size x size) tf.matmuls in `dtype` ('float32' or 'bfloat16')."""
  a = tf.cast(tf.random.stateless_normal([size, size], [0, 0]), dtype)
  b = tf.cast(tf.random.stateless_normal([size, size], [0, 1]), dtype)
  matmul = tf.function(tf.linalg.matmul)
  _, seconds, cpu = best_seconds(matmul, (a, b), repeats)
  flops = 2 * size**3
  return {'gflops': round(flops / seconds / 1e9, 1),
          'gflop_per_cpu_second': round(flops / cpu / 1e9, 1)}


def rates(flops, seconds, cpu, peak):
  """GFLOP/s of `flops` in `seconds` and GFLOP per CPU second, each as a
  fraction of the matmul's (`peak`, from `matmul_peak` in the same dtype)."""
  gflops, per_cpu = flops / seconds / 1e9, flops / cpu / 1e9
  return {'gflops': round(gflops, 1),
          'fraction_of_peak': round(gflops / peak['gflops'], 2),
          'gflop_per_cpu_second': round(per_cpu, 1),
          'fraction_of_peak_per_cpu_second': round(
              per_cpu / peak['gflop_per_cpu_second'], 2)}


def peak_resident_gb():
  return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
