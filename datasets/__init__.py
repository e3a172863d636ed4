"""CloudTran input data: the upstream on-disk layout as a tf.data pipeline.

    from datasets import pipeline
    pipeline.get_dataset(config, batch_size, 'train')

Modules: ondisk (tiles, namings, pairing), indexing (reference dates, JSON),
subsets (what each subset is), keys (names of the example cubes), scan
(start-up mask and image reads), selection (keep/drop rules), transforms
(per-example tf ops), pipeline (tf.data), export (targets_dir PNGs),
tfrecords (generated images), scenes and synthetic (demo dataset maker),
summary (prints a pipeline's first examples).
Dated rasters (used by predict.py and prepare): dates, radiometry,
cloudmasks, rasters (a series on one grid), prepare (rasters -> the on-disk
layout), synthetic_geotiff (demo scene).

Importing the package loads no TensorFlow, so the dataset maker
(`python -m datasets.synthetic`) runs without it.
"""
