"""CloudTran input data: the upstream on-disk layout as a tf.data pipeline.

    from datasets import pipeline
    pipeline.get_dataset(config, batch_size, 'train')

Also what each subset is, the names of the example cubes, the keep/drop
rules of the start-up scan, and the files sampling jobs write and read back.
"""
