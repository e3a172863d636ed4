"""config.precision: bfloat16 compute beside the float32 default."""

import ml_collections
import numpy as np
import pytest
import tensorflow as tf

import models
from datasets import pipeline
from jobs import checkpoints
from jobs import train
from models import base
from models import precision
from utils import cpu_flags
from utils import distribute

PRECISIONS = ('float32', 'bfloat16')
KINDS = {'core': 'cloudtran_core_train', 'upsampler': 'upsampler_train'}
# Training steps of each run, one batch of 2 each, the same for both
# precisions, at a learning rate ten times :tiny's, so that the loss falls
# clearly within them (by 0.5-1 bits/dim) and bfloat16's rounding has the
# chance to push the two runs apart.
STEPS = 5
LEARNING_RATE = 1e-2
# Largest difference (bits/dim) between the two precisions' training losses
# at each of the first STEPS steps from one seed: measured under 0.005
# (core and upsampler), beside a fall of more than FALL.
LOSS_TOLERANCE = 0.02
FALL = 0.4


def one_device():
  return distribute.make_strategy('CPU', 1)


def config_of(tiny_config, kind, precision_name):
  config = tiny_config(KINDS[kind])
  config.precision = precision_name
  return config


def dataset_of(batches):
  """The batches, in order, as a dataset of one-device batches."""
  stacked = {key: tf.stack([batch[key] for batch in batches])
             for key in batches[0]}
  return one_device().experimental_distribute_dataset(
      tf.data.Dataset.from_tensor_slices(stacked))


def trained(config, batches):
  """(TrainState, losses): one step per batch through run.py's loop, from
  `config.seed`."""
  tf.keras.utils.set_random_seed(config.seed)
  state = train.TrainState(config, one_device())
  loop = train.make_train_loop(state)
  iterator = iter(dataset_of(batches))
  losses = [float(loop(iterator, tf.constant(1))['loss']) for _ in batches]
  return state, losses


@pytest.fixture(scope='module')
def runs(synthetic_data):
  """{(kind, precision): (TrainState, losses, batches)}: STEPS steps of the
  `:tiny` core (with its discriminator) and upsampler on the same batches
  of the synthetic dataset in each precision."""
  from conftest import tiny_config_at  # pylint: disable=g-import-not-at-top
  result = {}
  for kind in KINDS:
    config = tiny_config_at(synthetic_data, KINDS[kind])
    batches = list(pipeline.get_dataset(config, 2, 'train').take(STEPS))
    for name in PRECISIONS:
      config = tiny_config_at(synthetic_data, KINDS[kind])
      config.precision = name
      config.optimizer.learning_rate = LEARNING_RATE
      result[kind, name] = trained(config, batches) + (batches,)
  return result


def float_policies(model):
  """The names of the dtype policies of a model's layers."""
  return {layer.dtype_policy.name for layer in model._flatten_layers()}  # pylint: disable=protected-access


@pytest.mark.parametrize('kind', sorted(KINDS))
@pytest.mark.parametrize('precision_name', PRECISIONS)
def test_trains_and_samples_with_float32_variables_and_logits(
    runs, kind, precision_name):
  state, losses, batches = runs[kind, precision_name]
  model = state.model
  assert all(np.isfinite(losses))
  assert {tf.as_dtype(v.dtype) for v in model.variables} == {tf.float32}
  policies = float_policies(model)
  expected = {'float32'} | ({'mixed_bfloat16'}
                            if precision_name == 'bfloat16' else set())
  assert policies == expected
  logits, aux = model.get_logits(batches[0], training=False)
  assert logits.dtype == tf.float32
  assert all(value.dtype == tf.float32 for value in aux.values())
  outputs = model.sample(batches[0], mode='argmax')
  image = outputs[base.OUTPUT].numpy()
  side = model.output_side(model.config)
  assert image.shape == (2, side, side, model.num_channels)
  assert image.min() >= 0 and image.max() <= 255
  confidence = outputs[base.CONFIDENCE].numpy()
  assert confidence.dtype == np.float32
  assert 0 < confidence.min() and confidence.max() <= 1


def test_bfloat16_computes_in_bfloat16(runs):
  """The core's encoder output (and so the decoders' input) is bfloat16."""
  core = runs['core', 'bfloat16'][0].model
  _, slots, offsets = core.split_inputs(runs['core', 'bfloat16'][2][0],
                                        training=False)
  assert core.encode(slots, offsets).dtype == tf.bfloat16
  disc = runs['core', 'bfloat16'][0].discriminator
  assert 'mixed_bfloat16' in float_policies(disc)
  assert disc.output.dtype == 'float32'


@pytest.mark.parametrize('kind', sorted(KINDS))
def test_first_steps_loss_curves_agree(runs, kind):
  f32, b16 = (runs[kind, name][1] for name in PRECISIONS)
  np.testing.assert_allclose(b16, f32, atol=LOSS_TOLERANCE)
  for losses in (f32, b16):     # both learn
    assert losses[-1] < losses[0] - FALL


def all_variables(state):
  """Every variable of a training checkpoint: model, EMA, optimizer,
  discriminator and its optimizer, in the order they are built."""
  return (state.model.variables + list(state.ema.shadows) +
          state.optimizer.variables + state.discriminator.variables +
          state.disc_optimizer.variables)


@pytest.mark.parametrize('source,target', [PRECISIONS, PRECISIONS[::-1]])
def test_checkpoint_restores_in_the_other_precision(runs, tiny_config,
                                                    tmp_path, source,
                                                    target):
  state = runs['core', source][0]
  path = checkpoints.save(checkpoints.make_manager(
      state.checkpoint, one_device(), str(tmp_path)), state.step)
  restored = train.TrainState(config_of(tiny_config, 'core', target),
                              one_device())
  assert checkpoints.restore_newest(restored.checkpoint, str(tmp_path),
                                    restored.config) == path
  assert restored.step == STEPS
  pairs = list(zip(all_variables(state), all_variables(restored),
                   strict=True))
  for saved, loaded in pairs:
    assert tf.as_dtype(loaded.dtype) == tf.as_dtype(saved.dtype)
    np.testing.assert_array_equal(loaded.numpy(), saved.numpy())
  assert {tf.as_dtype(v.dtype) for v, _ in pairs} <= {tf.float32, tf.int64}


def test_invalid_precision_is_a_one_line_config_error(tiny_config):
  config = config_of(tiny_config, 'core', 'float16')
  with pytest.raises(ValueError) as error:
    models.build(config)
  message = str(error.value)
  assert '\n' not in message
  assert "config.precision='float16'" in message
  assert 'float32, bfloat16' in message


def test_building_restores_the_global_policy(tiny_config):
  config = config_of(tiny_config, 'upsampler', 'bfloat16')
  before = tf.keras.config.dtype_policy().name
  with pytest.raises(RuntimeError):
    with precision.building(config):
      assert tf.keras.config.dtype_policy().name == 'mixed_bfloat16'
      raise RuntimeError('construction failed')
  assert tf.keras.config.dtype_policy().name == before == 'float32'


def test_a_config_without_the_key_is_float32(tiny_config):
  """config.yaml of a run from before the key existed."""
  recorded = ml_collections.ConfigDict(
      config_of(tiny_config, 'core', 'float32').to_dict())
  del recorded['precision']
  assert precision.of(recorded) == 'float32'
  precision.check(recorded)


# The first lines of /proc/cpuinfo on two x86 CPUs (flags shortened) and an
# ARM one.
CPUINFO_AVX2 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx fma avx2
"""
CPUINFO_BF16 = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8481C
flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile
"""
CPUINFO_ARM = """processor\t: 0
Features\t: fp asimd sve bf16
"""


def test_cpu_flags_parsing():
  assert cpu_flags.parse(CPUINFO_AVX2) == {'fpu', 'sse2', 'avx', 'fma', 'avx2'}
  assert cpu_flags.bf16_compute(cpu_flags.parse(CPUINFO_AVX2)) == []
  assert cpu_flags.bf16_compute(cpu_flags.parse(CPUINFO_BF16)) == [
      'amx_bf16', 'avx512_bf16']
  assert 'bf16' in cpu_flags.parse(CPUINFO_ARM)
  assert cpu_flags.parse('processor\t: 0\n') == set()
  assert cpu_flags.bf16_compute(None) == []


def test_cpu_flags_read(tmp_path):
  path = tmp_path / 'cpuinfo'
  path.write_text(CPUINFO_BF16 + '\n' + CPUINFO_AVX2)
  assert 'avx512_bf16' in cpu_flags.read(str(path))  # the first processor
  assert cpu_flags.read(str(tmp_path / 'missing')) is None


@pytest.mark.parametrize('has_gpu, cpuinfo, expected', [
    (False, CPUINFO_AVX2, 'float32'),
    (False, CPUINFO_BF16, 'bfloat16'),
    (False, None, 'float32'),
    (True, CPUINFO_AVX2, 'bfloat16'),
])
def test_auto_is_bfloat16_only_where_the_hardware_computes_it(
    has_gpu, cpuinfo, expected):
  flags = None if cpuinfo is None else cpu_flags.parse(cpuinfo)
  chosen, why = precision.choose_auto(has_gpu, flags)
  assert chosen == expected
  assert why and '\n' not in why


def test_auto_log_line_on_this_machine(tiny_config, monkeypatch):
  config = config_of(tiny_config, 'upsampler', 'auto')
  monkeypatch.setattr(cpu_flags, 'read',
                      lambda: cpu_flags.parse(CPUINFO_AVX2))
  monkeypatch.setattr(tf.config, 'list_physical_devices', lambda kind: [])
  line = precision.describe(config)
  assert line == ('Compute precision: float32 (config.precision=auto: the '
                  'CPU has no bfloat16 instructions (none of avx512_bf16, '
                  'amx_bf16)).')
  assert float_policies(models.build(config)) == {'float32'}
  monkeypatch.setattr(cpu_flags, 'read',
                      lambda: cpu_flags.parse(CPUINFO_BF16))
  assert precision.describe(config) == (
      'Compute precision: bfloat16 (config.precision=auto: the CPU has '
      'amx_bf16, avx512_bf16).')
  assert 'mixed_bfloat16' in float_policies(models.build(config))


def test_small_defaults_to_auto_and_the_others_to_float32():
  from configs import cloudtran_core_train  # pylint: disable=g-import-not-at-top
  from configs import upsampler_train  # pylint: disable=g-import-not-at-top
  for module in (cloudtran_core_train, upsampler_train):
    assert module.get_config('small').precision == 'auto'
    assert module.get_config('tiny').precision == 'float32'
    assert module.get_config('').precision == 'float32'
