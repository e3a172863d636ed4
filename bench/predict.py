"""Megapixels per second and peak memory of predict.py, by scene size.

  .venv/bin/python bench/predict.py [--sizes 512,1024] [--only_parallel] \
      [--core_logdir runs/demo/core --upsampler_logdir runs/demo/upsampler]
  .venv/bin/python bench/predict.py --models default --sizes 432
  .venv/bin/python bench/predict.py --sizes 512 --covers 0,30,100
  .venv/bin/python bench/predict.py --sizes 152 --covers 100 --draws 1,4,8
  .venv/bin/python bench/predict.py --models small --sizes 296 --covers 100 \
      --draws 1,4,8 --core_logdir runs/small/core \
      --upsampler_logdir runs/small/upsampler

For each size a synthetic scene (uint16, SCL; tools.synthetic_geotiff,
`timeline` dates) is written to a temporary directory (with `--covers`, one
per cover: that percentage of the target date under clouds), then one fresh
process predicts its last date with the models of `--models`: `tiny` (the
`:tiny` configs, 32 px tiles, overlap 8, batch 8; the demo's runs when
given, else random weights: the speed is the same), `small` (the `:small`
configs of the results recipe, 64 px tiles, overlap 8, batch 8; its runs
when given) or `default` (the
upstream configs: core D=128 at 64x64, upsampler D=512 at 224x224; random
weights, overlap 16, batch 1). Each
process reports the seconds of model loading, of the whole prediction
after it (`predict_seconds`) and within it of the first model call (which
compiles), the tiles and the assembly, the tiles sent to the models of all
tiles, megapixels per second over tiles and assembly (first call apart),
and its peak resident memory (ru_maxrss). With `--draws`, one process per
number of draws K (`predict.py --draws`), each also reporting the wall and
CPU seconds of the model calls per tile sent to the models, the first call
apart (for K = 1 a call is a batch of tiles, for K > 1 one tile's K draws).
Prints one JSON object, with `predict_seconds_by_cover` per size when
`--covers` is given and `model_seconds_per_tile_by_draws` when `--draws`
is; `load_average` is the 1-minute load before and after, since the figures
scale with it on a shared machine.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# Config variant and tile flags of each `--models` choice.
MODELS = {'tiny': ('tiny', dict(overlap=8, batch_size=8)),
          'small': ('small', dict(overlap=8, batch_size=8)),
          'default': ('', dict(overlap=16, batch_size=1))}


def configs(models_name):
  """(core config, upsampler config) of a `--models` choice."""
  from configs import cloudtran_core_test  # pylint: disable=g-import-not-at-top
  from configs import upsampler_test  # pylint: disable=g-import-not-at-top
  variant = MODELS[models_name][0]
  return (cloudtran_core_test.get_config(variant),
          upsampler_test.get_config(variant))


def save_random_models(directory, models_name):
  """Core and upsampler checkpoints with random weights, and their
  config.yaml."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import models  # pylint: disable=g-import-not-at-top
  from utils import ema as ema_lib  # pylint: disable=g-import-not-at-top
  from utils import runconfig  # pylint: disable=g-import-not-at-top
  logdirs = []
  for config in configs(models_name):
    tf.keras.utils.set_random_seed(0)
    model = models.build(config)
    ema = ema_lib.ExponentialMovingAverage(model.trainable_variables,
                                           config.polyak_decay)
    logdir = os.path.join(directory, config.model.name)
    tf.train.Checkpoint(model=model, ema=ema).save(
        os.path.join(logdir, 'model'))
    runconfig.write(config, logdir, 0, [])
    logdirs.append(logdir)
  return logdirs


class Timed:
  """A predictor wrapper that times the first (compiling) call apart, and
  the wall and CPU seconds of the other calls."""

  def __init__(self, predictor):
    self.predictor = predictor
    self.first_seconds = 0.0
    self.calls = 0
    self.later_seconds = self.later_cpu_seconds = 0.0

  def __call__(self, rgb, clear, **kwargs):
    start, cpu_start = time.perf_counter(), time.process_time()
    out = self.predictor(rgb, clear, **kwargs)
    seconds = time.perf_counter() - start
    if self.calls:
      self.later_seconds += seconds
      self.later_cpu_seconds += time.process_time() - cpu_start
    else:
      self.first_seconds = seconds
    self.calls += 1
    return out


def child(args):
  """One prediction in this process; prints its figures as JSON."""
  from jobs import predict  # pylint: disable=g-import-not-at-top
  from jobs import predict_models  # pylint: disable=g-import-not-at-top
  from rasters import geotiff  # pylint: disable=g-import-not-at-top
  from rasters import reader  # pylint: disable=g-import-not-at-top
  from rasters import tiling  # pylint: disable=g-import-not-at-top
  core_config, up_config = configs(args.models)
  start = time.perf_counter()
  predictor, identity = predict_models.load_predictor(
      core_config, args.core_logdir, up_config, args.upsampler_logdir,
      args.only_parallel)
  load_seconds = time.perf_counter() - start
  timed = Timed(predictor)
  phases = {}
  assemble, run_tiles = predict.assemble, predict.run_tiles

  def timed_assemble(*a, **k):
    phases['tiles_done'] = time.perf_counter()
    return assemble(*a, **k)

  def counted_run_tiles(*a, **k):
    phases['tiles_to_models'] = run_tiles(*a, **k)
    return phases['tiles_to_models']

  predict.assemble = timed_assemble
  predict.run_tiles = counted_run_tiles
  scene = args.scene
  with reader.open_series(os.path.join(scene, 'images', '*.tif'),
                          scl=os.path.join(scene, 'scl', '*.tif')) as series:
    tiles_start = time.perf_counter()
    options = predict.Options(tile_size=up_config.resolution[0],
                              timeline=core_config.timeline,
                              draws=args.draws, **MODELS[args.models][1])
    predict.predict(series, timed, args.out, options, identity)
    end = time.perf_counter()
    grid = series.grid
    pixels = grid.width * grid.height
    tiles = len(tiling.grid(grid.height, grid.width, options.tile_size,
                            options.overlap))
  tiles_seconds = phases['tiles_done'] - tiles_start - timed.first_seconds
  sent = phases['tiles_to_models']
  first_call_tiles = min(sent, 1 if args.draws > 1 else options.batch_size)
  later_tiles = max(1, sent - first_call_tiles)
  print(json.dumps({
      'draws': args.draws,
      'model_seconds_per_tile': round(timed.later_seconds / later_tiles, 3),
      'model_cpu_seconds_per_tile': round(
          timed.later_cpu_seconds / later_tiles, 3),
      'megapixels': round(pixels / 1e6, 3),
      'load_seconds': round(load_seconds, 1),
      'predict_seconds': round(end - tiles_start, 2),
      'first_batch_seconds': round(timed.first_seconds, 1),
      'tiles_seconds': round(tiles_seconds, 1),
      'tiles': tiles,
      'tiles_to_models': phases['tiles_to_models'],
      'assembly_seconds': round(end - phases['tiles_done'], 1),
      'megapixels_per_second': round(
          pixels / 1e6 / (end - tiles_start - timed.first_seconds), 4),
      'peak_rss_mb': round(resource.getrusage(
          resource.RUSAGE_SELF).ru_maxrss / 1024),
      'output_bytes': os.path.getsize(geotiff.paths(args.out)['image']),
  }))


def scene_name(size, cover):
  """`scene_<size>`, with `_cover_<cover>` when a cover is given."""
  return f'scene_{size}' + ('' if cover is None else f'_cover_{cover:g}')


def result_name(args, name, draws):
  """The results' key of a scene run with `draws`: the scene's name, with
  `_draws_<K>` when `--draws` is given."""
  return name if args.draws is None else f'{name}_draws_{draws}'


def run_child(args, scene, out, core, upsampler, draws=1):
  """The figures of one prediction of `scene` in a fresh process."""
  command = [sys.executable, os.path.abspath(__file__), '--scene', scene,
             '--out', out, '--models', args.models,
             '--core_logdir', core, '--upsampler_logdir', upsampler,
             '--draws', str(draws)]
  if args.only_parallel:
    command.append('--only_parallel')
  done = subprocess.run(command, capture_output=True, text=True, check=False)
  if done.returncode:
    sys.exit(f'bench/predict.py: the run on {os.path.basename(scene)} '
             f'failed:\n{done.stderr[-3000:]}')
  return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--sizes', default='512,1024')
  parser.add_argument('--covers', help='percentages of the target date '
                      'under clouds, e.g. 0,30,100: one scene of each size '
                      'per cover (default: the synthetic scene\'s own)')
  parser.add_argument('--models', choices=sorted(MODELS), default='tiny',
                      help='tiny: the :tiny configs (the demo); small: '
                      'the :small configs (the results recipe); default: '
                      'the upstream model sizes, random weights')
  parser.add_argument('--only_parallel', action='store_true')
  parser.add_argument('--draws', help='numbers of draws K, e.g. 1,4,8: one '
                      'process per K on each scene (predict.py --draws; '
                      'default: 1)')
  parser.add_argument('--core_logdir')
  parser.add_argument('--upsampler_logdir')
  parser.add_argument('--scene', help=argparse.SUPPRESS)
  parser.add_argument('--out', help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.scene:
    args.draws = int(args.draws)
    return child(args)
  if args.draws and args.only_parallel:
    parser.error('--draws with --only_parallel: the parallel head does not '
                 'draw; leave one of them out.')
  from tools import synthetic_geotiff  # pylint: disable=g-import-not-at-top
  load_before = os.getloadavg()[0]
  core_config, up_config = configs(args.models)
  results = {'models': args.models,
             'mode': 'parallel' if args.only_parallel else 'argmax',
             'tile': up_config.resolution[0], **MODELS[args.models][1]}
  with tempfile.TemporaryDirectory(prefix='bench_predict_') as tmp:
    core, upsampler = args.core_logdir, args.upsampler_logdir
    if not (core and upsampler):
      core, upsampler = save_random_models(tmp, args.models)
      results['weights'] = 'random'
    covers = ([None] if args.covers is None
              else [float(c) for c in args.covers.split(',')])
    draws = [1] if args.draws is None else [
        int(k) for k in args.draws.split(',')]
    for size in (int(s) for s in args.sizes.split(',')):
      for cover in covers:
        name = scene_name(size, cover)
        scene = os.path.join(tmp, name)
        synthetic_geotiff.write_scene(scene, width=size, height=size,
                                      dates=core_config.timeline,
                                      target_cover=cover)
        for k in draws:
          key = result_name(args, name, k)
          results[key] = run_child(args, scene,
                                   os.path.join(tmp, key + '.tif'), core,
                                   upsampler, k)
        if args.draws is not None:
          results[f'model_seconds_per_tile_by_draws_{name}'] = {
              str(k): results[result_name(args, name, k)][
                  'model_seconds_per_tile'] for k in draws}
      if args.covers is not None:
        results[f'predict_seconds_by_cover_{size}'] = {
            f'{c:g}': results[result_name(args, scene_name(size, c),
                                          draws[0])]['predict_seconds']
            for c in covers}
  results['load_average'] = [round(load_before, 2),
                             round(os.getloadavg()[0], 2)]
  print(json.dumps(results, indent=1))


if __name__ == '__main__':
  main()
