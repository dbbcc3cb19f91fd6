#% if false
# The model card shows the source of HubEncoder (hub_export/keras3.py) in place of these
# lines; the rest of this file is the card's Keras 3 snippet as it stands.
import keras
import tensorflow as tf

from hub_export.keras3 import HubEncoder
#% endif
import tensorflow_text  # noqa: F401  (registers the preprocessor's ops)

BUNDLE = "path/to/bundle"  # the directory of this README.md
preprocessor = tf.saved_model.load(BUNDLE + "/preprocessor")
dataset = tf.data.Dataset.from_tensor_slices(
    (["a great movie", "a dull movie"], [1, 0])).batch(2)
# Tokenize in tf.data (outside any tf.distribute scope), as TF Hub's text API advises.
dataset = dataset.map(lambda text, label: (preprocessor(text), label))

inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name)
          for name in ("input_word_ids", "input_mask", "input_type_ids")}
encoder = HubEncoder(BUNDLE + "/encoder", name="mobilebert")
logits = keras.layers.Dense(2)(encoder(inputs)["pooled_output"])
model = keras.Model(inputs, logits)
model.compile(optimizer=keras.optimizers.AdamW(2e-5),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(dataset, epochs=1)

# Raw strings inside a Keras 3 model: the preprocessor as a TFSMLayer.
text = keras.Input(shape=(), dtype="string")
embedder = keras.Model(text, encoder(keras.layers.TFSMLayer(
    BUNDLE + "/preprocessor", call_endpoint="__call__")(text))["pooled_output"])
print(embedder(tf.constant(["what a film"])).shape)  # [1, {{ hidden_size }}]
