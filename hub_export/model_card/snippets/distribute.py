BUNDLE = "path/to/bundle"
import tensorflow as tf
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401
import tf_keras

preprocessor = hub.load(BUNDLE + "/preprocessor")  # outside the strategy scope
dataset = tf.data.Dataset.from_tensor_slices(
    (["a great movie", "a dull movie"], [1, 0])).batch(2).map(
        lambda text, label: (preprocessor(text), label))
strategy = tf.distribute.MirroredStrategy()
with strategy.scope():
  inputs = {name: tf_keras.Input(shape=(None,), dtype=tf.int32, name=name)
            for name in ("input_word_ids", "input_mask", "input_type_ids")}
  encoder = hub.KerasLayer(BUNDLE + "/encoder", trainable=True)
  model = tf_keras.Model(inputs, tf_keras.layers.Dense(2)(encoder(inputs)["pooled_output"]))
  model.compile(optimizer=tf_keras.optimizers.Adam(2e-5),
                loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(dataset, epochs=1)
