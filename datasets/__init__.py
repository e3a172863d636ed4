"""CloudTran input data: the upstream on-disk layout as a tf.data pipeline.

    from datasets import pipeline
    pipeline.get_dataset(config, batch_size, 'train')

Modules: ondisk (tiles, namings, pairing), indexing (reference dates, JSON),
subsets (what each subset is), keys (names of the example cubes), scan
(start-up mask and image reads), selection (keep/drop rules), transforms
(per-example tf ops), pipeline (tf.data), export (targets_dir PNGs),
tfrecords (generated images), sample_outputs (where a sampling job
writes and which job wrote what, read back by evaluate.py).
"""
