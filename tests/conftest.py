"""Shared pytest set-up: quiet TensorFlow, two logical CPUs, a tiny dataset."""

import importlib
import os
import sys
import tempfile

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# The start-up decode cache (datasets.scan.ImageCache) of the test session.
os.environ.setdefault('CLOUDTRAN_CACHE_DIR', tempfile.mkdtemp(prefix='cache'))
# XLA executables of the session (the samplers are compiled with XLA), kept
# on disk so that a graph compiled once is loaded, not compiled again, by the
# next test or command-line run that builds the same graph: the same
# executable, half the CPU time of a predict.py run. Each session compiles
# afresh.
os.environ.setdefault(
    'TF_XLA_FLAGS', '--tf_xla_persistent_cache_directory=' +
    tempfile.mkdtemp(prefix='xla'))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import pytest  # pylint: disable=g-import-not-at-top

from configs import common  # pylint: disable=g-import-not-at-top
from utils import distribute  # pylint: disable=g-import-not-at-top

# Split the CPU before TensorFlow initialises its devices, so tests can run
# mirrored over two replicas; everything else runs on the first device.
distribute.split_cpu(2)


@pytest.fixture(scope='session')
def synthetic_data(tmp_path_factory):
  """A small synthetic dataset (6 tiles per split, 8 dates, 32×32, L2A)."""
  from tools import synthetic  # pylint: disable=g-import-not-at-top
  out = tmp_path_factory.mktemp('synthetic')
  synthetic.main([str(out), '--tiles', '6', '--dates', '8', '--size', '32',
                  '--naming', 'l2a', '--seed', '0'])
  return out


@pytest.fixture
def tiny_config(synthetic_data):
  """Returns name -> the `:tiny` config `name` reading `synthetic_data`."""

  return lambda name: tiny_config_at(synthetic_data, name)


def tiny_config_at(root, name):
  """The `:tiny` config `name` (e.g. 'cloudtran_core_train') reading `root`."""
  config = importlib.import_module(f'configs.{name}').get_config('tiny')
  split = 'trainset' if name.endswith('_train') else 'testset'
  return common.use_dataset(config, str(root), split)
