"""Faults and bad input: each reported fault reproduced,
with the behaviour that replaces it.

1. 16-bit masks: read by value at start-up and in the pipeline alike.
2. Two trainings on one logdir: the second is refused (runlock).
3. A corrupt newest checkpoint: moved aside, the one before is restored;
   config.yaml is written only after the restore and guarded on resume.
4. A corrupt image body, or a grayscale image among RGB: a start-up error
   naming the file.
5. Every command: one line `error: ...` on stderr and exit status 2.
6. eval beside training reads max_train_steps from the run's config.yaml.

More faults, numbered "Part 2, n." below:
1. SIGTERM/SIGINT: training saves the step reached and exits 143/130;
   sampling and prediction stop after their batch, keeping it.
2. A checkpoint that does not fit the config: one line naming the config
   keys that differ and the fix, before TensorFlow restores anything.
3. predict: masks short of the grid or no clear pixel on any date are
   refused (unless --allow_unobserved); the fill shares are logged.
4. Run length, batch size and resolution out of range, a full disk, an eval
   job without a run, --inputs matching the mask files: one line each.
"""

import copy
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from conftest import tiny_config_at
from datasets import pipeline
from datasets import scan
from datasets import selection
from datasets import transforms
from jobs import checkpoints
from jobs import eval_checkpoints
from jobs import predict
from jobs import sample
from datasets import sample_outputs
from jobs import train
from rasters import reader
from tests import ondisk_helpers
from tests import raster_helpers
from tools import summary
from tools import synthetic_geotiff
from utils import cli
from utils import distribute
from utils import runconfig
from utils import runlock
from utils import stop
from utils.errors import DataError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# TensorFlow's native start-up lines and absl log lines: everything on
# stderr that is not the command's own output.
LOG_LINE = (r'^([IWEF]\d{4} [\d:.]+ +\d+ \S+:\d+\] |'
            r'WARNING: All log messages before absl::InitializeLog)')


def one_device():
  return distribute.make_strategy('CPU', 1)


def mask_paths(root):
  return sorted(glob.glob(os.path.join(root, 'masks_final_testset', '*',
                                       '*.png')))


# 1. 16-bit masks.


def test_16bit_masks_agree_between_startup_and_pipeline(tmp_path):
  root = ondisk_helpers.write_known_split(str(tmp_path / 'data'))
  config = ondisk_helpers.known_config(root)
  tiles = [e.tile for e in selection.select(config, 'test').examples]
  batch = pipeline.get_dataset(config, 4, 'test')
  masks = next(batch.as_numpy_iterator())['mask']
  cloudy = {p: np.asarray(Image.open(p)) > 0 for p in mask_paths(root)}
  for value in (1, 255, 256, 65535):
    for path, cloud in cloudy.items():
      Image.fromarray(np.where(cloud, value, 0).astype(np.uint16)).save(path)
      assert Image.open(path).mode == 'I;16'
      # Start-up and pipeline decoders alike: non-zero = cloudy.
      np.testing.assert_array_equal(scan.read_clear_mask(path, False), ~cloud)
      mapped = tf.data.Dataset.from_tensors(path).map(
          lambda p: transforms.decode_clear_mask(tf.io.read_file(p), False))
      np.testing.assert_array_equal(next(iter(mapped)), ~cloud)
    # Before: the pipeline's 8-bit decode read 1 and 255 as clear (0).
    old = tf.io.decode_image(tf.io.read_file(path), channels=1)
    assert (old.numpy().max() == 0) == (value < 256) or not cloud.any()
    assert [e.tile for e in selection.select(config, 'test').examples] == tiles
    np.testing.assert_array_equal(next(pipeline.get_dataset(
        config, 4, 'test').as_numpy_iterator())['mask'], masks)


def test_flipped_16bit_mask_is_clear_at_its_maximum(tmp_path):
  path = str(tmp_path / 'm.png')
  Image.fromarray(np.array([[0, 1, 65534, 65535]], np.uint16)).save(path)
  assert scan.read_clear_mask(path, True).tolist() == [[False] * 3 + [True]]


# 4. Corrupt or wrongly coloured images.


def corrupt_body(path):
  """Overwrites the middle of the file, keeping its header and end marker."""
  data = bytearray(open(path, 'rb').read())
  middle = len(data) // 2
  data[middle - 8:middle + 8] = b'\xff' * 16
  open(path, 'wb').write(bytes(data))


def image_path(root, tile=0, date=1):
  return os.path.join(root, 'videos_final_testset', f'{tile:05d}',
                      f'T{tile}_2020010{date + 1}_000.png')


def test_corrupt_image_body_fails_at_startup_naming_the_file(tmp_path):
  root = ondisk_helpers.write_known_split(str(tmp_path / 'data'))
  config = ondisk_helpers.known_config(root)
  selection.select(config, 'test')          # decodes and caches every image
  path = image_path(root, tile=2, date=1)
  corrupt_body(path)
  for _ in range(2):                        # the cache does not hide it
    with pytest.raises(DataError, match=f'Cannot read image {path} .*'
                       'corrupt or truncated'):
      selection.select(config, 'test')


def test_grayscale_or_rgba_among_rgb_is_an_error(tmp_path):
  root = ondisk_helpers.write_known_split(str(tmp_path / 'data'))
  config = ondisk_helpers.known_config(root)
  path = image_path(root, tile=1, date=1)
  rgb = np.asarray(Image.open(path))
  Image.fromarray(rgb[..., 0]).save(path)
  with pytest.raises(DataError, match=f'Image {path} is grayscale but '
                     'config.n_channels=3 reads RGB'):
    selection.select(config, 'test')
  config.n_channels = 1                     # grayscale is fine for luma
  selection.select(config, 'test')
  Image.fromarray(np.dstack([rgb, rgb[..., :1]])).save(path)
  config.n_channels = 3
  with pytest.raises(DataError, match=f'Image {path} is RGBA'):
    selection.select(config, 'test')


def test_image_changed_during_training_is_named(synthetic_data, tmp_path,
                                                monkeypatch):
  data = tmp_path / 'data'
  shutil.copytree(synthetic_data, data)
  config = tiny_config_at(data, 'cloudtran_core_train')
  config.max_train_steps = 4
  victims = sorted(glob.glob(str(data / 'videos_final_trainset/*/*.png')))
  made = train.train_dataset

  def scanned_then_corrupted(*args):
    dataset = made(*args)                   # the start-up scan passes
    for path in victims:
      corrupt_body(path)
    return dataset

  monkeypatch.setattr(train, 'train_dataset', scanned_then_corrupted)
  with pytest.raises(DataError, match='Cannot read image .*videos_final_'
                     'trainset/.*corrupt'):
    train.train(config, str(tmp_path / 'run'), one_device(),
                steps_per_summaries=2)


# 2. and 3. The logdir: lock, checkpoints, config.yaml.


def test_lock_refuses_a_second_writer_and_takes_over_a_dead_ones(tmp_path):
  path = runlock.acquire(str(tmp_path), 'train')
  with pytest.raises(runlock.LockHeld, match=f'in use by another train job '
                     f'\\(pid {os.getpid()} on .*, started .*\\) — wait'):
    runlock.acquire(str(tmp_path), 'train')
  runlock.release(path)
  dead = subprocess.Popen(['true'])
  dead.wait()
  with open(path, 'w') as f:
    f.write(f'{{"host": "{os.uname().nodename}", "pid": {dead.pid}, '
            '"started": "earlier"}')
  with runlock.hold(str(tmp_path), 'train'):
    assert f'"pid": {os.getpid()}' in open(path).read()
  assert not os.path.exists(path)


@pytest.fixture(scope='module')
def trained(synthetic_data, tmp_path_factory):
  """A core trained 4 steps, a checkpoint after each: (config, logdir)."""
  config = tiny_config_at(synthetic_data, 'cloudtran_core_train')
  config.max_train_steps = 4
  config.save_checkpoint_secs = 0
  logdir = str(tmp_path_factory.mktemp('trained'))
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(train, 'CHUNK_SECS', 0)      # one step per call
    train.train(config, logdir, one_device(), steps_per_summaries=2)
  return config, logdir


def test_second_sampling_job_on_one_output_is_refused(trained,
                                                       synthetic_data):
  _, logdir = trained
  config = tiny_config_at(synthetic_data, 'cloudtran_core_test')
  out_dir = sample_outputs.sample_dir(config, logdir, 'valid')
  os.makedirs(out_dir)
  gen_file = sample_outputs.gen_file(config, 'valid')
  with runlock.hold(out_dir, 'sample', f'{gen_file}.sample'):
    with pytest.raises(runlock.LockHeld, match=f'{out_dir} is in use by '
                       'another sample job'):
      sample.sample(config, logdir, 'sample_valid')
  shutil.rmtree(out_dir)


@pytest.fixture
def run_copy(trained, tmp_path):
  config, logdir = trained
  copy_dir = str(tmp_path / 'run')
  shutil.copytree(logdir, copy_dir)
  return copy.deepcopy(config), copy_dir


def steps_on_disk(logdir):
  return [checkpoints.step_of(p) for p in checkpoints.saved_paths(logdir)]


def test_truncated_newest_checkpoint_resumes_from_the_previous(run_copy,
                                                               caplog):
  caplog.set_level('INFO')
  config, logdir = run_copy
  data = glob.glob(os.path.join(logdir, 'model-4.data-*'))[0]
  os.truncate(data, os.path.getsize(data) // 2)
  os.remove(os.path.join(logdir, 'checkpoint'))   # and the index file lost
  state = train.train(config, logdir, one_device(), steps_per_summaries=2)
  assert state.step == 4
  assert f'Checkpoint {logdir}/model-4 cannot be read' in caplog.text
  assert f'Resumed from {logdir}/model-3' in caplog.text
  assert os.path.exists(os.path.join(logdir, 'corrupt',
                                     os.path.basename(data)))
  assert steps_on_disk(logdir) == [0, 1, 2, 3, 4]  # 0: the starting weights
  assert checkpoints.step_of(tf.train.latest_checkpoint(logdir)) == 4


def test_no_readable_checkpoint_stops_instead_of_starting_afresh(run_copy):
  config, logdir = run_copy
  for data in glob.glob(os.path.join(logdir, 'model-*.data-*')):
    os.truncate(data, 10)
  with pytest.raises(ValueError, match=f'None of the 5 checkpoints in '
                     f'{logdir} can be read'):
    train.train(config, logdir, one_device(), steps_per_summaries=2)


def test_changed_config_is_refused_and_config_yaml_kept(run_copy):
  config, logdir = run_copy
  before = open(runconfig.path_in(logdir)).read()
  config.model.encoder.ff_size = 32
  with pytest.raises(ValueError, match=r'\(model.encoder.ff_size: 16 -> 32\)'
                     ' — pass the same config'):
    train.train(config, logdir, one_device(), steps_per_summaries=2)
  # Allowed, the change does not fit the checkpoints: still not rewritten.
  with pytest.raises(ValueError, match='model-4 does not fit the config: '
                     'model.encoder.ff_size 16 in .*config.yaml, 32 in the '
                     'config given'):
    train.train(config, logdir, one_device(), steps_per_summaries=2,
                allow_config_change=True)
  assert open(runconfig.path_in(logdir)).read() == before


def test_a_key_added_since_the_run_started_resumes_at_its_old_meaning(
    tiny_config, tmp_path):
  """A config.yaml written before `synthetic_clouds` existed ran with
  'dataset': resuming with that is no change, with 'procedural' it is."""
  config = tiny_config('cloudtran_core_train')
  older = config.copy_and_resolve_references()
  del older['synthetic_clouds']
  runconfig.write(older, str(tmp_path), 0, [])
  assert 'synthetic_clouds' not in runconfig.read(str(tmp_path))
  assert runconfig.changes(config, str(tmp_path)) == []
  config.synthetic_clouds = 'procedural'
  assert runconfig.changes(config, str(tmp_path)) == [
      "synthetic_clouds: 'dataset' -> 'procedural'"]


def test_allowed_config_change_keeps_the_old_config(run_copy):
  config, logdir = run_copy
  config.save_checkpoint_secs = 1           # free: logging
  config.loss_factor = 0.5
  train.train(config, logdir, one_device(), steps_per_summaries=2,
              allow_config_change=True)
  assert 'loss_factor: 0.99' in open(os.path.join(logdir,
                                                  'config-4.yaml')).read()
  assert runconfig.read(logdir)['loss_factor'] == 0.5


# 6. eval beside training.


def test_eval_stops_at_the_runs_max_train_steps(trained, synthetic_data):
  _, logdir = trained
  config = tiny_config_at(synthetic_data, 'cloudtran_core_test')
  assert config.max_train_steps != 4       # the test config's own value
  config.eval_checkpoint_wait_secs = 60    # a safety net: must not be hit
  start = time.monotonic()
  results = eval_checkpoints.evaluate(config, logdir, one_device(),
                                      'eval_valid')
  assert sorted(results) == [4] and time.monotonic() - start < 50


def test_eval_timeout_ends_a_job_without_checkpoints(synthetic_data, tmp_path):
  config = tiny_config_at(synthetic_data, 'cloudtran_core_test')
  config.eval_checkpoint_wait_secs = 1     # what --eval_timeout_secs=1 sets
  assert not eval_checkpoints.evaluate(config, str(tmp_path), one_device(),
                                       'eval_valid')


def test_summary_of_a_test_config_reads_valid(synthetic_data):
  config = tiny_config_at(synthetic_data, 'cloudtran_core_test')
  subset = summary.default_subset(config)
  assert subset == 'valid'
  assert summary.summarize(config, subset, 1).startswith('valid pipeline')


# 5. Every command's bad input: one line on stderr, exit status 2.


def command(*args):
  return [sys.executable, *args]


def tiny(name):
  return f'--config={ROOT}/configs/{name}.py:tiny'


def own_lines(stderr):
  return [line for line in stderr.splitlines()
          if line.strip() and not re.match(LOG_LINE, line)]


def run_all(cases, cwd):
  """Runs {name: argv} concurrently; {name: CompletedProcess-like tuple}."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', CUDA_VISIBLE_DEVICES='',
             PYTHONPATH=ROOT)
  procs = {name: subprocess.Popen(argv, cwd=cwd, env=env, text=True,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
           for name, argv in cases.items()}
  return {name: (p.wait(timeout=300), *p.communicate())
          for name, p in procs.items()}


def test_config_flags_without_tensorflow(tmp_path):
  """cli.run alone (no TensorFlow import): fast."""
  driver = ('from utils import cli\n'
            'c = cli.define_config("c")\n'
            'cli.run(lambda _: print(repr(c.value.jsonf), '
            'repr(c.value.sample.gen_data_dir)))')
  base = ['-c', driver, tiny('cloudtran_core_test')]
  done = run_all({
      'none': command(*base, '--config.jsonf=None',
                      '--config.sample.gen_data_dir='),
      'unknown': command(*base, '--config.model.encoder.num_head=2'),
      'missing': command('-c', driver, '--config=configs/nope.py'),
  }, str(tmp_path))
  assert done['none'][:2] == (0, 'None None\n')
  for name, line in {
      'unknown': "error: --config.model.encoder.num_head: the config has no "
                 "key 'model.encoder.num_head' — did you mean "
                 '--config.model.encoder.num_heads',
      'missing': 'error: --config=configs/nope.py: cannot load this config '
                 'file — give the path'}.items():
    status, _, stderr = done[name]
    assert status == 2 and own_lines(stderr) == stderr.splitlines()
    assert len(own_lines(stderr)) == 1 and stderr.startswith(line), stderr


def test_every_command_reports_bad_input_in_one_line(synthetic_data, trained,
                                                     tmp_path):
  _, logdir = trained
  data = [f'--config.data_dir={synthetic_data}/videos_final_testset',
          f'--config.mask_dir={synthetic_data}/masks_final_testset',
          f'--config.jsonf={synthetic_data}/testset.json']
  typo = str(tmp_path / 'no_such_run')
  done = run_all({
      'train_data': command(
          'run.py', tiny('cloudtran_core_train'), '--logdir=new_run',
          '--accelerator_type=CPU', '--config.data_dir=/no/such/dir'),
      'sample_typo': command('sample.py', tiny('cloudtran_core_test'),
                             f'--logdir={typo}', *data),
      'sample_train_config': command(
          'sample.py', tiny('cloudtran_core_train'), f'--logdir={logdir}'),
      'sample_no_tiny': command(
          'sample.py', f'--config={ROOT}/configs/cloudtran_core_test.py',
          f'--logdir={logdir}', *data),
      'eval_no_tiny': command(
          'run.py', f'--config={ROOT}/configs/cloudtran_core_test.py',
          '--mode=eval_valid', '--accelerator_type=CPU', f'--logdir={logdir}',
          *data),
      'evaluate': command('evaluate.py', tiny('cloudtran_core_test'),
                          f'--samples=core={typo}', *data),
      'sheet': command('-m', 'tools.contact_sheet',
                       tiny('upsampler_test'), f'--core={typo}',
                       f'--upsampled={typo}', '--out=sheets', *data),
      'synthetic': command('-m', 'tools.synthetic', 'out', '--tiles=0'),
      'import': command('-m', 'tools.import_original',
                        tiny('cloudtran_core_test'), f'--logdir={typo}',
                        f'--original_ckpt={tmp_path}'),
  }, ROOT)
  expected = {
      'train_data': "error: config.data_dir='/no/such/dir' is not a "
                    'directory; point it at',
      'sample_typo': f'error: No checkpoint in {typo}; train first',
      'sample_train_config': 'error: --config=',
      'sample_no_tiny': f'error: Checkpoint {logdir}/model-4 does not fit '
                        f'the config: downsample_res 16 in {logdir}/config.yaml, '
                        '64 in the config given (also model.hidden_size 16 vs 128',
      'eval_no_tiny': f'error: Checkpoint {logdir}/model-4 does not fit '
                      f'the config: downsample_res 16 in {logdir}/config.yaml, '
                      '64 in the config given (also model.hidden_size 16 vs 128',
      'evaluate': f'error: No TFRecords at {typo} — run sample.py first or '
                  'fix --samples.',
      'sheet': f'error: No TFRecords at {typo} — run sample.py first or fix '
               '--core.',
      'synthetic': 'error: need --tiles >= 1',
      'import': f'error: --original_ckpt: no checkpoint in {tmp_path}.',
  }
  for name, start in expected.items():
    status, _, stderr = done[name]
    lines = own_lines(stderr)
    assert status == 2 and len(lines) == 1, (name, stderr[-2000:])
    assert lines[0].startswith(start), (name, lines)
  for name in ('sample_no_tiny', 'eval_no_tiny'):
    status, _, stderr = done[name]
    # One line of its own (above), whatever TensorFlow logs before it.
    assert stderr.endswith('— the run was trained with :tiny: append it to '
                           'the config path, without overrides of these '
                           'keys\n')
  assert 'has no `sample` section' in own_lines(
      done['sample_train_config'][2])[0]
  assert not os.path.exists(typo)
  assert not os.path.exists(os.path.join(ROOT, 'new_run'))


def test_second_training_on_a_running_logdir_is_refused(synthetic_data,
                                                         tmp_path):
  data = [f'--config.data_dir={synthetic_data}/videos_final_trainset',
          f'--config.mask_dir={synthetic_data}/masks_final_trainset',
          f'--config.jsonf={synthetic_data}/trainset.json']
  argv = command('run.py', tiny('cloudtran_core_train'), f'--logdir={tmp_path}',
                 '--accelerator_type=CPU', '--config.max_train_steps=100000',
                 *data)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', CUDA_VISIBLE_DEVICES='')
  first = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
  try:
    deadline = time.time() + 120
    while (not os.path.exists(tmp_path / 'train.lock') and
           time.time() < deadline):
      time.sleep(0.2)
    second = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True,
                            text=True, check=False, timeout=300)
  finally:
    first.send_signal(signal.SIGKILL)
    first.wait()
  lines = own_lines(second.stderr)
  assert second.returncode == 2 and len(lines) == 1, second.stderr[-2000:]
  assert lines[0].startswith(f'error: {tmp_path} is in use by another train '
                             f'job (pid {first.pid} on ')


# Part 2, 1. A polite stop: SIGTERM and SIGINT save before exiting.


def train_argv(data, logdir, *extra):
  return command('run.py', tiny('cloudtran_core_train'), f'--logdir={logdir}',
                 '--accelerator_type=CPU',
                 f'--config.data_dir={data}/videos_final_trainset',
                 f'--config.mask_dir={data}/masks_final_trainset',
                 f'--config.jsonf={data}/trainset.json', *extra)


def wait_for(path, pattern, proc, timeout=180):
  """The last match of `pattern` in the file once there is one."""
  deadline = time.time() + timeout
  while time.time() < deadline and proc.poll() is None:
    found = re.findall(pattern, open(path).read())
    if found:
      return found[-1]
    time.sleep(0.2)
  raise AssertionError(open(path).read()[-3000:])


# run.py with a second SIGINT sent to itself inside each checkpoint save but
# the first (the step-0 one): once the data files are written, before they
# are merged into model-<step>.
SECOND_SIGINT_IN_SAVE = """
import os, runpy, signal, sys
from tensorflow.python.ops import gen_io_ops
merge, saves = gen_io_ops.merge_v2_checkpoints, []
def merge_after_a_second_sigint(*args, **kwargs):
  saves.append(1)
  if len(saves) > 1:
    os.kill(os.getpid(), signal.SIGINT)
  return merge(*args, **kwargs)
gen_io_ops.merge_v2_checkpoints = merge_after_a_second_sigint
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""


@pytest.fixture(scope='module')
def stopped_runs(synthetic_data, tmp_path_factory):
  """Two trainings run side by side, each signalled once it logged a step,
  the SIGINT one signalled again during its save:
  {signal: (last logged step, exit status, stderr, logdir)}."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', CUDA_VISIBLE_DEVICES='')
  runs = {}
  for sig in (signal.SIGTERM, signal.SIGINT):
    logdir = str(tmp_path_factory.mktemp(sig.name))
    log = open(os.path.join(logdir, 'stderr'), 'w')
    argv = train_argv(synthetic_data, logdir, '--steps_per_summaries=3',
                      '--config.save_checkpoint_secs=100000',
                      '--config.max_train_steps=100000')
    if sig == signal.SIGINT:
      argv[1:1] = ['-c', SECOND_SIGINT_IN_SAVE]
    runs[sig] = logdir, log, subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
  done = {}
  for sig, (logdir, log, proc) in runs.items():
    logged = int(wait_for(log.name, r'step (\d+)/100000', proc))
    proc.send_signal(sig)
    status = proc.wait(timeout=120)
    log.close()
    done[sig] = logged, status, open(log.name).read(), logdir
  return done


@pytest.mark.parametrize('sig, status', [(signal.SIGTERM, 143),
                                         (signal.SIGINT, 130)])
def test_signal_saves_the_step_reached_and_a_restart_continues(
    stopped_runs, synthetic_data, sig, status, caplog):
  caplog.set_level('INFO')
  logged, got, stderr, logdir = stopped_runs[sig]
  assert got == status and 'Traceback' not in stderr, stderr[-3000:]
  saved = int(re.search(rf'saved model-(\d+) on {sig.name}\n',
                        stderr).group(1))
  assert saved >= logged                    # nothing trained is lost
  assert own_lines(stderr)[-1] == (
      f'stopped on {sig.name} at step {saved}: {logdir}/model-{saved} is '
      'saved — run the same command again to resume')
  assert steps_on_disk(logdir) == [0, saved]
  assert not glob.glob(os.path.join(logdir, '*_temp'))
  if sig == signal.SIGINT:
    # Before: killed by the second SIGINT, no message, model-<step>_temp
    # left and the rerun resumed from step 0.
    assert own_lines(stderr)[-2] == (
        f'SIGINT again: waiting for the checkpoint save of step {saved} to '
        'finish, then stopping')
  if sig != signal.SIGTERM:                 # one restart is enough
    return
  config = tiny_config_at(synthetic_data, 'cloudtran_core_train')
  config.max_train_steps = saved + 1
  config.save_checkpoint_secs = 100000
  state = train.train(config, logdir, one_device(), steps_per_summaries=3)
  assert f'Resumed from {logdir}/model-{saved}' in caplog.text
  assert state.step == saved + 1
  assert steps_on_disk(logdir) == [0, saved, saved + 1]


def test_checkpoint_clock_is_read_between_summaries(synthetic_data, tmp_path,
                                                    monkeypatch, caplog):
  """Summaries every 100 steps, a checkpoint due after each step: before,
  the only checkpoints were the first and the last."""
  caplog.set_level('INFO')
  monkeypatch.setattr(train, 'CHUNK_SECS', 0)   # one step per call
  config = tiny_config_at(synthetic_data, 'cloudtran_core_train')
  config.max_train_steps = 3
  config.save_checkpoint_secs = 0
  train.train(config, str(tmp_path), one_device(), steps_per_summaries=100)
  assert steps_on_disk(str(tmp_path)) == [0, 1, 2, 3]
  assert re.findall(r'step (\d+)/3 ', caplog.text) == ['3']


def test_chunks_fit_the_pace_and_the_limit():
  assert train.chunk_steps(None, 100) == 1
  assert train.chunk_steps(train.CHUNK_SECS / 10, 100) == 10
  assert train.chunk_steps(train.CHUNK_SECS / 10, 4) == 4
  assert train.chunk_steps(train.CHUNK_SECS * 30, 100) == 1


def test_a_stopped_job_exits_without_the_interpreter_teardown(monkeypatch,
                                                             capsys):
  """Before: 5-60 s of teardown after the last line (Kubernetes waits 30)."""
  ended = []
  monkeypatch.setattr(os, '_exit', ended.append)

  def stopped():
    raise stop.Stopped(signal.SIGTERM, 'stopped on SIGTERM at step 3')
  cli.guard(stopped)
  assert ended == [143]
  assert capsys.readouterr().err == 'stopped on SIGTERM at step 3\n'


def signalled_after(fn, calls, sig):
  """`fn`, sending `sig` to this process during call number `calls`."""
  count = [0]

  def wrapped(*args, **kwargs):
    count[0] += 1
    if count[0] == calls:
      os.kill(os.getpid(), sig)
    return fn(*args, **kwargs)
  return wrapped


def test_sampling_stops_after_its_batch_and_resumes(trained, synthetic_data,
                                                    monkeypatch, caplog):
  caplog.set_level('INFO')
  _, logdir = trained
  config = tiny_config_at(synthetic_data, 'cloudtran_core_test')
  config.sample.only_parallel = True
  config.sample.log_dir = 'samples_stopped'
  monkeypatch.setattr(sample, '_sample_batch', signalled_after(
      sample._sample_batch, 1, signal.SIGTERM))
  with pytest.raises(stop.Stopped, match='stopped on SIGTERM after batch 1 of '
                     '2: the finished batches are kept in .*gen0.parts — run'
                     ) as stopped:
    sample.sample(config, logdir, 'sample_valid')
  assert stopped.value.status == 143
  monkeypatch.undo()
  result = sample.sample(config, logdir, 'sample_valid')
  assert 'Resuming after 1 complete batches' in caplog.text
  assert result['outputs'] == 6              # the whole valid subset


def test_prediction_stops_after_its_batch_and_resumes(tmp_path, caplog):
  caplog.set_level('INFO')
  out = str(tmp_path / 'out.tif')
  synthetic_geotiff.write_scene(str(tmp_path / 'scene'), width=70, height=50,
                                dates=4, seed=1)
  with reader.open_series(str(tmp_path / 'scene/images/*.tif'),
                          scl=str(tmp_path / 'scene/scl/*.tif')) as series:
    run = lambda predictor: predict.predict(
        series, predictor, out, predict.Options(
            tile_size=32, timeline=4, overlap=8, batch_size=2))
    with pytest.raises(stop.Stopped, match=r'stopped on SIGINT with 2 of 6 '
                       r'tiles of this job done in .*out.tif.work — run'
                       ) as stopped:
      run(signalled_after(lambda rgb, clear: rgb[:, -1], 1, signal.SIGINT))
    assert stopped.value.status == 130
    assert run(lambda rgb, clear: rgb[:, -1])['image'] == out
  assert 'Resuming: 2 tile(s) of this shard already done.' in caplog.text


# Part 2, 2. Checkpoint and config agree before anything runs.


def test_a_checkpoint_of_another_size_names_the_keys_and_the_variant(
    trained, synthetic_data):
  _, logdir = trained
  config = tiny_config_at(synthetic_data, 'cloudtran_core_test')
  config.model.hidden_size = 32
  with pytest.raises(ValueError, match=(
      f'^Checkpoint {logdir}/model-4 does not fit the config: '
      f'model.hidden_size 16 in {logdir}/config.yaml, 32 in the config '
      r'given \(also model.decoder.ff_size 16 vs 32\) — the run was trained '
      r'with :tiny: append it to the config path, without overrides of these '
      r'keys$')):
    checkpoints.restore_averaged_model(config, logdir)


def test_a_checkpoint_of_another_model_size_names_the_variable(
    synthetic_data, tmp_path):
  run = tiny_config_at(synthetic_data, 'upsampler_train')
  run.model.hidden_size = 8
  averaged = checkpoints.AveragedModel(run)
  tf.train.Checkpoint(model=averaged.model, ema=averaged.ema).write(
      str(tmp_path / 'model-0'))
  config = tiny_config_at(synthetic_data, 'upsampler_test')
  with pytest.raises(ValueError, match=(
      r'model-0 does not fit the model the config builds \(.*: \(2304, 8\) '
      r'in the checkpoint, \(2304, 16\) in the model\) — give the config')):
    checkpoints.restore_averaged_model(config, str(tmp_path),
                                       str(tmp_path / 'model-0'))
  runconfig.write(run, str(tmp_path), 0, [])
  with pytest.raises(ValueError, match=(
      'model.hidden_size 8 in .*, 16 in the config given.* — set '
      'MODEL_SIZE=8 as the run was trained')):
    checkpoints.restore_averaged_model(config, str(tmp_path),
                                       str(tmp_path / 'model-0'))


# Part 2, 3. No invented scenes in predict.


def series_of(root, mask_of_date, mask_kwargs=None):
  """Four dates of 40x48 px with the mask `mask_of_date(i)` each; the open
  series."""
  dates = {f'2024-07-0{i + 1}': (raster_helpers.ramp_image(40, 48, seed=i),
                                 mask_of_date(i)) for i in range(4)}
  images, masks = raster_helpers.write_series(root, dates,
                                              mask_kwargs=mask_kwargs)
  return reader.open_series(images, masks=masks)


def predict_into(series, out, **kwargs):
  return predict.predict(series, lambda rgb, clear: rgb[:, -1], str(out),
                         predict.Options(tile_size=32, timeline=4, overlap=4,
                                         **kwargs))


def test_a_scene_clear_on_no_date_is_refused_unless_allowed(tmp_path, caplog):
  caplog.set_level('INFO')
  cloudy = lambda i: np.ones((40, 48), np.uint8)
  with series_of(str(tmp_path), cloudy) as series:
    # Before: exit 0 and an image invented from nothing.
    with pytest.raises(DataError, match=(
        "^no pixel of the scene is clear on any of the model's dates "
        r'\(2024-07-02, 2024-07-03, 2024-07-04\): the whole output would be '
        'invented — check .*, or pass --allow_unobserved$')):
      predict_into(series, tmp_path / 'out.tif')
    assert not os.path.exists(tmp_path / 'out.tif.work')
    predict_into(series, tmp_path / 'out.tif', allow_unobserved=True)
  assert ('100.0 % of the pixels filled by the model, 100.0 % with no clear '
          'date (fill code 2)') in caplog.text
  assert ("100 % of the scene had no clear pixel on any of the model's dates "
          '(2024-07-02, 2024-07-03, 2024-07-04): its fill is invented. Add '
          'clearer dates among the 2 before 2024-07-04') in caplog.text


def test_a_mask_short_of_the_grid_is_refused(tmp_path):
  left_half = lambda i: np.zeros((40, 24), np.uint8)
  with series_of(str(tmp_path), left_half) as series:
    # Before: the uncovered half counted as cloudy and was model output.
    with pytest.raises(DataError, match=(
        r'^the mask .*/masks/2024-07-02_masks.tif covers only 50 % of the '
        "target's grid .* — give masks that cover the whole scene, or pass "
        '--allow_unobserved$')):
      predict_into(series, tmp_path / 'out.tif')


def test_fill_shares_are_logged(tmp_path, caplog):
  caplog.set_level('INFO')

  def top_cloudy_on_target(i):
    mask = np.zeros((40, 48), np.uint8)
    mask[:10] = i == 3
    return mask
  with series_of(str(tmp_path), top_cloudy_on_target) as series:
    predict_into(series, tmp_path / 'out.tif')
  assert ('25.0 % of the pixels filled by the model, 0.0 % with no clear '
          'date (fill code 2).') in caplog.text
  assert 'invented' not in caplog.text


# Part 2, 4. Range checks, a full disk, an eval job without a run, --inputs
# beside the masks.


@pytest.mark.parametrize('key, value, error, message', [
    ('max_train_steps', 0, ValueError, r'config.max_train_steps=0 must be '
     r'>= 1.'),
    ('batch_size', 0, ValueError, r'config.batch_size=0 must be >= 1.'),
    ('resolution', (32,), DataError, r"config.resolution=\(32,\) must be a "
     r"pair of positive ints — e.g. --config.resolution='\(224, 224\)'"),
    ('resolution', (0, 0), DataError, r'config.resolution=\(0, 0\) must be '
     '.*'),
])
def test_out_of_range_keys_are_one_line(synthetic_data, tmp_path, key, value,
                                        error, message):
  """Before: exit 0 having trained nothing, a TensorFlow op error, or
  unpacking/numpy messages."""
  config = tiny_config_at(synthetic_data, 'cloudtran_core_train')
  config[key] = value
  with pytest.raises(error, match=f'^{message}$'):
    train.train(config, str(tmp_path), one_device())
  assert not os.listdir(tmp_path)


def test_a_run_length_below_the_resumed_step_is_refused(run_copy):
  config, logdir = run_copy
  config.max_train_steps = 2
  with pytest.raises(ValueError, match=(
      f'^config.max_train_steps=2 is below step 4, where the run in {logdir} '
      'is — raise it')):
    train.train(config, logdir, one_device(), steps_per_summaries=2)


def test_a_full_disk_names_the_checkpoint_and_leaves_no_part(
    synthetic_data, tmp_path, monkeypatch):
  def no_space(manager, checkpoint_number):
    part = os.path.join(manager.directory, f'model-{checkpoint_number}_temp')
    os.makedirs(part)
    open(os.path.join(part, 'part-00000-of-00001.data-00000-of-00001'),
         'w').close()
    raise tf.errors.ResourceExhaustedError(
        None, None, f'{part}/part-00000-of-00001.data-00000-of-00001.tempstate'
        '; No space left on device [Op:SaveV2]')
  monkeypatch.setattr(tf.train.CheckpointManager, 'save', no_space)
  config = tiny_config_at(synthetic_data, 'cloudtran_core_train')
  logdir = str(tmp_path / 'run')
  # Before: TensorFlow's SaveV2 message and a model-0_temp folder left.
  with pytest.raises(OSError, match=(
      f'^Cannot write checkpoint {logdir}/model-0 \\(.*No space left on '
      f'device .*\\) — free space in {logdir} and run again; it resumes from '
      'the start$')):
    train.train(config, logdir, one_device())
  assert not glob.glob(os.path.join(logdir, 'model-0*'))


@pytest.mark.parametrize('error, advice', [
    (tf.errors.ResourceExhaustedError(None, None, (
        '{{function_node __wrapped__WriteSummary_device_/job:localhost}} '
        '/r/train_summaries/events.out; No space left on device\n\tFailed to '
        'flush 11 events')), 'free space in /r'),
    (tf.errors.PermissionDeniedError(None, None, (
        '/r/train_summaries/events.out; Permission denied')),
     'make /r writable for this user'),
    (OSError(30, 'Read-only file system'), 'make /r writable for this user'),
    (OSError(5, 'Input/output error'), 'check that /r can be written'),
])
def test_a_failed_write_names_the_path_and_the_fix(error, advice):
  """Before: TensorFlow's message, `{{function_node ...}}` first, or
  `[Errno 28] No space left on device` with no path, and no advice."""
  message = str(checkpoints.write_error(error, 'the summaries in '
                                        '/r/train_summaries', '/r'))
  assert message.startswith('Cannot write the summaries in '
                            '/r/train_summaries (')
  assert message.endswith(f' — {advice} and run again') or (
      f' — {advice} (or give another directory) and run again' in message)
  assert '{{' not in message and '\n' not in message


def test_a_full_disk_at_the_lock_names_the_lock_file(tmp_path, monkeypatch):
  def no_space(*_):
    raise OSError(28, 'No space left on device')
  monkeypatch.setattr(runlock.json, 'dump', no_space)
  with pytest.raises(OSError) as raised:
    runlock.acquire(str(tmp_path), 'train')
  lock = str(tmp_path / 'train.lock')
  assert raised.value.filename == lock and not os.path.exists(lock)
  assert cli._error_line(raised.value) == (
      f'No space left on device: {lock} — free space on the disk of {lock} '
      '(or write elsewhere), then run the command again', 2)


def test_no_gpu_is_an_input_error_that_says_to_pass_cpu(monkeypatch):
  # Before: a RuntimeError, reported as a bug with exit status 1.
  monkeypatch.setattr(distribute.tf.config, 'list_logical_devices',
                      lambda kind: [])
  with pytest.raises(ValueError) as raised:
    distribute.local_devices('GPU', 1)
  message, status = cli._error_line(raised.value)
  assert status == 2 and message.endswith(
      '— pass --accelerator_type=CPU to run on the CPU.')


def test_eval_of_a_logdir_without_a_run_says_so(synthetic_data, tmp_path):
  config = tiny_config_at(synthetic_data, 'cloudtran_core_test')
  typo = str(tmp_path / 'typo')
  # Before: created the mistyped logdir and waited forever.
  with pytest.raises(FileNotFoundError, match=f'^--logdir={typo} does not '
                     'exist — point it at a training run'):
    eval_checkpoints.evaluate(config, typo, one_device(), 'eval_valid')
  assert not os.path.exists(typo)
  with pytest.raises(FileNotFoundError, match=f'^--logdir={tmp_path} holds '
                     'no training run .* or pass --eval_timeout_secs$'):
    eval_checkpoints.evaluate(config, str(tmp_path), one_device(),
                              'eval_valid')


def test_inputs_leave_out_the_mask_files_they_match(tmp_path):
  """The README's `--inputs 'scenes/*.tif' --scl 'scenes/*_SCL*.tif'` with
  both kinds in one folder; before: the SCL files were read as images."""
  scene = str(tmp_path / 'scene')
  synthetic_geotiff.write_scene(scene, width=40, height=36, dates=3, seed=2)
  flat = tmp_path / 'flat'
  flat.mkdir()
  for path in glob.glob(f'{scene}/images/*.tif') + glob.glob(
      f'{scene}/scl/*.tif'):
    shutil.copy(path, flat)
  with reader.open_series(str(flat / '*.tif'),
                          scl=str(flat / '*_SCL*.tif')) as series:
    assert len(series.dates) == 3
    assert not any('_SCL' in os.path.basename(p) for p in series.paths)
  with pytest.raises(DataError, match='matches only the --scl files'):
    reader.open_series(str(flat / '*_SCL*.tif'), scl=str(flat / '*_SCL*.tif'))
