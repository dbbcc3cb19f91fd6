"""ONNX variants of the SQuAD model: float (tf2onnx) and int8 (onnxruntime).

* `mobilebert_float.onnx`: the squad/saved_model `mlperf` signature converted by tf2onnx
  (`tf2onnx.convert.from_function`, opset `OPSET`); inputs `input_ids`, `input_mask`,
  `segment_ids` int32 [1, S], outputs `end_logits`, `start_logits` float32 [1, S].
* `mobilebert_int8_dynamic.onnx`: onnxruntime's dynamic quantization
  (`onnxruntime.quantization.quantize_dynamic`) of `forward.QaForward`'s float graph:
  per-channel int8 weights of every dense layer, activations quantized to uint8 at run
  time (DynamicQuantizeLinear -> MatMulInteger, which onnxruntime fuses into
  DynamicQuantizeMatMul / MatMulIntegerToFloat: MLAS's u8s8 kernels, the fast int8
  path on x86 CPUs with 8-bit dot products). `INT8_METHOD` names the method of
  `INT8_METHODS` the export uses; `benchmarks/onnx_int8_methods.py` measures them all
  (static QDQ with int8 or uint8 activations, per-channel or per-tensor weights, QDQ or
  QOperator format, dynamic per-channel or per-tensor) and the export keeps the fastest
  that holds the fidelity gate (figures in benchmarks/README.md). The static methods
  quantize `QaForward` in its quantized form: the bundle's masking of padded keys with a
  finite mask value (`forward.additive_mask_value`) and NoNorm outputs equalized as for
  the int8 TFLite model (`equalization.calibrate_equalization`), calibrated (MinMax) on
  the int8 TFLite model's windows.

`export_verified` writes both and checks them against the float model (`checks`).
Works unpatched with tf2onnx 1.17.0, onnx 1.23.2 and onnxruntime 1.32.0 on TensorFlow
2.20.0 and numpy 2.4.
"""

import os
import tempfile
from typing import Callable, List, Optional

import numpy as np

from hub_export.squad import checks
from hub_export.squad import constants
from hub_export.squad import forward
from hub_export.squad import model as qa_model

FLOAT_FILE = "mobilebert_float.onnx"
INT8_FILE = "mobilebert_int8_dynamic.onnx"
OPSET = 17
# Quantization methods tried (name -> keyword arguments of `quantize`): `static` ones are
# `quantize_static` (calibrated), the others `quantize_dynamic`. reduce_range=False:
# the full 8-bit range (7-bit weights only matter on CPUs without 8-bit dot products).
INT8_METHODS = {
    "static_qdq_s8s8_per_channel": dict(static=True, activation="QInt8", per_channel=True),
    "static_qdq_u8s8_per_channel": dict(static=True, activation="QUInt8", per_channel=True),
    "static_qdq_u8s8_per_tensor": dict(static=True, activation="QUInt8", per_channel=False),
    "static_qoperator_u8s8_per_tensor": dict(static=True, activation="QUInt8",
                                             per_channel=False, qoperator=True),
    "dynamic_per_tensor": dict(static=False, per_channel=False),
    "dynamic_per_channel": dict(static=False, per_channel=True),
}
# The method of `INT8_FILE`: the fastest of `INT8_METHODS` at 1 and 2 threads that holds
# the int8 gate, as `benchmarks/onnx_int8_methods.py` measured it (benchmarks/README.md).
INT8_METHOD = "dynamic_per_channel"


def convert_function(fn, seq_length: int, path: str) -> int:
  """Converts a callable (the three MLPerf inputs by keyword -> dict of the two logits).

  Returns:
    Bytes written to `path`.

  Raises:
    ValueError: the converted graph's outputs are not `constants.OUTPUT_NAMES`.
  """
  import tf2onnx  # pylint: disable=g-import-not-at-top
  import onnx  # pylint: disable=g-import-not-at-top
  serve = forward.mlperf_signature(fn, seq_length)
  proto, _ = tf2onnx.convert.from_function(serve, input_signature=serve.input_signature,
                                           opset=OPSET)
  names = [o.name for o in proto.graph.output]
  if names != list(constants.OUTPUT_NAMES):
    raise ValueError(f"tf2onnx produced outputs {names}, expected "
                     f"{list(constants.OUTPUT_NAMES)}")
  onnx.save(proto, path)
  return os.path.getsize(path)


def quantize(float_path: str, out_path: str, *, method: str = INT8_METHOD,
             calibration: Optional[List[dict]] = None) -> int:
  """Quantizes the ONNX model at `float_path` with one of `INT8_METHODS`.

  Args:
    float_path: the float model (for the static methods: the quantizable form, see the
      module docstring).
    out_path: where the int8 model goes.
    method: a key of `INT8_METHODS`.
    calibration: MLPerf input dicts; needed by the static methods only.

  Returns:
    Bytes written to `out_path`.

  Raises:
    ValueError: an unknown method, or a static method without calibration windows.
  """
  from onnxruntime import quantization as q  # pylint: disable=g-import-not-at-top
  if method not in INT8_METHODS:
    raise ValueError(f"ONNX int8 method {method!r} is not one of {list(INT8_METHODS)}")
  spec = INT8_METHODS[method]
  if spec["static"] and not calibration:
    raise ValueError(f"ONNX int8 method {method!r} is calibrated: pass at least one "
                     "calibration window")
  with tempfile.TemporaryDirectory() as tmp:
    prepped = os.path.join(tmp, "prepped.onnx")
    q.quant_pre_process(float_path, prepped, skip_symbolic_shape=True)
    if not spec["static"]:
      q.quantize_dynamic(prepped, out_path, weight_type=q.QuantType.QInt8,
                         per_channel=spec["per_channel"], reduce_range=False)
      return os.path.getsize(out_path)

    class Reader(q.CalibrationDataReader):

      def __init__(self):
        self._it = iter(calibration)

      def get_next(self):
        batch = next(self._it, None)
        if batch is None:
          return None
        return {k: np.asarray(batch[k], np.int32) for k in constants.INPUT_NAMES}

    q.quantize_static(
        prepped, out_path, Reader(),
        quant_format=q.QuantFormat.QOperator if spec.get("qoperator") else
        q.QuantFormat.QDQ,
        per_channel=spec["per_channel"],
        activation_type=getattr(q.QuantType, spec["activation"]),
        weight_type=q.QuantType.QInt8, reduce_range=False,
        calibrate_method=q.CalibrationMethod.MinMax,
        # onnxruntime 1.32.0's per-channel bias-scale adjustment raises "truth value of
        # an array ... is ambiguous" on this graph (qdq_quantizer.py
        # _adjust_weight_scale_for_int32_bias); turn that optional adjustment off.
        extra_options={"QDQDisableWeightAdjustForInt32Bias": True})
  return os.path.getsize(out_path)


def quantizable_source(weights: forward.QaWeights, *, method: str,
                       equalization: Optional[dict], seq_length: int, path: str) -> int:
  """Writes the float ONNX graph that `method` quantizes: `QaForward` in its float form
  for the dynamic methods, in its quantized form (finite mask, NoNorm equalized) for the
  static ones. Returns the bytes written."""
  static = INT8_METHODS[method]["static"]
  fwd = forward.QaForward(
      weights, seq_length=seq_length,
      options=forward.ForwardOptions(quantized=static),
      equalization=equalization if static else None)
  return convert_function(fwd, seq_length, path)


def session(path: str, num_threads: int = 1):
  """An onnxruntime CPU session with `num_threads` intra-op threads."""
  import onnxruntime as ort  # pylint: disable=g-import-not-at-top
  opts = ort.SessionOptions()
  opts.intra_op_num_threads = num_threads
  opts.inter_op_num_threads = 1
  return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


def run(sess, batches) -> dict:
  """Runs an onnxruntime session on MLPerf input dicts; float32 [N, S] per output."""
  names = [o.name for o in sess.get_outputs()]
  return qa_model.stack_outputs(
      lambda b: dict(zip(names, sess.run(None, {k: np.asarray(b[k], np.int32)
                                                for k in constants.INPUT_NAMES}))),
      batches)


def int8_summary(path: str) -> dict:
  """Op counts of an int8 ONNX model: QuantizeLinear, DequantizeLinear,
  DynamicQuantizeLinear, MatMulInteger, MatMul, and per-channel weight dequantizers
  (DequantizeLinear of an initializer with a 1-D scale of more than one value)."""
  import onnx  # pylint: disable=g-import-not-at-top
  m = onnx.load(path)
  inits = {i.name: i for i in m.graph.initializer}
  ops = [n.op_type for n in m.graph.node]
  per_channel = 0
  for n in m.graph.node:
    if n.op_type == "DequantizeLinear" and n.input[0] in inits and len(n.input) > 1:
      scale = inits.get(n.input[1])
      if scale is not None and len(scale.dims) == 1 and scale.dims[0] > 1:
        per_channel += 1
  per_channel_dynamic = 0
  for n in m.graph.node:
    if n.op_type == "MatMulInteger" and len(n.input) > 3 and n.input[3] in inits:
      per_channel_dynamic += int(len(inits[n.input[3]].dims) == 1 and
                                 inits[n.input[3]].dims[0] > 1)
  counts = {k: ops.count(k) for k in ("QuantizeLinear", "DequantizeLinear",
                                       "DynamicQuantizeLinear", "MatMulInteger", "MatMul")}
  return {**counts, "per_channel_weights": per_channel,
          "per_channel_matmul_integer": per_channel_dynamic}


def export_verified(squad_dir: str, *, mlperf_fn: Callable, weights: forward.QaWeights,
                    equalization: Optional[dict], seq_length: int,
                    calibration: List[dict], windows: List[dict], reference: dict) -> dict:
  """Writes `FLOAT_FILE` and `INT8_FILE` into `squad_dir` and checks both.

  Args:
    squad_dir: an existing directory (squad/'s staging directory).
    mlperf_fn: the reloaded squad/saved_model `mlperf` signature (source of the float
      model).
    weights, equalization: the network (with its masking mode) and its NoNorm
      equalization (None for layer_norm configs), for the int8 model's graph.
    seq_length: S.
    calibration: int8 calibration windows; windows, reference: verification windows
      and `model.reference_outputs` on them.

  Returns:
    file name -> manifest entry: `figures`, `bytes`, and for the int8 file `method`
    (`INT8_METHOD`) and `ops` (`int8_summary`).

  Raises:
    checks.SquadExportError: a file failed its check against the float model.
  """
  f_path = os.path.join(squad_dir, FLOAT_FILE)
  convert_function(mlperf_fn, seq_length, f_path)
  entries = {FLOAT_FILE: {"figures": checks.check_float(
      FLOAT_FILE, run(session(f_path), windows), reference)}}
  q_path = os.path.join(squad_dir, INT8_FILE)
  with tempfile.TemporaryDirectory() as tmp:
    src = os.path.join(tmp, "quantizable.onnx")
    quantizable_source(weights, method=INT8_METHOD, equalization=equalization,
                       seq_length=seq_length, path=src)
    quantize(src, q_path, method=INT8_METHOD, calibration=calibration)
  entries[INT8_FILE] = {
      "figures": checks.check_int8(INT8_FILE, run(session(q_path), windows), reference),
      "method": INT8_METHOD, "ops": int8_summary(q_path)}
  for name in (FLOAT_FILE, INT8_FILE):
    entries[name]["bytes"] = os.path.getsize(os.path.join(squad_dir, name))
  return entries
