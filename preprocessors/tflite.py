"""The preprocessor as a TensorFlow Lite model, and its check against the SavedModel.

`convert_preprocessor_to_tflite` builds the two serving functions of the
preprocessor SavedModel (`export.py`) with the same builder
(`signatures.serving_functions`), around a tokenizer built with
`tflite_compatible=True`, and converts them with the TFLite converter
restricted to TFLITE_BUILTINS plus custom ops, i.e. without Select TF
("Flex") ops:

  * `serving_default`: `sentences` string [B] -> `input_word_ids`,
    `input_mask`, `input_type_ids` int32 [B, seq_length];
  * `bert_pack_pair` (`signatures.PAIR_SIGNATURE_NAME`): `text_a`, `text_b`
    string [B] -> the same three outputs.

The model uses the TFLite builtins plus these tensorflow-text custom ops,
whose kernels `tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS` registers
in an interpreter (see `make_interpreter`): TFText>ByteSplitWithOffsets,
TFText>NgramsStringJoin, FastWordpieceTokenizeWithOffsets (see `utf8.py` for
why UTF-8 is decoded and encoded with them instead of TF's Unicode ops, which
have no TFLite kernel). The token ids are those of the SavedModel, i.e. of
original BERT FullTokenizer; `verify_tflite_preprocessor` checks this in the
TFLite interpreter against the SavedModel, by default on the hard probe set
`probes.PROBE_SENTENCES`.
"""

import time

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text  # registers the custom ops for conversion.

from preprocessors import packing
from preprocessors import probes
from preprocessors import signatures
from preprocessors import tokenizer as tokenizer_lib
from preprocessors import vocab as vocab_lib

# Custom ops with a TFLite kernel in tensorflow_text.tflite_registrar that
# the preprocessor may use (any other custom op would fail at run time).
ALLOWED_CUSTOM_OPS = frozenset({
    "FastWordpieceTokenizeWithOffsets",
    "TFText>ByteSplitWithOffsets",
    "TFText>NgramsStringJoin",
})
SIGNATURE_KEYS = tuple(signatures.INPUT_NAMES)


def custom_ops(model_content: bytes):
  """Names of the custom ops (incl. Flex ops) used by a .tflite model.

  Args:
    model_content: bytes of a TFLite flatbuffer.

  Returns:
    sorted list of str, e.g. ["TFText>NgramsStringJoin"]; Select TF ops
    appear as "Flex<OpName>".
  """
  from tensorflow.lite.python import schema_py_generated as schema  # pylint: disable=g-import-not-at-top
  model = schema.Model.GetRootAsModel(model_content, 0)
  names = set()
  for i in range(model.OperatorCodesLength()):
    code = model.OperatorCodes(i)
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if builtin == schema.BuiltinOperator.CUSTOM:
      names.add(code.CustomCode().decode("utf-8"))
  return sorted(names)


def _serving_functions(vocab, *, do_lower_case: bool, seq_length: int):
  """Concrete functions `serving_default` and `bert_pack_pair` for TFLite.

  `signatures.serving_functions` around a tokenizer built with
  `tflite_compatible=True`: the signatures of the SavedModel, whose
  tokenizer uses TF's Unicode ops instead (and shards the batch).
  """
  tokenizer = tokenizer_lib.ParityBertTokenizer(
      vocab.tokens, do_lower_case=do_lower_case,
      unk_id=vocab.special_ids["unk_id"], tflite_compatible=True)
  encode = signatures.packer(tokenizer.tokenize, vocab.special_ids,
                             seq_length)
  return [f.get_concrete_function()
          for f in signatures.serving_functions(encode)]


def check_tflite_ops(model_content: bytes) -> None:
  """Raises ValueError if the model needs a custom op we cannot run.

  Allowed: TFLite builtins and ALLOWED_CUSTOM_OPS (kernels registered by
  tensorflow_text.tflite_registrar). Select TF ("Flex") ops are refused.
  """
  unsupported = sorted(set(custom_ops(model_content)) - ALLOWED_CUSTOM_OPS)
  if unsupported:
    raise ValueError(
        f"the TFLite model needs op(s) {unsupported} that have no kernel in "
        f"TFLite builtins or tensorflow_text.tflite_registrar (allowed custom "
        f"ops: {sorted(ALLOWED_CUSTOM_OPS)}); keep the tokenizer graph to the "
        "ops listed in preprocessors/tflite.py.")


def convert_preprocessor_to_tflite(*, vocab_file: str, do_lower_case: bool,
                                   seq_length: int = 128) -> bytes:
  """Converts the preprocessor to a TFLite model without Flex ops.

  Args:
    vocab_file, do_lower_case, seq_length: as given to
      `export.save_preprocessor` for the SavedModel this model should match
      (check with `verify_tflite_preprocessor`).

  Returns:
    bytes of the .tflite flatbuffer with the signatures `serving_default`
    (input `sentences`) and `bert_pack_pair` (inputs `text_a`, `text_b`),
    string [B] each; outputs input_word_ids, input_mask, input_type_ids,
    int32 [B, seq_length].

  Raises:
    ValueError: do_lower_case not a bool, seq_length not an int in
      [3, 512], a bad vocab file (see `vocab.load_vocab`), or the converted
      model needs an op outside TFLITE_BUILTINS + ALLOWED_CUSTOM_OPS
      (`check_tflite_ops`).
  """
  if not isinstance(do_lower_case, bool):
    raise ValueError(f"do_lower_case must be a bool, got {do_lower_case!r}; "
                     "use vocab.infer_do_lower_case to decide it.")
  packing.check_seq_length(seq_length, 2)
  functions = _serving_functions(vocab_lib.load_vocab(vocab_file),
                                 do_lower_case=do_lower_case,
                                 seq_length=seq_length)
  # The functions capture constants only. The converter saves them with this
  # (empty) trackable to keep both signatures; a trackable with tf.function
  # attributes would be traced again.
  converter = tf.lite.TFLiteConverter.from_concrete_functions(functions,
                                                              tf.Module())
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  converter.allow_custom_ops = True  # checked by check_tflite_ops below.
  model = converter.convert()
  check_tflite_ops(model)
  return model


def make_interpreter(model_content: bytes):
  """A TFLite interpreter with the tensorflow-text ops, tensors allocated.

  Uses `ai_edge_litert.interpreter.InterpreterWithCustomOps` with
  `tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS`.

  Raises:
    ValueError: model_content is not a TFLite flatbuffer.
    ImportError: the `ai-edge-litert` package is not installed.
  """
  if not isinstance(model_content, bytes) or model_content[4:8] != b"TFL3":
    raise ValueError("model_content is not a TFLite flatbuffer (no 'TFL3' "
                     "identifier); pass the bytes returned by "
                     "convert_preprocessor_to_tflite.")
  try:
    from ai_edge_litert import interpreter as litert  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("running the TFLite preprocessor needs the LiteRT "
                      "interpreter: pip install ai-edge-litert (see "
                      "requirements.txt)") from e
  interp = litert.InterpreterWithCustomOps(
      model_content=model_content,
      custom_op_registerers=tf_text.tflite_registrar.SELECT_TFTEXT_OPS)
  interp.allocate_tensors()
  return interp


def _as_bytes_array(texts):
  return np.array([t.encode("utf-8") if isinstance(t, str) else bytes(t)
                   for t in texts], dtype=object)


def verify_tflite_preprocessor(model_content: bytes, *, saved_model_dir: str,
                               sentences=probes.PROBE_SENTENCES,
                               batch_size: int = 64) -> dict:
  """Runs the TFLite model and the SavedModel on sentences; compares outputs.

  Both signatures are checked: `serving_default` on `sentences`, and
  `bert_pack_pair` on (sentences, sentences rotated by one).

  Args:
    model_content: bytes from `convert_preprocessor_to_tflite`.
    saved_model_dir: the saved preprocessor it was converted from.
    sentences: sequence of str or bytes (default `probes.PROBE_SENTENCES`).
    batch_size: sentences per interpreter call, >= 1.

  Returns:
    dict with `sentences` (compared per signature), `identical_single`,
    `identical_pair` (rows whose three outputs are all equal), `signatures`,
    `seconds_tflite` (interpreter time, both signatures).

  Raises:
    ValueError: empty sentences or batch_size < 1, bad model_content.
    ImportError: `ai-edge-litert` is not installed.
    RuntimeError: any row differs (the message names the first ones).
  """
  texts = list(sentences)
  if not texts:
    raise ValueError("sentences is empty; pass at least one sentence.")
  if isinstance(batch_size, bool) or not isinstance(
      batch_size, int) or batch_size < 1:
    raise ValueError(f"batch_size={batch_size!r}; pass an int >= 1.")
  interp = make_interpreter(model_content)
  keys = sorted(interp.get_signature_list())
  if keys != sorted(SIGNATURE_KEYS):
    raise ValueError(f"the TFLite model has signatures {keys}, expected "
                     f"{sorted(SIGNATURE_KEYS)}; pass a model from "
                     "convert_preprocessor_to_tflite.")
  saved = tf.saved_model.load(saved_model_dir)
  data = _as_bytes_array(texts)
  rotated = np.roll(data, 1)
  identical = {}
  mismatches = []
  seconds = 0.0
  for key in SIGNATURE_KEYS:
    runner = interp.get_signature_runner(key)
    same = 0
    for i in range(0, len(data), batch_size):
      columns = [data[i:i + batch_size], rotated[i:i + batch_size]]
      inputs = dict(zip(signatures.INPUT_NAMES[key], columns))
      start = time.perf_counter()
      got = runner(**inputs)
      seconds += time.perf_counter() - start
      want = saved.signatures[key](
          **{k: tf.constant(v) for k, v in inputs.items()})
      rows_equal = np.ones(len(columns[0]), bool)
      for out in signatures.OUTPUT_KEYS:
        rows_equal &= np.all(got[out] == want[out].numpy(), axis=1)
      same += int(rows_equal.sum())
      for j in np.flatnonzero(~rows_equal):
        mismatches.append((key, texts[i + j]))
    identical[key] = same
  if mismatches:
    raise RuntimeError(
        f"the TFLite preprocessor differs from the SavedModel "
        f"{saved_model_dir!r} on {len(mismatches)} row(s), e.g. "
        f"{mismatches[:3]}")
  return {"sentences": len(texts),
          "identical_single": identical[signatures.SINGLE_SIGNATURE_NAME],
          "identical_pair": identical[signatures.PAIR_SIGNATURE_NAME],
          "signatures": list(SIGNATURE_KEYS),
          "seconds_tflite": round(seconds, 3)}
