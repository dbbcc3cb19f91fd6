"""The classifier's `.tflite` conversions: the exact tokenizer, pair packing and network
in one graph per packed length, in one file with named signatures (`signature_keys`):

* `classify_<S>` for each S of `seq_lengths(trained S)`: string `premise` and
  `hypothesis` [1] -> `probabilities` float32 [1, 3] (entailment, neutral,
  contradiction) and `label_id` int32 [1], the pair packed to S tokens;
* `tokenize` (`TOKENIZE`): the same strings -> `input_word_ids`, `input_mask`,
  `input_type_ids` int32 [1, trained S] (the SavedModel classifier's packing) and
  `num_tokens` int32 [1], the pair's length before truncation (`[CLS] premise [SEP]
  hypothesis [SEP]`). A caller picks the shortest `classify_<S>` with S >= num_tokens
  (`select_seq_length`); the signatures share one copy of the weights.

The flatbuffer's metadata entry `METADATA_NAME` records the trained length, the
signatures' lengths, the attention masking and the label names (`read_metadata`).

The two files:
* float (`FLOAT_FILE`): `forward.NliForward` in float, converted as it is.
* int8 (`INT8_FILE`): the SQuAD package's int8 form for XNNPACK
  (`hub_export.squad.tflite_export.INT8_FILE`): int8 activations with SOFTMAX in float
  (`INT8_FLOAT_OPS`), per-channel int8 FULLY_CONNECTED weights, NoNorm outputs
  equalized (`hub_export.squad.equalization`, one set of factors for every length), the
  attention products' right-hand operands with zero point 0
  (`quant_rewrite.zero_point_zero_matmul_rhs`). It is calibrated here (`calibrate`):
  each `classify_<S>` runs in float in LiteRT's interpreter on premise/hypothesis pairs,
  tokenizer included, and every float32 activation's min and max go into the
  flatbuffer, the input TFLite's quantizer takes (the format of TFLite's own
  calibrator, whose in-process run of this graph with the tensorflow-text kernels dies
  with SIGFPE on some runs in TensorFlow 2.20). Three adjustments of those ranges
  follow: the padding mask's value stays representable at every length
  (`_cover_table_terms`), tensors computed alike in several signatures share one range
  so their int8 constants stay shared (`_share_ranges`), and no ADD input is too narrow
  for XNNPACK's int8 ADD (`_widen_add_inputs`), so the network runs in one XNNPACK
  partition.

Both use TFLite builtins plus the tensorflow-text ops of
`preprocessors.tflite.ALLOWED_CUSTOM_OPS` (no Flex); the tokenizer is
`preprocessors.tokenizer.ParityBertTokenizer(tflite_compatible=True)` (original BERT
`FullTokenizer` ids) and the packing `preprocessors.packing.bert_pack_inputs`
(`[CLS] premise [SEP] hypothesis [SEP]`, round-robin truncation to S), as in the
SavedModel classifier.

Which length computes what: with the bundle's attention masking "model_garden"
(`checkpoints.attention_mask`), padded keys get no weight and a pair that fits in S
gets the same probabilities at every S >= its length. With "original" (the released
MobileBERT's, padded keys' scores set to -6, not -inf) the padding takes a little
weight, so `classify_<S>` matches the SavedModel classifier's parts run at S and
differs from the trained length by what the padding took; `export.write_verified`
measures both, and `runner.NliTfliteClassifier` runs such files at the trained length
unless asked otherwise.
"""

import json
from typing import Callable, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow.lite.python import schema_py_generated as schema

from hub_export.finetune import data
from hub_export.finetune.mobile import forward as forward_lib
from hub_export.finetune.mobile import weights as weights_lib
from hub_export.squad import equalization as equalization_lib
from hub_export.squad import forward as squad_forward
from hub_export.squad import quant_rewrite
from hub_export.squad import tflite_export as squad_tflite
from hub_export.squad import tflite_graph
from preprocessors import packing
from preprocessors import tflite as preprocessor_tflite
from preprocessors import tokenizer as tokenizer_lib
from preprocessors import vocab as vocab_lib

FLOAT_FILE = "classifier.tflite"
INT8_FILE = "classifier_int8.tflite"
INPUT_NAMES = ("premise", "hypothesis")
FEATURE_NAMES = ("input_word_ids", "input_mask", "input_type_ids")
TOKENIZE = "tokenize"
CLASSIFY_PREFIX = "classify_"
MIN_SEQ_LENGTH = 16
FIT = "fit"  # Each pair at the shortest `classify_<S>` it fits in (`select_seq_length`).
MAX_SIGNATURES = 3
# The flatbuffer metadata entry (`Model.metadata`, UTF-8 JSON) that says how the file's
# lengths relate: {"trained_seq_length": int, "seq_lengths": [int, ...],
# "attention_mask": "original" | "model_garden", "labels": [str, str, str]}.
METADATA_NAME = "mobilebert_nli_classifier"


def seq_lengths(trained: int) -> Tuple[int, ...]:
  """The packed lengths of the `classify_<S>` signatures, ascending: `trained`, its half
  and its quarter, none below `MIN_SEQ_LENGTH` (128 -> (32, 64, 128); 32 -> (16, 32)).

  Raises:
    ValueError: `trained` is not an int >= 3 (`[CLS] [SEP] [SEP]`).
  """
  if not isinstance(trained, int) or trained < 3:
    raise ValueError(f"seq_length={trained!r}; expected an int >= 3")
  lengths = [trained]
  while len(lengths) < MAX_SIGNATURES and lengths[-1] // 2 >= MIN_SEQ_LENGTH:
    lengths.append(lengths[-1] // 2)
  return tuple(sorted(lengths))


def signature_key(seq_length: int) -> str:
  """`classify_<seq_length>`."""
  return f"{CLASSIFY_PREFIX}{seq_length}"


def default_seq_length(attention_mask: str, trained: int):
  """The length that gives the SavedModel classifier's results: `FIT` with
  "model_garden" masking (padding has no weight), else `trained` ("original": padding
  has weight, `checkpoints.attention_mask`)."""
  return FIT if attention_mask == "model_garden" else trained


def select_seq_length(num_tokens: int, lengths: Sequence[int]) -> int:
  """The shortest of `lengths` that holds `num_tokens` (the pair's untruncated length,
  `tokenize`'s output), or the longest (the pair is truncated there, as the SavedModel
  classifier truncates it)."""
  fits = [s for s in sorted(lengths) if s >= num_tokens]
  return fits[0] if fits else max(lengths)


class PairPacker:
  """The SavedModel classifier's tokenization and packing of a pair, in TFLite ops.

  `segments(premise, hypothesis)` (string [B] each) -> the two int32 RaggedTensors
  [B, (words), (wordpieces)] of the TFLite-compatible tokenizer; `pack(segments, S)` ->
  dict of `FEATURE_NAMES` int32 [B, S] (the preprocessor's `bert_pack_pair`).
  """

  def __init__(self, vocab: vocab_lib.Vocab, *, do_lower_case: bool):
    self._tokenizer = tokenizer_lib.ParityBertTokenizer(
        vocab.tokens, do_lower_case=do_lower_case, unk_id=vocab.special_ids["unk_id"],
        tflite_compatible=True)
    self._ids = packing.special_token_ids(vocab.special_ids)

  def segments(self, premise, hypothesis):
    return [self._tokenizer.tokenize(premise), self._tokenizer.tokenize(hypothesis)]

  def pack(self, segments, seq_length: int) -> dict:
    return packing.bert_pack_inputs(segments, seq_length, **self._ids)


_SPECS = [tf.TensorSpec([1], tf.string, name=n) for n in INPUT_NAMES]


def _named(fn: Callable, name: str):
  # TFLite names a signature after its function's graph (several concrete functions).
  fn.__name__ = name
  return tf.function(fn, input_signature=_SPECS, autograph=False).get_concrete_function()


def classify_function(fwd: forward_lib.NliForward, packer: PairPacker, seq_length: int):
  """The concrete function `signature_key(seq_length)`: premise, hypothesis string [1]
  -> `forward.OUTPUT_NAMES`."""

  def classify(premise, hypothesis):
    f = packer.pack(packer.segments(premise, hypothesis), seq_length)
    out = fwd(input_ids=f["input_word_ids"], input_mask=f["input_mask"],
              segment_ids=f["input_type_ids"])
    return {k: tf.identity(out[k], name=k) for k in forward_lib.OUTPUT_NAMES}
  return _named(classify, signature_key(seq_length))


def tokenize_function(packer: PairPacker, seq_length: int):
  """The concrete function `TOKENIZE` (see the module docstring)."""

  def tokenize(premise, hypothesis):
    segments = packer.segments(premise, hypothesis)
    f = packer.pack(segments, seq_length)
    out = {k: tf.identity(f[k], name=k) for k in FEATURE_NAMES}
    count = tf.add_n([tf.size(s.flat_values) for s in segments]) + 3
    out["num_tokens"] = tf.reshape(count, [1], name="num_tokens")
    return out
  return _named(tokenize, TOKENIZE)


def _convert(functions, trackable) -> bytes:
  conv = tf.lite.TFLiteConverter.from_concrete_functions(functions, trackable)
  conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  conv.allow_custom_ops = True  # checked by check_tflite_ops after conversion.
  return conv.convert()


def _classifier_graph(weights, vocab, do_lower_case, lengths, options=None,
                      equalization=None) -> bytes:
  """The float flatbuffer with `tokenize` and one `classify_<S>` per S in `lengths`."""
  packer = PairPacker(vocab, do_lower_case=do_lower_case)
  functions, forwards = [], []
  for s in lengths:
    fwd = forward_lib.NliForward(weights, seq_length=s, options=options,
                                 equalization=equalization)
    functions.append(classify_function(fwd, packer, s))
    forwards.append(fwd)
  functions.append(tokenize_function(packer, max(lengths)))
  trackable = tf.Module()
  trackable.forwards = forwards
  return _convert(functions, trackable)


def with_metadata(content: bytes, *, seq_length: int, attention_mask: str,
                  labels: Sequence[str]) -> bytes:
  """`content` with the `METADATA_NAME` entry for trained `seq_length`."""
  from tensorflow.lite.tools import flatbuffer_utils  # pylint: disable=g-import-not-at-top
  model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
  record = {"trained_seq_length": seq_length, "seq_lengths": list(seq_lengths(seq_length)),
            "attention_mask": attention_mask, "labels": list(labels)}
  buffer = schema.BufferT()
  buffer.data = np.frombuffer(json.dumps(record).encode("utf-8"), np.uint8)
  model.buffers.append(buffer)
  entry = schema.MetadataT()
  entry.name, entry.buffer = METADATA_NAME.encode(), len(model.buffers) - 1
  model.metadata = [m for m in (model.metadata or []) if m.name != entry.name] + [entry]
  return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def read_metadata(content: bytes) -> dict:
  """The `METADATA_NAME` record of a classifier flatbuffer (without copying it).

  Raises:
    ValueError: the file has no such entry (not written by this package).
  """
  model = schema.Model.GetRootAs(content, 0)
  for i in range(model.MetadataLength()):
    entry = model.Metadata(i)
    if entry.Name().decode() == METADATA_NAME:
      return json.loads(model.Buffers(entry.Buffer()).DataAsNumpy().tobytes())
  raise ValueError(f"the model has no {METADATA_NAME!r} metadata; pass a file written "
                   "by hub_export.finetune.mobile")


def signature_keys(content: bytes) -> dict:
  """{signature key: subgraph index} of a flatbuffer (read in place, not copied)."""
  model = schema.Model.GetRootAs(content, 0)
  return {model.SignatureDefs(i).SignatureKey().decode():
          model.SignatureDefs(i).SubgraphIndex() for i in range(model.SignatureDefsLength())}


def convert_float(weights: weights_lib.NliWeights, *, vocab: vocab_lib.Vocab,
                  do_lower_case: bool, seq_length: int) -> bytes:
  """`FLOAT_FILE`'s content: `tokenize` and `classify_<S>` for S in
  `seq_lengths(seq_length)`.

  Raises:
    ValueError: an op outside TFLITE_BUILTINS + `preprocessors.tflite.ALLOWED_CUSTOM_OPS`.
  """
  content = _classifier_graph(weights, vocab, do_lower_case, seq_lengths(seq_length))
  preprocessor_tflite.check_tflite_ops(content)
  return _with_record(content, weights, seq_length)


def _with_record(content, weights, seq_length):
  return with_metadata(content, seq_length=seq_length,
                       attention_mask=weights.encoder.attention_mask, labels=data.LABELS)


def calibrate(model_content: bytes, pairs: Sequence[Tuple[str, str]]) -> bytes:
  """The float model with every float32 activation's calibration (min, max) recorded.

  Runs each `classify_<S>` signature of `model_content` in LiteRT (tensorflow-text
  kernels, all tensors preserved) on each (premise, hypothesis) pair and stores, for
  every float32 tensor of its subgraph without a constant buffer, the min and max it
  took (adjusted as the module docstring says) in its `QuantizationParameters` (the
  calibrated-model input of TFLite's quantizer).

  Raises:
    ValueError: no pairs.
  """
  if not pairs:
    raise ValueError("the int8 calibration set is empty; pass at least one "
                     "(premise, hypothesis) pair")
  from ai_edge_litert import interpreter as litert  # pylint: disable=g-import-not-at-top
  from tensorflow.lite.tools import flatbuffer_utils  # pylint: disable=g-import-not-at-top
  interpreter = litert.InterpreterWithCustomOps(
      model_content=model_content, experimental_preserve_all_tensors=True,
      custom_op_registerers=tf_text.tflite_registrar.SELECT_TFTEXT_OPS)
  model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_content))
  ranges = {}  # subgraph index -> {tensor index: (min, max)}
  for key, index in signature_keys(model_content).items():
    if not key.startswith(CLASSIFY_PREFIX):
      continue
    run = interpreter.get_signature_runner(key)
    graph = model.subgraphs[index]
    activations = [i for i, t in enumerate(graph.tensors)
                   if t.type == schema.TensorType.FLOAT32 and not _constant(model, t)]
    seen = ranges[index] = {}
    for premise, hypothesis in pairs:
      run(premise=np.array([premise.encode("utf-8")], dtype=object),
          hypothesis=np.array([hypothesis.encode("utf-8")], dtype=object))
      for i in activations:
        value = interpreter.get_tensor(i, index)
        if value.size:
          lo, hi = seen.get(i, (np.inf, -np.inf))
          seen[i] = (min(lo, float(value.min())), max(hi, float(value.max())))
  _cover_table_terms(model, ranges)
  _share_ranges(model, ranges)
  _widen_add_inputs(model, ranges)
  for index, seen in ranges.items():
    for i, (lo, hi) in seen.items():
      params = schema.QuantizationParametersT()
      params.min, params.max = [lo], [hi]
      model.subgraphs[index].tensors[i].quantization = params
  return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _constant(model, tensor) -> bool:
  data = model.buffers[tensor.buffer].data
  return data is not None and len(data) > 0


def _share_ranges(model, ranges) -> None:
  """Gives the tensors that compute the same thing in several subgraphs the union of
  their ranges, in place.

  A tensor is matched across subgraphs by what computes it: its op's opcode and its
  inputs' matches, from the graph inputs (by position) and the float32 constants (by
  buffer: the signatures share them); integer constants (shapes, lengths) are left
  out (every other tensor an op reads is computed before it, or a graph input), and a
  match that two tensors of one subgraph have is not used. The quantizer
  derives some constants' int8 form from activation ranges (an embedding table's from
  the ops its GATHER feeds); with one range the int8 tables stay shared too.
  """
  ids = {}  # structural key -> small int

  def intern(key):
    return ids.setdefault(key, len(ids))

  matches, ambiguous = {}, set()  # match -> [(subgraph index, tensor index)]
  for index in ranges:
    graph = model.subgraphs[index]
    match = {t: intern(("input", k)) for k, t in enumerate(graph.inputs)}
    here = set()
    for op in graph.operators:
      parts = []
      for t in op.inputs:
        if t < 0:
          parts.append(-1)
        elif t in match:  # computed before (operators are in execution order)
          parts.append(match[t])
        elif graph.tensors[t].type == schema.TensorType.FLOAT32:
          parts.append(intern(("constant", graph.tensors[t].buffer)))
      for slot, out in enumerate(op.outputs):
        m = match[out] = intern((op.opcodeIndex, tuple(parts), slot))
        if m in here:
          ambiguous.add(m)
        here.add(m)
        if out in ranges[index]:
          matches.setdefault(m, []).append((index, out))
  for m, members in matches.items():
    if m in ambiguous or len({g for g, _ in members}) < 2:
      continue
    lo = min(ranges[g][t][0] for g, t in members)
    hi = max(ranges[g][t][1] for g, t in members)
    for g, t in members:
      ranges[g][t] = (lo, hi)


_SHAPE_OPS = ("RESHAPE", "EXPAND_DIMS", "SQUEEZE", "BROADCAST_TO")


def _op_name(model, op) -> str:
  code = model.operatorCodes[op.opcodeIndex]
  return tflite_graph.OP_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode), "?")


def _cover_table_terms(model, ranges) -> None:
  """Makes, in place, each ADD's output range hold its input plus any value of a
  constant table the other input is looked up from.

  The padding mask is such a term: a GATHER from the constant [[mask value], [0]] by
  input_mask, added to the attention scores. Calibration pairs may fill a signature's
  length and never show the mask value there; without this, int8 would clip it and
  the padded keys of shorter pairs would not be masked.
  """
  for index, seen in ranges.items():
    graph = model.subgraphs[index]
    table = {}  # tensor -> (min, max) of the constant table it is looked up from
    for op in graph.operators:
      name = _op_name(model, op)
      first = int(op.inputs[0]) if len(op.inputs) else -1
      if name == "GATHER" and first >= 0 and _constant(model, graph.tensors[first]) and \
          graph.tensors[first].type == schema.TensorType.FLOAT32:
        values = np.frombuffer(bytes(model.buffers[graph.tensors[first].buffer].data),
                               np.float32)
        table[op.outputs[0]] = (float(values.min()), float(values.max()))
      elif name in _SHAPE_OPS and first in table:
        table[op.outputs[0]] = table[first]
      elif name == "ADD" and op.outputs[0] in seen:
        for t, other in ((op.inputs[0], op.inputs[1]), (op.inputs[1], op.inputs[0])):
          if t in table and other in seen:
            lo, hi = seen[op.outputs[0]]
            seen[op.outputs[0]] = (min(lo, seen[other][0] + table[t][0]),
                                   max(hi, seen[other][1] + table[t][1]))
            if t in seen:
              seen[t] = (min(seen[t][0], table[t][0]), max(seen[t][1], table[t][1]))


# XNNPACK runs an int8 ADD only if each input's scale over the output's is at least
# 2^-10 (`CheckTensorsInputOutputScale` in XNNPACK's TFLite delegate); below it the ADD
# runs on TFLite's reference kernel and splits the XNNPACK partition. Calibrated ranges
# are widened to twice that ratio.
MIN_ADD_INPUT_TO_OUTPUT_RANGE = 2.0 ** -9


def _widen_add_inputs(model, ranges) -> None:
  """Widens, in place, each ADD input range narrower than `MIN_ADD_INPUT_TO_OUTPUT_RANGE`
  times the output's (about its middle).

  Such an input is a small term added to a large one (an untrained model's attention
  scores plus the padding mask's -64): the int8 output's step is already coarser than the
  whole input range, so the wider input range loses nothing the output kept.
  """
  for index, seen in ranges.items():
    for op in model.subgraphs[index].operators:
      if _op_name(model, op) != "ADD" or op.outputs[0] not in seen:
        continue
      lo, hi = seen[op.outputs[0]]
      need = (hi - lo) * MIN_ADD_INPUT_TO_OUTPUT_RANGE
      for t in op.inputs:
        if t in seen and seen[t][1] - seen[t][0] < need:
          middle = (seen[t][0] + seen[t][1]) / 2
          seen[t] = (middle - need / 2, middle + need / 2)


def convert_int8(weights: weights_lib.NliWeights, calibration: Sequence[Tuple[str, str]], *,
                 vocab: vocab_lib.Vocab, do_lower_case: bool, seq_length: int) -> bytes:
  """`INT8_FILE`'s content (the signatures of `convert_float`), calibrated on
  `calibration` (premise, hypothesis) pairs.

  Raises:
    ValueError: no calibration pairs, or an op outside the allowed ones.
  """
  if not calibration:
    raise ValueError("the int8 calibration set is empty; pass at least one "
                     "(premise, hypothesis) pair")
  packer = PairPacker(vocab, do_lower_case=do_lower_case)
  features = [packer.pack(packer.segments(tf.constant([p]), tf.constant([h])), seq_length)
              for p, h in calibration]
  eq = None
  if weights.encoder.config.normalization_type == "no_norm":
    eq = equalization_lib.calibrate_equalization(
        weights.encoder,
        [{"input_ids": f["input_word_ids"].numpy(), "input_mask": f["input_mask"].numpy(),
          "segment_ids": f["input_type_ids"].numpy()} for f in features],
        seq_length=seq_length)
  calibrated = calibrate(
      _classifier_graph(weights, vocab, do_lower_case, seq_lengths(seq_length),
                        options=squad_forward.ForwardOptions(quantized=True),
                        equalization=eq), calibration)
  # TFLite's quantizer on the calibrated model, as tf.lite.experimental.
  # QuantizationDebugger.get_nondebug_quantized_model calls it.
  from tensorflow.lite.python import convert as tflite_convert  # pylint: disable=g-import-not-at-top
  content = tflite_convert.mlir_quantize(
      calibrated, fully_quantize=False,
      denylisted_ops=list(squad_tflite.INT8_FLOAT_OPS))
  content, _ = quant_rewrite.zero_point_zero_matmul_rhs(content)
  preprocessor_tflite.check_tflite_ops(content)
  return _with_record(content, weights, seq_length)
