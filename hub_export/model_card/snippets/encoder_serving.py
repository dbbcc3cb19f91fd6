BUNDLE = "path/to/bundle"
import json
import tensorflow as tf

with open(BUNDLE + "/manifest.json") as f:  # the ids of [CLS] and [SEP] in this vocab
  special_ids = json.load(f)["vocab"]["special_ids"]
cls_id, sep_id = special_ids["start_of_sequence_id"], special_ids["end_of_segment_id"]
# The body a client POSTs to TF Serving's REST API, v1/models/mobilebert:predict:
body = json.dumps({"signature_name": "pooled",
                   "inputs": {"input_word_ids": [[cls_id, 7592, sep_id, 0]],
                              "input_mask": [[1, 1, 1, 0]],
                              "input_type_ids": [[0, 0, 0, 0]]}})
# What the server computes from it (JSON numbers become the signature's int32):
encoder = tf.saved_model.load(BUNDLE + "/encoder")
request = json.loads(body)
outputs = encoder.signatures[request["signature_name"]](
    **{name: tf.constant(value, tf.int32) for name, value in request["inputs"].items()})
print(outputs["pooled_output"].shape)  # [1, {{ hidden_size }}]
