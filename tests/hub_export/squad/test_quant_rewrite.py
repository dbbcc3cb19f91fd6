"""`quant_rewrite.zero_point_zero_matmul_rhs` on small int8 models converted here.

The models are attention-shaped: q = x Wq + bq, k = x Wk + bk with a bias that puts the
keys' range off zero (so the calibrated zero point is not 0), scores = q k^T as a 3-D
BATCH_MATMUL. Expected values come from the float function and from the converter's own
parameters, not from the rewrite.
"""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema

from hub_export import verify
from hub_export.squad import quant_rewrite
from hub_export.squad import quant_spec
from hub_export.squad import tflite_analysis

S, D = 16, 32


def _attention_fn(rhs_softmax=False):
  rng = np.random.default_rng(0)
  wq = tf.constant(rng.normal(size=(D, D)).astype(np.float32) * 0.2)
  wk = tf.constant(rng.normal(size=(D, D)).astype(np.float32) * 0.2)
  bk = tf.constant(np.full([D], 3.0, np.float32))  # keys in about [1, 5]: zero point != 0

  @tf.function(input_signature=[tf.TensorSpec([1, S, D], tf.float32)])
  def fn(x):
    q = tf.reshape(tf.matmul(tf.reshape(x, [S, D]), wq), [1, S, D])
    k = tf.reshape(tf.matmul(tf.reshape(x, [S, D]), wk) + bk, [1, S, D])
    if rhs_softmax:
      return tf.matmul(q, tf.nn.softmax(k, axis=-1), transpose_b=True)
    return tf.matmul(q, k, transpose_b=True)
  return fn


def _int8(fn):
  rng = np.random.default_rng(1)
  conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
  conv.optimizations = [tf.lite.Optimize.DEFAULT]
  conv.representative_dataset = lambda: ([rng.normal(size=(1, S, D)).astype(np.float32)]
                                         for _ in range(16))
  conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
  return conv.convert()


def _rhs_params(content):
  """(scale, zero point) of every BATCH_MATMUL's right-hand operand, read with the
  flatbuffer schema directly."""
  m = schema.Model.GetRootAsModel(bytearray(content), 0)
  sub = m.Subgraphs(0)
  out = []
  for i in range(sub.OperatorsLength()):
    op = sub.Operators(i)
    code = m.OperatorCodes(op.OpcodeIndex())
    if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) == \
        schema.BuiltinOperator.BATCH_MATMUL:
      q = sub.Tensors(int(op.InputsAsNumpy()[1])).Quantization()
      out.append((float(q.ScaleAsNumpy()[0]), int(q.ZeroPointAsNumpy()[0])))
  return out


def _run(content, x):
  """Float32 in and out: the converter keeps float I/O with QUANTIZE / DEQUANTIZE."""
  interp = tflite_analysis.interpreter(content)
  interp.set_tensor(interp.get_input_details()[0]["index"], x)
  interp.invoke()
  return interp.get_tensor(interp.get_output_details()[0]["index"])


def test_rhs_gets_zero_point_zero_and_keeps_its_range():
  fn = _attention_fn()
  before = _int8(fn)
  (old_scale, old_zero), = _rhs_params(before)
  assert old_zero != 0  # the premise: the converter calibrates asymmetrically
  after, done = quant_rewrite.zero_point_zero_matmul_rhs(before)
  (new_scale, new_zero), = _rhs_params(after)
  lo, hi = old_scale * (-128 - old_zero), old_scale * (127 - old_zero)
  assert new_zero == 0
  assert new_scale == pytest.approx(max(abs(lo), abs(hi)) / 127, rel=1e-6)
  assert len(done) == 1 and done[0].old == (pytest.approx(old_scale), old_zero)
  assert quant_spec.spec_findings(after) == []
  x = np.random.default_rng(5).normal(size=(1, S, D)).astype(np.float32)
  ref = fn(x).numpy()
  assert verify.sqnr_db(_run(after, x), ref) >= 25.0
  assert verify.sqnr_db(_run(after, x), ref) >= verify.sqnr_db(_run(before, x), ref) - 6.0


def test_xnnpack_takes_the_matmul_only_after_the_rewrite():
  before = _int8(_attention_fn())
  after, _ = quant_rewrite.zero_point_zero_matmul_rhs(before)
  assert tflite_analysis.xnnpack_placement(before)["outside"].get("BATCH_MATMUL") == 1
  assert "BATCH_MATMUL" not in tflite_analysis.xnnpack_placement(after)["outside"]


def test_rewrite_is_idempotent_and_leaves_float_models_alone():
  after, _ = quant_rewrite.zero_point_zero_matmul_rhs(_int8(_attention_fn()))
  again, done = quant_rewrite.zero_point_zero_matmul_rhs(after)
  assert done == [] and _rhs_params(again) == _rhs_params(after)
  fn = _attention_fn()
  plain = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()],
                                                          fn).convert()
  assert quant_rewrite.zero_point_zero_matmul_rhs(plain)[1] == []


def test_fixed_output_operand_is_refused_by_name():
  with pytest.raises(ValueError, match="computed by SOFTMAX, whose output quantization "
                                       "cannot change"):
    quant_rewrite.zero_point_zero_matmul_rhs(_int8(_attention_fn(rhs_softmax=True)))
