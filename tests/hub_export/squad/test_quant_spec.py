"""The 8-bit quantization spec check (`quant_spec`) on real converter output, and broken.

Two tiny models are converted here with the TFLite converter: full-integer post-training
int8 (representative dataset) and dynamic range (no dataset). Both must conform; then
each is broken on purpose by editing its flatbuffer, and the check must name the tensor
and the rule. The expected parameters come from the spec
(https://www.tensorflow.org/lite/performance/quantization_spec) and from the models as
read here, not from `quant_spec`.
"""

import re

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

from checkpoints import converter
from checkpoints.config import MobileBertConfig
from hub_export.squad import checks
from hub_export.squad import forward
from hub_export.squad import quant_spec
from hub_export.squad import tflite_export
from tests import testutil
from tests.hub_export.squad.conftest import SEQ_LENGTH

# The spec's table: SOFTMAX "restriction: (scale, zero_point) = (1.0 / 256.0, -128)";
# weights "range: [-127, 127]", "restriction: zero_point = 0".
SPEC_SOFTMAX_OUTPUT = (1.0 / 256.0, -128)
SPEC_WEIGHT_MIN = -127

_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_INT8 = schema.TensorType.INT8
_INT32 = schema.TensorType.INT32
_FLOAT32 = schema.TensorType.FLOAT32


def _tiny_fn():
  """Two dense layers (+ bias, relu), an activation x activation FC, softmax over a
  BATCH_MATMUL, reshape/transpose, and a 64-element head (kept float by the dynamic-range
  converter, which quantizes weights of 1024 elements and more)."""
  rng = np.random.default_rng(0)

  def const(*shape):
    return tf.constant((rng.normal(size=shape) * 0.3).astype(np.float32))
  w1, b1, w2, b2, w3, b3, w4 = (const(32, 64), const(64), const(64, 64), const(64),
                                const(64, 32), const(32), const(32, 2))

  @tf.function(input_signature=[tf.TensorSpec([4, 32], tf.float32)])
  def fn(x):
    h = tf.nn.relu(tf.matmul(x, w1) + b1)
    k = tf.matmul(h, w2) + b2
    p = tf.nn.softmax(tf.matmul(h, k, transpose_b=True))  # FC with runtime weights
    pt = tf.reshape(tf.transpose(tf.reshape(p, [2, 2, 4]), [1, 0, 2]), [4, 4])
    k3 = tf.reshape(k, [4, 4, 16])
    ctx = tf.reshape(tf.matmul(tf.nn.softmax(tf.matmul(k3, k3, transpose_b=True)), k3),
                     [4, 64])
    return tf.matmul(tf.matmul(ctx, w3) + b3 + tf.reduce_sum(pt), w4)
  return fn


def _convert(fn, *, int8: bool, optimize: bool = True) -> bytes:
  conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()],
                                                         tf.Module())
  if optimize:
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
  if int8:
    def dataset():
      rng = np.random.default_rng(1)
      for _ in range(4):
        yield [rng.normal(size=[4, 32]).astype(np.float32)]
    conv.representative_dataset = dataset
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
  return conv.convert()


@pytest.fixture(scope="module")
def models():
  fn = _tiny_fn()
  return {"full_integer": _convert(fn, int8=True), "dynamic_range": _convert(fn, int8=False),
          "float": _convert(fn, int8=False, optimize=False)}


class _Model:
  """The flatbuffer as an editable object (`flatbuffer_utils`), with op lookups."""

  def __init__(self, content: bytes):
    self.m = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    self.sub = self.m.subgraphs[0]

  def op_name(self, op) -> str:
    code = self.m.operatorCodes[op.opcodeIndex]
    return _OP_NAMES[max(code.builtinCode, code.deprecatedBuiltinCode)]

  def ops(self, name: str):
    """[(op index, op)] of the ops called `name`, in graph order."""
    return [(i, op) for i, op in enumerate(self.sub.operators) if self.op_name(op) == name]

  def consumers(self, tensor_index: int):
    return [self.op_name(op) for op in self.sub.operators if tensor_index in list(op.inputs)]

  def tensor(self, index: int):
    return self.sub.tensors[index]

  def name(self, index: int) -> str:
    return self.sub.tensors[index].name.decode()

  def is_const(self, index: int) -> bool:
    data = self.m.buffers[self.sub.tensors[index].buffer].data
    return data is not None and len(data) > 0

  def weight_values(self, index: int) -> np.ndarray:
    t = self.sub.tensors[index]
    return np.asarray(self.m.buffers[t.buffer].data, np.uint8).view(np.int8).reshape(t.shape)

  def dense(self):
    """(op index, op) of the first FULLY_CONNECTED with constant weights and a bias."""
    return next((i, op) for i, op in self.ops("FULLY_CONNECTED")
                if self.is_const(op.inputs[1]) and len(op.inputs) > 2 and op.inputs[2] >= 0)

  def content(self) -> bytes:
    return bytes(flatbuffer_utils.convert_object_to_bytearray(self.m))


def test_finding_str_is_one_line():
  f = quant_spec.Finding(op_index=12, op="FULLY_CONNECTED", tensor="name",
                         rule="weights_zero_point",
                         detail="weights zero point must be 0 (got 3 in channel 5)")
  assert str(f) == ("Op#12 FULLY_CONNECTED, tensor 'name': weights zero point must be 0 "
                    "(got 3 in channel 5) [weights_zero_point]")
  with pytest.raises(AttributeError):
    f.rule = "other"  # frozen


def test_full_integer_model_conforms(models):
  content = models["full_integer"]
  m = _Model(content)
  # What the converter wrote, read independently of quant_spec: the spec's softmax
  # output, symmetric per-channel weights, int8 activations, bias = in x weights scale.
  softmaxes = m.ops("SOFTMAX")
  assert len(softmaxes) == 2
  for _, op in softmaxes:
    q = m.tensor(op.outputs[0]).quantization
    assert (float(q.scale[0]), int(q.zeroPoint[0])) == SPEC_SOFTMAX_OUTPUT
  dense = [op for _, op in m.ops("FULLY_CONNECTED") if m.is_const(op.inputs[1])]
  assert len(dense) == 4
  for op in dense:
    w = m.tensor(op.inputs[1])
    assert w.type == _INT8 and len(w.quantization.scale) == w.shape[0]
    assert not np.any(w.quantization.zeroPoint)
    assert m.weight_values(op.inputs[1]).min() >= SPEC_WEIGHT_MIN
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
      want = (np.float64(m.tensor(op.inputs[0]).quantization.scale[0]) *
              np.asarray(w.quantization.scale, np.float64))
      np.testing.assert_allclose(m.tensor(op.inputs[2]).quantization.scale, want, rtol=1e-6)
  runtime = [op for _, op in m.ops("FULLY_CONNECTED") if not m.is_const(op.inputs[1])]
  assert len(runtime) == 1 and m.tensor(runtime[0].inputs[1]).type == _INT8
  assert len(m.ops("BATCH_MATMUL")) == 2
  assert m.ops("RESHAPE") and m.ops("TRANSPOSE")
  for i, op in enumerate(m.sub.operators):
    if m.op_name(op) not in ("QUANTIZE", "DEQUANTIZE"):
      assert all(m.tensor(t).type in (_INT8, _INT32) for t in list(op.inputs) + list(op.outputs)
                 if t >= 0), i

  assert quant_spec.spec_findings(content) == []
  assert quant_spec.spec_findings(content, mode="full_integer") == []
  assert quant_spec.check_or_raise("tiny_int8.tflite", content, mode="full_integer") is None
  # Its weights also pass the dynamic-range (weights only) rules.
  assert quant_spec.spec_findings(content, mode="dynamic_range") == []


def test_dynamic_range_model_conforms(models):
  content = models["dynamic_range"]
  m = _Model(content)
  dense = [op for _, op in m.ops("FULLY_CONNECTED") if m.is_const(op.inputs[1])]
  types = sorted(m.tensor(op.inputs[1]).type for op in dense)
  assert types == sorted([_INT8] * 3 + [_FLOAT32])  # The 64-element head stays float.
  assert m.tensor(m.sub.inputs[0]).type == _FLOAT32

  assert quant_spec.spec_findings(content, mode="dynamic_range") == []
  assert quant_spec.check_or_raise("tiny_dyn.tflite", content, mode="dynamic_range") is None
  # As a full-integer model it is wrong: its activations are float32.
  findings = quant_spec.spec_findings(content, mode="full_integer")
  assert {f.rule for f in findings} == {"float_activation", "float_constant", "weights_dtype"}
  by_name = {t.name.decode(): i for i, t in enumerate(m.sub.tensors)}
  for f in findings:
    index = by_name[f.tensor]
    assert m.tensor(index).type == _FLOAT32, f
    assert m.is_const(index) == (f.rule != "float_activation"), f
  # Every float32 activation is named once (the model input included).
  activations = {i for op in m.sub.operators for i in list(op.inputs) + list(op.outputs)
                 if i >= 0 and not m.is_const(i) and m.tensor(i).type == _FLOAT32}
  assert sorted(by_name[f.tensor] for f in findings if f.rule == "float_activation") == \
      sorted(activations)


def test_float_model_fails_dynamic_range_weight_rules(models):
  """Float weights of 1024+ elements were not quantized: one finding per dense layer."""
  content = models["float"]
  m = _Model(content)
  big = sorted(m.name(op.inputs[1]) for _, op in m.ops("FULLY_CONNECTED")
               if m.is_const(op.inputs[1]) and np.prod(m.tensor(op.inputs[1]).shape) >= 1024)
  assert len(big) == 3
  findings = quant_spec.spec_findings(content, mode="dynamic_range")
  assert sorted(f.tensor for f in findings) == big
  assert {f.rule for f in findings} == {"weights_dtype"}


# Breakages: edit(model) -> (op index, tensor name, what the detail must say: substrings,
# and numbers (floats, to 1e-6 relative) computed here from the model and the spec).
def _weights_zero_point(m):
  i, op = m.dense()
  m.tensor(op.inputs[1]).quantization.zeroPoint[5] = 3
  return i, m.name(op.inputs[1]), ["got 3 in channel 5"]


def _weights_range(m):
  i, op = m.dense()
  w = m.tensor(op.inputs[1])
  flat = np.ravel_multi_index((5, 7), w.shape)
  m.m.buffers[w.buffer].data[flat] = np.uint8(0x80)  # int8 -128
  return i, m.name(op.inputs[1]), ["-128", "[5, 7]"]


def _weights_axis(m):
  i, op = m.dense()
  m.tensor(op.inputs[1]).quantization.quantizedDimension = 1
  return i, m.name(op.inputs[1]), ["dimension 0"]


def _bias_scale(m):
  i, op = m.dense()
  q = m.tensor(op.inputs[2]).quantization
  want = (np.float64(m.tensor(op.inputs[0]).quantization.scale[0]) *
          np.float64(m.tensor(op.inputs[1]).quantization.scale[0]))
  q.scale = [float(np.float32(s * 2)) for s in q.scale]
  return i, m.name(op.inputs[2]), [float(want), 2 * float(want), "channel 0"]


def _feeds_batch_matmul(m, name):
  """(op index, op) of the `name` op whose output only BATCH_MATMUL ops read."""
  return next((i, op) for i, op in m.ops(name)
              if set(m.consumers(op.outputs[0])) == {"BATCH_MATMUL"})


def _softmax_output(m):
  i, op = _feeds_batch_matmul(m, "SOFTMAX")
  m.tensor(op.outputs[0]).quantization.scale = [SPEC_SOFTMAX_OUTPUT[0] * 1.5]
  return i, m.name(op.outputs[0]), [SPEC_SOFTMAX_OUTPUT[0], SPEC_SOFTMAX_OUTPUT[0] * 1.5]


def _reshape_same_scale(m):
  i, op = _feeds_batch_matmul(m, "RESHAPE")
  q = m.tensor(op.outputs[0]).quantization
  q.scale = [float(np.float32(q.scale[0] * 1.25))]
  return i, m.name(op.outputs[0]), [m.name(op.inputs[0])]


def _zero_scale(m):
  i, op = m.ops("SUM")[0]
  m.tensor(op.outputs[0]).quantization.scale = [0.0]
  return i, m.name(op.outputs[0]), ["> 0"]


def _two_scales_on_activation(m):
  i, op = m.ops("SUM")[0]
  q = m.tensor(op.outputs[0]).quantization
  q.scale, q.zeroPoint = [q.scale[0]] * 2, [q.zeroPoint[0]] * 2
  return i, m.name(op.outputs[0]), ["2 scales"]


BREAKAGES = [
    ("weights_zero_point", _weights_zero_point),
    ("weights_range", _weights_range),
    ("weights_axis", _weights_axis),
    ("bias_scale", _bias_scale),
    ("softmax_output", _softmax_output),
    ("same_scale", _reshape_same_scale),
    ("quant_params", _zero_scale),
    ("per_tensor", _two_scales_on_activation),
]


@pytest.mark.parametrize("rule, edit", BREAKAGES, ids=[r for r, _ in BREAKAGES])
def test_broken_full_integer_model_is_named(models, rule, edit):
  m = _Model(models["full_integer"])
  op_index, tensor, details = edit(m)
  broken = m.content()
  findings = quant_spec.spec_findings(broken, mode="full_integer")
  assert [(f.op_index, f.tensor, f.rule) for f in findings] == [(op_index, tensor, rule)], \
      findings
  assert findings[0].op == m.op_name(m.sub.operators[op_index])
  numbers = [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", findings[0].detail)]
  for part in details:
    if isinstance(part, str):
      assert part in findings[0].detail, (part, findings[0])
    else:
      assert any(abs(x - part) <= 1e-6 * abs(part) for x in numbers), (part, findings[0])

  with pytest.raises(checks.SquadExportError,
                     match=r"^squad/mobilebert_int8_384\.tflite does not conform to TFLite's "
                           r"8-bit quantization spec \(1 finding\): ") as e:
    quant_spec.check_or_raise("mobilebert_int8_384.tflite", broken, mode="full_integer")
  message = str(e.value)
  assert f"tensor {tensor!r}" in message and f"[{rule}]" in message
  assert f"Op#{op_index} " in message
  assert "is not published (fix: " in message


@pytest.mark.parametrize("rule, edit", BREAKAGES[:3], ids=[r for r, _ in BREAKAGES[:3]])
def test_broken_dynamic_range_weights_are_named(models, rule, edit):
  m = _Model(models["dynamic_range"])
  op_index, tensor, _ = edit(m)
  findings = quant_spec.spec_findings(m.content(), mode="dynamic_range")
  assert [(f.op_index, f.tensor, f.rule) for f in findings] == [(op_index, tensor, rule)]
  with pytest.raises(checks.SquadExportError, match=re.escape(f"[{rule}]")):
    quant_spec.check_or_raise("dyn.tflite", m.content(), mode="dynamic_range")


def test_check_lists_at_most_five_findings(models):
  """Every dense layer's weight zero point broken: 4 findings; + softmax, reshape: 6."""
  m = _Model(models["full_integer"])
  for _, op in m.ops("FULLY_CONNECTED"):
    if m.is_const(op.inputs[1]):
      m.tensor(op.inputs[1]).quantization.zeroPoint[0] = -1
  _softmax_output(m)
  _reshape_same_scale(m)
  with pytest.raises(checks.SquadExportError, match=r"\(6 findings\): ") as e:
    quant_spec.check_or_raise("x.tflite", m.content(), mode="full_integer")
  assert len(re.findall(r" \[[a-z_]+\]", str(e.value))) == 5


def _island_model(fn) -> bytes:
  """int8 with SOFTMAX kept float (DEQUANTIZE -> SOFTMAX -> QUANTIZE), as the public
  `QuantizationDebugger`'s `denylisted_ops` writes it."""
  conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()],
                                                         tf.Module())
  conv.optimizations = [tf.lite.Optimize.DEFAULT]

  def dataset():
    rng = np.random.default_rng(1)
    for _ in range(4):
      yield [rng.normal(size=[4, 32]).astype(np.float32)]
  conv.representative_dataset = dataset
  debugger = tf.lite.experimental.QuantizationDebugger(
      converter=conv, debug_dataset=dataset,
      debug_options=tf.lite.experimental.QuantizationDebugOptions(
          denylisted_ops=["SOFTMAX"]))
  return debugger.get_nondebug_quantized_model()


def test_float_ops_allow_only_dequantize_op_quantize_islands():
  content = _island_model(_tiny_fn())
  m = _Model(content)
  islands = []
  for i, op in m.ops("SOFTMAX"):
    x, y = op.inputs[0], op.outputs[0]
    assert m.tensor(x).type == _FLOAT32 and m.tensor(y).type == _FLOAT32
    producer = next(p for p in m.sub.operators if x in list(p.outputs))
    assert m.op_name(producer) == "DEQUANTIZE" and set(m.consumers(y)) == {"QUANTIZE"}
    islands += [(i, m.name(x), "float_activation"), (i, m.name(y), "float_activation")]
  assert len(islands) == 4

  findings = quant_spec.spec_findings(content, mode="full_integer")
  assert [(f.op_index, f.tensor, f.rule) for f in findings] == islands
  assert quant_spec.spec_findings(content, mode="full_integer", float_ops=("SOFTMAX",)) == []
  assert quant_spec.check_or_raise("x.tflite", content, mode="full_integer",
                                   float_ops=["SOFTMAX"]) is None

  # A float tensor that leaves the island (here fed to a BATCH_MATMUL in place of the
  # QUANTIZE's int8 output) is a finding again, at the float op.
  i, op = _feeds_quantize_then_batch_matmul(m)
  y = op.outputs[0]
  quantized = next(q.outputs[0] for q in m.sub.operators
                   if m.op_name(q) == "QUANTIZE" and y in list(q.inputs))
  bmm = next(b for _, b in m.ops("BATCH_MATMUL") if quantized in list(b.inputs))
  bmm.inputs = [y if t == quantized else t for t in bmm.inputs]
  findings = quant_spec.spec_findings(m.content(), mode="full_integer",
                                      float_ops=("SOFTMAX",))
  assert [(f.op_index, f.tensor, f.rule) for f in findings] == [
      (i, m.name(y), "float_activation")], findings


def _feeds_quantize_then_batch_matmul(m):
  """(op index, op) of the float SOFTMAX whose QUANTIZE feeds a BATCH_MATMUL."""
  for i, op in m.ops("SOFTMAX"):
    for q in m.sub.operators:
      if m.op_name(q) == "QUANTIZE" and op.outputs[0] in list(q.inputs) and \
          "BATCH_MATMUL" in m.consumers(q.outputs[0]):
        return i, op
  raise AssertionError("no SOFTMAX -> QUANTIZE -> BATCH_MATMUL in the model")


def test_unknown_mode_and_non_tflite_bytes_raise(models):
  with pytest.raises(ValueError, match=r"mode='int8' is not one of \['full_integer', "
                                       r"'dynamic_range'\]"):
    quant_spec.spec_findings(models["full_integer"], mode="int8")
  with pytest.raises(ValueError, match="mode='hybrid'"):
    quant_spec.check_or_raise("x.tflite", models["full_integer"], mode="hybrid")
  with pytest.raises(ValueError, match="not a TFLite flatbuffer"):
    quant_spec.spec_findings(b"\x00" * 64)
  with pytest.raises(ValueError, match=r"float_ops=\['SOFTMAX'\] only applies to "
                                       r"mode='full_integer'"):
    quant_spec.spec_findings(models["dynamic_range"], mode="dynamic_range",
                             float_ops=("SOFTMAX",))
  with pytest.raises(ValueError, match=r"\['SOFTMAXX'\] are not TFLite builtin op names"):
    quant_spec.check_or_raise("x.tflite", models["full_integer"], mode="full_integer",
                              float_ops=("SOFTMAXX",))
  with pytest.raises(ValueError, match="not the string 'SOFTMAX'"):
    quant_spec.spec_findings(models["full_integer"], float_ops="SOFTMAX")
  with pytest.raises(ValueError, match="boundaries of a float island"):
    quant_spec.spec_findings(models["full_integer"], float_ops=("DEQUANTIZE",))


@pytest.mark.slow
def test_tiny_squad_int8_variants_conform(tmp_path):
  """`tflite_export.convert_int8` on the tiny 2-block checkpoint (seq 128), as exported.

  The NNAPI variant (attention as FULLY_CONNECTED with runtime weights) is full-integer.
  The plain variant may keep SOFTMAX in float32 between DEQUANTIZE and QUANTIZE (for
  XNNPACK, `tflite_export.INT8_FLOAT_OPS`) and has its BATCH_MATMUL right-hand operands
  rewritten to zero point 0 (`quant_rewrite`): it conforms with SOFTMAX as a float op,
  and without it the only findings are the float32 edges of its SOFTMAX ops.
  """
  cfg = testutil.tiny_config()
  prefix = testutil.write_checkpoint(str(tmp_path / "ckpt"), cfg, seed=11, with_squad=True)
  model, _ = converter.load_model(prefix, MobileBertConfig.from_dict(cfg), with_mlm=False)
  weights = forward.QaWeights.from_model(model)
  calibration = []
  for seed in range(2):
    batch = testutil.encoder_inputs(30522, batch=2, seq_length=SEQ_LENGTH, seed=seed)
    calibration.append({"input_ids": batch["input_word_ids"][:1],
                        "input_mask": batch["input_mask"][:1],
                        "segment_ids": batch["input_type_ids"][:1]})
  nnapi = tflite_export.convert_int8(weights, calibration, seq_length=SEQ_LENGTH, nnapi=True)
  assert quant_spec.spec_findings(nnapi, mode="full_integer") == []

  plain = tflite_export.convert_int8(weights, calibration, seq_length=SEQ_LENGTH)
  assert quant_spec.spec_findings(plain, mode="full_integer", float_ops=("SOFTMAX",)) == []
  m = _Model(plain)
  float_softmax = {(i, m.name(t)) for i, op in m.ops("SOFTMAX")
                   for t in (op.inputs[0], op.outputs[0]) if m.tensor(t).type == _FLOAT32}
  findings = quant_spec.spec_findings(plain, mode="full_integer")
  assert {(f.op_index, f.tensor) for f in findings} == float_softmax, findings
  assert {f.rule for f in findings} <= {"float_activation"}
