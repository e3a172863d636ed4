"""CloudTran input data: the upstream on-disk layout as a tf.data pipeline.

    datasets.get_dataset('custom', config, batch_size, 'train')

Modules: ondisk (tiles, namings, pairing), indexing (reference dates, JSON),
scan (start-up mask and image reads), selection (keep/drop rules),
transforms (per-example tf ops), pipeline (tf.data), export (targets_dir
PNGs), tfrecords (generated images), scenes and synthetic (demo dataset
maker), summary (prints a pipeline's first examples). Dated rasters (used by
predict.py and prepare): dates, radiometry, cloudmasks, rasters (a series on
one grid), prepare (rasters -> the on-disk layout), synthetic_geotiff (demo
scene).

`get_dataset` and `resize_to` are imported on first use, so the dataset
maker (`python -m datasets.synthetic`) runs without loading TensorFlow.
"""

import importlib

from datasets.ondisk import DataError

# name -> (module, attribute) of the TensorFlow parts.
_LAZY = {
    'get_dataset': ('datasets.pipeline', 'get_dataset'),
    # (B, h, w, C) values -> (B, size, size, C) int32, the `_up_back` resize.
    'resize_to': ('datasets.transforms', 'resize_values'),
}


def __getattr__(name):
  if name not in _LAZY:
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
  module, attribute = _LAZY[name]
  return getattr(importlib.import_module(module), attribute)
