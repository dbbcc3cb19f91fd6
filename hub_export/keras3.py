"""The bundle's encoder/ as a fine-tunable Keras 3 layer (the default `keras` of TF >= 2.16).

`hub.KerasLayer` works with tf_keras only; in a Keras 3 model it fails ("KerasTensor is
symbolic", tensorflow/hub#903). `keras.layers.TFSMLayer` loads the encoder and tracks
its variables, but (Keras 3.15) cannot fine-tune it: it names each weight after the
TensorFlow variable, `.../kernel:0`, and Keras optimizers reject the slot names built
from it ("'..._kernel:0_momentum' is not a valid scope name"); and it never passes
`training`, so dropout stays off while fine-tuning. `HubEncoder` is the small layer that
does both, on the encoder's Reusable SavedModel API (`../shared/HUB_API.md`):
`obj(inputs, training)`, `obj.variables`, `obj.trainable_variables`, and `obj.mlm`.

The model card of every bundle shows this class verbatim (`keras3_source()`), so a user
needs nothing but the bundle. The preprocessor needs no such layer:
`keras.layers.TFSMLayer(BUNDLE + "/preprocessor", call_endpoint="__call__")`, or the
loaded preprocessor inside `tf.data.Dataset.map`.
"""

import inspect

import keras
import tensorflow as tf


class HubEncoder(keras.layers.Layer):
  """A TF-Hub text encoder SavedModel as a Keras 3 layer, fine-tunable.

  Call it on a dict of `input_word_ids`, `input_mask`, `input_type_ids` ([batch_size,
  seq_length] integers, cast to int32; with `mlm=True` also `masked_lm_positions`
  [batch_size, P]). Returns the encoder's dict: `pooled_output` float32 [batch_size, H],
  `sequence_output` float32 [batch_size, seq_length, H], `default`, `encoder_outputs`
  (list of [batch_size, seq_length, H]), and with `mlm=True` `mlm_logits` float32
  [batch_size, P, vocab_size]. `training` is passed on (dropout in fit, not in predict).
  The layer's weights are the SavedModel's own variables (not copies): training updates
  them, `mlm=True` adds the MLM head's. Raises ValueError for missing input keys.
  """

  def __init__(self, encoder_path, mlm=False, **kwargs):
    super().__init__(**kwargs)
    self.encoder_path = str(encoder_path)
    self.mlm = bool(mlm)
    self._loaded = tf.saved_model.load(self.encoder_path)
    self._callable = self._loaded.mlm if self.mlm else self._loaded
    self._keys = ("input_word_ids", "input_mask", "input_type_ids") + (
        ("masked_lm_positions",) if self.mlm else ())
    trainable = {id(v) for v in self._callable.trainable_variables}
    # Keras weight names allow neither "/" nor the ":0" TensorFlow appends.
    self.encoder_weights = [
        keras.Variable(v, trainable=id(v) in trainable,
                       name=v.name.split(":")[0].replace("/", "_"))
        for v in self._callable.variables]
    self.built = True

  def call(self, inputs, training=None):
    missing = [k for k in self._keys if k not in inputs]
    if missing:
      raise ValueError(f"HubEncoder inputs lack {missing}; pass a dict with {list(self._keys)}"
                       " (e.g. the preprocessor's output)")
    feed = {k: tf.cast(inputs[k], tf.int32) for k in self._keys}
    return self._callable(feed, training=False if training is None else training)

  def get_config(self):
    return {**super().get_config(), "encoder_path": self.encoder_path, "mlm": self.mlm}


def keras3_source() -> str:
  """The source of `HubEncoder`, as the model card shows it (with its imports)."""
  return ("import keras\nimport tensorflow as tf\n\n\n" +
          inspect.getsource(HubEncoder))
