"""The classifier's `.tflite` conversions: the exact tokenizer, pair packing and network
in one graph, string inputs `premise` and `hypothesis` [1], outputs `probabilities`
float32 [1, 3] and `label_id` int32 [1].

* float (`FLOAT_FILE`): `forward.NliForward` in float, converted as it is.
* int8 (`INT8_FILE`): the SQuAD package's int8 form for XNNPACK
  (`hub_export.squad.tflite_export.INT8_FILE`): int8 activations with SOFTMAX in float
  (`INT8_FLOAT_OPS`), per-channel int8 FULLY_CONNECTED weights, NoNorm outputs
  equalized (`hub_export.squad.equalization`), the attention products' right-hand
  operands with zero point 0 (`quant_rewrite.zero_point_zero_matmul_rhs`). It is
  calibrated here (`calibrate`): the float graph runs in LiteRT's interpreter on
  premise/hypothesis pairs, tokenizer included, and every float32 activation's min and
  max go into the flatbuffer, the input TFLite's quantizer takes (the format of TFLite's
  own calibrator, whose in-process run of this graph with the tensorflow-text kernels
  dies with SIGFPE on some runs in TensorFlow 2.20).

Both use TFLite builtins plus the tensorflow-text ops of
`preprocessors.tflite.ALLOWED_CUSTOM_OPS` (no Flex); the tokenizer is
`preprocessors.tokenizer.ParityBertTokenizer(tflite_compatible=True)` (original BERT
`FullTokenizer` ids) and the packing `preprocessors.packing.bert_pack_inputs`
(`[CLS] premise [SEP] hypothesis [SEP]`, round-robin truncation to `seq_length`), as in
the SavedModel classifier.
"""

from typing import Callable, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from hub_export.finetune.mobile import forward as forward_lib
from hub_export.finetune.mobile import weights as weights_lib
from hub_export.squad import equalization as equalization_lib
from hub_export.squad import forward as squad_forward
from hub_export.squad import quant_rewrite
from hub_export.squad import tflite_export as squad_tflite
from preprocessors import packing
from preprocessors import tflite as preprocessor_tflite
from preprocessors import tokenizer as tokenizer_lib
from preprocessors import vocab as vocab_lib

FLOAT_FILE = "classifier.tflite"
INT8_FILE = "classifier_int8.tflite"
INPUT_NAMES = ("premise", "hypothesis")
FEATURE_NAMES = ("input_word_ids", "input_mask", "input_type_ids")


def pair_encoder(vocab: vocab_lib.Vocab, *, do_lower_case: bool, seq_length: int
                 ) -> Callable:
  """premise, hypothesis string [B] -> dict of `FEATURE_NAMES` int32 [B, seq_length],
  with the TFLite-compatible tokenizer (the preprocessor's `bert_pack_pair`)."""
  tokenizer = tokenizer_lib.ParityBertTokenizer(
      vocab.tokens, do_lower_case=do_lower_case, unk_id=vocab.special_ids["unk_id"],
      tflite_compatible=True)
  ids = packing.special_token_ids(vocab.special_ids)

  def encode(premise, hypothesis):
    return packing.bert_pack_inputs(
        [tokenizer.tokenize(premise), tokenizer.tokenize(hypothesis)], seq_length, **ids)
  return encode


def classify_function(fwd: forward_lib.NliForward, encode: Callable):
  """The `tf.function` premise, hypothesis string [1] -> `forward.OUTPUT_NAMES`."""
  specs = [tf.TensorSpec([1], tf.string, name=n) for n in INPUT_NAMES]

  @tf.function(input_signature=specs, autograph=False)
  def classify(premise, hypothesis):
    f = encode(premise, hypothesis)
    out = fwd(input_ids=f["input_word_ids"], input_mask=f["input_mask"],
              segment_ids=f["input_type_ids"])
    return {k: tf.identity(out[k], name=k) for k in forward_lib.OUTPUT_NAMES}
  return classify


def _converter(fn, fwd):
  conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fwd)
  conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  conv.allow_custom_ops = True  # checked by check_tflite_ops after conversion.
  return conv


def convert_float(weights: weights_lib.NliWeights, *, vocab: vocab_lib.Vocab,
                  do_lower_case: bool, seq_length: int) -> bytes:
  """`FLOAT_FILE`'s content.

  Raises:
    ValueError: an op outside TFLITE_BUILTINS + `preprocessors.tflite.ALLOWED_CUSTOM_OPS`.
  """
  fwd = forward_lib.NliForward(weights, seq_length=seq_length)
  encode = pair_encoder(vocab, do_lower_case=do_lower_case, seq_length=seq_length)
  content = _converter(classify_function(fwd, encode), fwd).convert()
  preprocessor_tflite.check_tflite_ops(content)
  return content


def calibrate(model_content: bytes, pairs: Sequence[Tuple[str, str]]) -> bytes:
  """The float model with every float32 activation's calibration (min, max) recorded.

  Runs `model_content` in LiteRT (tensorflow-text kernels, all tensors preserved) on each
  (premise, hypothesis) pair and stores, for every float32 tensor without a constant
  buffer, the min and max it took in its `QuantizationParameters` (the calibrated-model
  input of TFLite's quantizer).

  Raises:
    ValueError: no pairs.
  """
  if not pairs:
    raise ValueError("the int8 calibration set is empty; pass at least one "
                     "(premise, hypothesis) pair")
  from ai_edge_litert import interpreter as litert  # pylint: disable=g-import-not-at-top
  from tensorflow.lite.python import schema_py_generated as schema  # pylint: disable=g-import-not-at-top
  from tensorflow.lite.tools import flatbuffer_utils  # pylint: disable=g-import-not-at-top
  interpreter = litert.InterpreterWithCustomOps(
      model_content=model_content, experimental_preserve_all_tensors=True,
      custom_op_registerers=tf_text.tflite_registrar.SELECT_TFTEXT_OPS)
  run = interpreter.get_signature_runner()
  model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_content))
  graph = model.subgraphs[0]
  activations = [i for i, t in enumerate(graph.tensors)
                 if t.type == schema.TensorType.FLOAT32 and
                 (model.buffers[t.buffer].data is None or not len(model.buffers[t.buffer].data))]
  ranges = {}
  for premise, hypothesis in pairs:
    run(premise=np.array([premise.encode("utf-8")], dtype=object),
        hypothesis=np.array([hypothesis.encode("utf-8")], dtype=object))
    for i in activations:
      value = interpreter.get_tensor(i)
      if value.size:
        lo, hi = ranges.get(i, (np.inf, -np.inf))
        ranges[i] = (min(lo, float(value.min())), max(hi, float(value.max())))
  for i, (lo, hi) in ranges.items():
    params = schema.QuantizationParametersT()
    params.min, params.max = [lo], [hi]
    graph.tensors[i].quantization = params
  return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def convert_int8(weights: weights_lib.NliWeights, calibration: Sequence[Tuple[str, str]], *,
                 vocab: vocab_lib.Vocab, do_lower_case: bool, seq_length: int) -> bytes:
  """`INT8_FILE`'s content, calibrated on `calibration` (premise, hypothesis) pairs.

  Raises:
    ValueError: no calibration pairs, or an op outside the allowed ones.
  """
  if not calibration:
    raise ValueError("the int8 calibration set is empty; pass at least one "
                     "(premise, hypothesis) pair")
  encode = pair_encoder(vocab, do_lower_case=do_lower_case, seq_length=seq_length)
  features = [encode(tf.constant([p]), tf.constant([h])) for p, h in calibration]
  eq = None
  if weights.encoder.config.normalization_type == "no_norm":
    eq = equalization_lib.calibrate_equalization(
        weights.encoder,
        [{"input_ids": f["input_word_ids"].numpy(), "input_mask": f["input_mask"].numpy(),
          "segment_ids": f["input_type_ids"].numpy()} for f in features],
        seq_length=seq_length)
  fwd = forward_lib.NliForward(weights, seq_length=seq_length,
                               options=squad_forward.ForwardOptions(quantized=True),
                               equalization=eq)
  calibrated = calibrate(_converter(classify_function(fwd, encode), fwd).convert(),
                         calibration)
  # TFLite's quantizer on the calibrated model, as tf.lite.experimental.
  # QuantizationDebugger.get_nondebug_quantized_model calls it.
  from tensorflow.lite.python import convert as tflite_convert  # pylint: disable=g-import-not-at-top
  content = tflite_convert.mlir_quantize(
      calibrated, fully_quantize=False,
      denylisted_ops=list(squad_tflite.INT8_FLOAT_OPS))
  content, _ = quant_rewrite.zero_point_zero_matmul_rhs(content)
  preprocessor_tflite.check_tflite_ops(content)
  return content
