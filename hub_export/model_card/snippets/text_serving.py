BUNDLE = "path/to/bundle"
import json
import tensorflow as tf
import tensorflow_text  # noqa: F401

# The body a client POSTs to TF Serving's REST API, v1/models/mobilebert:predict:
body = json.dumps({"signature_name": "serving_default",
                   "inputs": {"sentences": ["a great movie", "a dull movie"]}})
# What the server computes from it:
serving = tf.saved_model.load(BUNDLE + "/serving")
request = json.loads(body)
outputs = serving.signatures[request["signature_name"]](
    **{name: tf.constant(value) for name, value in request["inputs"].items()})
print(outputs["pooled_output"].shape)  # [2, {{ hidden_size }}]
