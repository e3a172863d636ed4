"""`get_dataset`: the tf.data input pipeline (docs/design.md, Data).

Start-up (Python, once): list and check the split, apply the keep/drop rules
(`selection.select`). Hot path (tf.data, parallel): read and decode the
dates, build the clear-masks with synthetic clouds (pool masks read from
disk, or procedural ones drawn in numpy), crop, resize, mask, slice a
channel, downsample. Train randomness is stateless, seeded by `config.seed`,
the input pipeline and the example's position in the stream (the order of
each epoch too), so a run's inputs are reproducible and the stream can start
at any position without reading what comes before: a resumed training reads
what an uninterrupted one would.
"""

from absl import logging
import numpy as np
import tensorflow as tf

from datasets import export
from datasets import keys
from datasets import scan
from datasets import selection as selection_lib
from datasets import subsets
from datasets import transforms
from utils import cloud_shapes
from utils.errors import DataError

AUTOTUNE = tf.data.AUTOTUNE
# config.dataset: the one dataset kind, the upstream on-disk layout.
DATASETS = ('custom',)
N_CHANNELS = (1, 3, 4)
# config.synthetic_clouds: the split's moderate masks, or procedural clouds.
SYNTHETIC_CLOUDS = ('dataset', 'procedural')
# Uses of the stateless seeds split from an example's train seed.
SEED_USES = ('pool', 'brighten', 'crop', 'channel')


def check_resolution(config):
  """DataError unless `config.resolution` is a pair of positive ints."""
  value = config.resolution
  if not (isinstance(value, (tuple, list)) and len(value) == 2 and
          all(isinstance(v, int) and v > 0 for v in value)):
    raise DataError(f'config.resolution={value!r} must be a pair of positive '
                    "ints — e.g. --config.resolution='(224, 224)'")


def check_config(config):
  """Clear errors for data keys the pipeline cannot work with."""
  check_resolution(config)
  if config.n_channels not in N_CHANNELS:
    raise DataError(f'config.n_channels must be one of {N_CHANNELS}, got '
                    f'{config.n_channels}.')
  height, width = config.resolution
  if height != width:
    raise DataError(f'config.resolution must be square, got {height}x{width}.')
  if config.timeline < 2:
    raise DataError(f'config.timeline must be >= 2 (a target and at least '
                    f'one input), got {config.timeline}.')
  if config.dataset not in DATASETS:
    raise ValueError(f'config.dataset must be one of {DATASETS} (the on-disk '
                     f'layout of config.data_dir), got {config.dataset!r}.')
  if config.context_correction not in transforms.CONTEXT_CORRECTIONS:
    raise DataError(
        f'config.context_correction={config.context_correction!r} must be '
        f'one of {transforms.CONTEXT_CORRECTIONS}.')
  if config.prior_fill not in transforms.PRIOR_FILLS:
    raise DataError(f'config.prior_fill={config.prior_fill!r} must be one of '
                    f'{transforms.PRIOR_FILLS}.')
  if config.classical_prior and not config.downsample:
    raise DataError('config.classical_prior gives the models their fill '
                    'at their side (the core reads downsample_res): set '
                    'config.downsample=True.')
  if (config.context_correction != 'none' or config.classical_prior) and (
      config.timeline < 3):
    raise DataError('config.context_correction and config.classical_prior '
                    'need a context date: config.timeline >= 3.')
  if config.targets_dir and not config.downsample:
    raise DataError('config.targets_dir exports the downsampled cubes; set '
                    'config.downsample=True or unset config.targets_dir.')
  check_synthetic_clouds(config)


def uncorrected(config):
  """A copy of `config` whose pipeline gives the context dates as they are
  (config.context_correction 'none'): what the classical fills and the
  pictures read, whatever the models were fed."""
  plain = config.copy_and_resolve_references()
  plain.context_correction = 'none'
  return plain


def check_synthetic_clouds(config):
  """DataError unless config.synthetic_clouds is known and, procedural, has
  a cover band (above CLEAR_MAX, at most config.max_coverage) to draw in."""
  if config.synthetic_clouds not in SYNTHETIC_CLOUDS:
    raise DataError(
        f'config.synthetic_clouds={config.synthetic_clouds!r} is not one of '
        f"{SYNTHETIC_CLOUDS} — use 'dataset' (the split's partly cloudy "
        "masks) or 'procedural' (seeded fractal clouds)")
  if config.synthetic_clouds == 'dataset':
    return
  size = config.resolution[0]
  fewest, most = cloud_shapes.cloudy_count_range(
      size * size, scan.CLEAR_MAX, config.max_coverage)
  if fewest > most:
    raise DataError(
        f'config.max_coverage={config.max_coverage} leaves procedural clouds '
        f'no cover above {scan.CLEAR_MAX:g} % of a {size}x{size} crop — '
        'raise config.max_coverage')


def _record_table(examples, augment):
  """The examples' file names, one row each: {'tile', 'images', 'masks',
  'synthetic', 'augment'}; `images` and `masks` are (N, T-1) strings."""
  return {
      'tile': tf.constant([e.tile for e in examples], tf.int32),
      'images': tf.constant([[d.image for d in e.dates] for e in examples]),
      'masks': tf.constant([[d.mask for d in e.dates] for e in examples]),
      'synthetic': tf.constant([e.synthetic for e in examples]),
      'augment': tf.fill([len(examples)], augment),
  }


def _pass_table(config, subset, chosen):
  """One pass of a subset's records as a table (with their brightened copies
  when training with `use_augmentation`)."""
  table = _record_table(chosen.examples, False)
  if subsets.get(subset).training and config.use_augmentation:
    copies = _record_table(chosen.examples, True)
    table = {k: tf.concat([v, copies[k]], 0) for k, v in table.items()}
  return table


def shuffled_order(n, buffer, seed):
  """The order in which `n` records leave a shuffle buffer of `buffer`: the
  buffer fills with the first ones, then each record out is a uniformly
  drawn slot, refilled with the next record while any is left. The draws
  come from numpy's generator seeded by `seed` (a tuple of ints)."""
  uniform = np.random.default_rng([s % 2**64 for s in seed]).random(n)
  slots = list(range(min(max(buffer, 1), n)))
  following, order = len(slots), []
  for u in uniform:
    j = int(u * len(slots))
    order.append(slots[j])
    if following < n:
      slots[j] = following
      following += 1
    else:
      slots[j] = slots[-1]
      slots.pop()
  return np.array(order, np.int64)


def _train_stream(config, table, pipeline_id, start):
  """(position, record) of an input pipeline's train stream from position
  `start` on.

  Epoch e is the pipeline's n records in the `shuffled_order` of
  `config.shuffle_buffer` seeded by (config.seed, pipeline_id, e), at
  positions e·n to (e+1)·n − 1, so the stream from `start` is the stream
  from 0 without its first `start` records, and none of those is read.
  """
  n = int(table['tile'].shape[0])
  epochs = tf.int64.max if config.num_epochs < 0 else config.num_epochs
  first = start // n

  def epoch(e):
    order = tf.numpy_function(
        lambda e: shuffled_order(n, config.shuffle_buffer,
                                 (config.seed, pipeline_id, int(e))),
        [e], tf.int64, stateful=False)
    return tf.data.Dataset.zip(
        tf.data.Dataset.range(e * n, (e + 1) * n),
        tf.data.Dataset.from_tensor_slices(tf.ensure_shape(order, [n])))

  stream = tf.data.Dataset.range(first, epochs).flat_map(epoch)
  return stream.skip(start - first * n).map(
      lambda position, row: (position, {k: tf.gather(v, row)
                                        for k, v in table.items()}))


def _read_masks(paths, flip):
  """(N,) string paths -> list of N (H, W) bool clear-masks."""
  return [transforms.decode_clear_mask(tf.io.read_file(p), flip)
          for p in tf.unstack(paths)]


def _numpy_masks(draw, inputs, shape):
  """draw(*inputs as numpy): a bool array of `shape` (None = any size)."""
  masks = tf.numpy_function(draw, inputs, tf.bool, stateful=False)
  return tf.ensure_shape(masks, shape)


class Loader:
  """The per-example functions of one subset, for tf.data.map."""

  def __init__(self, config, subset, pool):
    self.config = config
    self.subset = subsets.get(subset)
    self.train = self.subset.training
    self.procedural = config.synthetic_clouds == 'procedural'
    self.pool = (tf.constant(pool) if self.subset.clouds == 'random' and
                 not self.procedural else None)

  @staticmethod
  def seeds(seed):
    """{use: (2,) seed} for each of SEED_USES, from an example's seed."""
    split = tf.random.experimental.stateless_split(seed, len(SEED_USES))
    return dict(zip(SEED_USES, tf.unstack(split)))

  def add_clouds(self, record, own, seed):
    """The T-1 (H, W) bool clear-masks of slots 1..T-1, oldest first.

    `own` (the dates' own masks) times the subset's synthetic clouds:
    'random' (train) draws a mask for every date (slots 1..T-2
    augmentation, the reference's slot T-1 synthetic cloud); 'fixed'
    (valid, eval_train) puts the tile's fixed mask on the reference; none
    (test) adds nothing.
    """
    if self.subset.clouds == 'random':
      extra = self.random_clouds(self.seeds(seed)['pool'], own)
      return [m & e for m, e in zip(own, extra)]
    if not self.subset.clouds:
      return own
    return own[:-1] + [own[-1] & self.fixed_cloud(record, own[-1])]

  def random_clouds(self, seed, own):
    """len(own) (H, W) clear-masks drawn with the (2,) `seed`: pool masks
    ('dataset') or procedural clouds seeded by it ('procedural')."""
    if self.procedural:
      draw = lambda s, shape: selection_lib.procedural_clear_masks(
          s.astype(np.uint64).tolist(), len(own), shape, self.config)
      return tf.unstack(_numpy_masks(draw, [seed, tf.shape(own[0])],
                                     [len(own), None, None]))
    draws = tf.random.stateless_uniform(
        [len(own)], seed, 0, tf.size(self.pool), tf.int32)
    return _read_masks(tf.gather(self.pool, draws), self.config.flip_masks)

  def fixed_cloud(self, record, reference):
    """The tile's fixed (H, W) clear-mask for slot T-1: its pool mask
    ('dataset') or `selection.fixed_procedural_mask` ('procedural')."""
    if self.procedural:
      draw = lambda tile, shape: selection_lib.fixed_procedural_mask(
          int(tile), shape, self.config)
      return _numpy_masks(draw, [record['tile'], tf.shape(reference)],
                          [None, None])
    return _read_masks(record['synthetic'][tf.newaxis],
                       self.config.flip_masks)[0]

  def load(self, record, seed=None):
    """Decodes one example at full resolution.

    Returns:
      {'tile': () int32, 'image': (H, W, T·C) uint8 slot cube,
       'clear': (H, W, T) bool slot clear-masks} (+ 'seed' for train).
    """
    n_channels = self.config.n_channels
    image = transforms.to_slots([
        transforms.decode_image(tf.io.read_file(p), n_channels, p)
        for p in tf.unstack(record['images'])])
    if self.train and self.config.use_augmentation:
      image = tf.cond(
          record['augment'],
          lambda: transforms.brighten(image, self.seeds(seed)['brighten']),
          lambda: image)
    own = _read_masks(record['masks'], self.config.flip_masks)
    inputs = self.add_clouds(record, own, seed)
    out = {'tile': record['tile'], 'image': image,
           'clear': tf.stack([own[-1]] + inputs, axis=-1)}
    if seed is not None:
      out['seed'] = seed
    return out

  def preprocess(self, example):
    """Crop, resize, mask and downsample one loaded example.

    The slots: docs/design.md, Slots.
    """
    config = self.config
    n_channels, size = config.n_channels, config.resolution[0]
    seeds = self.seeds(example['seed']) if self.train else None
    window = transforms.crop_window(
        tf.shape(example['clear']), size,
        None if seeds is None else seeds['crop'])
    image = transforms.resize_values(
        transforms.crop(example['image'], window), size)
    mask = transforms.resize_mask(
        transforms.crop(example['clear'], window), size)
    plain = transforms.mask_targets(image, mask, n_channels)
    targets = transforms.correct_context(plain, mask, n_channels,
                                         config.context_correction)
    out = {'image': image,
           'targets': targets,
           'mask': mask,
           'tile': example['tile'],
           'coverage': transforms.cloud_coverage(mask[..., -1])}
    cubes = ['targets', 'mask', 'image']
    if self.train and config.random_channel:
      channel = tf.random.stateless_uniform(
          [], seeds['channel'], 0, n_channels, tf.int32)
      out['targets_slice'] = transforms.channel_slice(out['targets'], channel,
                                                      n_channels)
      out['channel_index'] = channel
      cubes.append('targets_slice')
    if config.downsample:
      transforms.add_downsampled(out, cubes, config.downsample_res, size)
    if config.classical_prior:
      add_prior(out, plain, config)
    return out

  def examples(self, records, pipeline_id=0):
    """Records -> unbatched example dicts.

    Train records come as (position in the stream, record); train seeds
    each example from (config.seed, pipeline_id) and its position, so every
    epoch draws new clouds and crops.
    """
    if self.train:
      base = tf.constant([self.config.seed, pipeline_id], tf.int64)
      ds = records.map(
          lambda i, r: self.load(
              r, tf.random.experimental.stateless_fold_in(base, i)),
          num_parallel_calls=AUTOTUNE)
    else:
      ds = records.map(self.load, num_parallel_calls=AUTOTUNE)
    return ds.map(self.preprocess, num_parallel_calls=AUTOTUNE)


def prior_side(config):
  """Side of the classical prior `config.model.name`'s model reads: its
  output side (the upsampler's full resolution, the core's
  downsample_res)."""
  if config.model.name == 'upsampler':
    return config.resolution[0]
  return config.downsample_res


def add_prior(example, plain, config):
  """Adds `prior` at the model's side s (`prior_side`; named by
  `keys.at_side`): the classical fill `config.prior_fill`
  (`transforms.classical_fill`) of `plain`, the targets cube as it is
  (uncorrected), with the example's full-resolution mask, area-resized to
  s. The fill is made at full
  resolution because there it is best: made from the inputs at the core's
  side it loses dates to the coarser cloud mask and light to the wider
  window (docs/beat_classical.md). With a `channel_index`, also its channel
  `prior_slice` (..., s, s, 1)."""
  side = prior_side(config)
  fill = transforms.classical_fill(plain, example['mask'], config.n_channels,
                                   config.prior_fill)
  prior = transforms.resize_values(fill, side)
  example[keys.at_side('prior', side, config)] = prior
  if 'channel_index' in example:
    example[keys.at_side('prior_slice', side, config)] = tf.gather(
        prior, example['channel_index'], axis=-1)[..., None]
  return example


def get_dataset(config, batch_size, subset, input_context=None, start=0,
                chosen=None):
  """The batched input pipeline of a subset.

  Args:
    config: the experiment config (data keys of configs/common.py;
      `config.dataset` must be 'custom', the upstream on-disk layout).
    batch_size: examples per batch of this input pipeline (per replica).
    subset: a name of `subsets.SUBSETS`: 'train' (training: shuffled,
      repeated `config.num_epochs` times, -1 = forever, last partial batch
      dropped), or 'eval_train', 'valid', 'test' (fixed order, one pass,
      last partial batch kept). train and eval_train read the train split of
      config.data_dir with the JSON key `index`.
    input_context: optional tf.distribute.InputContext; each input pipeline
      reads its own shard of the tiles.
    start: train: the batches of this input pipeline already used (by the
      steps a resumed training did); the stream goes on after them.
    chosen: the subset's `selection.Selection` when already made.

  Returns:
    tf.data.Dataset of dicts, with h = downsample_res, T = timeline:
      image, targets (B, H, W, T·C) int32 (targets: clouds = 40),
      mask (B, H, W, T) int32 1 = clear, tile (B,) int32,
      coverage (B,) float32 (cloud % of slot T-1's final mask);
      with config.downsample: <key>_h and <key>_h_up_back of each;
      train with config.random_channel: targets_slice (B, H, W, T)
      (+ _h, _h_up_back) and channel_index (B,) int32.
  """
  check_config(config)
  if chosen is None:
    chosen = selection_lib.select(config, subset)
  train = subsets.get(subset).training
  table = _pass_table(config, subset, chosen)
  pipeline_id = 0
  if input_context is not None and input_context.num_input_pipelines > 1:
    pipelines = input_context.num_input_pipelines
    pipeline_id = input_context.input_pipeline_id
    if len(chosen.examples) < pipelines:
      raise DataError(f'{len(chosen.examples)} {subset} examples cannot feed '
                      f'{pipelines} input pipelines; use fewer workers.')
    table = {k: v[pipeline_id::pipelines] for k, v in table.items()}
  loader = Loader(config, subset, chosen.pool)
  if train:
    records = _train_stream(config, table, pipeline_id, start * batch_size)
  else:
    records = tf.data.Dataset.from_tensor_slices(table)
  ds = loader.examples(records, pipeline_id).batch(
      batch_size, drop_remainder=train)
  logging.info('%s pipeline: %d examples, batch %d.', subset,
               len(chosen.examples), batch_size)
  return ds.prefetch(AUTOTUNE)


def export_targets(config, subset):
  """With `config.targets_dir`, writes one pass of `subset`'s examples as
  PNGs (`datasets/export.py`) and returns how many; else does nothing. The
  jobs call it beside `get_dataset`, which writes nothing."""
  if not config.targets_dir:
    return 0
  check_config(config)
  chosen = selection_lib.select(config, subset)
  loader = Loader(config, subset, chosen.pool)
  records = tf.data.Dataset.from_tensor_slices(
      _pass_table(config, subset, chosen))
  if loader.train:
    records = records.enumerate()
  return export.export_examples(loader.examples(records), config, subset)
