BUNDLE = "path/to/bundle"
import tensorflow as tf
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401

preprocessor = hub.load(BUNDLE + "/preprocessor")
encoder = hub.load(BUNDLE + "/encoder")
tokens = [preprocessor.tokenize(tf.constant(["the capital of france is paris ."])),
          preprocessor.tokenize(tf.constant(["it is a city ."]))]
inputs = preprocessor.bert_pack_inputs(tokens, seq_length=32)  # sentence pair
mask_id = preprocessor.tokenize.get_special_tokens_dict()["mask_id"]
inputs["input_word_ids"] = tf.tensor_scatter_nd_update(
    inputs["input_word_ids"], [[0, 6]], [mask_id])  # mask "paris"
outputs = encoder.mlm(dict(inputs, masked_lm_positions=tf.constant([[6]])))
print(outputs["mlm_logits"].shape)  # [1, 1, {{ vocab_size }}]
