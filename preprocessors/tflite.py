"""Conversion of the preprocessor SavedModel to TensorFlow Lite.

`convert_preprocessor_to_tflite` converts the `serving_default` signature
(sentences string [B] -> input_word_ids, input_mask, input_type_ids int32
[B, seq_length]) to a .tflite flatbuffer. The tensorflow-text op
FastWordpieceTokenizeWithOffsets is kept as a custom op (tensorflow-text
registers a TFLite kernel for it, see `make_interpreter`). Everything else
is TFLite builtins except UnicodeDecodeWithOffsets and UnicodeEncode (no
builtin exists; the exact code-point tables of `tokenizer.py` need them),
which are kept as Select TF ("Flex") ops.

Limitation (measured with tensorflow 2.20.0 / ai-edge-litert 2.3.0): the
Python interpreters available here (`ai_edge_litert.interpreter` and
`tf.lite.Interpreter`) do not link the Flex delegate, so running the
converted model fails with "Select TensorFlow op(s), included in the given
model, is(are) not supported by this interpreter ... (FlexUnicodeDecodeWithOffsets)
failed to prepare.". A runtime with the Flex delegate (e.g. Android's
tensorflow-lite-select-tf-ops) is required.
"""

import os

import tensorflow as tf
import tensorflow_text as tf_text  # registers the custom ops for conversion.


def convert_preprocessor_to_tflite(*, saved_model_dir: str, output_path: str,
                                   signature_key: str = "serving_default"
                                   ) -> int:
  """Converts one signature of a saved preprocessor to a .tflite file.

  Args:
    saved_model_dir: directory written by `export.save_preprocessor`.
    output_path: file to write; must not exist.
    signature_key: signature to convert ("serving_default" or
      "bert_pack_pair").

  Returns:
    Number of bytes written.

  Raises:
    FileExistsError: output_path exists.
    ValueError: saved_model_dir has no saved_model.pb.
  """
  if os.path.exists(output_path):
    raise FileExistsError(f"output_path {output_path!r} already exists; pass "
                          "a new file name.")
  if not os.path.exists(os.path.join(saved_model_dir, "saved_model.pb")):
    raise ValueError(f"{saved_model_dir!r} has no saved_model.pb; pass the "
                     "directory written by save_preprocessor.")
  converter = tf.lite.TFLiteConverter.from_saved_model(
      saved_model_dir, signature_keys=[signature_key])
  converter.target_spec.supported_ops = [
      tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS
  ]
  converter.allow_custom_ops = True
  model = converter.convert()
  with open(output_path, "wb") as f:
    f.write(model)
  return len(model)


def make_interpreter(model_content: bytes):
  """An `ai_edge_litert` interpreter with the tensorflow-text TFLite ops.

  Raises:
    RuntimeError: from `allocate_tensors` if the model needs Flex ops (see
      the module docstring).
  """
  from ai_edge_litert import interpreter as litert  # pylint: disable=g-import-not-at-top
  interp = litert.InterpreterWithCustomOps(
      model_content=model_content,
      custom_op_registerers=tf_text.tflite_registrar.SELECT_TFTEXT_OPS)
  interp.allocate_tensors()
  return interp
