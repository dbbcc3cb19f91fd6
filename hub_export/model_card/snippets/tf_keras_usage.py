BUNDLE = "path/to/bundle"  # the directory of this README.md
import tensorflow as tf
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401  (registers the preprocessor's ops)
import tf_keras  # hub.KerasLayer needs tf_keras (Keras 2), not Keras 3

preprocessor = hub.KerasLayer(BUNDLE + "/preprocessor")
encoder = hub.KerasLayer(BUNDLE + "/encoder", trainable=True)
text = tf_keras.layers.Input(shape=(), dtype=tf.string)
pooled_output = encoder(preprocessor(text))["pooled_output"]  # [batch_size, {{ hidden_size }}]
logits = tf_keras.layers.Dense(2)(pooled_output)
model = tf_keras.Model(text, logits)
model.compile(optimizer=tf_keras.optimizers.Adam(2e-5),
              loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(tf.constant(["a great movie", "a dull movie"]), tf.constant([1, 0]), epochs=1)
model.save("my_classifier")  # a SavedModel with the encoder inside: BUNDLE is not needed
reloaded = tf_keras.models.load_model("my_classifier")
print(reloaded(tf.constant(["what a film"])))
