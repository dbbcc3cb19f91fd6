"""tf_keras + hub.KerasLayer: functional and subclassed models on the bundle, trained,
saved and reloaded after the bundle is gone."""

import pytest
import os
import shutil

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401  (registers the preprocessor's ops)
import tf_keras

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow

SENTENCES = tf.constant(["a great movie", "a dull movie", "Москва", "東京は日本の首都です。"])
LABELS = tf.constant([1, 0, 1, 0])


def _assert_updated(before, variables):
  """All changed but a few whose gradient is ~0 at random init (e.g. the attention key
  bias: softmax is invariant to it, its gradient is analytically zero)."""
  changed = sum(not np.array_equal(b, v.numpy()) for b, v in zip(before, variables))
  assert len(before) == len(variables) > 0
  assert changed >= 0.85 * len(before), f"only {changed} of {len(before)} variables changed"


def _close(actual, expected):
  a, e = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
  assert np.abs(a - e).max() <= 1e-6 * max(np.abs(e).max(), 1.0)


def test_functional_model_trains_saves_and_reloads_without_the_bundle(tiny_bundle, tmp_path):
  bundle = tmp_path / "bundle"
  shutil.copytree(tiny_bundle["dir"], bundle)
  preprocessor = hub.KerasLayer(str(bundle / "preprocessor"))
  encoder = hub.KerasLayer(str(bundle / "encoder"), trainable=True)
  text = tf_keras.layers.Input(shape=(), dtype=tf.string)
  outputs = encoder(preprocessor(text))
  logits = tf_keras.layers.Dense(2)(outputs["pooled_output"])
  model = tf_keras.Model(text, logits)
  # Parity with the SavedModel's own __call__ before training.
  direct = hub.load(str(bundle / "encoder"))
  ids = hub.load(str(bundle / "preprocessor"))(SENTENCES)
  _close(tf_keras.Model(text, outputs["pooled_output"])(SENTENCES),
         direct(ids)["pooled_output"])
  # Every encoder variable is a trainable weight of the model, connected to the loss.
  assert {id(v) for v in encoder.trainable_variables} <= \
      {id(v) for v in model.trainable_variables}
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(model(SENTENCES, training=True))
  assert all(g is not None for g in tape.gradient(loss, encoder.trainable_variables))
  before = [v.numpy().copy() for v in encoder.trainable_variables]
  model.compile(optimizer=tf_keras.optimizers.Adam(1e-3),
                loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  model.fit(SENTENCES, LABELS, epochs=1, batch_size=4, verbose=0)
  _assert_updated(before, encoder.trainable_variables)
  want = model(SENTENCES).numpy()
  model.save(str(tmp_path / "classifier"))
  shutil.rmtree(bundle)  # the bundle is gone: the saved model must carry everything
  reloaded = tf_keras.models.load_model(str(tmp_path / "classifier"))
  _close(reloaded(SENTENCES), want)
  _close(tf.saved_model.load(str(tmp_path / "classifier"))(SENTENCES), want)


class _MaskedLmModel(tf_keras.Model):
  """Subclassed: raw text -> masked-LM logits at fixed positions, plus a classifier."""

  def __init__(self, bundle_dir):
    super().__init__()
    self.preprocessor = hub.KerasLayer(os.path.join(bundle_dir, "preprocessor"))
    self.mlm = hub.KerasLayer(hub.load(os.path.join(bundle_dir, "encoder")).mlm,
                              trainable=True)
    self.head = tf_keras.layers.Dense(2)

  def call(self, text, training=False):
    inputs = self.preprocessor(text)
    positions = tf.tile([[1, 2]], [tf.shape(text)[0], 1])
    out = self.mlm(dict(inputs, masked_lm_positions=positions), training=training)
    return self.head(out["pooled_output"]), out["mlm_logits"]


def test_subclassed_model_with_mlm_trains_and_reloads_after_move(multi_bundle, tmp_path):
  bundle = tmp_path / "bundle"
  shutil.copytree(multi_bundle["dir"], bundle)
  model = _MaskedLmModel(str(bundle))
  logits, mlm_logits = model(SENTENCES)
  assert mlm_logits.shape == (4, 2, 119547)
  direct = hub.load(str(bundle / "encoder"))
  ids = hub.load(str(bundle / "preprocessor"))(SENTENCES)
  _close(mlm_logits, direct.mlm(dict(ids, masked_lm_positions=tf.constant([[1, 2]] * 4)))
         ["mlm_logits"])
  encoder_ids = {id(v) for v in direct.trainable_variables}
  assert len(model.mlm.trainable_variables) == len(direct.mlm.trainable_variables) > \
      len(encoder_ids)
  before = [v.numpy().copy() for v in model.mlm.trainable_variables]
  optimizer = tf_keras.optimizers.Adam(1e-3)
  with tf.GradientTape() as tape:
    logits, mlm_logits = model(SENTENCES, training=True)
    loss = tf.reduce_mean(tf_keras.losses.sparse_categorical_crossentropy(
        LABELS, logits, from_logits=True)) + tf.reduce_mean(
            tf_keras.losses.sparse_categorical_crossentropy(
                tf.fill([4, 2], 5), mlm_logits, from_logits=True))
  grads = tape.gradient(loss, model.trainable_variables)
  assert all(g is not None for g in grads)
  optimizer.apply_gradients(zip(grads, model.trainable_variables))
  _assert_updated(before, model.mlm.trainable_variables)
  want = [t.numpy() for t in model(SENTENCES)]
  tf.saved_model.save(model, str(tmp_path / "subclassed"))
  moved = tmp_path / "moved_bundle"
  os.rename(bundle, moved)  # the bundle moved away: the saved model must not need it
  reloaded = tf.saved_model.load(str(tmp_path / "subclassed"))
  for got, w in zip(reloaded(SENTENCES), want):
    _close(got, w)
