"""ONNX variants of the SQuAD model: float (tf2onnx) and int8 QDQ (onnxruntime).

* `mobilebert_float.onnx`: the squad/saved_model `mlperf` signature converted by tf2onnx
  (`tf2onnx.convert.from_function`, opset `OPSET`); inputs `input_ids`, `input_mask`,
  `segment_ids` int32 [1, S], outputs `end_logits`, `start_logits` float32 [1, S].
* `mobilebert_int8_qdq.onnx`: onnxruntime's static post-training quantization of the
  float ONNX model (`onnxruntime.quantization.quantize_static`, QuantFormat.QDQ,
  per-channel int8 weights, int8 activations, MinMax calibration on the same windows as
  the int8 TFLite model). The graph quantized is `forward.QaForward`'s in its quantized
  form, converted the same way: the bundle's masking of padded keys with a finite mask
  value (`forward.additive_mask_value`; in the "model_garden" mode the float graph's
  Keras -1e9 would ruin the activation ranges) and NoNorm outputs equalized as for the
  int8 TFLite model (`equalization.calibrate_equalization`).

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
INT8_FILE = "mobilebert_int8_qdq.onnx"
OPSET = 17


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


def quantize_qdq(float_path: str, calibration: List[dict], out_path: str) -> int:
  """Static int8 QDQ quantization, per-channel weights, calibrated on `calibration`.

  Raises:
    ValueError: empty calibration set.
  """
  from onnxruntime import quantization as q  # pylint: disable=g-import-not-at-top
  if not calibration:
    raise ValueError("the ONNX calibration set is empty; pass at least one window")

  class Reader(q.CalibrationDataReader):

    def __init__(self):
      self._it = iter(calibration)

    def get_next(self):
      batch = next(self._it, None)
      if batch is None:
        return None
      return {k: np.asarray(batch[k], np.int32) for k in constants.INPUT_NAMES}

  with tempfile.TemporaryDirectory() as tmp:
    prepped = os.path.join(tmp, "prepped.onnx")
    q.quant_pre_process(float_path, prepped, skip_symbolic_shape=True)
    q.quantize_static(prepped, out_path, Reader(), quant_format=q.QuantFormat.QDQ,
                      per_channel=True, activation_type=q.QuantType.QInt8,
                      weight_type=q.QuantType.QInt8,
                      calibrate_method=q.CalibrationMethod.MinMax,
                      # onnxruntime 1.32.0's per-channel bias-scale adjustment raises
                      # "truth value of an array ... is ambiguous" on this graph
                      # (qdq_quantizer.py _adjust_weight_scale_for_int32_bias); turn
                      # that optional adjustment off.
                      extra_options={"QDQDisableWeightAdjustForInt32Bias": True})
  return os.path.getsize(out_path)


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


def qdq_summary(path: str) -> dict:
  """Counts QuantizeLinear/DequantizeLinear nodes and per-channel weight dequantizers."""
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
  return {"QuantizeLinear": ops.count("QuantizeLinear"),
          "DequantizeLinear": ops.count("DequantizeLinear"),
          "per_channel_weights": per_channel, "MatMul": ops.count("MatMul")}


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
    file name -> manifest entry: `figures`, `bytes`, and for the int8 file `qdq`
    (`qdq_summary`).

  Raises:
    checks.SquadExportError: a file failed its check against the float model.
  """
  f_path = os.path.join(squad_dir, FLOAT_FILE)
  convert_function(mlperf_fn, seq_length, f_path)
  entries = {FLOAT_FILE: {"figures": checks.check_float(
      FLOAT_FILE, run(session(f_path), windows), reference)}}
  fwd = forward.QaForward(weights, seq_length=seq_length, options=forward.ForwardOptions(
      quantized=True), equalization=equalization)
  q_path = os.path.join(squad_dir, INT8_FILE)
  with tempfile.TemporaryDirectory() as tmp:
    src = os.path.join(tmp, "quantizable.onnx")
    convert_function(fwd, seq_length, src)
    quantize_qdq(src, calibration, q_path)
  entries[INT8_FILE] = {
      "figures": checks.check_int8(INT8_FILE, run(session(q_path), windows), reference),
      "qdq": qdq_summary(q_path)}
  for name in (FLOAT_FILE, INT8_FILE):
    entries[name]["bytes"] = os.path.getsize(os.path.join(squad_dir, name))
  return entries
