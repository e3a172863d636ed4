"""Behaviour of the building blocks in models/layers.py."""

import numpy as np
import pytest
import tensorflow as tf

from models import layers

D, HEADS = 8, 2


def _random(shape, seed=0):
  return tf.random.stateless_normal(shape, seed=[seed, 1])


def _set_random(variable, seed):
  variable.assign(_random(variable.shape, seed))


def test_one_hot_embedding_equals_dense_on_one_hot():
  layer = layers.OneHotEmbedding(5, D, num_features=3, use_bias=True)
  _set_random(layer.bias, 1)
  symbols = tf.constant([[[0, 4, 2], [1, 1, 3]]])
  one_hot = tf.reshape(tf.one_hot(symbols, 5), [1, 2, 15])
  expected = tf.matmul(one_hot, layer.kernel) + layer.bias
  np.testing.assert_allclose(layer(symbols), expected, atol=1e-6)


def test_position_embedding_tables_and_init():
  layer = layers.PositionEmbedding((3, 4), 64)
  assert [t.shape for t in layer.tables] == [(3, 1, 64), (4, 64)]
  np.testing.assert_allclose(layer(tf.zeros([2, 3, 4, 64]))[1],
                             layer.embeddings(), atol=1e-6)
  values = np.concatenate([t.numpy().ravel() for t in layer.tables])
  assert abs(values.std() - 64**-0.5) < 0.03


def test_shifts():
  x = tf.reshape(tf.range(1, 7, dtype=tf.float32), [1, 2, 3, 1])
  np.testing.assert_array_equal(layers.shift_down(x)[0, ..., 0],
                                [[0, 0, 0], [1, 2, 3]])
  np.testing.assert_array_equal(layers.shift_right(x)[0, ..., 0],
                                [[0, 1, 2], [0, 4, 5]])


def test_relative_bias_layout():
  attention = layers.AxialAttention(D, HEADS, 4, 'row')
  _set_random(attention.relative_bias, 2)
  bias = attention.bias().numpy()
  table = attention.relative_bias.numpy()
  assert bias.shape == (HEADS, 4, 4)
  for q in range(4):
    for k in range(4):
      np.testing.assert_allclose(bias[:, q, k], table[:, 3 + k - q])
  # One query row, as a cached decoder would ask for it.
  np.testing.assert_allclose(attention.bias(query_index=tf.constant(2)),
                             bias[:, 2:3])


@pytest.mark.parametrize('axis', ['row', 'column'])
def test_causal_attention_sees_only_the_past(axis):
  attention = layers.AxialAttention(D, HEADS, 5, axis, causal=True)
  _set_random(attention.relative_bias, 3)
  x = _random([2, 5, 5, D])
  changed = tf.tensor_scatter_nd_add(x, [[0, 3, 3]], [tf.ones([D])])
  delta = np.abs(attention(changed) - attention(x)).max(axis=-1)[0]
  if axis == 'column':
    delta = delta.T
  # Along the attended axis (now axis 1 of delta), position 3 of line 3.
  np.testing.assert_array_equal(delta[:3], 0)
  np.testing.assert_array_equal(delta[:, :3], 0)
  np.testing.assert_array_equal(delta[4:], 0)
  assert delta[3, 3:].min() > 0


def test_column_attention_is_row_attention_on_the_transpose():
  row = layers.AxialAttention(D, HEADS, 5, 'row')
  column = layers.AxialAttention(D, HEADS, 5, 'column')
  column.set_weights(row.get_weights())
  x = _random([2, 5, 5, D])
  np.testing.assert_allclose(
      column(x), tf.transpose(row(tf.transpose(x, [0, 2, 1, 3])),
                              [0, 2, 1, 3]), atol=1e-5)


def test_conditional_attention_uses_the_context():
  kwargs = dict(context_size=3, cond_q=True, cond_k=True, cond_v=True)
  x, context = _random([1, 4, 4, D]), _random([1, 4, 4, 3], 1)
  for cond_scale in (True, False):
    attention = layers.AxialAttention(D, HEADS, 4, 'row',
                                      cond_scale=cond_scale, **kwargs)
    width = (2 if cond_scale else 1) * D // HEADS
    assert attention.cond_q_kernel.shape == (3, HEADS, width)
    assert not np.allclose(attention(x, context), attention(x, 2 * context))
  plain = layers.AxialAttention(D, HEADS, 4, 'row', context_size=3)
  assert plain.cond_q_kernel is None
  np.testing.assert_allclose(plain(x, context), plain(x), atol=1e-6)


@pytest.mark.parametrize('sequence', ['sc', 'cs'])
@pytest.mark.parametrize('spatial_average', ['learnable', 'mean'])
def test_conditional_layer_norm(sequence, spatial_average):
  norm = layers.ConditionalLayerNorm(D, 3, (4, 4), spatial_average, sequence)
  x, context = _random([2, 4, 4, D]), _random([2, 4, 4, 3], 1)
  scale, shift = norm.scale_shift(context)
  assert scale.shape == shift.shape == (2, 1, 1, D)
  out = norm(x, context)
  normalised = (out - shift) / scale
  np.testing.assert_allclose(tf.reduce_mean(normalised, -1), 0, atol=1e-4)
  assert (spatial_average == 'learnable') == (norm.spatial_weights is not None)
  names = {w.name for w in norm.normalize.weights}
  assert not names  # no learned gain or bias in the normalisation itself


@pytest.mark.parametrize('mode', ['shift', 'affine'])
def test_conditional_mlp(mode):
  mlp = layers.ConditionalMLP(D, 3, mode=mode)
  x, context = _random([1, 2, 2, D]), _random([1, 2, 2, 3], 1)
  params = mlp.project(context)
  if mode == 'shift':
    expected = x + params
  else:
    expected = x * params[..., D:] + params[..., :D]
  np.testing.assert_allclose(mlp(x, context), expected, atol=1e-6)


def test_shift_only_conditioning_has_no_activation():
  """As upstream: `cond_act`/`cond_mlp_act` act on scale and shift only in
  the affine forms."""
  context = _random([1, 2, 2, 3], 1)
  mlp = layers.ConditionalMLP(D, 3, mode='shift', act='tanh')
  x = _random([1, 2, 2, D])
  np.testing.assert_allclose(mlp(x, context), x + mlp.project(context),
                             atol=1e-6)
  affine = layers.ConditionalMLP(D, 3, mode='affine', act='tanh')
  params = affine.project(context)
  np.testing.assert_allclose(
      affine(x, context),
      x * np.tanh(params[..., D:]) + np.tanh(params[..., :D]), atol=1e-6)
  attention = layers.AxialAttention(D, HEADS, 2, 'row', context_size=3,
                                    cond_q=True, cond_act='tanh')
  _, shift = attention.scale_shift(context)[0]
  np.testing.assert_allclose(
      shift, np.einsum('brlc,chd->brlhd', context, attention.cond_q_kernel),
      atol=1e-6)


def test_axial_encoder_mixes_the_whole_image():
  encoder = layers.AxialEncoder(D, 16, HEADS, 1, (4, 5))
  x = _random([1, 4, 5, D])
  changed = tf.tensor_scatter_nd_add(x, [[0, 0, 0]], [tf.ones([D])])
  delta = np.abs(encoder(changed) - encoder(x)).max(axis=-1)
  assert delta.min() > 0
  assert len(encoder.blocks) == 2


def test_lists_of_layers_reach_checkpoints(tmp_path):
  encoder = layers.AxialEncoder(D, 16, HEADS, 2, (4, 4))
  path = tf.train.Checkpoint(layer=encoder).save(str(tmp_path / 'ckpt'))
  saved = [name for name, _ in tf.train.list_variables(path)
           if name.startswith('layer/')]
  assert len(saved) == len(encoder.weights)
  other = layers.AxialEncoder(D, 16, HEADS, 2, (4, 4))
  tf.train.Checkpoint(layer=other).restore(path).assert_consumed()
  for a, b in zip(encoder.weights, other.weights):
    np.testing.assert_array_equal(a, b)


def test_unknown_options_are_rejected():
  with pytest.raises(ValueError, match='divisible'):
    layers.AxialAttention(10, 3, 4, 'row')
  with pytest.raises(ValueError, match='axis'):
    layers.AxialAttention(D, HEADS, 4, 'depth')
  with pytest.raises(ValueError, match='cond_mlp'):
    layers.ConditionalMLP(D, 3, mode='scale')
  with pytest.raises(ValueError, match='activation'):
    layers.activation('gelu')
