"""Building blocks of the CloudTran models (docs/design.md, Models).

Every layer creates its weights in `__init__` from explicit sizes, so a model
is complete (and checkpointable) as soon as it is constructed. Images are
`(B, H, W, D)` in the layer's compute dtype (float32, or bfloat16 under
`config.precision='bfloat16'`: models/precision.py) unless a docstring says
otherwise; `context` tensors have the same spatial layout as the tensor they
condition.

The pieces a cached, pixel-by-pixel decoder needs are public: the attention
layer splits into `project` (q, k, v with conditioning), `bias` (relative
position bias and causal mask, also for a single query position) and
`attend`; every conditional layer computes the context part once with
`scale_shift(context)` and applies it with `project(..., scale_shift=...)`
(attention) or `modulate` (MLP and norms); `PositionEmbedding.embeddings`
returns the whole table and `add_at` adds it at some positions only.
"""

import tensorflow as tf

# Added to the attention logits of masked (future) positions.
MASK_VALUE = -1e9
# The dtype policy of the layers that stay float32 under every precision:
# those that output logits, and those that read pixel values (bfloat16 keeps
# 8 significant bits, so 0..1023 would be rounded to steps of up to 4).
KEEP_FLOAT32 = 'float32'

ACTIVATIONS = {
    'identity': tf.identity,
    'relu': tf.nn.relu,
    'sigmoid': tf.math.sigmoid,
    'tanh': tf.math.tanh,
}


def activation(name):
  """Returns the activation function called `name` (see ACTIVATIONS)."""
  if name not in ACTIVATIONS:
    raise ValueError(
        f'Unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}.')
  return ACTIVATIONS[name]


class Layer(tf.keras.layers.Layer):
  """Base of the layers here: built at construction, checkpoint-safe lists.

  Weights are created in `__init__`, so `build` has nothing left to do.
  The layers read their weights through `weight`, in their compute dtype.

  Keras 3 stores list attributes as its own `TrackedList`, which the
  TensorFlow object graph does not follow: without this the weights of every
  layer kept in a list would silently be missing from checkpoints. The
  elements are added as children named `<attribute>_<index>[_<index>]`, so
  checkpoint keys follow the model's structure, never Keras' layer names.
  """

  def build(self, input_shape):
    """Nothing to build: the weights are created in `__init__`."""
    del input_shape

  def weight(self, variable):
    """`variable` (float32) in the layer's compute dtype.

    Keras casts the weights inside `__call__` only (there a variable's
    `dtype` is already the compute dtype); the parts the fast sampler calls
    directly (`project`, `add_at`, ...) need the cast. In float32 the
    variable itself is used, so the graph is the one without precisions.
    """
    if variable.dtype == self.compute_dtype:
      return variable
    return tf.cast(variable, self.compute_dtype)

  def _trackable_children(self, save_type='checkpoint', **kwargs):
    children = super()._trackable_children(save_type, **kwargs)
    if save_type != 'checkpoint':
      return children
    for name, value in list(vars(self).items()):
      if not name.startswith('_') and isinstance(value, (list, tuple)):
        for key, item in _flatten(name, value):
          children.setdefault(key, item)
    return children


def _flatten(prefix, items):
  """Yields (name, trackable) for the trackables of nested lists/tuples."""
  for index, item in enumerate(items):
    key = f'{prefix}_{index}'
    if isinstance(item, (list, tuple)):
      yield from _flatten(key, item)
    elif isinstance(item, tf.__internal__.tracking.Trackable):
      yield key, item


def dense(units, input_size, use_bias=True, activation_name=None,
          kernel_initializer='glorot_uniform', name=None, dtype=None):
  """A built Keras Dense layer mapping the last axis input_size -> units
  (`dtype`: its dtype policy, default the global one)."""
  layer = tf.keras.layers.Dense(
      units, use_bias=use_bias, activation=activation_name,
      kernel_initializer=kernel_initializer, name=name, dtype=dtype)
  layer.build((None, input_size))
  return layer


def layer_norm(hidden_size, **kwargs):
  """A built Keras LayerNormalization over the last axis."""
  layer = tf.keras.layers.LayerNormalization(**kwargs)
  layer.build((None, hidden_size))
  return layer


def residual(inputs, update, dropout, training):
  """Returns inputs + dropout(update); dropout only when training."""
  if training and dropout > 0:
    update = tf.nn.dropout(update, rate=dropout)
  return inputs + update


def shift_down(x):
  """Shifts (B, H, W, D) down one row: row i gets row i-1, row 0 zeros."""
  return tf.pad(x, [[0, 0], [1, 0], [0, 0], [0, 0]])[:, :-1]


def shift_right(x):
  """Shifts (B, H, W, D) right one column: column j gets j-1, column 0 zeros."""
  return tf.pad(x, [[0, 0], [0, 0], [1, 0], [0, 0]])[:, :, :-1]


class OneHotEmbedding(Layer):
  """Embeds integer symbols as a dense map of their one-hot encodings.

  1. Each of the F features of the input is a symbol in [0, vocab_size);
     feature f selects row `f * vocab_size + symbol` of a
     `(F * vocab_size, D)` kernel. This equals a dense layer applied to the
     concatenated one-hot vectors, without materialising them.
  2. The F rows are summed (and the bias added).

  Input `(..., F)` int32; output `(..., D)` in the compute dtype.
  """

  def __init__(self, vocab_size, hidden_size, num_features=1, use_bias=False,
               **kwargs):
    super().__init__(**kwargs)
    self.vocab_size = vocab_size
    self.num_features = num_features
    self.kernel = self.add_weight(
        name='kernel', shape=(num_features * vocab_size, hidden_size),
        initializer='glorot_uniform')
    self.bias = self.add_weight(
        name='bias', shape=(hidden_size,),
        initializer='zeros') if use_bias else None

  def call(self, symbols):
    offsets = tf.range(self.num_features, dtype=tf.int32) * self.vocab_size
    rows = tf.gather(self.weight(self.kernel),
                     tf.cast(symbols, tf.int32) + offsets)
    embedded = tf.reduce_sum(rows, axis=-2)
    if self.bias is not None:
      embedded += self.weight(self.bias)
    return embedded


class PositionEmbedding(Layer):
  """Learned additive positional embeddings, one table per axis.

  For axes of lengths (L1, ..., Ln), table k has shape
  `(Lk, 1, ..., 1, D)` so that it broadcasts over the later axes; all tables
  are initialised N(0, D^-0.5).

  Input `(B, L1, ..., Ln, D)`; output the same shape.
  """

  def __init__(self, lengths, hidden_size, **kwargs):
    super().__init__(**kwargs)
    lengths = tuple(lengths)
    self.lengths = lengths
    init = tf.keras.initializers.RandomNormal(stddev=hidden_size**-0.5)
    self.tables = []
    for axis, length in enumerate(lengths):
      shape = (length,) + (1,) * (len(lengths) - axis - 1) + (hidden_size,)
      self.tables.append(self.add_weight(
          name=f'axis_{axis}', shape=shape, initializer=init))

  def embeddings(self):
    """The sum of the tables, broadcast to `(L1, ..., Ln, D)`."""
    return tf.add_n([
        tf.broadcast_to(self.weight(t), self.lengths + (t.shape[-1],))
        for t in self.tables])

  def add_at(self, inputs, index):
    """`call` restricted to some positions: the same sums in the same order.

    `index` has one entry per axis: a scalar (possibly a tensor) selects that
    position of the axis, None keeps the whole axis. E.g. for a 2D table,
    `(i, None)` adds row i to `(B, 1, W, D)` inputs and `(i, j)` adds pixel
    (i, j) to `(B, 1, 1, D)` inputs.
    """
    for table, position in zip(self.tables, index):
      table = self.weight(table)
      inputs += table if position is None else table[position]
    return inputs

  def call(self, inputs):
    for table in self.tables:
      inputs += self.weight(table)
    return inputs


class AxialAttention(Layer):
  """Multi-head self-attention along the rows or the columns of an image.

  1. Rows (`axis='row'`): every pixel attends to the pixels of its row;
     columns (`axis='column'`): to those of its column. Columns are handled
     by transposing to rows and back.
  2. q, k, v: `D -> (heads, D/heads)` without bias. With a context, each of
     q, k, v selected by `cond_q/cond_k/cond_v` is modulated by a dense map
     of the context, `D_ctx -> (heads, 2·D/heads)` split into scale and
     shift (`x * scale + shift`, `cond_scale=True`, `cond_act` applied to
     both) or `D_ctx -> (heads, D/heads)` added as a shift (no activation,
     as upstream).
  3. Logits `q·k / sqrt(D/heads)` plus a learned relative position bias
     (`heads × 2L`, zero-initialised); with `causal=True` a position sees only
     itself and earlier positions.
  4. Softmax, weighted sum of v, output projection `(heads, D/heads) -> D`
     without bias.

  Input `(B, H, W, D)` and optional context `(B, H, W, D_ctx)`; output
  `(B, H, W, D)`. `length` is the length of the attended axis.
  """

  def __init__(self, hidden_size, num_heads, length, axis, causal=False,
               context_size=None, cond_q=False, cond_k=False, cond_v=False,
               cond_scale=False, cond_act='identity',
               cond_init='glorot_uniform', **kwargs):
    super().__init__(**kwargs)
    if axis not in ('row', 'column'):
      raise ValueError(f"axis must be 'row' or 'column', got {axis!r}.")
    if hidden_size % num_heads:
      raise ValueError(f'hidden_size {hidden_size} is not divisible by '
                       f'num_heads {num_heads}.')
    if (cond_q or cond_k or cond_v) and context_size is None:
      raise ValueError('Conditional attention needs a context_size.')
    self.axis = axis
    self.causal = causal
    self.length = length
    self.num_heads = num_heads
    self.head_size = hidden_size // num_heads
    self.cond_scale = cond_scale
    self.cond_act = activation(cond_act)

    head_shape = (num_heads, self.head_size)
    self.q_kernel = self.add_weight(
        name='q', shape=(hidden_size,) + head_shape,
        initializer='glorot_uniform')
    self.k_kernel = self.add_weight(
        name='k', shape=(hidden_size,) + head_shape,
        initializer='glorot_uniform')
    self.v_kernel = self.add_weight(
        name='v', shape=(hidden_size,) + head_shape,
        initializer='glorot_uniform')
    self.output_kernel = self.add_weight(
        name='output', shape=head_shape + (hidden_size,),
        initializer='glorot_uniform')
    self.relative_bias = self.add_weight(
        name='relative_bias', shape=(num_heads, 2 * length),
        initializer='zeros')

    cond_shape = (context_size, num_heads,
                  (2 if cond_scale else 1) * self.head_size)
    def cond_kernel(enabled, name):
      if not enabled:
        return None
      return self.add_weight(name=name, shape=cond_shape,
                             initializer=cond_init)
    self.cond_q_kernel = cond_kernel(cond_q, 'cond_q')
    self.cond_k_kernel = cond_kernel(cond_k, 'cond_k')
    self.cond_v_kernel = cond_kernel(cond_v, 'cond_v')

  def to_rows(self, x):
    """Moves the attended axis to axis 2: identity for rows."""
    return x if self.axis == 'row' else tf.transpose(x, [0, 2, 1, 3])

  def _modulation(self, context, kernel):
    if kernel is None:
      return None
    cond = tf.einsum('brlc,chd->brlhd', context, self.weight(kernel))
    if self.cond_scale:
      scale, shift = tf.split(cond, 2, axis=-1)
      return self.cond_act(scale), self.cond_act(shift)
    return None, cond

  def scale_shift(self, context):
    """The context part of q, k and v, to pass to `project`.

    `context` `(B, R, L, D_ctx)` in row layout. Returns one entry per q, k, v:
    None when that projection is not conditioned, else `(scale, shift)`, each
    `(B, R, L, heads, d)` (scale None without `cond_scale`).
    """
    return tuple(self._modulation(context, kernel) for kernel in (
        self.cond_q_kernel, self.cond_k_kernel, self.cond_v_kernel))

  def project(self, x, context=None, scale_shift=None):
    """q (scaled), k, v of row-layout x `(B, R, L, D)`: `(B, R, L, heads, d)`.

    `context` is `(B, R, L, D_ctx)` in the same (row) layout, or None for an
    unconditional layer; `scale_shift` is `self.scale_shift(context)`
    computed beforehand (either one, not both).
    """
    if context is not None:
      scale_shift = self.scale_shift(context)
    projected = []
    for kernel, modulation in zip(
        (self.q_kernel, self.k_kernel, self.v_kernel),
        scale_shift or (None, None, None)):
      y = tf.einsum('brld,dhc->brlhc', x, self.weight(kernel))
      if modulation is not None:
        scale, shift = modulation
        y = (y if scale is None else y * scale) + shift
      projected.append(y)
    q, k, v = projected
    return q * self.head_size**-0.5, k, v

  def bias(self, query_index=None):
    """Relative bias plus causal mask, `(heads, Lq, L)`.

    All queries (`Lq = L`) by default; a single query position
    (`Lq = 1`) when `query_index` (a scalar, possibly a tensor) is given.
    """
    keys = tf.range(self.length)
    if query_index is None:
      queries = tf.range(self.length)
    else:
      queries = tf.reshape(tf.cast(query_index, tf.int32), [1])
    relative = keys[None, :] - queries[:, None]
    # Bias column L-1 is relative position 0; the last column is unused.
    bias = tf.gather(self.weight(self.relative_bias),
                     relative + self.length - 1, axis=1)
    if self.causal:
      bias += tf.cast(tf.where(relative > 0, MASK_VALUE, 0.0),
                      bias.dtype)[None]
    return bias

  def attend(self, q, k, v, bias):
    """Attention of q `(B, R, Lq, heads, d)` over k, v: `(B, R, Lq, D)`.

    The softmax is taken in float32 whatever the compute dtype.
    """
    logits = tf.einsum('brqhc,brkhc->brhqk', q, k) + bias
    weights = tf.cast(tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1),
                      v.dtype)
    heads = tf.einsum('brhqk,brkhc->brqhc', weights, v)
    return tf.einsum('brqhc,hcd->brqd', heads,
                     self.weight(self.output_kernel))

  def call(self, inputs, context=None):
    x = self.to_rows(inputs)
    if context is not None:
      context = self.to_rows(context)
    q, k, v = self.project(x, context)
    return self.to_rows(self.attend(q, k, v, self.bias()))


class FeedForward(Layer):
  """Dense `ff_size` with ReLU, then dense `D`. `(..., D) -> (..., D)`."""

  def __init__(self, hidden_size, ff_size, **kwargs):
    super().__init__(**kwargs)
    self.hidden = dense(ff_size, hidden_size, activation_name='relu')
    self.output_dense = dense(hidden_size, ff_size)

  def call(self, inputs):
    return self.output_dense(self.hidden(inputs))


class LayerNorm(Layer):
  """Plain layer norm with the call signature of ConditionalLayerNorm.

  `(B, H, W, D)` -> same; the context argument is accepted and not used, so a
  stack can switch between the two norms without branching.
  """

  def __init__(self, hidden_size, **kwargs):
    super().__init__(**kwargs)
    self.norm = layer_norm(hidden_size)

  def scale_shift(self, context):
    """Nothing depends on the context: None."""
    del context
    return None

  def modulate(self, inputs, scale_shift):
    """The layer norm of inputs; `scale_shift` (None) is ignored."""
    del scale_shift
    return self.norm(inputs)

  def call(self, inputs, context):
    return self.modulate(inputs, self.scale_shift(context))


class ConditionalLayerNorm(Layer):
  """Layer norm whose gain and bias come from a spatial context.

  1. Normalise the input over D, without learned gain or bias.
  2. From the context `(B, H, W, D_ctx)`: spatial average (weighted by a
     learned `(1, H, W, 1)` map initialised to ones when
     `spatial_average='learnable'`, plain when `'mean'`) and a dense map to
     `2·D`, in the order `'sc'` (average first) or `'cs'` (dense first).
  3. Split into scale and shift, apply `act` to both, return
     `normalised * scale + shift`.

  Input `(B, H, W, D)`; output the same shape.
  """

  def __init__(self, hidden_size, context_size, resolution,
               spatial_average='learnable', sequence='sc',
               kernel_initializer='glorot_uniform', act='identity', **kwargs):
    super().__init__(**kwargs)
    if spatial_average not in ('mean', 'learnable'):
      raise ValueError("cond_ln_sp_ave must be 'mean' or 'learnable', got "
                       f'{spatial_average!r}.')
    if sequence not in ('sc', 'cs'):
      raise ValueError(f"cond_ln_seq must be 'sc' or 'cs', got {sequence!r}.")
    self.sequence = sequence
    self.act = activation(act)
    self.normalize = layer_norm(hidden_size, center=False, scale=False)
    self.spatial_weights = None
    if spatial_average == 'learnable':
      self.spatial_weights = self.add_weight(
          name='spatial_weights', shape=(1,) + tuple(resolution) + (1,),
          initializer='ones')
    self.project = dense(2 * hidden_size, context_size,
                         kernel_initializer=kernel_initializer)

  def _average(self, context):
    if self.spatial_weights is not None:
      context *= self.weight(self.spatial_weights)
    return tf.reduce_mean(context, axis=[1, 2], keepdims=True)

  def scale_shift(self, context):
    """(scale, shift), each `(B, 1, 1, D)`, from the context."""
    if self.sequence == 'sc':
      params = self.project(self._average(context))
    else:
      params = self._average(self.project(context))
    scale, shift = tf.split(params, 2, axis=-1)
    return self.act(scale), self.act(shift)

  def modulate(self, inputs, scale_shift):
    """The norm of inputs with a precomputed `scale_shift(context)`."""
    scale, shift = scale_shift
    return self.normalize(inputs) * scale + shift

  def call(self, inputs, context):
    return self.modulate(inputs, self.scale_shift(context))


class ConditionalMLP(Layer):
  """Modulates a feed-forward output by a dense map of the context.

  `'shift'`: `x + dense_D(context)` (no activation, as upstream);
  `'affine'`: `dense_2D(context)` is split into (shift, scale) and
  `x * act(scale) + act(shift)`.
  Input `(B, H, W, D)`, context `(B, H, W, D_ctx)`; output `(B, H, W, D)`.
  """

  def __init__(self, hidden_size, context_size, mode='affine',
               act='identity', **kwargs):
    super().__init__(**kwargs)
    if mode not in ('shift', 'affine'):
      raise ValueError(f"cond_mlp must be 'shift' or 'affine', got {mode!r}.")
    self.mode = mode
    self.act = activation(act)
    units = hidden_size if mode == 'shift' else 2 * hidden_size
    self.project = dense(units, context_size)

  def scale_shift(self, context):
    """(scale, shift), each `(B, H, W, D)`, from the context (scale None
    in `'shift'` mode)."""
    params = self.project(context)
    if self.mode == 'shift':
      return None, params
    shift, scale = tf.split(params, 2, axis=-1)
    return self.act(scale), self.act(shift)

  def modulate(self, inputs, scale_shift):
    """inputs modulated by a precomputed `scale_shift(context)`."""
    scale, shift = scale_shift
    return (inputs if scale is None else inputs * scale) + shift

  def call(self, inputs, context):
    return self.modulate(inputs, self.scale_shift(context))


class AxialEncoder(Layer):
  """Stack of unmasked row and column attention (`FactorizedAttention`).

  1. Add positional embeddings.
  2. Per layer: row attention, feed-forward, column attention,
     feed-forward; each sub-layer is residual and followed by a layer norm.

  Input `(B, H, W, D)`; output the same shape.
  """

  def __init__(self, hidden_size, ff_size, num_heads, num_layers, resolution,
               dropout=0.0, **kwargs):
    super().__init__(**kwargs)
    height, width = resolution
    self.dropout = dropout
    self.position = PositionEmbedding((height, width), hidden_size)
    # One (attention, attention norm, feed-forward, feed-forward norm) tuple
    # per axis: row then column, num_layers times.
    self.blocks = []
    for _ in range(num_layers):
      for axis, length in (('row', width), ('column', height)):
        self.blocks.append((
            AxialAttention(hidden_size, num_heads, length, axis),
            layer_norm(hidden_size),
            FeedForward(hidden_size, ff_size),
            layer_norm(hidden_size)))

  def call(self, inputs, training=False):
    x = self.position(inputs)
    for attention, attention_norm, feed_forward, ff_norm in self.blocks:
      x = attention_norm(
          residual(x, attention(x), self.dropout, training))
      x = ff_norm(residual(x, feed_forward(x), self.dropout, training))
    return x
