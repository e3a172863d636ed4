"""Fast autoregressive sampling of the CloudTran core.

What it computes: docs/design.md, Sampling.

`Sampler(model)` is what `CloudTranCore.generate` (and so `sample`) runs:
the encoder, the parallel head and the raster-order decode of a batch are
one compiled graph (`tf.function` with `tf.while_loop`s, XLA by default),
and per-layer caches make a pixel cost work proportional to one row and one
column, not to the image. `CloudTranCore.generate(..., reference=True)` is
the straightforward decode it replaces, kept as the oracle.

The decoders' conditioning is computed as early as what it depends on
allows:
- the conditional layer norms of both decoders average their context, z,
  over the whole image: once per batch (with
  `config.model.decoder.cond_ln_sampling='row'`, upstream's sampling, the
  inner decoder's norms see only the row being generated: once per row);
- the outer decoder's attention and MLP are conditioned on z: per row;
- the inner decoder's attention and MLP are conditioned on
  `concat(z, outer context)`: once per row, for the whole row, before its
  first pixel.
"""

import tensorflow as tf

from models import base


def _write(cache, value, index):
  """cache `(B, R, L, ...)` with position `index` of axis 2 set to value.

  value is `(B, R, 1, ...)`; `index` a scalar tensor. A scatter of the B·R
  positions: under XLA it updates the cache in place, where a select
  would read and write all of it at every step (10-25% of the sampler's
  time, bench/sampler.py).
  """
  batch, lines = tf.shape(cache)[0], tf.shape(cache)[1]
  positions = tf.stack(tf.meshgrid(tf.range(batch), tf.range(lines),
                                   indexing='ij'), axis=-1)
  indices = tf.concat(
      [positions, tf.fill([batch, lines, 1], tf.cast(index, tf.int32))],
      axis=-1)
  return tf.tensor_scatter_nd_update(cache, indices, value[:, :, 0])


def _cached_attention(attention, x, scale_shift, cache, index):
  """Causal attention of the one position `index` of every line of x.

  x `(B, R, 1, D)` in row layout (R lines, position `index` of each); its
  keys and values are written at `index` of the cache (`(keys, values)`,
  each `(B, R, L, heads, d)`), then it attends to positions <= index.
  Returns the attention output `(B, R, 1, D)` and the updated cache.
  """
  q, k, v = attention.project(x, scale_shift=scale_shift)
  keys, values = _write(cache[0], k, index), _write(cache[1], v, index)
  output = attention.attend(q, keys, values, attention.bias(query_index=index))
  return output, (keys, values)


def _finish_block(block, x, attended, norms, mlp_scale_shift):
  """The rest of a decoder layer after its attention (`apply_decoder_block`).

  Residual and norm, feed-forward, conditional MLP, residual and norm;
  `norms` are the two norms' precomputed scale/shifts.
  """
  _, attention_norm, feed_forward, cond_mlp, ff_norm = block
  attention_norm_scale_shift, ff_norm_scale_shift = norms
  x = attention_norm.modulate(x + attended, attention_norm_scale_shift)
  update = cond_mlp.modulate(feed_forward(x), mlp_scale_shift)
  return ff_norm.modulate(x + update, ff_norm_scale_shift)


def _norm_scale_shifts(blocks, z):
  """Per block, the scale/shifts of its two norms from z `(N, h, w, D)`."""
  return [(attention_norm.scale_shift(z), ff_norm.scale_shift(z))
          for _, attention_norm, _, _, ff_norm in blocks]


def _take(x, index, axis):
  """Position `index` (a scalar tensor) of an axis of x, keeping the axis."""
  return tf.gather(x, tf.reshape(index, [1]), axis=axis)


def _at_column(scale_shifts, column):
  """Column `column` (axis 2, kept) of every tensor of a nested structure."""
  return tf.nest.map_structure(
      lambda t: None if t is None else _take(t, column, 2), scale_shifts)


class Sampler:
  """The compiled, cached sampler of one `CloudTranCore`.

  Called like `CloudTranCore.generate` (same arguments but `reference`, same
  outputs). The
  channels are folded into the batch (N = B·C). Per row i:
  1. Inner decoder, pixel by pixel (column j): the input is the embedding of
     pixel j-1 (zeros for j = 0) plus the positional embedding, z and the
     outer context; each causal row-attention layer writes the pixel's key
     and value to its row cache `(N, 1, w, heads, d)` and attends to columns
     <= j; feed-forward, MLP and norms run on the pixel alone; the final norm
     and dense give the logits and `base.choose_pixels` the value.
  2. Outer decoder on row i alone: the unmasked row attention needs only the
     row; each causal column-attention layer writes the row's keys and values
     to its column cache `(N, w, h, heads, d)` and attends to rows <= i. The
     output is the context of row i+1 (the shift down; row 0 gets zeros).
     It also runs after the last row, whose output is unused (1/h of the
     outer work), so that every row is one loop step.

  `jit_compile=True` (XLA) is about 3× faster than a plain graph on the CPU
  (bench/sampler.py). One trace per (mode, only_parallel, input shapes); the
  seed is a tensor, so new seeds do not retrace.
  """

  def __init__(self, model, jit_compile=True):
    for attention, *_ in model.outer_decoder.blocks:
      if (attention.axis == 'column') != attention.causal:
        raise ValueError('The sampler caches outer decoders made of unmasked '
                         'row and causal column attention only.')
    for attention, *_ in model.inner_decoder.blocks:
      if attention.axis != 'row' or not attention.causal:
        raise ValueError('The sampler caches inner decoders made of causal '
                         'row attention only.')
    self.model = model
    self._generate = tf.function(self._generate_graph, jit_compile=jit_compile)

  def __call__(self, inputs, mode='argmax', only_parallel=False, seed=None):
    """See `CloudTranCore.generate`."""
    _, slots, offsets = self.model.split_inputs(inputs, training=False)
    seed = (base.seed_pair(seed) if mode == 'sample' else
            tf.zeros([2], tf.int32))
    return self._generate(slots, offsets, seed,
                          self.model.prior_fill(inputs, training=False),
                          mode=mode, only_parallel=only_parallel)

  def _generate_graph(self, slots, offsets, seed, fill, mode, only_parallel):
    return self.model.generate_with(self.decode, slots, offsets, mode,
                                    only_parallel, seed, fill)

  def decode(self, z, offsets, mode, seed, prior=None):
    """The cached `decode` of `CloudTranCore.generate_with`.

    z `(N, h, w, D)`, offsets `(N,)` int32, seed `(2,)`, prior `(N, h, w,
    2)` the classical prior's `prior_params` or None; returns the pixel
    values `(N, h, w)` int32 and their softmax `(N, h, w, 256)`.
    """
    outer = self.model.outer_decoder
    _, height, width, hidden_size = z.shape
    num = tf.shape(z)[0]
    outer_norms = _norm_scale_shifts(outer.blocks, z)
    inner_blocks = self.model.inner_decoder.blocks
    row_norms = self.model.config.model.decoder.cond_ln_sampling == 'row'
    inner_norms = None if row_norms else _norm_scale_shifts(inner_blocks, z)
    # Keys and values of the rows generated so far, per causal column layer.
    caches = [
        tuple(tf.zeros([num, width, height, attention.num_heads,
                        attention.head_size], z.dtype) for _ in range(2))
        if attention.causal else ()
        for attention, *_ in outer.blocks]
    upper = tf.zeros([num, 1, width, hidden_size], z.dtype)
    image = tf.TensorArray(tf.int32, size=height)
    proba = tf.TensorArray(tf.float32, size=height)
    for row in tf.range(height):
      z_row = _take(z, row, 1)
      # Upstream's sampling: z_row (N, 1, w, D) against the (1, h, w, 1)
      # spatial weights broadcasts to (N, h, w, D) before the average.
      pixels, probs = self._inner_row(
          row, z_row, upper, offsets, mode, seed,
          _norm_scale_shifts(inner_blocks, z_row) if row_norms
          else inner_norms, None if prior is None else _take(prior, row, 1))
      image = image.write(row, pixels)
      proba = proba.write(row, probs)
      upper, caches = self._outer_row(row, pixels, z_row, offsets,
                                      outer_norms, caches)
    return (tf.transpose(image.stack(), [1, 0, 2]),
            tf.transpose(proba.stack(), [1, 0, 2, 3]))

  def _inner_row(self, row, z_row, upper, offsets, mode, seed, norms,
                 prior_row=None):
    """Generates row `row` pixel by pixel (step 1 of the class docstring).

    z_row and upper (the outer context) are `(N, 1, w, D)`, prior_row the
    row's classical prior `(N, 1, w, 2)` or None. Returns the
    values `(N, w)` int32 and their softmax `(N, w, 256)`.
    """
    model = self.model
    inner = model.inner_decoder
    width = z_row.shape[2]
    context = tf.concat([z_row, upper], axis=-1)
    scale_shifts = [(attention.scale_shift(context),
                     cond_mlp.scale_shift(context))
                    for attention, _, _, cond_mlp, _ in inner.blocks]
    skip = z_row + upper
    caches = [
        tuple(tf.zeros([tf.shape(z_row)[0], 1, width, attention.num_heads,
                        attention.head_size], z_row.dtype) for _ in range(2))
        for attention, *_ in inner.blocks]
    previous = tf.zeros_like(z_row[:, :, :1])
    pixels = tf.TensorArray(tf.int32, size=width)
    probs = tf.TensorArray(tf.float32, size=width)
    for column in tf.range(width):
      x = inner.position.add_at(previous, (row, column))
      if inner.skip:
        x += _take(skip, column, 2)
      new_caches = []
      for block, block_norms, block_scale_shifts, cache in zip(
          inner.blocks, norms, scale_shifts, caches):
        attention_scale_shift, mlp_scale_shift = _at_column(
            block_scale_shifts, column)
        attended, cache = _cached_attention(
            block[0], x, attention_scale_shift, cache, column)
        x = _finish_block(block, x, attended, block_norms, mlp_scale_shift)
        new_caches.append(cache)
      caches = new_caches
      logits = model.logits_from_activations(x)[:, 0, 0]
      if prior_row is not None:
        logits += model.prior_logits(_take(prior_row, column, 2)[:, 0, 0])
      pixel = base.choose_pixels(logits, mode, seed, row * width + column)
      pixels = pixels.write(column, pixel)
      probs = probs.write(column, tf.nn.softmax(logits))
      previous = model.pixel_embedding(
          (pixel + offsets)[:, None, None, None])
    return tf.transpose(pixels.stack()), tf.transpose(probs.stack(), [1, 0, 2])

  def _outer_row(self, row, pixels, z_row, offsets, norms, caches):
    """The outer decoder on row `row` alone (step 2 of the class docstring).

    pixels `(N, w)` int32 are the row's values, z_row `(N, 1, w, D)`.
    Returns the row's output `(N, 1, w, D)` (the context of row + 1) and the
    updated column caches.
    """
    outer = self.model.outer_decoder
    embeddings = self.model.pixel_embedding(
        (pixels + offsets[:, None])[:, None, :, None])
    x = outer.position.add_at(embeddings, (row, None))
    if outer.skip:
      x += z_row
    new_caches = []
    for block, block_norms, cache in zip(outer.blocks, norms, caches):
      attention, _, _, cond_mlp, _ = block
      if attention.causal:
        attended, cache = _cached_attention(
            attention, attention.to_rows(x),
            attention.scale_shift(attention.to_rows(z_row)), cache, row)
        attended = attention.to_rows(attended)
      else:
        attended = attention(x, z_row)
      x = _finish_block(block, x, attended, block_norms,
                        cond_mlp.scale_shift(z_row))
      new_caches.append(cache)
    return x, new_caches
