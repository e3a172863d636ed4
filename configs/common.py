"""Shared pieces of the experiment configs.

The four upstream config files (`cloudtran_core_{train,test}.py`,
`upsampler_{train,test}.py`) are thin wrappers around these builders, so every
key is declared once. Sizes come from the upstream environment variables
`MODEL_SIZE`, `DOWNSAMPLE_SIZE` and `NUM_CHANNELS`, read when `get_config` runs.

Keys that must stay equal across sections (`n_channels`, `hidden_size`,
`downsample_res`) are `FieldReference`s: overriding one of them on the command
line (`--config.model.hidden_size=64`) changes every section that shares it.
Keys derived from them (`ff_size` from `hidden_size`, the models'
`resolution` from `downsample_res`) follow too, until they are overridden
themselves.
"""

import collections
import os

import ml_collections
from ml_collections import config_dict

# Where the synthetic demo dataset is written by `make demo-data`.
DEMO_DATA = './runs/demo/data'
# Where `make reproduce-small` writes its dataset (tools.recipe_dataset).
SMALL_DATA = './runs/small/data'


def _env_int(name, default):
  value = os.environ.get(name, str(default))
  try:
    return int(value)
  except ValueError:
    raise ValueError(
        f'Environment variable {name}={value!r} must be an integer.') from None


def sizes(default_model_size):
  """Returns (model_size, downsample_size, num_channels) from the env."""
  return (_env_int('MODEL_SIZE', default_model_size),
          _env_int('DOWNSAMPLE_SIZE', 64),
          _env_int('NUM_CHANNELS', 3))


def square(size):
  """A `(size, size)` tuple reference that follows the int reference `size`."""
  return config_dict.FieldReference(
      (), field_type=tuple,
      op=config_dict._Op(lambda _, side: (side, side), [size]))  # pylint: disable=protected-access


def data_config(config, split, downsample_res, n_channels):
  """Data keys; `split` is 'trainset' or 'testset'."""
  config.dataset = 'custom'
  config.downsample = True
  config.random_channel = split == 'trainset'
  config.downsample_res = downsample_res
  config.resolution = (224, 224)
  config.n_channels = n_channels
  # Number of slots: T-1 input dates plus the target.
  config.timeline = 6
  # Date index of the clear target (train/valid) or the cloudy image (test).
  config.ref_index = 55
  # JSON file for per-tile reference indices; when set, ref_index is ignored.
  config.jsonf = config_dict.placeholder(str)
  config.max_coverage = 30
  # New: where the synthetic clouds of train and valid come from. 'dataset'
  # (upstream): the split's masks with 5 % < cover <= max_coverage.
  # 'procedural': seeded fractal clouds with a cover in that band, for a
  # region with only clear or overcast dates.
  config.synthetic_clouds = 'dataset'
  config.mask_dir = f'./Datasets/Timeseries_cropped_512/masks_final_{split}'
  config.data_dir = f'./Datasets/Timeseries_cropped_512/videos_final_{split}'
  # When set, the input cubes are also written as PNGs here for inspection.
  config.targets_dir = config_dict.placeholder(str)
  config.flip_masks = False
  # New: the context dates as the models read them: 'none' (upstream) as
  # they are; 'global' or 'local': each in the light of the target date,
  # by a gain and offset fitted on the pixels clear in both, over the whole
  # image or in a 15-px (else 31-px) window around each pixel
  # (datasets/transforms.py, correct_context). Both models of predict.py
  # must share it.
  config.context_correction = 'none'
  # New: the model's logits start from the classical fill: with True, the
  # pipeline adds the local corrected mosaic of the inputs at the model's
  # output side (`prior`, datasets/pipeline.py, prior_side) and the model
  # adds -(v - fill)² · a learned precision to the logits of every value v
  # (models/base.py), so an untrained model already gives the fill and
  # training learns what to change. False: the original's logits.
  config.classical_prior = False
  # New: the fill that prior starts from: 'local', the local corrected
  # mosaic; 'similar', the similar-pixel corrected mosaic (that fill plus
  # the error its context makes on similar clear pixels nearby;
  # datasets/transforms.py, classical_fill).
  config.prior_fill = 'local'
  config.use_augmentation = False
  # New: shuffle buffer of the training input pipeline (examples).
  config.shuffle_buffer = 128
  # New: seed of the training run (random crops, synthetic clouds, channels).
  config.seed = 0
  return config


def training_config(config, eval_num_examples, eval_batch_size):
  """Training, evaluation and loss keys shared by every config."""
  config.batch_size = 1
  config.max_train_steps = 50000
  config.save_checkpoint_secs = 900
  config.num_epochs = -1
  config.polyak_decay = 0.999
  config.eval_num_examples = eval_num_examples
  config.eval_batch_size = eval_batch_size
  config.eval_checkpoint_wait_secs = -1

  config.loss_factor = 0.99
  config.encoder_loss_factor = 0.01
  config.generator_loss_factor = 0.01
  # New: how the generator's output reaches the discriminator. 'soft' = the
  # expected value under the softmax (differentiable); 'argmax' = upstream
  # behaviour, which gives the generator no adversarial gradient.
  config.gan_relaxation = 'soft'
  # Upstream key: a directory whose newest checkpoint holds a pretrained
  # `discriminator`, loaded when a training run starts (not when it resumes).
  config.disc_chkpt_dir = config_dict.placeholder(str)

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.type = 'rmsprop'
  config.optimizer.learning_rate = 3e-4
  # New: compute precision of the models (training, evaluation, sampling,
  # predict.py): 'float32', 'bfloat16' for bfloat16 activations and matrix
  # products with float32 variables, logits and losses, or 'auto': bfloat16
  # on a GPU or a CPU with bfloat16 instructions, float32 elsewhere (where
  # bfloat16 is slower); checkpoints restore under either
  # (models/precision.py). The upstream configs and `:tiny` compute as the
  # original, in float32; `:small` takes 'auto'.
  config.precision = 'float32'
  # New: compile the training step's forward and backward pass with XLA
  # (jit_compile=True) instead of a plain tf.function, which was faster on
  # the 2-core CPU this was measured on (README, Benchmarks).
  config.jit_compile = False
  return config


def core_model_config(hidden_size, downsample_res, n_channels):
  """The `model` section of the CloudTran core."""
  model = ml_collections.ConfigDict()
  model.n_channels = n_channels
  model.hidden_size = hidden_size
  model.stage = 'encoder_decoder'
  model.resolution = square(downsample_res)
  model.name = 'cloudtran_core'
  # New: with config.classical_prior, a dense head on the encoder's output
  # shifts the prior's centre and scales its precision per pixel (zero at
  # the start; models/core.py, CloudTranCore.prior).
  model.prior_head = False

  enc = model.encoder = ml_collections.ConfigDict()
  enc.n_channels = n_channels
  enc.ff_size = hidden_size.identity()
  enc.hidden_size = hidden_size
  enc.num_heads = 4
  enc.num_encoder_layers = 4
  enc.num_temp_layers = 2
  enc.dropout = 0.0
  enc.posemb = 'learnable'
  enc.aggregation = 'conv'
  # New: axial layers over each channel's map after the dates are
  # aggregated, where z can compare dates across pixels (models/core.py,
  # TimeSeriesEncoder); 0 as upstream.
  enc.num_fused_layers = 0

  dec = model.decoder = ml_collections.ConfigDict()
  dec.n_channels = n_channels
  dec.ff_size = hidden_size.identity()
  dec.hidden_size = hidden_size
  dec.resolution = square(downsample_res)
  dec.num_heads = 4
  dec.num_inner_layers = 2
  dec.num_outer_layers = 2
  dec.dropout = 0.0
  dec.skip = True
  dec.cond_mlp = 'affine'
  dec.cond_mlp_act = 'identity'
  dec.cond_ln_act = 'identity'
  dec.cond_ln = True
  dec.cond_ln_seq = 'sc'
  dec.cond_ln_sp_ave = 'learnable'
  dec.cond_ln_init = 'glorot_uniform'
  dec.cond_att_init = 'glorot_uniform'
  dec.cond_att_v = True
  dec.cond_att_q = True
  dec.cond_att_k = True
  dec.cond_att_scale = True
  dec.cond_att_act = 'identity'
  # New: context of the inner decoder's conditional norms while sampling:
  # 'image' (z of the whole image, as in training) or 'row' (the row being
  # generated only: upstream's sampling, for imported upstream models).
  dec.cond_ln_sampling = 'image'
  return model


def upsampler_model_config(hidden_size, downsample_res, n_channels):
  """The `model` section of the upsampler."""
  model = ml_collections.ConfigDict()
  model.n_channels = n_channels
  model.hidden_size = hidden_size
  model.ff_size = hidden_size.identity()
  model.num_heads = 4
  model.num_encoder_layers = 3
  model.resolution = square(downsample_res)
  model.name = 'upsampler'
  return model


def sample_config(n_channels, **overrides):
  """The `sample` section of the test configs."""
  sample = ml_collections.ConfigDict()
  sample.n_channels = n_channels
  # `{subset}` in log_dir and gen_file stands for the sampled subset's label
  # (valid, test, train), so each subset has its own outputs by default.
  sample.log_dir = 'samples'
  sample.im_outputs = True
  sample.batch_size = 25
  sample.mode = 'argmax'
  sample.num_samples = 1
  sample.num_outputs = 100
  sample.skip_batches = 0
  sample.gen_file = 'gen0'
  sample.only_parallel = False
  sample.upsample_factor = 4
  # Core TFRecords the upsampler reads; unset = use the low-resolution truth.
  sample.gen_data_dir = config_dict.placeholder(str)
  # New: seed of `mode='sample'` draws.
  sample.seed = 0
  # New: brightness/contrast enhancement of RGB PNGs (upstream's fixed
  # 1.5 / 0.8; 1.0 = as is). Metrics and TFRecords never see it.
  sample.png_brightness = 1.5
  sample.png_contrast = 0.8
  sample.update(overrides)
  return sample


def tiny_core(model):
  """The `:tiny` model section of the core."""
  model.encoder.num_heads = model.decoder.num_heads = 2
  model.encoder.num_encoder_layers = 1
  model.encoder.num_temp_layers = 1
  model.decoder.num_inner_layers = model.decoder.num_outer_layers = 1


def tiny_upsampler(model):
  """The `:tiny` model section of the upsampler."""
  model.num_heads = 2
  model.num_encoder_layers = 1


# What differs between the model kinds' configs (small_*: the `:small`
# variant's hidden size, batch size, training steps and whether its
# training step is compiled with XLA: 1.2-1.45x the plain step for the
# upsampler on the 2-core CPU, nothing for the core; docs/benchmarks.md).
Kind = collections.namedtuple(
    'Kind', 'model_size eval_batch_size discriminator loss_factor '
    'model_config tiny_model sample small_model_size small_batch_size '
    'small_steps small_jit_compile')
KINDS = {
    'cloudtran_core': Kind(
        128, 16, True, 0.99, core_model_config, tiny_core,
        dict(log_dir='samples_core_{subset}'), 64, 8, 300, False),
    'upsampler': Kind(
        # Upstream's upsampler configs have no loss_factor: its default, 1.
        512, 1, False, 1.0, upsampler_model_config, tiny_upsampler,
        dict(log_dir='samples_sup_{subset}', batch_size=5,
             gen_file='gen0_sup_{subset}', upsample_factor=1), 128, 4, 1000,
        True),
}
VARIANTS = ('', 'tiny', 'small')


def build(kind, split, variant=''):
  """Builds a full experiment config.

  Args:
    kind: a key of KINDS, 'cloudtran_core' or 'upsampler'.
    split: 'trainset' or 'testset'; test configs get a `sample` section.
    variant: '' for the upstream defaults, 'tiny' for the CPU config of the
      tests and `make demo`, 'small' for `make reproduce-small` (the upstream
      architecture, narrower, on 64 px tiles: trains on a CPU in an hour).
  """
  if kind not in KINDS:
    raise ValueError(f'Unknown model kind {kind!r}.')
  if variant not in VARIANTS:
    raise ValueError(f'Unknown config variant {variant!r}; use "", "tiny" or '
                     '"small".')
  spec = KINDS[kind]
  model_size, downsample_size, num_channels = sizes(spec.model_size)
  if variant == 'tiny':
    model_size, downsample_size = 16, 16
  elif variant == 'small':
    model_size, downsample_size = spec.small_model_size, 32
  hidden_size = config_dict.FieldReference(model_size)
  downsample_res = config_dict.FieldReference(downsample_size)
  n_channels = config_dict.FieldReference(num_channels)

  config = ml_collections.ConfigDict()
  data_config(config, split, downsample_res, n_channels)
  is_train = split == 'trainset'
  training_config(config, 20000 if is_train else 100, spec.eval_batch_size)
  config.use_discriminator = is_train and spec.discriminator
  config.model = spec.model_config(hidden_size, downsample_res, n_channels)
  config.loss_factor = spec.loss_factor
  if not is_train:
    config.sample = sample_config(n_channels, **spec.sample)
  if variant == 'tiny':
    tiny(config, split)
    spec.tiny_model(config.model)
  elif variant == 'small':
    small(config, split, spec)
  return config


def tiny(config, split):
  """Shrinks a config for CPU tests and the demo (the synthetic dataset).

  The model section is shrunk by its kind's `tiny_model`.
  """
  config.resolution = (32, 32)
  config.timeline = 4
  config.ref_index = 3
  use_dataset(config, DEMO_DATA, split)
  config.max_coverage = 50
  config.shuffle_buffer = 16
  config.batch_size = 2
  config.max_train_steps = 200
  config.save_checkpoint_secs = 60
  config.eval_num_examples = 8
  config.eval_batch_size = 4
  config.polyak_decay = 0.9
  config.optimizer.learning_rate = 1e-3
  if 'sample' in config:
    config.sample.batch_size = 4
    config.sample.num_outputs = 8


def small(config, split, spec):
  """The `:small` variant: 64 px crops of the benchmark dataset, the core
  at 32 px (D=64), the upsampler 32 -> 64 px (D=128); upstream depth and
  heads.

  Sizes and steps were chosen by measured steps/s on a 2-core CPU
  (docs/reproduce_small.md).
  """
  config.resolution = (64, 64)
  use_dataset(config, SMALL_DATA, split)
  config.shuffle_buffer = 256
  config.batch_size = spec.small_batch_size
  config.max_train_steps = spec.small_steps
  # Often enough that the learning curve has five to ten checkpoints.
  config.save_checkpoint_secs = 120
  config.eval_num_examples = 48
  config.eval_batch_size = 8
  # An averaging horizon of ~200 steps, short beside the run.
  config.polyak_decay = 0.995
  config.optimizer.learning_rate = 1e-3
  config.precision = 'auto'
  config.jit_compile = spec.small_jit_compile
  # The kept recipe (docs/beat_classical.md): the context dates in the
  # target's light, logits from the similar-pixel fill, no discriminator.
  config.context_correction = 'local'
  config.classical_prior = True
  config.prior_fill = 'similar'
  config.use_discriminator = False
  if 'sample' in config:
    config.sample.batch_size = 8
    config.sample.num_outputs = 48


def use_dataset(config, root, split):
  """Points `config` at a dataset root in the upstream layout.

  Sets `data_dir`, `mask_dir` and `jsonf` to `root/videos_final_<split>`,
  `root/masks_final_<split>` and `root/<split>.json` (as the synthetic maker
  writes them); `split` is 'trainset' or 'testset'.
  """
  config.data_dir = os.path.join(root, f'videos_final_{split}')
  config.mask_dir = os.path.join(root, f'masks_final_{split}')
  config.jsonf = os.path.join(root, f'{split}.json')
  return config
