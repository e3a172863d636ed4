"""Generated images as TFRecords (docs/design.md, Outputs).

One `tf.train.Example` per image, feature `image` = int64 list of the
flattened (h, w, C) values and `label` = [0], the one value upstream writes
there. A directory of records is read in the numeric
order of the files' names (gen0, gen1, ..., gen10), as upstream does.
"""

import math
import os
import re

import numpy as np
import tensorflow as tf

SUFFIX = '.tfrecords'
# The `label` feature of every record (upstream writes zeros).
LABEL = 0


def serialize_image(image):
  """(h, w, C) integers -> serialized tf.train.Example bytes."""
  values = np.asarray(image, np.int64).ravel()
  int64s = lambda v: tf.train.Feature(int64_list=tf.train.Int64List(value=v))
  return tf.train.Example(features=tf.train.Features(feature={
      'image': int64s(values), 'label': int64s([LABEL])})).SerializeToString()


def write_images(path, images):
  """Writes `images` (N, h, w, C) to the TFRecord file `path`, atomically.

  The records go to `path + '.tmp'`, which is renamed to `path` once
  complete, so `path` never holds a partial batch.
  """
  tmp = path + '.tmp'
  with tf.io.TFRecordWriter(tmp) as writer:
    for image in images:
      writer.write(serialize_image(image))
  tf.io.gfile.rename(tmp, path, overwrite=True)


def _name_number(path):
  match = re.search(r'\d+', os.path.basename(path))
  return (int(match.group()) if match else math.inf, os.path.basename(path))


def record_files(path_or_dir, flag='config.sample.gen_data_dir'):
  """A file, or the `*.tfrecords` files of a directory in numeric order.

  `flag` is the option that gave the path, named in the errors.
  """
  if not tf.io.gfile.exists(path_or_dir):
    raise FileNotFoundError(f'No TFRecords at {path_or_dir} — run sample.py '
                            f'first or fix {flag}.')
  if not tf.io.gfile.isdir(path_or_dir):
    return [path_or_dir]
  files = [os.path.join(path_or_dir, f)
           for f in tf.io.gfile.listdir(path_or_dir) if f.endswith(SUFFIX)]
  if not files:
    raise FileNotFoundError(f'No *{SUFFIX} file in {path_or_dir} — run '
                            f'sample.py first or fix {flag}.')
  return sorted(files, key=_name_number)


def _parse(path, record, shape):
  """One record -> (h, w, C) int32; fails naming `path` on a wrong length."""
  values = tf.io.parse_single_example(
      record, {'image': tf.io.VarLenFeature(tf.int64)})['image'].values
  expected = math.prod(shape)
  check = tf.debugging.Assert(tf.equal(tf.size(values), expected), [
      f'A TFRecord image does not have {expected} values = shape '
      f'{tuple(shape)}; read it with the (h, w, C) it was written with. '
      'File and length:', path, tf.size(values)])
  with tf.control_dependencies([check]):
    return tf.reshape(tf.cast(values, tf.int32), shape)


def read_images(path_or_dir, shape, flag='config.sample.gen_data_dir'):
  """tf.data.Dataset of (h, w, C) int32 images, in file then record order."""
  files = tf.data.Dataset.from_tensor_slices(record_files(path_or_dir, flag))
  records = files.interleave(
      lambda f: tf.data.TFRecordDataset(f).map(lambda r: (f, r)),
      cycle_length=1)
  return records.map(lambda f, r: _parse(f, r, shape),
                     num_parallel_calls=tf.data.AUTOTUNE)
