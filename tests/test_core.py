"""Behaviour of the CloudTran core (models/core.py)."""

import numpy as np
import pytest
import tensorflow as tf

import models
from models import base
import model_helpers

SIZE = model_helpers.SIZE


@pytest.fixture(scope='module')
def model():
  return models.build(model_helpers.core_config())


@pytest.fixture(scope='module')
def inputs():
  return model_helpers.random_inputs(model_helpers.core_config())


@pytest.mark.parametrize('channels,timeline', [(1, 3), (3, 4), (4, 5)])
def test_output_shapes(channels, timeline):
  config = model_helpers.core_config(channels, timeline)
  model = models.build(config)
  inputs = model_helpers.random_inputs(config)
  for training, out in ((True, 1), (False, channels)):
    logits, aux = model.get_logits(inputs, training=training)
    assert logits.shape == (2, SIZE, SIZE, out, 256)
    assert aux['encoder_logits'].shape == (2, SIZE, SIZE, out, 256)
    total, losses = model.loss(inputs, logits, aux, training=training)
    assert sorted(losses) == ['encoder', 'loss'] and total.shape == ()
  assert model.metric_keys == ['encoder']


def _with_target_pixel(inputs, key, row, col, channel, value):
  cube = inputs[key].numpy().copy()
  cube[:, row, col, channel] = value
  return dict(inputs, **{key: tf.constant(cube)})


@pytest.mark.parametrize('row,col', [(0, 0), (3, 5), (4, 7), (7, 0)])
def test_decoder_is_causal(model, inputs, row, col):
  """Changing target pixel p changes no logit at positions <= p."""
  key = f'targets_{SIZE}'
  before, _ = model.get_logits(inputs, training=False)
  value = (inputs[key][0, row, col, 1] + 128) % 256
  changed = _with_target_pixel(inputs, key, row, col, 1, value)
  after, _ = model.get_logits(changed, training=False)
  delta = np.abs(after - before).max(axis=(0, 4))  # (h, w, C)
  raster = delta.reshape(SIZE * SIZE, -1)
  position = row * SIZE + col
  np.testing.assert_array_equal(raster[:position + 1], 0)
  # Channels are decoded independently: only channel 1 moves.
  np.testing.assert_array_equal(raster[:, [0, 2]], 0)
  assert raster[position + 1:, 1].max() > 1e-4


def test_first_pixel_has_no_context_from_the_target(model, inputs):
  key = f'targets_slice_{SIZE}'
  before, _ = model.get_logits(inputs, training=True)
  cube = inputs[key].numpy()
  cube[..., 0] = 255 - cube[..., 0]
  after, _ = model.get_logits(dict(inputs, **{key: tf.constant(cube)}),
                              training=True)
  np.testing.assert_array_equal(after[:, 0, 0], before[:, 0, 0])
  assert not np.allclose(after[:, 1:], before[:, 1:])


def test_parallel_head_ignores_the_target(model, inputs):
  for key, training in ((f'targets_{SIZE}', False),
                        (f'targets_slice_{SIZE}', True)):
    cube = inputs[key].numpy().copy()
    channels = 1 if training else 3
    cube[..., :channels] = 255 - cube[..., :channels]
    changed = dict(inputs, **{key: tf.constant(cube)})
    _, before = model.get_logits(inputs, training=training)
    _, after = model.get_logits(changed, training=training)
    np.testing.assert_array_equal(after['encoder_logits'],
                                  before['encoder_logits'])


def test_training_uses_the_channel_index(model, inputs):
  logits, _ = model.get_logits(inputs, training=True)
  index = (inputs['channel_index'] + 1) % 3
  other, _ = model.get_logits(dict(inputs, channel_index=index),
                              training=True)
  assert not np.allclose(logits, other)


def test_uniform_logits_cost_8_bits(model, inputs):
  config = model.config
  for training, channels in ((True, 1), (False, 3)):
    uniform = tf.zeros([2, SIZE, SIZE, channels, 256])
    total, losses = model.loss(inputs, uniform, {'encoder_logits': uniform},
                               training=training)
    assert float(losses['loss']) == pytest.approx(8.0, abs=1e-5)
    assert float(losses['encoder']) == pytest.approx(8.0, abs=1e-5)
    assert float(total) == pytest.approx(
        8.0 * (config.loss_factor + config.encoder_loss_factor), abs=1e-5)


def _set(config, key, value):
  section = config.model
  *path, name = key.split('.')
  for part in path:
    section = section[part]
  section[name] = value


TOGGLES = [
    {'encoder.aggregation': 'conv'},
    {'encoder.aggregation': 'attention'},
    {'encoder.aggregation': 'sum'},
    {'decoder.cond_ln': False},
    {'decoder.cond_ln_seq': 'cs', 'decoder.cond_ln_sp_ave': 'mean',
     'decoder.cond_ln_act': 'tanh'},
    {'decoder.cond_att_q': False, 'decoder.cond_att_k': False,
     'decoder.cond_att_v': False},
    {'decoder.cond_att_scale': False, 'decoder.cond_att_act': 'sigmoid'},
    {'decoder.cond_mlp': 'shift'},
    {'decoder.cond_mlp': 'affine', 'decoder.cond_mlp_act': 'relu'},
    {'decoder.skip': False},
    {'stage': 'decoder'},
    {'encoder.dropout': 0.1, 'decoder.dropout': 0.1},
]


@pytest.mark.parametrize('toggle', TOGGLES, ids=lambda t: ','.join(
    f'{k}={v}' for k, v in t.items()))
def test_toggles_build_run_and_train_every_variable(toggle):
  config = model_helpers.core_config(channels=3, timeline=4)
  for key, value in toggle.items():
    _set(config, key, value)
  model = models.build(config)
  inputs = model_helpers.random_inputs(config)
  total, grads = model_helpers.gradients(model, inputs, training=True)
  assert np.isfinite(total)
  # In every setting each trainable variable receives a gradient, and a
  # non-zero one: no layer is dead. Stage 'decoder' simply has no parallel
  # head (and no 'encoder' loss), rather than an untrained one.
  missing = [v.path for v, g in grads if g is None]
  assert not missing
  zero = [v.path for v, g in grads
          if not np.any(tf.convert_to_tensor(g).numpy())]
  assert not zero
  if toggle.get('stage') == 'decoder':
    assert model.parallel_head is None and model.metric_keys == []
    logits, aux = model.get_logits(inputs, training=False)
    assert aux == {}
    assert list(model.loss(inputs, logits, aux, False)[1]) == ['loss']


def test_every_variable_gets_a_gradient_in_evaluation_mode(model, inputs):
  _, grads = model_helpers.gradients(model, inputs, training=False)
  assert all(g is not None for _, g in grads)
  assert len(grads) == len(model.trainable_variables) > 0


def _batched_encode(encoder, symbols):
  """TimeSeriesEncoder (`conv`) as one batched pass over all maps."""
  batch, height, width, num_slots, num_channels = symbols.shape
  maps = tf.reshape(tf.transpose(symbols, [0, 3, 4, 1, 2]),
                    [-1, height, width])
  encoded = encoder.encoder(encoder.embedding(maps[..., None]))
  encoded = tf.reshape(encoded, [batch, num_slots, num_channels, height,
                                 width, -1])
  series = encoder.temporal_position(tf.transpose(encoded,
                                                  [0, 3, 4, 2, 1, 5]))
  per_feature = tf.linalg.matrix_transpose(series)  # (B, h, w, C, D, S)
  return encoder.time_output(encoder.time_hidden(per_feature))[..., 0]


@pytest.mark.parametrize('jit_compile', [False, True])
@pytest.mark.parametrize('training', [False, True])
def test_encoder_equals_one_batched_pass(training, jit_compile):
  """Inference's map-by-map stack and row-by-row time MLP, and training's
  batched pass (dropout is 0), give the same output."""
  config = model_helpers.core_config()
  model = models.build(config)
  rng = np.random.default_rng(0)
  for variable in model.encoder.variables:  # Also the zero relative biases.
    variable.assign(variable + rng.normal(0, 0.1, variable.shape))
  _, slots, offsets = model.split_inputs(
      model_helpers.random_inputs(config), training=False)
  encode = tf.function(model.encode, jit_compile=jit_compile)
  expected = _batched_encode(model.encoder,
                             slots + offsets[:, None, None, None])
  np.testing.assert_allclose(encode(slots, offsets, training=training),
                             expected, atol=1e-5)


def test_checkpoint_round_trip(tmp_path, inputs):
  config = model_helpers.core_config()
  model = models.build(config)
  path = tf.train.Checkpoint(model=model).save(str(tmp_path / 'ckpt'))
  saved = [n for n, _ in tf.train.list_variables(path)
           if n.startswith('model/')]
  assert len(saved) == len(model.variables)
  restored = models.build(config)
  before, _ = restored.get_logits(inputs, training=False)
  tf.train.Checkpoint(model=restored).restore(path).assert_consumed()
  expected, expected_aux = model.get_logits(inputs, training=False)
  after, aux = restored.get_logits(inputs, training=False)
  assert not np.allclose(before, expected)
  np.testing.assert_array_equal(after, expected)
  np.testing.assert_array_equal(aux['encoder_logits'],
                                expected_aux['encoder_logits'])


def test_gan_inputs(model, inputs):
  logits, _ = model.get_logits(inputs, training=True)
  cloudy, real, fake, channel_index = model.gan_inputs(inputs, logits, 'soft')
  for image in (cloudy, real, fake):
    assert image.shape == (2, SIZE, SIZE, 1) and image.dtype == tf.float32
  cube = inputs[f'targets_slice_{SIZE}']
  np.testing.assert_array_equal(cloudy[..., 0], cube[..., -1])
  np.testing.assert_array_equal(real[..., 0], cube[..., 0])
  np.testing.assert_allclose(fake, base.relax(logits[..., :1, :], 'soft'),
                             rtol=1e-5)
  np.testing.assert_array_equal(channel_index, inputs['channel_index'])
  with tf.GradientTape() as tape:
    logits, _ = model.get_logits(inputs, training=True)
    fake = model.gan_inputs(inputs, logits, 'soft')[2]
  assert tape.gradient(fake, model.final_dense.kernel) is not None
  eval_logits, _ = model.get_logits(inputs, training=False)
  with pytest.raises(ValueError, match='one-channel'):
    model.gan_inputs(inputs, eval_logits, 'soft')


def test_generated_images_agree_with_teacher_forcing(model, inputs):
  """The fast sampler's outputs are what the model predicts on them."""
  output = model.generate(inputs, mode='argmax')
  assert sorted(output) == ['auto_argmax', 'parallel', 'parallel_proba',
                            'proba']
  image = output['auto_argmax']
  assert image.shape == output['parallel'].shape == (2, SIZE, SIZE, 3)
  assert image.dtype == output['parallel'].dtype == tf.int32
  assert output['proba'].shape == (2, SIZE, SIZE, 3, 256)
  np.testing.assert_allclose(tf.reduce_sum(output['proba'], -1), 1, atol=1e-5)
  # Teacher forcing on the generated image gives back the same choices.
  key = f'targets_{SIZE}'
  cube = tf.concat([image, inputs[key][..., 3:]], axis=-1)
  logits, aux = model.get_logits(dict(inputs, **{key: cube}), training=False)
  np.testing.assert_array_equal(tf.argmax(logits, -1, output_type=tf.int32),
                                image)
  np.testing.assert_allclose(tf.nn.softmax(logits), output['proba'],
                             atol=1e-5)
  np.testing.assert_array_equal(
      tf.argmax(aux['encoder_logits'], -1, output_type=tf.int32),
      output['parallel'])
  np.testing.assert_allclose(tf.nn.softmax(aux['encoder_logits']),
                             output['parallel_proba'], atol=1e-6)
  only = model.generate(inputs, only_parallel=True)
  assert sorted(only) == ['parallel', 'parallel_proba']


@pytest.mark.parametrize('only_parallel', [False, True])
def test_sample_returns_the_common_outputs(model, inputs, only_parallel):
  """`sample` gives `generate`'s image and the probability of each value."""
  generated = model.generate(inputs, only_parallel=only_parallel)
  image, proba = ((generated['parallel'], generated['parallel_proba'])
                  if only_parallel else
                  (generated['auto_argmax'], generated['proba']))
  output = model.sample(inputs, only_parallel=only_parallel)
  assert sorted(output) == sorted([base.OUTPUT, base.CONFIDENCE])
  np.testing.assert_array_equal(output[base.OUTPUT], image)
  confidence = output[base.CONFIDENCE]
  assert confidence.shape == (2, SIZE, SIZE, 3)
  assert confidence.dtype == tf.float32
  # argmax: each value is the most likely one, so its probability is the max.
  np.testing.assert_allclose(confidence, tf.reduce_max(proba, -1), atol=1e-6)


def test_sample_draws_are_seeded_and_compile(model, inputs):
  small = {k: v[:1] for k, v in inputs.items()}
  first = model.sample(small, mode='sample', seed=3)[base.OUTPUT]
  compiled = tf.function(lambda x: model.sample(x, mode='sample', seed=3))
  again = compiled(small)[base.OUTPUT]
  np.testing.assert_array_equal(first, again)
  assert first.shape == (1, SIZE, SIZE, 3)


@pytest.mark.parametrize('key, value, message', [
    ('resolution', (4, 4), 'model.resolution'),
    ('decoder.num_heads', 3, 'decoder.num_heads'),
    ('encoder.aggregation', 'max', 'aggregation'),
    ('encoder.num_fused_layers', -1, 'encoder.num_fused_layers'),
    ('stage', 'encoder', 'stage'),
    ('decoder.cond_att_act', 'gelu', 'decoder.cond_att_act'),
    ('decoder.cond_ln_sampling', 'pixel', 'decoder.cond_ln_sampling'),
])
def test_config_errors_name_the_keys(key, value, message):
  config = model_helpers.core_config()
  _set(config, key, value)
  with pytest.raises(ValueError, match=message):
    models.build(config)


def test_sum_aggregation_ignores_the_order_of_the_dates(inputs):
  """No temporal embedding in `sum` mode (as upstream)."""
  config = model_helpers.core_config(channels=3, timeline=4)
  config.model.encoder.aggregation = 'sum'
  model = models.build(config)
  _, slots, offsets = model.split_inputs(inputs, training=False)
  reversed_slots = slots[..., ::-1, :]
  np.testing.assert_allclose(model.encode(reversed_slots, offsets),
                             model.encode(slots, offsets), atol=1e-5)
  assert not any('temporal' in v.path for v in model.variables)


def test_fused_layers_start_as_the_upstream_encoder_and_train(inputs):
  """With num_fused_layers, z is the aggregated map plus a zero-initialised
  dense of the fused axial stack over it: untrained, exactly the upstream
  encoder's z; the dense gets a gradient at once, and once it is not zero
  every fused variable does; training and inference encode alike."""
  config = model_helpers.core_config(channels=3, timeline=4)
  config.model.encoder.num_fused_layers = 1
  model = models.build(config)
  encoder = model.encoder
  _, slots, offsets = model.split_inputs(inputs, training=False)
  aggregated = encoder._aggregate(slots + offsets[:, None, None, None],
                                  training=False)
  np.testing.assert_array_equal(model.encode(slots, offsets), aggregated)
  fused = encoder.fused.trainable_variables
  _, grads = model_helpers.gradients(model, inputs, training=True)
  grads = {v.path: g for v, g in grads}
  assert all(np.any(grads[v.path]) for v in
             encoder.fused_output.trainable_variables)
  assert not any(np.any(grads[v.path]) for v in fused)
  encoder.fused_output.kernel.assign(tf.random.normal(
      encoder.fused_output.kernel.shape, stddev=0.1, seed=1))
  _, grads = model_helpers.gradients(model, inputs, training=True)
  assert all(np.any(g) for v, g in grads if v.path in
             {w.path for w in fused})
  z = model.encode(slots, offsets)
  expected = aggregated + base.unfold_channels(encoder.fused_output(
      encoder.fused(base.fold_channels(aggregated))), 3)
  np.testing.assert_allclose(z, expected, atol=1e-5)
  np.testing.assert_allclose(model.encode(slots, offsets, training=True), z,
                             atol=1e-4)


def test_reference_sampler_refuses_row_norms(model, inputs):
  config = model.config
  config.model.decoder.cond_ln_sampling = 'row'
  try:
    with pytest.raises(ValueError, match='cond_ln_sampling'):
      model.generate(inputs, reference=True)
  finally:
    config.model.decoder.cond_ln_sampling = 'image'



def test_a_certain_classical_prior_is_what_every_sampler_gives(inputs):
  """With the prior's precision made huge, the parallel head and the fast
  sampler return the prior's fill; with a moderate one, the fast and the
  reference sampler agree, the prior moving some pixels and not all; the
  training loss with it is finite and the precision gets a gradient."""
  config = model_helpers.core_config()
  config.classical_prior = True
  model = models.build(config)
  total, grads = model_helpers.gradients(
      model, model_helpers.random_inputs(config), training=True)
  assert np.isfinite(total)
  assert dict((v.path, g) for v, g in grads)[
      model.prior_log_precision.path] is not None
  prior_inputs = model_helpers.random_inputs(config, seed=3)
  fill = prior_inputs[f'prior_{SIZE}'].numpy()
  model.prior_log_precision.assign(10.)
  fast = model.generate(prior_inputs)
  for out in (fast['parallel'], fast['auto_argmax']):
    np.testing.assert_array_equal(out, fill)
  model.prior_log_precision.assign(-30.)     # the prior all but gone
  gone = model.generate(prior_inputs)['auto_argmax'].numpy()
  assert (gone != fill).mean() > .9
  model.prior_log_precision.assign(-7.)
  one = {key: value[:1] for key, value in prior_inputs.items()}
  fast = model.generate(one)['auto_argmax'].numpy()
  np.testing.assert_array_equal(
      model.generate(one, reference=True)['auto_argmax'], fast)
  assert 0 < (fast == fill[:1]).mean() < 1 and (fast != gone[:1]).any()


def test_the_prior_head_moves_the_prior_and_every_sampler_follows(inputs):
  """config.model.prior_head starts at zero (the plain prior's logits); its
  shift moves what a certain prior gives by as many levels, in the parallel
  head and the fast sampler, and its weights get a gradient."""
  config = model_helpers.core_config()
  config.classical_prior = True
  config.model.prior_head = True
  model = models.build(config)
  prior_inputs = model_helpers.random_inputs(config, seed=3)
  logits, aux = model.get_logits(prior_inputs, training=False)
  head, model.prior_head = model.prior_head, None
  plain_logits, plain_aux = model.get_logits(prior_inputs, training=False)
  model.prior_head = head
  np.testing.assert_array_equal(logits, plain_logits)
  np.testing.assert_array_equal(aux['encoder_logits'],
                                plain_aux['encoder_logits'])
  _, grads = model_helpers.gradients(
      model, model_helpers.random_inputs(config), training=True)
  head = {v.path for v in model.prior_head.weights}
  assert all(g is not None and np.abs(g).sum() > 0
             for v, g in grads if v.path in head)
  fill = prior_inputs[f'prior_{SIZE}'].numpy()
  model.prior_log_precision.assign(10.)
  model.prior_head.bias.assign([3., 0.])
  fast = model.generate(prior_inputs)
  for out in (fast['parallel'], fast['auto_argmax']):
    np.testing.assert_array_equal(out, np.minimum(fill + 3, 255))
  model.prior_log_precision.assign(-5.)
  model.prior_head.kernel.assign(
      np.random.RandomState(0).normal(0, 2., model.prior_head.kernel.shape))
  one = {key: value[:1] for key, value in prior_inputs.items()}
  fast = model.generate(one)['auto_argmax'].numpy()
  np.testing.assert_array_equal(
      model.generate(one, reference=True)['auto_argmax'], fast)


def test_the_prior_head_needs_the_prior():
  config = model_helpers.core_config()
  config.model.prior_head = True
  with pytest.raises(ValueError, match='classical_prior'):
    models.build(config)
