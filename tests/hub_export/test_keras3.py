"""The encoder in Keras 3 (TF 2.20's default `keras`): `hub_export.keras3.HubEncoder`."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the preprocessor's ops)

from hub_export import keras3
from tests import testutil

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow

KEYS = ("input_word_ids", "input_mask", "input_type_ids")


def _inputs(vocab_size, batch=2, seq_length=16, seed=0):
  return {k: tf.constant(v) for k, v in
          testutil.encoder_inputs(vocab_size, batch=batch, seq_length=seq_length,
                                  seed=seed).items()}


def _relative_close(actual, expected, tol=1e-6):
  a, e = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
  assert np.abs(a - e).max() <= tol * max(np.abs(e).max(), 1.0)


def _assert_updated(before, after):
  """All changed but a few whose gradient is ~0 at random init (e.g. the attention key
  bias: softmax is invariant to it, its gradient is analytically zero)."""
  changed = sum(not np.array_equal(b, a) for b, a in zip(before, after))
  assert len(before) == len(after) > 0
  assert changed >= 0.85 * len(before), f"only {changed} of {len(before)} variables changed"


def _classifier(encoder):
  inputs = {k: keras.Input(shape=(None,), dtype="int32", name=k) for k in KEYS}
  logits = keras.layers.Dense(2, name="head")(encoder(inputs)["pooled_output"])
  return keras.Model(inputs, logits)


def _fine_tune_one_step(layer, vocab_size, optimizer):
  """Builds a classifier on `layer`, fits one batch; returns (layer, model, before, after)."""
  model = _classifier(layer)
  model.compile(optimizer=optimizer,
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  x = _inputs(vocab_size, batch=4, seed=5)
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(model(x, training=True))
  grads = tape.gradient(loss, layer.trainable_weights)
  assert all(g is not None for g in grads), "an encoder weight is not connected to the loss"
  before = [v.numpy().copy() for v in layer._callable.trainable_variables]  # pylint: disable=protected-access
  model.fit(tf.data.Dataset.from_tensors((x, tf.constant([0, 1, 1, 0]))), epochs=1, verbose=0)
  after = [v.numpy() for v in layer._callable.trainable_variables]  # pylint: disable=protected-access
  return layer, model, before, after


@pytest.mark.parametrize("name", ["en_uncased", "multi_cased"])
def test_matches_direct_call_and_mlm(name, tiny_bundle, multi_bundle):
  bundle, vocab_size = ((tiny_bundle, 30522) if name == "en_uncased"
                        else (multi_bundle, 119547))
  path = os.path.join(bundle["dir"], "encoder")
  direct = tf.saved_model.load(path)
  x = _inputs(vocab_size)
  layer = keras3.HubEncoder(path)
  out = layer(x)
  want = direct(x, training=False)
  for k in ("pooled_output", "sequence_output", "default"):
    _relative_close(out[k], want[k])
  assert len(out["encoder_outputs"]) == len(want["encoder_outputs"]) == 2
  # Inside a functional Keras 3 model, it is the same computation.
  symbolic = {k: keras.Input(shape=(None,), dtype="int32", name=k) for k in KEYS}
  _relative_close(keras.Model(symbolic, layer(symbolic)["pooled_output"])(x),
                  want["pooled_output"])
  positions = tf.constant([[1, 3], [2, 5]], tf.int32)
  mlm_layer = keras3.HubEncoder(path, mlm=True)
  got = mlm_layer(dict(x, masked_lm_positions=positions))["mlm_logits"]
  assert got.shape == (2, 2, vocab_size)
  _relative_close(got, direct.mlm(dict(x, masked_lm_positions=positions))["mlm_logits"])
  # The MLM head's variables are the layer's too (trainable), on top of the encoder's.
  assert len(mlm_layer.trainable_weights) == len(direct.mlm.trainable_variables) > \
      len(layer.trainable_weights) == len(direct.trainable_variables)


def test_training_flag_reaches_dropout(tiny_bundle):
  layer = keras3.HubEncoder(os.path.join(tiny_bundle["dir"], "encoder"))
  x = _inputs(30522)
  a = layer(x, training=False)["sequence_output"]
  np.testing.assert_array_equal(a, layer(x)["sequence_output"])
  assert np.abs(a - layer(x, training=True)["sequence_output"]).max() > 1e-4


def test_fine_tune_with_adamw_tracks_and_updates_the_encoder_variables(tiny_bundle):
  path = os.path.join(tiny_bundle["dir"], "encoder")
  layer, model, before, after = _fine_tune_one_step(
      keras3.HubEncoder(path, name="mobilebert"), 30522,
      keras.optimizers.AdamW(1e-3, weight_decay=0.01))
  assert len(layer.trainable_weights) == len(before) and before
  # Every weight is tracked once, by a name Keras accepts (no "/" or ":0").
  assert len({id(w) for w in model.trainable_weights}) == len(before) + 2
  assert all("/" not in w.name and ":" not in w.name for w in layer.weights)
  _assert_updated(before, after)
  # Optimizer slots: one momentum and one velocity per trainable weight, valid names.
  names = [v.path for v in model.optimizer.variables]
  assert sum(n.endswith("_momentum") for n in names) == len(model.trainable_weights)
  # The layer shares the SavedModel's variables: a fresh load differs, the object agrees.
  x = _inputs(30522)
  _relative_close(layer(x)["pooled_output"],
                  layer._callable(x, training=False)["pooled_output"])  # pylint: disable=protected-access
  fresh = tf.saved_model.load(path)
  assert np.abs(fresh(x)["pooled_output"] - layer(x)["pooled_output"]).max() > 0


def test_plain_tfsmlayer_cannot_fine_tune_this_is_why_hubencoder_exists(tiny_bundle):
  """Documents the Keras 3.15 limitation the model card states; if Keras fixes it, this
  test fails and the card's wording (and maybe HubEncoder) should be revisited."""
  layer = keras.layers.TFSMLayer(os.path.join(tiny_bundle["dir"], "encoder"),
                                 call_endpoint="__call__")
  model = _classifier(layer)
  model.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  x = _inputs(30522, batch=2)
  with pytest.raises(ValueError, match=r":0_momentum' is not a valid scope name"):
    model.train_on_batch(x, tf.constant([0, 1]))


def test_preprocessor_in_keras3_model_and_tf_data(multi_bundle):
  d = multi_bundle["dir"]
  pre = tf.saved_model.load(os.path.join(d, "preprocessor"))
  sentences = tf.constant(["Berlin ist schön.", "Москва — столица России.", "東京"])
  want = pre(sentences)
  text = keras.Input(shape=(), dtype="string")
  tfsm = keras.layers.TFSMLayer(os.path.join(d, "preprocessor"), call_endpoint="__call__")
  ids_model = keras.Model(text, tfsm(text))
  got = ids_model(sentences)
  for k in KEYS:
    np.testing.assert_array_equal(got[k], want[k])
  dataset = tf.data.Dataset.from_tensor_slices(sentences).batch(3).map(pre)
  batch = next(iter(dataset))
  for k in KEYS:
    np.testing.assert_array_equal(batch[k], want[k])
  encoder = keras3.HubEncoder(os.path.join(d, "encoder"))
  _relative_close(keras.Model(text, encoder(tfsm(text))["pooled_output"])(sentences),
                  tf.saved_model.load(os.path.join(d, "encoder"))(want)["pooled_output"])


def test_rejects_inputs_without_the_encoder_keys(tiny_bundle):
  layer = keras3.HubEncoder(os.path.join(tiny_bundle["dir"], "encoder"), mlm=True)
  with pytest.raises(ValueError, match=r"lack \['masked_lm_positions'\]"):
    layer(_inputs(30522))


@pytest.mark.slow
def test_full_config_demo_bundle_fine_tunes_in_keras3(full_demo_bundle):
  """The released 24-block config (untrained demo weights): parity, then one AdamW step."""
  path = os.path.join(full_demo_bundle["dir"], "encoder")
  x = _inputs(30522, batch=2, seq_length=16)
  layer = keras3.HubEncoder(path)  # one load of the 24-block encoder: its object is
  direct = layer._loaded(x, training=False)  # pylint: disable=protected-access  # the direct call
  out = layer(x)
  assert out["sequence_output"].shape == (2, 16, 512) and len(out["encoder_outputs"]) == 24
  for k in ("pooled_output", "sequence_output"):
    _relative_close(out[k], direct[k])
  _, _, before, after = _fine_tune_one_step(layer, 30522, keras.optimizers.AdamW(1e-4))
  _assert_updated(before, after)
  assert len(before) == len(layer.trainable_weights)
