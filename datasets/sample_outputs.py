"""Sampling jobs: where each one writes, and which job wrote what is there.

A job is one `sample.py` run. Its identity is what its outputs depend on:
the subset, the checkpoint, the config and, for a chained model (the
upsampler), the earlier jobs whose outputs it reads. `start` records it in
`<sample dir>/<gen_file>.job.json` and, when outputs are already there,
requires the same identity: a job never resumes over, or is counted as the
continuation of, another job's outputs (a newer checkpoint, another subset,
a changed config). `--restart` deletes them and starts over instead.
`chained_inputs` checks the job records of `sample.gen_data_dir` the same
way: the earlier model's outputs of this subset, one draw each, from output
0 without gaps.

`{subset}` in `sample.log_dir` and `sample.gen_file` stands for the subset's
label, so each subset has its own outputs by default (`samples_core_valid`,
`samples_core_test`; an explicit name is used as given).
"""

import json
import os
import re
import shutil

import tensorflow as tf

from datasets import tfrecords
from utils import runconfig

SUBSET_FIELD = '{subset}'
JOB_SUFFIX = '.job.json'
# What a chained job keeps of each earlier job it reads.
INPUT_KEYS = ('subset', 'checkpoint', 'first_output', 'num_samples')
# At most this many config differences are listed in an error.
MAX_LISTED = 8


class JobMismatch(ValueError):
  """Outputs on disk come from another job than the one asked for."""


def sample_dir(config, logdir, label):
  """`<logdir>/<sample.log_dir>` for subset `label`; `_parallel` appended
  with `sample.only_parallel`."""
  name = config.sample.log_dir.replace(SUBSET_FIELD, label)
  if config.sample.only_parallel:
    name += '_parallel'
  return os.path.join(logdir, name)


def gen_file(config, label):
  """`sample.gen_file` for subset `label` (the TFRecord file's stem)."""
  return config.sample.gen_file.replace(SUBSET_FIELD, label)


def job_path(directory, stem):
  return os.path.join(directory, stem + JOB_SUFFIX)


def identity(config, label, checkpoint, inputs=()):
  """A job's identity, as JSON values.

  Args:
    config: the job's config.
    label: the sampled subset's label (valid, test, train).
    checkpoint: path of the checkpoint the model is restored from.
    inputs: `chained_inputs` of `sample.gen_data_dir`, if set.
  """
  s = config.sample
  return {
      'subset': label,
      'checkpoint': os.path.basename(checkpoint),
      'first_output': s.skip_batches * s.batch_size,
      'num_samples': s.num_samples,
      'inputs': list(inputs),
      'config': json.loads(json.dumps(config.to_dict())),
  }


def read(path):
  """The job recorded at `path`, or None when there is none."""
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def _write(path, job):
  with open(path + '.tmp', 'w') as f:
    json.dump(job, f, indent=1, sort_keys=True)
  os.replace(path + '.tmp', path)


def differences(recorded, current):
  """What differs between two identities, one phrase each."""
  found = []
  if recorded['subset'] != current['subset']:
    found.append(f'they are outputs of the {recorded["subset"]} subset, this '
                 f'job samples {current["subset"]}')
  if recorded['checkpoint'] != current['checkpoint']:
    found.append(f'they come from checkpoint {recorded["checkpoint"]}, the '
                 f'newest checkpoint now is {current["checkpoint"]}')
  if recorded['inputs'] != current['inputs']:
    found.append('the outputs of sample.gen_data_dir they were made from '
                 'have changed')
  old, new = (runconfig.flatten(recorded['config']),
              runconfig.flatten(current['config']))
  changed = [f'config.{key} was {old.get(key)!r}, now {new.get(key)!r}'
             for key in sorted(set(old) | set(new))
             if old.get(key) != new.get(key)]
  if len(changed) > MAX_LISTED:
    changed[MAX_LISTED:] = [f'and {len(changed) - MAX_LISTED} more config '
                            'keys']
  return found + changed


def _png_index(name):
  match = re.match(r'(\d+)_.*\.png$', name)
  return int(match.group(1)) if match else None


def _delete(directory, owned, recorded):
  """Removes the `owned` files or directories and, if the job that wrote
  them is recorded, the PNGs of its outputs."""
  for path in owned:
    if os.path.isdir(path):
      shutil.rmtree(path)
    elif os.path.exists(path):
      os.remove(path)
  if recorded is None:
    return
  first = recorded['first_output']
  last = first + recorded['config']['sample']['num_outputs']
  for name in os.listdir(directory):
    index = _png_index(name)
    if index is not None and first <= index < last:
      os.remove(os.path.join(directory, name))


def start(directory, stem, job, has_outputs, restart, owned):
  """Checks a job against the outputs in `directory`, then records it.

  Args:
    directory: the job's sample directory (it exists).
    stem: its `gen_file`.
    job: its `identity`.
    has_outputs: whether outputs of `stem` are already there (complete or
      partial).
    restart: delete those outputs and start over instead of checking them.
    owned: the files and directories of the outputs, deleted on restart
      (the recorded job's PNGs are deleted too).

  Raises:
    JobMismatch: outputs are there and were written by another job (or by
      a version that recorded no job), and not `restart`.
  """
  path = job_path(directory, stem)
  recorded = read(path)
  if restart:
    _delete(directory, owned + [path], recorded)
  elif has_outputs:
    if recorded is None:
      raise JobMismatch(
          f'{directory} holds outputs of {stem} but no {stem}{JOB_SUFFIX} '
          'saying which job wrote them (an older version or upstream did); '
          'pass --restart to delete them and sample again, or set another '
          'sample.log_dir.')
    found = differences(recorded, job)
    if found:
      raise JobMismatch(
          f'{directory} holds outputs of another job than this one '
          f'({path}): {"; ".join(found)}. Pass --restart to delete them and '
          'sample again, or set another sample.log_dir or sample.gen_file '
          'to keep them.')
    return
  _write(path, job)


def chained_inputs(gen_dir, label):
  """The earlier jobs whose outputs `gen_dir` holds, checked for chaining.

  Their TFRecords are read as one sequence (see `tfrecords.record_files`)
  whose k-th image goes with the k-th example of the subset, so they must
  be outputs of the subset `label`, one draw per input, from output 0 with
  no gap.

  Returns:
    [{'file', 'outputs', *INPUT_KEYS}] in reading order (part of the
    chained job's identity).

  Raises:
    JobMismatch: naming the file and what to do.
  """
  inputs = []
  expected = 0
  for path in tfrecords.record_files(gen_dir):
    stem = os.path.basename(path)[:-len(tfrecords.SUFFIX)]
    job = read(job_path(os.path.dirname(path), stem))
    if job is None:
      raise JobMismatch(
          f'{path} has no {stem}{JOB_SUFFIX} saying which job wrote it; '
          'sample the earlier model again with this sample.py (a job '
          'records its subset and checkpoint beside its outputs).')
    if job['subset'] != label:
      raise JobMismatch(
          f'{path} holds outputs of the {job["subset"]} subset but this job '
          f'samples {label}: set sample.gen_data_dir to the outputs of the '
          f'earlier model\'s --mode=sample_{label} job.')
    if job['num_samples'] != 1:
      raise JobMismatch(
          f'{path} holds {job["num_samples"]} draws per input side by side; '
          'a chained model reads one: sample the earlier model with '
          'sample.num_samples=1.')
    if job['first_output'] != expected:
      raise JobMismatch(
          f'{path} starts at output {job["first_output"]}, not {expected}: '
          'sample.gen_data_dir must hold every output of the subset from 0 '
          '(all parts of a job split with sample.skip_batches).')
    count = sum(1 for _ in tf.data.TFRecordDataset(path))
    expected += count
    inputs.append({'file': os.path.basename(path), 'outputs': count,
                   **{key: job[key] for key in INPUT_KEYS}})
  return inputs
