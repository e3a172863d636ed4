"""TFRecords of generated images: round trip, file order, shape errors."""

import os

import numpy as np
import pytest
import tensorflow as tf

from datasets import tfrecords

SHAPE = (4, 4, 3)


def images(n, offset=0):
  return (np.arange(n * np.prod(SHAPE)).reshape((n,) + SHAPE) + offset) % 256


def read(path, shape=SHAPE):
  return np.stack(list(tfrecords.read_images(path, shape).as_numpy_iterator()))


def test_round_trip(tmp_path):
  path = str(tmp_path / 'gen0.tfrecords')
  tfrecords.write_images(path, images(3))
  out = read(path)
  assert out.dtype == np.int32
  np.testing.assert_array_equal(out, images(3))
  assert os.listdir(tmp_path) == ['gen0.tfrecords']    # no temp file left


def test_example_features_are_upstreams_image_and_label(tmp_path):
  path = str(tmp_path / 'gen0.tfrecords')
  tfrecords.write_images(path, images(1))
  record = next(iter(tf.data.TFRecordDataset(path))).numpy()
  example = tf.train.Example.FromString(record)
  assert sorted(example.features.feature) == ['image', 'label']
  assert list(example.features.feature['image'].int64_list.value) == (
      images(1).ravel().tolist())
  assert list(example.features.feature['label'].int64_list.value) == [0]


def test_directory_is_read_in_numeric_order(tmp_path):
  for number in (10, 2, 1):
    tfrecords.write_images(str(tmp_path / f'gen{number}.tfrecords'),
                           images(1, offset=number))
  (tmp_path / 'notes.txt').write_text('ignored')
  assert [os.path.basename(f) for f in tfrecords.record_files(
      str(tmp_path))] == ['gen1.tfrecords', 'gen2.tfrecords',
                          'gen10.tfrecords']
  out = read(str(tmp_path))
  np.testing.assert_array_equal(
      out, np.concatenate([images(1, offset=n) for n in (1, 2, 10)]))


def test_rewrite_replaces_the_file(tmp_path):
  path = str(tmp_path / 'gen0.tfrecords')
  tfrecords.write_images(path, images(3))
  tfrecords.write_images(path, images(2, offset=5))
  np.testing.assert_array_equal(read(path), images(2, offset=5))


def test_wrong_shape_names_the_file(tmp_path):
  path = str(tmp_path / 'gen0.tfrecords')
  tfrecords.write_images(path, images(1))
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r'(?s)does not have 27 values.*gen0\.tfrecords'):
    read(path, (3, 3, 3))


def test_missing_records(tmp_path):
  with pytest.raises(FileNotFoundError, match='No TFRecords at'):
    tfrecords.record_files(str(tmp_path / 'none'))
  with pytest.raises(FileNotFoundError, match=r'No \*\.tfrecords file'):
    tfrecords.record_files(str(tmp_path))
