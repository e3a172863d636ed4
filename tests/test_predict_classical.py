"""Tests of `predict.py --method` (jobs/classical.py): the classical fills
written as predict's outputs, without models, on test_predict's scene (4
dates, 70x50 px, the target partly cloudy)."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import rasterio

from evaluation import baselines
from jobs import classical
from jobs import predict
from rasters import geotiff
from rasters import stac_item
from tests.test_predict import open_scene
from tests.test_predict import scene  # pylint: disable=unused-import

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FUNCTIONS = {'mosaic': baselines.mosaic,
             'least_cloudy': baselines.least_cloudy,
             'corrected_least_cloudy': baselines.corrected_least_cloudy,
             'corrected_mosaic': baselines.corrected_mosaic,
             'local_corrected_mosaic': baselines.local_corrected_mosaic,
             'similar_pixel_corrected_mosaic': baselines.similar_pixel_mosaic}


def test_the_methods_are_the_baselines():
  """In the order of predict.py's --method choices."""
  assert classical.METHODS == tuple(FUNCTIONS)


@pytest.mark.parametrize('method', sorted(FUNCTIONS))
def test_the_fill_is_the_baseline_on_the_whole_scene_block_by_block(
    method, scene, tmp_path, monkeypatch):
  """In 16 px blocks (the fit streamed, the local window read around each
  block), the output equals the baseline run on the whole scene at once:
  no seam."""
  monkeypatch.setattr(geotiff, 'BLOCK', 16)
  options = predict.Options(tile_size=None, timeline=None, method=method)
  with open_scene(scene) as series:
    names = predict.predict(series, None, str(tmp_path / 'o.tif'), options)
    rgb, cloudy, _ = series.read(series.grid.window)
  clear = ~cloudy
  cube = np.concatenate([np.zeros_like(rgb[0]), *rgb], axis=-1)
  masks = np.stack([np.zeros_like(clear[0]), *clear], axis=-1)
  expected = np.where(clear[-1][..., None], rgb[-1],
                      FUNCTIONS[method](cube, masks, 3))
  with rasterio.open(names['image']) as src:
    image = src.read().transpose(1, 2, 0)
  with rasterio.open(names['fill']) as src:
    fill = src.read(1)
  assert 0 < cloudy[-1].mean() < 0.5
  np.testing.assert_array_equal(image, expected)
  no_clear = ~clear.any(axis=0)
  np.testing.assert_array_equal(
      fill, np.where(clear[-1], geotiff.FILL_KEPT,
                     np.where(no_clear, geotiff.FILL_NO_CLEAR,
                              geotiff.FILL_MODEL)))
  with open(names['item']) as f:
    properties = json.load(f)['properties']
  assert properties['cloudtran:models'] == {'method': method}
  assert stac_item.read_record(names['item'])['method'] == method


def predict_cli(*args, python=()):
  return subprocess.run([sys.executable, *python,
                         os.path.join(ROOT, 'predict.py'), *args], cwd=ROOT, capture_output=True, text=True,
                        timeout=600,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))


def test_the_command_writes_every_output_without_a_model(scene, tmp_path):
  out = str(tmp_path / 'clear.tif')
  done = predict_cli(f'--inputs={scene}/images/*.tif',
                     f'--scl={scene}/scl/*.tif', '--method=corrected_mosaic',
                     f'--out={out}', python=['-X', 'importtime'])
  assert done.returncode == 0, done.stderr[-2000:]
  imported = [line.split('|')[-1].strip() for line in done.stderr.splitlines()
              if line.startswith('import time:')]
  assert 'commands.model_flags' in imported
  assert not [m for m in imported if m.split('.')[0] == 'tensorflow']
  assert '% of the pixels filled by corrected_mosaic,' in done.stderr
  assert sorted(os.listdir(tmp_path)) == [
      'clear.png', 'clear.stac.json', 'clear.tif', 'clear_fill.tif']
  again = predict_cli(f'--inputs={scene}/images/*.tif',
                      f'--scl={scene}/scl/*.tif', '--method=mosaic',
                      f'--out={out}')
  assert again.returncode == 2
  assert re.search(r'error: .*clear\.tif was made with different method '
                   r'\(corrected_mosaic → mosaic\) — ', again.stderr)


@pytest.mark.parametrize('flags,message', [
    (['--method=mosaic', '--core_logdir=x', '--upsampler_logdir=y'],
     '--method=mosaic uses no model — drop the model flags'),
    (['--method=mosaic', '--draws=3'],
     '--draws=3 with --method=mosaic: a classical fill takes seconds in one '
     'job and has no draws — drop --draws'),
    (['--method=corrected_mosaic', '--shard=1/2'],
     'drop --shard'),
    ([], '--method=model needs --core_logdir and --upsampler_logdir — give '
     'them, or a classical --method'),
    (['--core_logdir=x'], '--core_logdir and --upsampler_logdir go together'),
])
def test_flags_a_method_does_not_use_are_refused(flags, message, scene,
                                                 tmp_path):
  done = predict_cli(f'--inputs={scene}/images/*.tif',
                     f'--scl={scene}/scl/*.tif', f'--out={tmp_path}/o.tif',
                     *flags)
  assert done.returncode == 2, done.stderr[-2000:]
  lines = [l for l in done.stderr.splitlines() if l.startswith('error: ')]
  assert len(lines) == 1 and message in lines[0], done.stderr
