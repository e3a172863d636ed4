"""The CloudTran core: time-series encoder, parallel head, decoder.

What each part does: docs/design.md, The core.

Runs at the downsampled resolution `h × w`. In training (`training=True`)
the inputs are one random channel per example (`targets_slice_{h}`,
`channel_index`, `C_out = 1`); otherwise every channel (`targets_{h}`,
`C_out = C`). Channels are folded into the batch axis, so each channel goes
through the same layers independently, with its own symbols `v + 256·c`.

Sampling: `CloudTranCore.generate` runs the fast compiled sampler of
`models/sampler.py`, or with `reference=True` the straightforward decode
(whole decoders re-run for every pixel), kept as the oracle of the tests and
the baseline of `bench/sampler.py`. Both return the same outputs and draw
the same pixels from the same seed (`base.choose_pixels`);
`CloudTranCore.sample` gives the fast one's result in the form every model
returns (`base.CloudTranModel.sample`).
"""

import tensorflow as tf

from datasets import keys
from models import base
from models import layers
from models import sampler

NUM_SYMBOLS = base.NUM_SYMBOLS
STAGES = ('decoder', 'encoder_decoder')
AGGREGATIONS = ('conv', 'attention', 'sum')
# Context of the inner decoder's conditional norms while sampling: 'image' =
# z of the whole image, as in training; 'row' = z of the row being generated
# only, as upstream's sampler (for models imported from upstream).
COND_LN_SAMPLING = ('image', 'row')


def check_config(config):
  """Raises ValueError naming the keys of an inconsistent core config."""
  model = config.model
  enc, dec = model.encoder, model.decoder
  size = config.downsample_res
  if not config.downsample:
    raise ValueError('The core runs on the downsampled cubes: config.downsample'
                     ' must be True.')
  for key, value in (('model.resolution', model.resolution),
                     ('model.decoder.resolution', dec.resolution)):
    if tuple(value) != (size, size):
      raise ValueError(f'config.{key}={tuple(value)} must equal '
                       f'(downsample_res, downsample_res)=({size}, {size}).')
  for key, value in (('model.n_channels', model.n_channels),
                     ('model.encoder.n_channels', enc.n_channels),
                     ('model.decoder.n_channels', dec.n_channels)):
    if value != config.n_channels:
      raise ValueError(f'config.{key}={value} must equal '
                       f'config.n_channels={config.n_channels}.')
  for key, value in (('model.encoder.hidden_size', enc.hidden_size),
                     ('model.decoder.hidden_size', dec.hidden_size)):
    if value != model.hidden_size:
      raise ValueError(f'config.{key}={value} must equal '
                       f'config.model.hidden_size={model.hidden_size}.')
  for key, section in (('model.encoder', enc), ('model.decoder', dec)):
    if section.hidden_size % section.num_heads:
      raise ValueError(
          f'config.{key}.hidden_size={section.hidden_size} must be divisible '
          f'by config.{key}.num_heads={section.num_heads}.')
  if model.stage not in STAGES:
    raise ValueError(f'config.model.stage={model.stage!r} must be one of '
                     f'{STAGES}.')
  if model.prior_head and not config.classical_prior:
    raise ValueError('config.model.prior_head adjusts the classical prior: '
                     'set config.classical_prior=True too.')
  if enc.aggregation not in AGGREGATIONS:
    raise ValueError(f'config.model.encoder.aggregation={enc.aggregation!r} '
                     f'must be one of {AGGREGATIONS}.')
  choices = [(key, (*layers.ACTIVATIONS,)) for key in (
      'cond_mlp_act', 'cond_ln_act', 'cond_att_act')]
  choices += [('cond_mlp', ('shift', 'affine')), ('cond_ln_seq', ('sc', 'cs')),
              ('cond_ln_sp_ave', ('mean', 'learnable'))]
  for key, allowed in choices:
    if dec[key] not in allowed:
      raise ValueError(f'config.model.decoder.{key}={dec[key]!r} must be one '
                       f'of {allowed}.')
  if dec.cond_ln_sampling not in COND_LN_SAMPLING:
    raise ValueError(
        f'config.model.decoder.cond_ln_sampling={dec.cond_ln_sampling!r} '
        f'must be one of {COND_LN_SAMPLING}.')
  if enc.num_fused_layers < 0:
    raise ValueError('config.model.encoder.num_fused_layers='
                     f'{enc.num_fused_layers} must be 0 or more.')
  if enc.posemb != 'learnable':
    raise ValueError(f'config.model.encoder.posemb={enc.posemb!r}: only '
                     "'learnable' is implemented.")


class TimeSeriesEncoder(layers.Layer):
  """Encodes the T-1 conditioning slots into one context map per channel.

  1. Each slot-channel symbol (value + 256·c) is embedded (one-hot, dense to
     D with bias) and every `(h, w)` slot-channel map goes through one shared
     axial encoder stack.
  2. Per channel the T-1 outputs are stacked on a time axis; for `conv` and
     `attention` a learned temporal embedding is added (not for `sum`, as
     upstream).
  3. Aggregation over time: `conv` = per pixel and feature, an MLP over the
     time axis (T-1 -> D with ReLU, -> 1; the two 1×1×1 Conv3D of upstream);
     `attention` = temporal self-attention layers (each with feed-forward and
     post layer norms) and a dense contraction of (T-1, D) to D; `sum` = sum
     over time.

  4. With `num_fused_layers` (new; 0 upstream), an axial encoder stack
     over each channel's aggregated map, added to it through a dense layer
     that starts at zero (so training starts from the upstream encoder):
     only there does a pixel's z see the other dates' values at other
     pixels (the per-slot stack of step 1 sees one date, the aggregation
     one pixel).

  Input `(B, h, w, T-1, C_out)` int32 symbols (offsets already added);
  output z `(B, h, w, C_out, D)` in the compute dtype.
  """

  def __init__(self, config, num_slots, num_channels, resolution, **kwargs):
    super().__init__(**kwargs)
    hidden_size = config.hidden_size
    self.aggregation = config.aggregation
    self.dropout = config.dropout
    self.embedding = layers.OneHotEmbedding(
        NUM_SYMBOLS * num_channels, hidden_size, use_bias=True)
    self.encoder = layers.AxialEncoder(
        hidden_size, config.ff_size, config.num_heads,
        config.num_encoder_layers, resolution, config.dropout)
    if self.aggregation != 'sum':
      self.temporal_position = layers.PositionEmbedding(
          (num_slots,), hidden_size)
    if self.aggregation == 'conv':
      self.time_hidden = layers.dense(
          hidden_size, num_slots, activation_name='relu')
      self.time_output = layers.dense(1, hidden_size)
    elif self.aggregation == 'attention':
      # (attention over time, norm, feed-forward, norm) per temporal layer.
      self.temporal_blocks = [
          (layers.AxialAttention(hidden_size, config.num_heads, num_slots,
                                 'row'),
           layers.layer_norm(hidden_size),
           layers.FeedForward(hidden_size, config.ff_size),
           layers.layer_norm(hidden_size))
          for _ in range(config.num_temp_layers)]
      self.contraction = self.add_weight(
          name='contraction', shape=(num_slots, hidden_size, hidden_size),
          initializer='glorot_uniform')
    self.fused = None
    if config.num_fused_layers:
      self.fused = layers.AxialEncoder(
          hidden_size, config.ff_size, config.num_heads,
          config.num_fused_layers, resolution, config.dropout)
      self.fused_output = layers.dense(hidden_size, hidden_size,
                                       kernel_initializer='zeros')

  def _time_mlp(self, series, training):
    """The `conv` aggregation of series `(B, h, w, C, S, D)`: `(B, h, w, C, D)`.

    Its hidden layer is `(w, C, D, D)` per image row (200 MB for a whole
    64x64 image with C=3, D=128): at inference it is computed one image row
    at a time, so it stays in the cache instead of making a round trip
    through memory, several times faster on the CPU. Training takes one
    batched pass (see `_encode_maps`).
    """
    def mlp(series):  # (..., C, S, D) -> (..., C, D)
      per_feature = tf.linalg.matrix_transpose(series)  # (..., C, D, S)
      return self.time_output(self.time_hidden(per_feature))[..., 0]

    if training:
      return mlp(series)
    height, width, num_channels, num_slots, hidden_size = series.shape[1:]
    rows = tf.reshape(series, [-1, width, num_channels, num_slots, hidden_size])
    return tf.reshape(tf.map_fn(mlp, rows),
                      [-1, height, width, num_channels, hidden_size])

  def _encode_maps(self, maps, training):
    """The axial stack over maps `(N, h, w)`: `(N, h, w, D)`.

    At inference one map at a time: its activations (2 MB at 64x64, D=128)
    stay in the cache through the whole stack, 10-20% less CPU time than one
    batched pass (bench/sampler.py). Training takes the batched pass: the
    gradient of a per-map loop is several times slower, and from about
    D=64 at 32x32 with batch 4 TensorFlow's graph optimizer turns its
    gradient sums into temporary variables that fail on the second call of
    the compiled training loop (AlreadyExistsError).
    """
    if training:
      return self.encoder(self.embedding(maps[..., None]), training=True)
    return tf.map_fn(
        lambda image: self.encoder(self.embedding(image[None, ..., None]))[0],
        maps, fn_output_signature=self.compute_dtype)

  def call(self, symbols, training=False):
    z = self._aggregate(symbols, training)
    if self.fused is None:
      return z
    fused = self.fused(base.fold_channels(z), training=training)
    return z + base.unfold_channels(self.fused_output(fused), z.shape[3])

  def _aggregate(self, symbols, training):
    """Steps 1-3: z `(B, h, w, C_out, D)` of the symbols."""
    height, width, num_slots, num_channels = symbols.shape[1:]
    # (B, h, w, S, C) -> (B·S·C, h, w): every slot-channel map is one image.
    maps = tf.reshape(tf.transpose(symbols, [0, 3, 4, 1, 2]),
                      [-1, height, width])
    encoded = self._encode_maps(maps, training)
    hidden_size = encoded.shape[-1]
    encoded = tf.reshape(
        encoded, [-1, num_slots, num_channels, height, width, hidden_size])
    # (B, h, w, C, S, D)
    series = tf.transpose(encoded, [0, 3, 4, 2, 1, 5])
    if self.aggregation == 'sum':
      return tf.reduce_sum(series, axis=4)
    series = self.temporal_position(series)
    if self.aggregation == 'conv':
      return self._time_mlp(series, training)
    x = tf.reshape(series, [-1, height * width * num_channels, num_slots,
                            hidden_size])
    for attention, attention_norm, feed_forward, ff_norm in (
        self.temporal_blocks):
      x = attention_norm(
          layers.residual(x, attention(x), self.dropout, training))
      x = ff_norm(layers.residual(x, feed_forward(x), self.dropout, training))
    z = tf.einsum('bnsd,sde->bne', x, self.weight(self.contraction))
    return tf.reshape(z, [-1, height, width, num_channels, hidden_size])


def _decoder_norm(config, resolution):
  """The norm of a decoder sub-layer: conditional on z or plain."""
  if config.cond_ln:
    return layers.ConditionalLayerNorm(
        config.hidden_size, config.hidden_size, resolution,
        spatial_average=config.cond_ln_sp_ave, sequence=config.cond_ln_seq,
        kernel_initializer=config.cond_ln_init, act=config.cond_ln_act)
  return layers.LayerNorm(config.hidden_size)


def _decoder_block(config, resolution, axis, causal, context_size):
  """(attention, attention norm, feed-forward, conditional MLP, ff norm)."""
  height, width = resolution
  attention = layers.AxialAttention(
      config.hidden_size, config.num_heads,
      width if axis == 'row' else height, axis, causal=causal,
      context_size=context_size, cond_q=config.cond_att_q,
      cond_k=config.cond_att_k, cond_v=config.cond_att_v,
      cond_scale=config.cond_att_scale, cond_act=config.cond_att_act,
      cond_init=config.cond_att_init)
  cond_mlp = layers.ConditionalMLP(
      config.hidden_size, context_size, mode=config.cond_mlp,
      act=config.cond_mlp_act)
  return (attention, _decoder_norm(config, resolution),
          layers.FeedForward(config.hidden_size, config.ff_size), cond_mlp,
          _decoder_norm(config, resolution))


def apply_decoder_block(block, x, context, z, dropout, training):
  """One decoder layer step: conditional attention then conditional MLP.

  The attention and the MLP are conditioned on `context`, the norms on z;
  each sub-layer is residual and followed by its norm.
  """
  attention, attention_norm, feed_forward, cond_mlp, ff_norm = block
  x = attention_norm(
      layers.residual(x, attention(x, context), dropout, training), z)
  update = cond_mlp(feed_forward(x), context)
  return ff_norm(layers.residual(x, update, dropout, training), z)


class OuterDecoder(layers.Layer):
  """Context of the rows above each pixel, conditioned on z.

  1. Positional embeddings, plus z when `skip`.
  2. Per layer: unmasked row attention, feed-forward, causal column
     attention, feed-forward — attention and MLP conditioned on z, norms
     conditional on z (`cond_ln`) or plain.
  3. Shift down one row: row i then depends on rows < i only.

  Inputs: pixel embeddings and z, `(B, h, w, D)`; output `(B, h, w, D)`.
  """

  def __init__(self, config, resolution, **kwargs):
    super().__init__(**kwargs)
    hidden_size = config.hidden_size
    self.skip = config.skip
    self.dropout = config.dropout
    self.position = layers.PositionEmbedding(resolution, hidden_size)
    self.blocks = []
    for _ in range(config.num_outer_layers):
      self.blocks.append(_decoder_block(
          config, resolution, 'row', False, hidden_size))
      self.blocks.append(_decoder_block(
          config, resolution, 'column', True, hidden_size))

  def call(self, embeddings, z, training=False):
    x = self.position(embeddings)
    if self.skip:
      x += z
    for block in self.blocks:
      x = apply_decoder_block(block, x, z, z, self.dropout, training)
    return layers.shift_down(x)


class InnerDecoder(layers.Layer):
  """Per-pixel context from the pixels to the left, the rows above and z.

  1. Pixel embeddings shifted right one pixel, plus positional embeddings,
     plus z and the outer context when `skip`.
  2. Per layer: causal row attention and feed-forward, both conditioned on
     the concatenation of z and the outer context; norms conditional on z
     (`cond_ln`) or plain.

  Inputs: pixel embeddings, outer context and z, `(B, h, w, D)`; output
  `(B, h, w, D)`.
  """

  def __init__(self, config, resolution, **kwargs):
    super().__init__(**kwargs)
    self.skip = config.skip
    self.dropout = config.dropout
    self.position = layers.PositionEmbedding(resolution, config.hidden_size)
    self.blocks = [
        _decoder_block(config, resolution, 'row', True,
                       2 * config.hidden_size)
        for _ in range(config.num_inner_layers)]

  def call(self, embeddings, upper, z, training=False):
    x = self.position(layers.shift_right(embeddings))
    if self.skip:
      x += z + upper
    context = tf.concat([z, upper], axis=-1)
    for block in self.blocks:
      x = apply_decoder_block(block, x, context, z, self.dropout, training)
    return x


class CloudTranCore(base.CloudTranModel):
  """The CloudTran core: encoder, parallel head, outer and inner decoders.

  `get_logits` returns the autoregressive logits `(B, h, w, C_out, 256)` and,
  for stage `encoder_decoder`, `{'encoder_logits': (B, h, w, C_out, 256)}`
  from the parallel head (stage `decoder` has no parallel head); both
  float32 under every `config.precision`.
  """

  autoregressive = True
  check_config = staticmethod(check_config)

  def __init__(self, config, **kwargs):
    super().__init__(config, **kwargs)
    model = config.model
    self.resolution = tuple(model.resolution)
    self.stage = model.stage
    hidden_size = model.hidden_size
    self.encoder = TimeSeriesEncoder(
        model.encoder, config.timeline - 1, self.num_channels,
        self.resolution)
    self.parallel_head = None
    if self.stage == 'encoder_decoder':
      self.parallel_head = layers.dense(NUM_SYMBOLS, hidden_size,
                                        use_bias=False,
                                        dtype=layers.KEEP_FLOAT32)
    # Zero at the start: the prior is the fill's until training moves it.
    self.prior_head = None
    if model.prior_head:
      self.prior_head = layers.dense(2, hidden_size,
                                     kernel_initializer='zeros',
                                     dtype=layers.KEEP_FLOAT32)
    self.pixel_embedding = layers.OneHotEmbedding(
        NUM_SYMBOLS * self.num_channels, hidden_size)
    self.outer_decoder = OuterDecoder(model.decoder, self.resolution)
    self.inner_decoder = InnerDecoder(model.decoder, self.resolution)
    self.final_norm = layers.layer_norm(hidden_size,
                                        dtype=layers.KEEP_FLOAT32)
    self.final_dense = layers.dense(NUM_SYMBOLS, hidden_size,
                                    dtype=layers.KEEP_FLOAT32)
    # The fast sampler (models/sampler.py), made at the first `generate`.
    self._sampler = None
    # Every weight exists once the constructor returns.
    self.built = True

  @staticmethod
  def output_side(config):
    return config.downsample_res

  @property
  def metric_keys(self):
    return ['encoder'] if self.parallel_head is not None else []

  def _cube_key(self, training):
    return keys.downsampled('targets_slice' if training else 'targets',
                            self.config.downsample_res)

  def split_inputs(self, inputs, training):
    """(decoder target, encoder slots, offsets) of the inputs.

    Target `(B, h, w, C_out)` (slot 0), slots `(B, h, w, T-1, C_out)`
    (slots 1..T-1), offsets `(B|1, C_out)`, all int32.
    """
    cube = tf.cast(inputs[self._cube_key(training)], tf.int32)
    if training:
      offsets = base.channel_offsets(inputs['channel_index'], 1)
      return cube[..., :1], cube[..., 1:, None], offsets
    num_channels = self.num_channels
    slots = tf.reshape(cube[..., num_channels:],
                       [-1] + list(self.resolution) +
                       [self.config.timeline - 1, num_channels])
    return (cube[..., :num_channels], slots,
            base.channel_offsets(None, num_channels))

  def encode(self, slots, offsets, training=False):
    """z `(B, h, w, C_out, D)` from the slots `(B, h, w, T-1, C_out)`."""
    return self.encoder(slots + offsets[:, None, None, None],
                        training=training)

  def embed(self, target, offsets):
    """Folded pixel embeddings `(B·C_out, h, w, D)` of `(B, h, w, C_out)`."""
    return self.pixel_embedding(
        base.fold_channels(target + offsets[:, None, None])[..., None])

  def logits_from_activations(self, activations):
    """Final layer norm and dense: `(..., D)` -> `(..., 256)`."""
    return self.final_dense(self.final_norm(activations))

  def decode(self, target, z, offsets, training=False):
    """Autoregressive logits `(B, h, w, C_out, 256)` (teacher forcing)."""
    embeddings = self.embed(target, offsets)
    z = base.fold_channels(z)
    upper = self.outer_decoder(embeddings, z, training=training)
    activations = self.inner_decoder(embeddings, upper, z, training=training)
    return base.unfold_channels(self.logits_from_activations(activations),
                           target.shape[-1])

  def prior(self, fill, z):
    """`base.CloudTranModel.prior_params` `(B, h, w, C_out, 2)` of a fill
    `(B, h, w, C_out)` (None: None); with config.model.prior_head, shifted
    and rescaled per pixel by a dense head on z `(B, h, w, C_out, D)`."""
    if fill is None:
      return None
    return self.prior_params(
        fill, None if self.prior_head is None else self.prior_head(z))

  def get_logits(self, inputs, training):
    target, slots, offsets = self.split_inputs(inputs, training)
    z = self.encode(slots, offsets, training=training)
    prior = self.prior_logits(
        self.prior(self.prior_fill(inputs, training), z))
    with_prior = lambda logits: logits if prior is None else logits + prior
    aux = {}
    if self.parallel_head is not None:
      aux['encoder_logits'] = with_prior(self.parallel_head(z))
    return with_prior(self.decode(target, z, offsets, training=training)), aux

  def call(self, inputs, training=False):
    return self.get_logits(inputs, training)

  def loss(self, inputs, logits, aux, training):
    labels = self.split_inputs(inputs, training)[0]
    losses = {'loss': base.bits_per_dim(logits, labels)}
    total = self.config.loss_factor * losses['loss']
    if self.parallel_head is not None:
      losses['encoder'] = base.bits_per_dim(aux['encoder_logits'], labels)
      total += self.config.encoder_loss_factor * losses['encoder']
    return total, losses

  def sample(self, inputs, mode='argmax', only_parallel=False, seed=None):
    """See `base.CloudTranModel.sample`: the fast sampler's result.

    OUTPUT is the autoregressive image (`auto_<mode>` of `generate`), or
    with `only_parallel` the parallel head's argmax; s = downsample_res.
    """
    generated = self.generate(inputs, mode, only_parallel, seed)
    image, proba = ((generated['parallel'], generated['parallel_proba'])
                    if only_parallel else
                    (generated[f'auto_{mode}'], generated['proba']))
    return base.sample_outputs(
        image, tf.gather(proba, image, batch_dims=image.shape.rank))

  def generate(self, inputs, mode='argmax', only_parallel=False, seed=None,
               reference=False):
    """Generates every channel of slot 0 from slots 1..T-1 of `targets_{h}`.

    Runs `sampler.Sampler` (made once per model, XLA-compiled): the whole
    decode of a batch is one graph with per-layer caches. With `reference`,
    the straightforward decode instead, the oracle of the tests: for every
    pixel in raster order the outer decoder (once per row) and the inner
    decoder run on the whole canvas generated so far, which causality makes
    equal to pixel-by-pixel generation (eager, or in the caller's graph).
    Both give the same pixels, and probabilities equal up to float rounding.

    Args:
      inputs, mode, only_parallel, seed: as `base.CloudTranModel.sample`.
      reference: run the straightforward decode.

    Returns:
      dict: with a parallel head (stage `encoder_decoder`), `parallel`
      `(B, h, w, C)` int32 (its argmax) and `parallel_proba`
      `(B, h, w, C, 256)` float32 (its softmax); unless only_parallel,
      `auto_<mode>` `(B, h, w, C)` int32 and `proba` `(B, h, w, C, 256)`
      float32 (the softmax each generated pixel was chosen from).
    """
    if not reference:
      if self._sampler is None:
        self._sampler = sampler.Sampler(self)
      return self._sampler(inputs, mode, only_parallel, seed)
    if self.config.model.decoder.cond_ln_sampling != 'image':
      raise ValueError(
          'The reference decode conditions the norms on the whole image; '
          "config.model.decoder.cond_ln_sampling='row' is implemented by the "
          'fast sampler only.')
    _, slots, offsets = self.split_inputs(inputs, training=False)
    seed = base.seed_pair(seed) if mode == 'sample' else None
    return self.generate_with(self._reference_decode, slots, offsets, mode,
                              only_parallel, seed,
                              self.prior_fill(inputs, training=False))

  def generate_with(self, decode, slots, offsets, mode, only_parallel, seed,
                    fill=None):
    """Encoder, parallel head and `decode`: the body of both samplers.

    slots `(B, h, w, T-1, C)` and offsets `(1, C)` as `split_inputs` gives
    them. `decode(z, offsets, mode, seed)` generates the folded channels: z
    `(N, h, w, D)` and their offsets `(N,)` int32 (N = B·C) in, the pixel
    values `(N, h, w)` int32 and their softmax `(N, h, w, 256)` out. `seed`
    is the `(2,)` seed of `'sample'` (see `base.seed_pair`). Outputs as
    `generate`. `fill`: the classical prior's fill `(B, h, w, C)`, whose
    `prior_logits` are added to every logit, or None; `decode` gets its
    `prior` folded, `(N, h, w, 2)`, or None.
    """
    base.check_mode(mode)
    if only_parallel and self.parallel_head is None:
      raise ValueError("only_parallel needs a parallel head: set "
                       "config.model.stage='encoder_decoder'.")
    z = self.encode(slots, offsets)
    prior = self.prior(fill, z)
    output = {}
    if self.parallel_head is not None:
      logits = self.parallel_head(z)
      if prior is not None:
        logits += self.prior_logits(prior)
      output['parallel'] = tf.argmax(logits, axis=-1, output_type=tf.int32)
      output['parallel_proba'] = tf.nn.softmax(logits)
    if only_parallel:
      return output
    num_channels = z.shape[3]
    folded_offsets = tf.reshape(
        tf.broadcast_to(offsets, [tf.shape(z)[0], num_channels]), [-1])
    image, proba = decode(base.fold_channels(z), folded_offsets, mode, seed,
                          None if prior is None else base.fold_channels(prior))
    output[f'auto_{mode}'] = base.unfold_channels(image, num_channels)
    output['proba'] = base.unfold_channels(proba, num_channels)
    return output

  def _reference_decode(self, z, offsets, mode, seed, prior, num_rows=None):
    """`decode` of `generate_with` re-running the full decoders per pixel.

    `num_rows` stops after that many rows (the benchmark times a few and
    extrapolates); the rest of the canvas stays 0.
    """
    height, width = self.resolution
    offsets = offsets[:, None, None]
    canvas = tf.zeros(tf.shape(z)[:3], tf.int32)
    proba = tf.zeros(tf.concat([tf.shape(canvas), [NUM_SYMBOLS]], 0))
    rows = tf.range(height)[:, None]
    cols = tf.range(width)[None, :]
    for row in tf.range(height if num_rows is None else num_rows):
      embeddings = self.pixel_embedding((canvas + offsets)[..., None])
      upper = self.outer_decoder(embeddings, z)
      for col in tf.range(width):
        embeddings = self.pixel_embedding((canvas + offsets)[..., None])
        activations = self.inner_decoder(embeddings, upper, z)
        logits = self.logits_from_activations(activations[:, row, col])
        if prior is not None:
          logits += self.prior_logits(prior[:, row, col])
        pixel = base.choose_pixels(logits, mode, seed, row * width + col)
        here = (rows == row) & (cols == col)
        canvas = tf.where(here, pixel[:, None, None], canvas)
        proba = tf.where(here[..., None],
                         tf.nn.softmax(logits)[:, None, None], proba)
    return canvas, proba
