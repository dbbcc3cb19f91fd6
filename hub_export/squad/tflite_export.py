"""TensorFlow Lite variants of the SQuAD model, as MLPerf Mobile ships them.

Variants (all with MLPerf I/O, `constants.INPUT_NAMES` -> `constants.OUTPUT_NAMES`,
[1, S]; S = 384 for MLPerf):
* `FLOAT_FILE`: the squad/saved_model `mlperf` signature (Model Garden's encoder)
  converted as it is.
* `GPU_FILE`: float, converted from `forward.QaForward`, whose graph avoids what the
  TFLite GPU delegate cannot run (`forward.GPU_REWRITES`); it has zero
  `tflite_analysis.gpu_findings`.
* `INT8_FILE`: post-training quantization with int8 activations and per-channel int8
  weights for FULLY_CONNECTED (int32 token inputs kept, float32 logits out), calibrated
  on representative windows, built for LiteRT's XNNPACK delegate: the SOFTMAX ops stay
  float between DEQUANTIZE and QUANTIZE (`INT8_FLOAT_OPS`) and the attention products'
  right-hand operands get zero point 0 (`quant_rewrite.zero_point_zero_matmul_rhs`),
  so that the whole network runs in one XNNPACK partition on its int8 kernels.
  Converted from `QaForward` with the bundle's
  masking of padded keys in its quantized form (`forward.additive_mask_value`: -6 in the
  "original" mode, `constants.QUANT_MASK_VALUE` in the "model_garden" mode) and every
  NoNorm output shifted and scaled per channel, the inverse folded into the weights
  (`equalization.calibrate_equalization`; an exact identity in float that keeps
  NoNorm's per-channel offsets from taking the int8 ranges).
* `NNAPI_FILE`: the same network, full-integer (SOFTMAX in int8 too), converted so that
  every op is on `tflite_analysis.NNAPI_INT8_OPS`.
* `DYNAMIC_FILE` (beside MLPerf's four): dynamic-range int8, converted from the float
  `QaForward`: per-channel int8 FULLY_CONNECTED weights, float32 activations that
  XNNPACK quantizes to int8 per row at run time; no calibration, so its fidelity does
  not depend on the calibration windows.

Which file for which device (`PICK`): the README's and the model card's advice.

`export_verified` writes the five files with TFLite metadata for the Task Library's
BertQuestionAnswerer (`tflite_metadata.add_metadata`, vocab.txt packed) and checks each
one as read back from disk: MLPerf tensor order, outputs against the float model
(`checks`), the metadata, TFLite's 8-bit quantization spec for the int8 files
(`quant_spec`), the GPU / NNAPI findings of the GPU / NNAPI variants, and records where
XNNPACK runs each op (`tflite_analysis.xnnpack_placement`).
"""

import os
from typing import Callable, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from hub_export.squad import checks
from hub_export.squad import constants
from hub_export.squad import equalization as equalization_lib
from hub_export.squad import forward
from hub_export.squad import quant_rewrite
from hub_export.squad import quant_spec
from hub_export.squad import tflite_analysis
from hub_export.squad import tflite_metadata

FLOAT_FILE = "mobilebert_float_384.tflite"
GPU_FILE = "mobilebert_float_384_gpu.tflite"
INT8_FILE = "mobilebert_int8_384.tflite"
NNAPI_FILE = "mobilebert_int8_384_nnapi.tflite"
DYNAMIC_FILE = "mobilebert_dynamic_int8_384.tflite"
INT8_FILES = (INT8_FILE, NNAPI_FILE, DYNAMIC_FILE)
# Ops of `INT8_FILE` left in float32 (DEQUANTIZE -> op -> QUANTIZE): XNNPACK has no int8
# SOFTMAX, so an int8 one runs on the builtin kernel and splits the XNNPACK graph at
# every block (25 partitions); in float it stays inside the one partition and is
# cheaper (benchmarks/README.md, "XNNPACK placement of the int8 models").
INT8_FLOAT_OPS = ("SOFTMAX",)
# ModelMetadata name and description of each variant.
DESCRIPTIONS = {
    FLOAT_FILE: ("float32", "float32, plain conversion of the SavedModel's mlperf "
                 "signature."),
    GPU_FILE: ("float32, GPU", "float32, graph rewritten for the TFLite GPU delegate "
               "(same function)."),
    INT8_FILE: ("int8", "full-integer int8 (per-channel weights), int32 inputs, float32 "
                "logits."),
    NNAPI_FILE: ("int8, NNAPI", "full-integer int8 using only NNAPI int8 operations, "
                 "int32 inputs, float32 logits."),
    DYNAMIC_FILE: ("dynamic-range int8", "dynamic-range int8: per-channel int8 weights, "
                   "float32 activations quantized per row at run time, int32 inputs, "
                   "float32 logits."),
}
# `quant_spec.spec_findings` mode and allowed float ops of each int8 file.
SPEC_MODES = {INT8_FILE: ("full_integer", INT8_FLOAT_OPS), NNAPI_FILE: ("full_integer", ()),
              DYNAMIC_FILE: ("dynamic_range", ())}
# Which file to pick, for the README and the model card.
PICK = (f"On a CPU (LiteRT with its default XNNPACK delegate) use `{INT8_FILE}`: one "
        "XNNPACK partition on the int8 kernels, the fastest file where the CPU has 8-bit "
        f"dot products (x86 AVX-VNNI / AVX512-VNNI, ARM dotprod / i8mm); "
        f"`{DYNAMIC_FILE}` when fidelity matters more than the last milliseconds (no "
        f"calibration, the highest int8 SQNR); `{GPU_FILE}` with the GPU delegate; "
        f"`{NNAPI_FILE}` with the NNAPI delegate (Android NPUs and DSPs); "
        f"`{FLOAT_FILE}` as the float reference.")



def finalize_io(model_content: bytes) -> bytes:
  """Puts the subgraph's inputs and outputs in MLPerf order with their plain names.

  The converter orders signature inputs alphabetically in reverse and names tensors
  `serving_default_input_ids:0`, `PartitionedCall:0`; MLPerf Mobile and the Task Library
  read tensors by position, so inputs become `input_ids`, `input_mask`, `segment_ids`
  and outputs `end_logits`, `start_logits`, in that order, and the signature follows.

  Raises:
    ValueError: the model has no signature naming those inputs and outputs.
  """
  from tensorflow.lite.tools import flatbuffer_utils  # pylint: disable=g-import-not-at-top
  m = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_content))
  if not m.signatureDefs or len(m.signatureDefs) != 1:
    raise ValueError("the converted model has no single SignatureDef; convert from a "
                     "function with the MLPerf input_signature")
  sig = m.signatureDefs[0]
  sub = m.subgraphs[sig.subgraphIndex]
  ins = {t.name.decode(): t.tensorIndex for t in sig.inputs}
  outs = {t.name.decode(): t.tensorIndex for t in sig.outputs}
  if set(ins) != set(constants.INPUT_NAMES) or set(outs) != set(constants.OUTPUT_NAMES):
    raise ValueError(f"signature has inputs {sorted(ins)} and outputs {sorted(outs)}; "
                     f"expected {constants.INPUT_NAMES} -> {constants.OUTPUT_NAMES}")
  sub.inputs = [ins[k] for k in constants.INPUT_NAMES]
  sub.outputs = [outs[k] for k in constants.OUTPUT_NAMES]
  for names, index in ((constants.INPUT_NAMES, ins), (constants.OUTPUT_NAMES, outs)):
    for k in names:
      sub.tensors[index[k]].name = k.encode()
  by_name = {t.name.decode(): t for t in sig.inputs}
  sig.inputs = [by_name[k] for k in constants.INPUT_NAMES]
  by_name = {t.name.decode(): t for t in sig.outputs}
  sig.outputs = [by_name[k] for k in constants.OUTPUT_NAMES]
  return bytes(flatbuffer_utils.convert_object_to_bytearray(m))


def _convert(concrete_fn, trackable, *, int8_dataset: Optional[Callable] = None,
             float_ops: Tuple[str, ...] = (), dynamic_range: bool = False) -> bytes:
  """TFLite conversion of a concrete function.

  With `int8_dataset`: int8 post-training quantization calibrated on it, full-integer
  unless `float_ops` names ops to keep in float (through the public
  `tf.lite.experimental.QuantizationDebugger`'s `denylisted_ops`). With
  `dynamic_range`: int8 weights, float activations. Otherwise float.
  """
  conv = tf.lite.TFLiteConverter.from_concrete_functions([concrete_fn], trackable)
  if dynamic_range:
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
  elif int8_dataset is not None:
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = int8_dataset
    conv.inference_output_type = tf.float32  # logits out as float32
    if float_ops:
      debugger = tf.lite.experimental.QuantizationDebugger(
          converter=conv, debug_dataset=int8_dataset,
          debug_options=tf.lite.experimental.QuantizationDebugOptions(
              denylisted_ops=list(float_ops)))
      return finalize_io(debugger.get_nondebug_quantized_model())
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
  return finalize_io(conv.convert())


def convert_saved_model(saved_model_dir: str) -> bytes:
  """The plain float variant: the SavedModel's `mlperf` signature converted as it is."""
  conv = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=["mlperf"])
  return finalize_io(conv.convert())


def convert_gpu(weights: forward.QaWeights, seq_length: int = constants.MAX_SEQ_LENGTH
                ) -> bytes:
  """The GPU-ready float variant (from `QaForward`, `weights.attention_mask` in float)."""
  fwd = forward.QaForward(weights, seq_length=seq_length)
  return _convert(forward.mlperf_signature(fwd, seq_length).get_concrete_function(), fwd)


def convert_int8(weights: forward.QaWeights, calibration: List[dict], *,
                 seq_length: int = constants.MAX_SEQ_LENGTH,
                 nnapi: bool = False, equalize: bool = True,
                 equalization: Optional[dict] = None) -> bytes:
  """The int8 variant calibrated on `calibration` (MLPerf input dicts).

  Without `nnapi` (`INT8_FILE`): int8 activations except `INT8_FLOAT_OPS`, and every
  BATCH_MATMUL's right-hand operand with zero point 0
  (`quant_rewrite.zero_point_zero_matmul_rhs`), for XNNPACK. With `nnapi`
  (`NNAPI_FILE`): full-integer, attention products as FULLY_CONNECTED.

  Args:
    weights: the network; its `attention_mask` mode is converted in its quantized form
      (`ForwardOptions.quantized`).
    calibration: representative inputs, each a dict of int32 [1, S] arrays.
    nnapi: write attention products without BATCH_MATMUL (`ForwardOptions.nnapi`) and
      keep every op in int8.
    equalize: carry every NoNorm output shifted and scaled per channel, folded into
      the weights (`equalization.calibrate_equalization`, same calibration windows);
      without it the int8 logits of deep NoNorm models collapse (README.md, "int8
      fidelity").
    equalization: precomputed `calibrate_equalization(weights, calibration)` to reuse.

  Raises:
    ValueError: empty calibration set.
  """
  if not calibration:
    raise ValueError("the int8 calibration set is empty; pass at least one SQuAD "
                     "question (default: the first 100 of the SQuAD file)")
  eq = None
  if equalize and weights.config.normalization_type == "no_norm":
    eq = equalization or equalization_lib.calibrate_equalization(
        weights, calibration, seq_length=seq_length)
  fwd = forward.QaForward(weights, seq_length=seq_length, options=forward.ForwardOptions(
      quantized=True, nnapi=nnapi), equalization=eq)

  def dataset():
    for batch in calibration:
      yield {k: np.asarray(batch[k], np.int32) for k in constants.INPUT_NAMES}
  content = _convert(forward.mlperf_signature(fwd, seq_length).get_concrete_function(),
                     fwd, int8_dataset=dataset, float_ops=() if nnapi else INT8_FLOAT_OPS)
  if not nnapi:
    content, _ = quant_rewrite.zero_point_zero_matmul_rhs(content)
  return content


def convert_dynamic(weights: forward.QaWeights,
                    seq_length: int = constants.MAX_SEQ_LENGTH) -> bytes:
  """`DYNAMIC_FILE`: dynamic-range int8 of the float `QaForward` (the float masking)."""
  fwd = forward.QaForward(weights, seq_length=seq_length)
  return _convert(forward.mlperf_signature(fwd, seq_length).get_concrete_function(), fwd,
                  dynamic_range=True)


def _write_verified(path: str, content: bytes, *, meta_args: dict, windows: List[dict],
                    reference: dict) -> dict:
  """Writes one variant with its metadata and checks the file on disk; its manifest entry.

  Raises:
    checks.SquadExportError: wrong tensor order, outputs off the float model,
      metadata that differs from what was meant, or an int8 file off TFLite's 8-bit
      quantization spec (`quant_spec`, as `SPEC_MODES` says).
  """
  name = os.path.basename(path)
  with open(path, "wb") as f:
    f.write(tflite_metadata.add_metadata(content, **meta_args))
  with open(path, "rb") as f:  # Verify what is on disk.
    on_disk = f.read()
  is_int8 = name in INT8_FILES
  if is_int8:  # Static, before any interpreter loads the file.
    mode, float_ops = SPEC_MODES[name]
    quant_spec.check_or_raise(name, on_disk, mode=mode, float_ops=float_ops)
  io = tflite_analysis.io_details(on_disk)
  if io["input_order"] != list(constants.INPUT_NAMES) or \
      io["output_order"] != list(constants.OUTPUT_NAMES):
    raise checks.SquadExportError(f"squad/{name}: I/O order {io['input_order']} -> "
                                  f"{io['output_order']}, expected MLPerf's")
  got = tflite_analysis.run(on_disk, windows)
  figures = (checks.check_int8 if is_int8 else checks.check_float)(name, got, reference)
  try:
    meta = tflite_metadata.verify_metadata(on_disk, **meta_args)
  except ValueError as e:
    raise checks.SquadExportError(f"squad/{name}: TFLite metadata check failed: {e}") from e
  entry = {"bytes": len(on_disk), "figures": figures,
           "ops": tflite_analysis.op_counts(on_disk),
           "io": {k: v for k, v in io.items() if k in ("inputs", "outputs")},
           "metadata": meta,
           "gpu_findings": tflite_analysis.gpu_findings(on_disk),
           "official_gpu_analyzer": tflite_analysis.official_gpu_analyzer(on_disk),
           "xnnpack": tflite_analysis.xnnpack_placement(on_disk)}
  if is_int8:
    entry["quantization_spec"] = {"mode": mode, "float_ops": list(float_ops),
                                  "findings": 0}
    entry["nnapi_findings"] = tflite_analysis.nnapi_findings(on_disk)
    entry["weights"] = tflite_analysis.weight_quantization(on_disk)
  return entry


def export_verified(squad_dir: str, *, saved_model_dir: str, weights: forward.QaWeights,
                    calibration: List[dict], windows: List[dict], reference: dict,
                    equalization: Optional[dict], seq_length: int, vocab_file: str,
                    do_lower_case: bool, fresh_head: bool,
                    log: Callable[[str], None] = print) -> dict:
  """Converts, writes and checks the five variants in `squad_dir`.

  Args:
    squad_dir: an existing directory (squad/'s staging directory).
    saved_model_dir: the written squad/saved_model (source of `FLOAT_FILE`).
    weights: the network, for the variants converted from `forward.QaForward`.
    calibration: int8 calibration windows (MLPerf input dicts, int32 [1, S]).
    windows, reference: verification windows and `model.reference_outputs` on them.
    equalization: `equalization.calibrate_equalization` on `calibration`, or None
      (layer_norm configs).
    seq_length: S.
    vocab_file, do_lower_case: the bundle's tokenizer (packed into the metadata).
    fresh_head: the SQuAD head is a fresh untrained one (said in the description).
    log: one line per step.

  Returns:
    file name -> manifest entry (`bytes`, `figures`, `ops`, `io`, `metadata`,
    `gpu_findings`, `official_gpu_analyzer`, `xnnpack`; int8 files also
    `nnapi_findings`, `weights` and `quantization_spec`), in the order of
    `DESCRIPTIONS`.

  Raises:
    checks.SquadExportError: a variant failed a check (see `_write_verified`: an int8
      file off the quantization spec is one), the GPU
      variant has GPU findings or the NNAPI variant NNAPI findings.
  """
  variants = {}
  log("squad/ TFLite float (plain conversion of the SavedModel) ...")
  variants[FLOAT_FILE] = convert_saved_model(saved_model_dir)
  log("squad/ TFLite float, GPU rewrites ...")
  variants[GPU_FILE] = convert_gpu(weights, seq_length)
  log(f"squad/ TFLite int8 (calibrating on {len(calibration)} windows) ...")
  variants[INT8_FILE] = convert_int8(weights, calibration, seq_length=seq_length,
                                     equalization=equalization)
  log("squad/ TFLite int8, NNAPI allow-list ...")
  variants[NNAPI_FILE] = convert_int8(weights, calibration, seq_length=seq_length,
                                      nnapi=True, equalization=equalization)
  log("squad/ TFLite dynamic-range int8 ...")
  variants[DYNAMIC_FILE] = convert_dynamic(weights, seq_length)
  head_note = (" Its SQuAD head is a fresh seeded UNTRAINED head: answers are not "
               "meaningful." if fresh_head else "")
  entries = {}
  for name, content in variants.items():
    kind, what = DESCRIPTIONS[name]
    meta_args = dict(
        vocab_file=vocab_file, do_lower_case=do_lower_case,
        name=f"MobileBERT SQuAD 1.1 question answering ({kind})",
        description=("Extractive question answering: the answer is the context span "
                     "between the best start and end logits. MobileBERT, " + what +
                     head_note))
    entries[name] = _write_verified(os.path.join(squad_dir, name), content,
                                    meta_args=meta_args, windows=windows,
                                    reference=reference)
  caveats = entries[FLOAT_FILE]["metadata"].get("task_library_caveats")
  if caveats:
    log("WARNING: the TFLite Task Library's BertQuestionAnswerer cannot use these "
        ".tflite files as they are: " + "; ".join(caveats) + ". The interpreter (MLPerf "
        "I/O) and squad/saved_model are unaffected.")
  if entries[GPU_FILE]["gpu_findings"]:
    raise checks.SquadExportError(f"squad/{GPU_FILE} has GPU-incompatible ops: "
                                  f"{entries[GPU_FILE]['gpu_findings'][:5]}")
  if entries[NNAPI_FILE]["nnapi_findings"]:
    raise checks.SquadExportError(f"squad/{NNAPI_FILE} has ops off the NNAPI int8 "
                                  f"allow-list: {entries[NNAPI_FILE]['nnapi_findings'][:5]}")
  return entries
