"""ONNX variants of the SQuAD model: float (tf2onnx) and int8 QDQ (onnxruntime).

* `mobilebert_float.onnx`: the squad/saved_model `mlperf` signature converted by tf2onnx
  (`tf2onnx.convert.from_function`, opset `OPSET`); inputs `input_ids`, `input_mask`,
  `segment_ids` int32 [1, S], outputs `end_logits`, `start_logits` float32 [1, S].
* `mobilebert_int8_qdq.onnx`: onnxruntime's static post-training quantization of the
  float ONNX model (`onnxruntime.quantization.quantize_static`, QuantFormat.QDQ,
  per-channel int8 weights, int8 activations, MinMax calibration on the same windows as
  the int8 TFLite model); the additive attention mask of the float graph is Keras'
  -1e9, which would ruin activation ranges, so the graph quantized is `QaForward`'s
  (finite mask `model.QUANT_MASK_VALUE`, NoNorm outputs equalized as for the int8
  TFLite model, `model.calibrate_equalization`) converted the same way.

Measured with tf2onnx 1.17.0, onnx 1.23.2, onnxruntime 1.32.0 on TensorFlow 2.20.0 and
numpy 2.4: conversion works unpatched.
"""

import os
import tempfile
from typing import List

import numpy as np
import tensorflow as tf

from hub_export.squad import model as qa_model

FLOAT_FILE = "mobilebert_float.onnx"
INT8_FILE = "mobilebert_int8_qdq.onnx"
OPSET = 17


def convert_function(fn, seq_length: int, path: str) -> int:
  """Converts a callable (the three MLPerf inputs by keyword -> dict of the two logits).

  Returns:
    Bytes written to `path`.
  """
  import tf2onnx  # pylint: disable=g-import-not-at-top
  import onnx  # pylint: disable=g-import-not-at-top
  specs = [tf.TensorSpec([1, seq_length], tf.int32, name=n) for n in qa_model.INPUT_NAMES]

  @tf.function(input_signature=specs, autograph=False)
  def serve(input_ids, input_mask, segment_ids):
    out = fn(input_ids=input_ids, input_mask=input_mask, segment_ids=segment_ids)
    return {k: tf.identity(out[k], name=k) for k in qa_model.OUTPUT_NAMES}

  proto, _ = tf2onnx.convert.from_function(serve, input_signature=specs, opset=OPSET)
  names = [o.name for o in proto.graph.output]
  if names != list(qa_model.OUTPUT_NAMES):
    raise ValueError(f"tf2onnx produced outputs {names}, expected "
                     f"{list(qa_model.OUTPUT_NAMES)}")
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
      return {k: np.asarray(batch[k], np.int32) for k in qa_model.INPUT_NAMES}

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
  got = {k: [] for k in qa_model.OUTPUT_NAMES}
  for batch in batches:
    out = dict(zip(names, sess.run(None, {k: np.asarray(batch[k], np.int32)
                                          for k in qa_model.INPUT_NAMES})))
    for k in qa_model.OUTPUT_NAMES:
      got[k].append(np.asarray(out[k], np.float32).reshape(-1))
  return {k: np.stack(v) for k, v in got.items()}


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
