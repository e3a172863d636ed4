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

# The files that take longest, longest first (seconds of a `make test` on
# the 2-core VM, 2026-12-08). They run first, so that pytest-xdist hands
# the short files out last and its workers finish together; `make test`
# passes --no-loadscope-reorder, else xdist sends the files with the most
# tests first and a long file with few tests (test_run.py) last. A file
# missing here only costs time.
SLOWEST_FIRST = ('test_train_loop.py', 'test_sample.py', 'test_faults.py',
                 'test_run.py', 'test_stac.py', 'test_precision.py',
                 'test_sampler.py', 'test_predict.py',
                 'test_configs_small.py', 'test_selfcheck.py',
                 'test_models_build.py', 'test_core.py', 'test_evaluate.py',
                 'test_import_original.py')


def pytest_collection_modifyitems(items):
  """Puts the files of SLOWEST_FIRST first, in its order; the tests of a
  file, and the other files, keep their order."""
  rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


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
