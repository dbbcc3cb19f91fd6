"""A written .tflite checked against TensorFlow Lite's 8-bit quantization specification.

`spec_findings(model_content, mode=...)` reads the flatbuffer
(`tflite_graph.Graph`) and returns one
`Finding` per broken rule, [] for a conformant model; `check_or_raise` is the publishing
gate over it (`checks.SquadExportError`).

Source of the rules: "TensorFlow Lite 8-bit quantization specification",
https://www.tensorflow.org/lite/performance/quantization_spec
(`tensorflow/lite/g3doc/performance/quantization_spec.md`): its summary ("Per-axis (aka
per-channel in Conv ops) or per-tensor weights are represented by int8 two's complement
values in the range [-127, 127] with zero-point equal to 0. Per-tensor
activations/inputs are represented by int8 two's complement values in the range
[-128, 127], with a zero-point in range [-128, 127].") and its table "int8 quantized
operator specifications". The quantizer's per-op properties,
`tensorflow/lite/tools/optimize/operator_property.cc` (`GetOperatorProperty`), say which
inputs are real-valued (GATHER's indices, RESHAPE's shape, PAD's paddings are not) and
give the per-axis dimensions and fixed output parameters the table states.

Rules of `mode="full_integer"` (int8 activations), rule id: what [source].

* `quant_params`: every int8 tensor has scales, each finite and > 0, one zero point per
  scale, a per-tensor zero point in [-128, 127] [summary].
* `per_tensor`: every int8 tensor has one scale, but the constant weights of
  FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D [table: "granularity: per-tensor"].
* `float_activation`, `float_constant`: no float tensor (non-constant; constant) on an
  op other than QUANTIZE / DEQUANTIZE [summary: int8 activations].
* `activation_dtype`: non-constant tensors are int8, int32 or bool (not UINT8, INT16,
  ...) [summary].
* `input_dtype`, `output_dtype`: the data operands of FULLY_CONNECTED, CONV_2D,
  DEPTHWISE_CONV_2D, BATCH_MATMUL, the pools and the `FIXED_OUTPUT` ops are int8
  [table].
* `weights_dtype`: the constant weights (input 1) of FULLY_CONNECTED, CONV_2D,
  DEPTHWISE_CONV_2D are int8 [table: "Input 1 (Weight)", "data_type: int8"].
* `weights_zero_point`: every channel's weight zero point is 0 [table: "restriction:
  zero_point = 0"].
* `weights_range`: weight values in [-127, 127], no -128 [table: "range: [-127, 127]"].
* `weights_axis`: weights per-tensor, or per-axis along dimension 0 (FULLY_CONNECTED,
  CONV_2D) or 3 (DEPTHWISE_CONV_2D) with one scale per slice [table: "per-axis (dim =
  0)", "(dim = 3)"; operator_property.cc `per_axis_index`].
* `bias_dtype`, `bias_zero_point`, `bias_scale`: the bias (input 2, if any) is int32
  with zero point 0 and scale[i] = input0_scale * weights_scale[i], to
  `BIAS_SCALE_RTOL` [table: "Input 2 (Bias)", "restriction: (scale, zero_point) =
  (input0_scale * input1_scale[...], 0)"].
* `softmax_output`, `logistic_output`, `tanh_output`, `l2_normalization_output`,
  `log_softmax_output`: the op's output (scale, zero point) is `FIXED_OUTPUT[op]`
  [table: "restriction: (scale, zero_point) = (1.0 / 256.0, -128)" etc.].
* `same_scale`: for `SAME_SCALE_OPS`, the output has exactly the input's scale and zero
  point [table: "restriction: Input and outputs must all have same scale/zero_point"].

FULLY_CONNECTED weights: the table lists them per-tensor, while its summary allows
per-axis weights and TFLite's int8 FULLY_CONNECTED kernel (and the converter's default)
takes one scale per output channel along dimension 0; both are accepted. A
FULLY_CONNECTED whose weights are a runtime tensor (the attention products of the NNAPI
variant) multiplies two activations: both operands are int8 per-tensor, the weight rules
(zero point 0, range, axis) do not apply, the bias rules do. BATCH_MATMUL is not in the
table: both operands int8 per-tensor (`input_dtype`, `per_tensor`), nothing else.

Exempt in full_integer mode: int32 tensors (the model's int32 inputs, their reshapes,
GATHER indices, RESHAPE shapes, PAD paddings, ...: index and shape operands, not
quantized data; biases are checked by the bias rules) and bool tensors (comparison
results). STRIDED_SLICE is not in `SAME_SCALE_OPS`: the spec does not state the
restriction for it (operator_property.cc does); nor are SPLIT, PACK, SUB, etc.

Float islands (`float_ops`, full_integer mode only): a model may run chosen builtin ops
in float32 between DEQUANTIZE and QUANTIZE (the int8 variant keeps SOFTMAX in float for
XNNPACK: `tflite_export.INT8_FLOAT_OPS`). For an op named in `float_ops`, a float32
input produced by a DEQUANTIZE and a float32 output read only by QUANTIZE ops (or
leaving the model) are not `float_activation`; any other float tensor still is, so a
float region cannot grow beyond the named op.

Rules of `mode="dynamic_range"` (hybrid models: float32 activations, int8 constant
weights computed on the fly): only the weight rules of FULLY_CONNECTED, CONV_2D and
DEPTHWISE_CONV_2D (`weights_dtype`, `quant_params` of the weights, `weights_zero_point`,
`weights_range`, `weights_axis`); float activations and float biases are expected. A
float weight with fewer than `DYNAMIC_RANGE_MIN_ELEMENTS` elements is what the
converter leaves unquantized by design (`QuantizationSpecs::minimum_elements_for_weights`,
`tensorflow/compiler/mlir/lite/quantization/quantization_config.h`), not a finding; a
larger one is `weights_dtype`.
"""

import dataclasses
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np

from hub_export.squad import checks
from hub_export.squad.tflite_graph import OP_NAMES, Graph, Tensor

MODES = ("full_integer", "dynamic_range")

# (scale, zero point) the table fixes for an op's int8 output.
FIXED_OUTPUT = {
    "SOFTMAX": (1.0 / 256.0, -128),
    "LOGISTIC": (1.0 / 256.0, -128),
    "TANH": (1.0 / 128.0, 0),
    "L2_NORMALIZATION": (1.0 / 128.0, 0),
    "LOG_SOFTMAX": (16.0 / 256.0, 127),
}
# Ops whose table entry says "Input and outputs must all have same scale/zero_point",
# -> the input positions it binds (all inputs for CONCATENATION ("Input ...") and
# MAXIMUM / MINIMUM (operator_property.cc: arbitrary_inputs), else the data input 0).
SAME_SCALE_OPS = {
    "AVERAGE_POOL_2D": (0,), "BATCH_TO_SPACE_ND": (0,), "CONCATENATION": None,
    "GATHER": (0,), "MAXIMUM": None, "MAX_POOL_2D": (0,), "MINIMUM": None, "PAD": (0,),
    "PADV2": (0,), "RESHAPE": (0,), "RESIZE_BILINEAR": (0,), "SLICE": (0,),
    "SPACE_TO_BATCH_ND": (0,), "SPACE_TO_DEPTH": (0,), "SQUEEZE": (0,), "TRANSPOSE": (0,),
}
# Weighted ops -> the per-axis dimension of their weights (input 1).
WEIGHT_AXIS = {"FULLY_CONNECTED": 0, "CONV_2D": 0, "DEPTHWISE_CONV_2D": 3}
# Other ops whose data inputs must be int8 (int32 there is not an index operand).
_INT8_INPUTS = {"BATCH_MATMUL": (0, 1), "AVERAGE_POOL_2D": (0,), "MAX_POOL_2D": (0,),
                **{op: (0,) for op in FIXED_OUTPUT}}
# float32 products of float32 scales round at ~6e-8; the kernels' own bound is looser
# (kernel_util.cc `GetQuantizedConvolutionMultipler`: |diff| / output_scale <= 0.02).
BIAS_SCALE_RTOL = 1e-5
FIXED_OUTPUT_RTOL = 1e-6  # 1/256, 1/128 and 1/16 are exact in float32.
WEIGHT_MIN = -127  # "range: [-127, 127]"
ZERO_POINT_RANGE = (-128, 127)
DYNAMIC_RANGE_MIN_ELEMENTS = 1024

_FLOAT_TYPES = ("FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16")
_EXEMPT_TYPES = ("INT32", "BOOL")
_QUANTIZE_OPS = ("QUANTIZE", "DEQUANTIZE")


@dataclasses.dataclass(frozen=True)
class Finding:
  """One broken rule.

  Attributes:
    op_index: the operator's position in subgraph 0.
    op: its builtin name, e.g. "FULLY_CONNECTED".
    tensor: the name of the offending tensor.
    rule: the rule id (module docstring), e.g. "weights_zero_point".
    detail: what the spec asks and what the tensor has.
  """
  op_index: int
  op: str
  tensor: str
  rule: str
  detail: str

  def __str__(self):
    return f"Op#{self.op_index} {self.op}, tensor {self.tensor!r}: {self.detail} [{self.rule}]"


def _g(x: float) -> str:
  return f"{x:.9g}"


def _quant_params_problem(t: Tensor) -> Optional[str]:
  """`quant_params` for an int8 tensor: None if its parameters are usable."""
  if t.scales.size == 0:
    return "int8 tensor has no quantization parameters (scale, zero point)"
  bad = [i for i, s in enumerate(t.scales) if not (math.isfinite(float(s)) and s > 0)]
  if bad:
    where = f" in channel {bad[0]}" if t.scales.size > 1 else ""
    return f"scale must be finite and > 0 (got {_g(float(t.scales[bad[0]]))}{where})"
  if t.zero_points.size != t.scales.size:
    return (f"needs one zero point per scale (got {t.zero_points.size} zero points for "
            f"{t.scales.size} scales)")
  if t.scales.size == 1:
    z = int(t.zero_points[0])
    if not ZERO_POINT_RANGE[0] <= z <= ZERO_POINT_RANGE[1]:
      return f"zero point must be in [-128, 127] (got {z})"
  return None


def _weight_rules(g: Graph, op: str, w: Tensor, *, mode: str) -> List[Tuple[str, str]]:
  """(rule, detail) of a constant weight tensor (input 1 of a `WEIGHT_AXIS` op)."""
  if w.dtype != "INT8":
    size = int(np.prod(w.shape)) if w.shape else 1
    if mode == "dynamic_range" and w.dtype in _FLOAT_TYPES and \
        size < DYNAMIC_RANGE_MIN_ELEMENTS:
      return []  # Left in float by the converter (module docstring).
    return [("weights_dtype", f"weights must be int8 (got {w.dtype}, {size} elements)")]
  problem = _quant_params_problem(w)
  if problem:
    return [("quant_params", problem)] if mode == "dynamic_range" else []
  out = []
  axis = WEIGHT_AXIS[op]
  n = w.scales.size
  if n > 1:
    if w.quantized_dimension != axis:
      out.append(("weights_axis", f"per-channel weights must be quantized along dimension "
                                  f"{axis} (got quantized_dimension {w.quantized_dimension})"))
    elif len(w.shape) <= axis or w.shape[axis] != n:
      out.append(("weights_axis", f"per-channel weights need one scale per slice of "
                                  f"dimension {axis} (shape {list(w.shape)}, {n} scales)"))
  nonzero = np.flatnonzero(w.zero_points)
  if nonzero.size:
    c = int(nonzero[0])
    got = f"got {int(w.zero_points[c])}" + (f" in channel {c}" if n > 1 else "")
    if nonzero.size > 1:
      got += f"; {nonzero.size} of {n} channels nonzero"
    out.append(("weights_zero_point", f"weights zero point must be 0 ({got})"))
  values = g.int8_values(w)
  low = values < WEIGHT_MIN
  if low.any():
    first = tuple(int(i) for i in np.unravel_index(int(np.argmax(low)), values.shape))
    out.append(("weights_range",
                f"weights must be in [-127, 127] (got {int(values[first])} in "
                f"{int(low.sum())} of {values.size} values, first at index {list(first)})"))
  return out


def _bias_rules(x: Tensor, w: Tensor, b: Tensor) -> List[Tuple[str, str]]:
  """(rule, detail) of the int32 bias of an op with int8 input x and int8 weights w."""
  if b.dtype != "INT32":
    return [("bias_dtype", f"bias must be int32 (got {b.dtype})")]
  if b.scales.size == 0:
    return [("bias_scale", "bias has no quantization parameters (needs scale input0_scale "
                           "* weights_scale, zero point 0)")]
  out = []
  nonzero = np.flatnonzero(b.zero_points)
  if nonzero.size:
    c = int(nonzero[0])
    out.append(("bias_zero_point", f"bias zero point must be 0 (got "
                                   f"{int(b.zero_points[c])} in channel {c})"))
  if x.scales.size != 1 or w.scales.size == 0:
    return out  # `per_tensor` / `quant_params` report the operands.
  want = np.float64(x.scales[0]) * w.scales.astype(np.float64)
  if b.scales.size != want.size and want.size != 1:
    out.append(("bias_scale", f"bias needs one scale per weight channel ({want.size}), got "
                              f"{b.scales.size}"))
    return out
  want = np.broadcast_to(want, b.scales.shape)
  rel = np.abs(b.scales.astype(np.float64) - want) / want
  off = np.flatnonzero(~(rel <= BIAS_SCALE_RTOL))
  if off.size:
    c = int(off[0])
    ws = float(w.scales[c] if w.scales.size > 1 else w.scales[0])
    where = f" in channel {c}; {off.size} of {b.scales.size} channels off" \
        if b.scales.size > 1 else ""
    out.append(("bias_scale", f"bias scale must be input scale * weights scale = "
                              f"{_g(float(x.scales[0]))} * {_g(ws)} = {_g(float(want[c]))} "
                              f"(got {_g(float(b.scales[c]))}{where}, rel. error "
                              f"{float(rel[c]):.3g})"))
  return out


def _in_float_island(g: Graph, t: Tensor, op: str, float_ops: Sequence[str]) -> bool:
  """Whether `t` is a float32 edge of an allowed float op (module docstring)."""
  if op not in float_ops or t.dtype != "FLOAT32" or t.is_const:
    return False
  if g.producer.get(t.index) == op:  # An output of the float op.
    return all(c == "QUANTIZE" for c in g.consumers.get(t.index, ())) and (
        t.index in g.outputs or bool(g.consumers.get(t.index)))
  return g.producer.get(t.index) == "DEQUANTIZE"


def _tensor_rules(t: Tensor, op: str, *, weight: bool, island: bool = False
                  ) -> List[Tuple[str, str]]:
  """Rules on one tensor of an op in full_integer mode: types and int8 parameters."""
  out = []
  if op not in _QUANTIZE_OPS and not weight and not island:
    if t.dtype in _FLOAT_TYPES:
      out.append(("float_constant" if t.is_const else "float_activation",
                  f"{t.dtype} {'constant' if t.is_const else 'activation'} in a "
                  "full-integer model (int8 expected; float only at QUANTIZE/DEQUANTIZE)"))
    elif not t.is_const and t.dtype not in ("INT8",) + _EXEMPT_TYPES:
      out.append(("activation_dtype", f"activation must be int8 (got {t.dtype})"))
  if t.dtype == "INT8":
    problem = _quant_params_problem(t)
    if problem:
      out.append(("quant_params", problem))
    elif t.scales.size > 1 and not weight and not (op == "DEQUANTIZE" and t.is_const):
      out.append(("per_tensor", f"int8 {'constant' if t.is_const else 'activation'} must "
                                f"be quantized per-tensor (got {t.scales.size} scales)"))
  return out


def _int8_required(t: Optional[Tensor], rule: str, what: str) -> List[Tuple[str, str]]:
  """`input_dtype` / `output_dtype`; floats are left to `float_activation`."""
  if t is None or t.dtype == "INT8" or t.dtype in _FLOAT_TYPES:
    return []
  return [(rule, f"{what} must be int8 (got {t.dtype})")]


def _usable(t: Optional[Tensor]) -> bool:
  return (t is not None and t.dtype == "INT8" and t.scales.size == 1 and
          _quant_params_problem(t) is None)


def _op_rules(g: Graph, op: str, ins: Sequence[Optional[Tensor]],
              outs: Sequence[Tensor]) -> List[Tuple[Tensor, str, str]]:
  """(tensor, rule, detail) of the table's per-op rules in full_integer mode."""
  out = []

  def add(t, found):
    out.extend((t, rule, detail) for rule, detail in found)
  x = ins[0] if ins else None
  y = outs[0] if outs else None
  if op in WEIGHT_AXIS and len(ins) > 1 and ins[1] is not None:
    w = ins[1]
    add(x, _int8_required(x, "input_dtype", "input 0"))
    if w.is_const:
      add(w, _weight_rules(g, op, w, mode="full_integer"))
    else:  # An activation x activation product: per-tensor (`_tensor_rules`).
      add(w, _int8_required(w, "input_dtype", "runtime weights (input 1)"))
    b = ins[2] if len(ins) > 2 else None
    if b is not None and _usable(x) and w.dtype == "INT8" and \
        _quant_params_problem(w) is None:
      add(b, _bias_rules(x, w, b))
    add(y, _int8_required(y, "output_dtype", "output 0"))
  for pos in _INT8_INPUTS.get(op, ()):
    if pos < len(ins):
      add(ins[pos], _int8_required(ins[pos], "input_dtype", f"input {pos}"))
  if op in FIXED_OUTPUT and _usable(y):
    scale, zero_point = FIXED_OUTPUT[op]
    got_s, got_z = float(y.scales[0]), int(y.zero_points[0])
    if abs(got_s - scale) > FIXED_OUTPUT_RTOL * scale or got_z != zero_point:
      add(y, [(f"{op.lower()}_output",
               f"{op} output (scale, zero point) must be ({_g(scale)}, {zero_point}) "
               f"(got ({_g(got_s)}, {got_z}))")])
  if op in SAME_SCALE_OPS and _usable(y):
    positions = SAME_SCALE_OPS[op] or range(len(ins))
    for pos in positions:
      t = ins[pos] if pos < len(ins) else None
      if not _usable(t):
        continue  # int32 index flow, or reported by the tensor rules.
      ts, tz = np.float32(t.scales[0]), int(t.zero_points[0])
      ys, yz = np.float32(y.scales[0]), int(y.zero_points[0])
      if ts != ys or tz != yz:
        offender = y if positions == (0,) else t
        add(offender, [("same_scale",
                        f"{op} input {pos} {t.name!r} and output {y.name!r} must have the "
                        f"same scale/zero point (input ({_g(float(ts))}, {tz}), output "
                        f"({_g(float(ys))}, {yz}))")])
  return out


def _check_arguments(mode: str, float_ops: Sequence[str]) -> Tuple[str, ...]:
  if mode not in MODES:
    raise ValueError(f"mode={mode!r} is not one of {list(MODES)}")
  if isinstance(float_ops, str):
    raise ValueError(f"float_ops must be a sequence of op names, e.g. ({float_ops!r},), "
                     f"not the string {float_ops!r}")
  float_ops = tuple(float_ops)
  unknown = sorted(set(float_ops) - set(OP_NAMES.values()))
  if unknown:
    raise ValueError(f"float_ops {unknown} are not TFLite builtin op names (e.g. "
                     "'SOFTMAX', 'LOGISTIC')")
  if float_ops and mode != "full_integer":
    raise ValueError(f"float_ops={list(float_ops)} only applies to mode='full_integer' "
                     f"(mode={mode!r} expects float activations everywhere)")
  if set(float_ops) & set(_QUANTIZE_OPS):
    raise ValueError(f"float_ops={list(float_ops)}: QUANTIZE and DEQUANTIZE are the "
                     "boundaries of a float island, not ops inside one")
  return float_ops


def spec_findings(model_content: bytes, *, mode: str = "full_integer",
                  float_ops: Sequence[str] = ()) -> List[Finding]:
  """Where a .tflite breaks TFLite's 8-bit quantization spec (module docstring).

  Args:
    model_content: the bytes of a .tflite flatbuffer (one subgraph).
    mode: "full_integer" (int8 activations: every rule) or "dynamic_range" (float32
      activations, int8 constant weights: the weight rules only).
    float_ops: full_integer only: builtin op names (e.g. ("SOFTMAX",)) allowed to run
      in float32 between DEQUANTIZE and QUANTIZE (module docstring, "Float islands").

  Returns:
    The findings in operator order, tensor rules first (each tensor's type and int8
    parameters are reported once, at the first op that uses it), then the op's table
    rules; [] if the model conforms.

  Raises:
    ValueError: an unknown `mode` (lists `MODES`), `float_ops` that are not builtin op
      names or given with mode "dynamic_range", bytes that are not a TFLite
      flatbuffer, or a model with more than one subgraph.
  """
  float_ops = _check_arguments(mode, float_ops)
  g = Graph(model_content)
  findings = []
  seen = set()
  for i, (op, ins, outs) in enumerate(g.ops()):
    weight = (ins[1] if op in WEIGHT_AXIS and len(ins) > 1 and ins[1] is not None and
              ins[1].is_const else None)
    if mode == "dynamic_range":
      if weight is not None and weight.index not in seen:
        seen.add(weight.index)
        findings += [Finding(i, op, weight.name, rule, detail)
                     for rule, detail in _weight_rules(g, op, weight, mode=mode)]
      continue
    for t in [t for t in list(ins) + list(outs) if t is not None]:
      island = _in_float_island(g, t, op, float_ops)
      for rule, detail in _tensor_rules(t, op, weight=t is weight, island=island):
        if (t.index, rule) not in seen:
          seen.add((t.index, rule))
          findings.append(Finding(i, op, t.name, rule, detail))
    findings += [Finding(i, op, t.name, rule, detail)
                 for t, rule, detail in _op_rules(g, op, ins, outs)]
  return findings


def check_or_raise(name: str, model_content: bytes, *, mode: str,
                   float_ops: Sequence[str] = ()) -> None:
  """The publishing gate: raises unless `spec_findings(model_content, ...)` is [].

  Args:
    name: the file inside squad/, named in the error.
    model_content: the .tflite bytes.
    mode: "full_integer" or "dynamic_range" (`spec_findings`).
    float_ops: ops allowed in float32 between DEQUANTIZE and QUANTIZE (`spec_findings`).

  Raises:
    checks.SquadExportError: the model breaks the spec; the message gives the number of
      findings and the first 5 (op, tensor, what, rule id).
    ValueError: arguments or bytes that `spec_findings` refuses.
  """
  findings = spec_findings(model_content, mode=mode, float_ops=float_ops)
  if not findings:
    return None
  n = len(findings)
  raise checks.SquadExportError(
      f"squad/{name} does not conform to TFLite's 8-bit quantization spec ({n} "
      f"finding{'s' if n != 1 else ''}): {'; '.join(str(f) for f in findings[:5])}"
      f"{'; ...' if n > 5 else ''}; a non-conformant int8 model is not published (fix: "
      "quantize with the TFLite converter and keep the quantization parameters it wrote, "
      "or make the post-conversion rewrite keep the rule in brackets; rules: "
      "hub_export/squad/quant_spec.py)")
