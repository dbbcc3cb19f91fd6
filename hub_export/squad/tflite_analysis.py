"""Reading a written SQuAD .tflite: running it, and the static checks of its flatbuffer.

* `interpreter`, `run`: the LiteRT interpreter (`ai_edge_litert`, XNNPACK CPU) on MLPerf
  input dicts, inputs and outputs matched by name.
* `io_details`: the signature's inputs and outputs, and the subgraph's tensor order.
* `op_signatures`, `op_counts`, `weight_quantization`: what the flatbuffer holds.
* `gpu_findings`: the TFLite GPU delegate's compatibility rules applied per op;
  `official_gpu_analyzer`: TensorFlow's own analyzer, recorded beside it.
* `nnapi_findings`: ops off `NNAPI_INT8_OPS` or with float data.
* `xnnpack_placement`: how many XNNPACK partitions the interpreter makes and which ops
  run outside them.

GPU check. `tf.lite.experimental.Analyzer.analyze(..., gpu_compatibility=True)` is run and
its verdict recorded, but in the pip builds of TensorFlow 2.20.0 and ai-edge-litert 2.3.0
its checker is compiled out: it reports "looks compatible" for every model (even TOPK_V2;
`tests/hub_export/squad/test_tflite_analysis.py` shows it), and the rule strings of
`tensorflow/lite/tools/versioning/gpu_compatibility.cc` are absent from their binaries.
`gpu_findings` therefore applies those rules itself (a port of
`CheckGpuDelegateCompatibility` for the ops that MobileBERT graphs contain; any other op
is "Not supported op", as the C++ default branch says).
"""

import collections
import contextlib
import io
from typing import Iterable, List, Optional

import numpy as np
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema

from hub_export.squad import constants
from hub_export.squad import model as qa_model
from hub_export.squad.tflite_graph import OP_NAMES, TYPE_NAMES

# NNAPI int8 allow-list: TFLite builtin op -> NNAPI operation, for
# ANEURALNETWORKS_TENSOR_QUANT8_ASYMM_SIGNED operands (NNAPI feature level 4 = Android
# 11, API 30, which added signed int8). Source: the NNAPI operation reference
# (developer.android.com/ndk/reference/group/neural-networks, "Supported tensor
# OperandCode" of each operation) and TFLite's NNAPI delegate
# (`tensorflow/lite/delegates/nnapi/nnapi_delegate.cc`, `NNAPIDelegateKernel::Validate`,
# `kMinSdkVersionForNNAPI13`). BATCH_MATMUL is left out: NNAPI added BATCH_MATMUL only
# at feature level 6 (API 31) and the TFLite delegate does not map it.
NNAPI_INT8_OPS = {
    "ADD": "ANEURALNETWORKS_ADD",
    "MUL": "ANEURALNETWORKS_MUL",
    "SUB": "ANEURALNETWORKS_SUB",
    "FULLY_CONNECTED": "ANEURALNETWORKS_FULLY_CONNECTED",
    "CONV_2D": "ANEURALNETWORKS_CONV_2D",
    "SOFTMAX": "ANEURALNETWORKS_SOFTMAX",
    "RESHAPE": "ANEURALNETWORKS_RESHAPE",
    "TRANSPOSE": "ANEURALNETWORKS_TRANSPOSE",
    "CONCATENATION": "ANEURALNETWORKS_CONCATENATION",
    "GATHER": "ANEURALNETWORKS_GATHER",
    "PAD": "ANEURALNETWORKS_PAD",
    "STRIDED_SLICE": "ANEURALNETWORKS_STRIDED_SLICE",
    "SLICE": "ANEURALNETWORKS_SLICE",
    "QUANTIZE": "ANEURALNETWORKS_QUANTIZE",
    "DEQUANTIZE": "ANEURALNETWORKS_DEQUANTIZE",
    "RELU": "ANEURALNETWORKS_RELU",
    "TANH": "ANEURALNETWORKS_TANH",
    "MEAN": "ANEURALNETWORKS_MEAN",
}



def interpreter(model_content: bytes, num_threads: int = 1, custom_op_registerers=None):
  """A LiteRT interpreter (`ai_edge_litert`, XNNPACK CPU) with tensors allocated; with
  `custom_op_registerers` (e.g. tensorflow-text's `SELECT_TFTEXT_OPS`) those kernels too."""
  from ai_edge_litert import interpreter as litert  # pylint: disable=g-import-not-at-top
  if custom_op_registerers:
    interp = litert.InterpreterWithCustomOps(
        model_content=model_content, num_threads=num_threads,
        custom_op_registerers=custom_op_registerers)
  else:
    interp = litert.Interpreter(model_content=model_content, num_threads=num_threads)
  interp.allocate_tensors()
  return interp


def run(model_content_or_interp, batches: Iterable[dict]) -> dict:
  """Runs a variant on MLPerf input dicts; returns stacked float32 [N, S] outputs.

  Inputs are matched by name (`input_ids`, `input_mask`, `segment_ids`), outputs read by
  name.

  Raises:
    ValueError: the model's outputs are not named `end_logits`, `start_logits` (lists
      them).
  """
  interp = model_content_or_interp
  if isinstance(interp, (bytes, bytearray)):
    interp = interpreter(bytes(interp))
  runner = interp.get_signature_runner()

  def run_one(batch):
    out = runner(**{k: np.asarray(batch[k], np.int32) for k in constants.INPUT_NAMES})
    missing = [k for k in constants.OUTPUT_NAMES if k not in out]
    if missing:
      raise ValueError(f"the TFLite model has outputs {sorted(out)}, expected "
                       f"{list(constants.OUTPUT_NAMES)}")
    return out
  return qa_model.stack_outputs(run_one, batches)


def _read_model(model_content: bytes):
  return schema.Model.GetRootAsModel(bytearray(model_content), 0)


def op_signatures(model_content: bytes) -> list:
  """Per operator of subgraph 0: dict `op`, `inputs`, `outputs`, `options`.

  Each tensor: dict `type` (e.g. "FLOAT32"), `dims` (list), `is_const` (has data),
  `per_channel` (quantization scale count > 1). `options` is the builtin options
  object (schema `*OptionsT`) or None.
  """
  m = _read_model(model_content)
  sub = m.Subgraphs(0)
  codes = [m.OperatorCodes(i) for i in range(m.OperatorCodesLength())]

  def tensor(idx):
    if idx < 0:
      return None
    t = sub.Tensors(idx)
    buf = m.Buffers(t.Buffer())
    q = t.Quantization()
    return {"type": TYPE_NAMES.get(t.Type(), str(t.Type())),
            "dims": [int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else [],
            "is_const": bool(buf is not None and (buf.DataLength() > 0 or buf.Size() > 0)),
            "per_channel": bool(q is not None and q.ScaleLength() > 1),
            "name": t.Name().decode()}
  out = []
  for i in range(sub.OperatorsLength()):
    op = sub.Operators(i)
    code = codes[op.OpcodeIndex()]
    op_id = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    name = OP_NAMES.get(op_id, str(op_id))
    if name == "CUSTOM":
      name = "CUSTOM:" + code.CustomCode().decode()
    opt = schema.OperatorT.InitFromObj(op).builtinOptions
    out.append({"op": name,
                "inputs": [tensor(int(j)) for j in op.InputsAsNumpy()] if op.InputsLength() else [],
                "outputs": [tensor(int(j)) for j in op.OutputsAsNumpy()],
                "options": opt})
  return out


def op_counts(model_content: bytes) -> dict:
  """op name -> number of operators, for the manifest and the README table."""
  counts = {}
  for sig in op_signatures(model_content):
    counts[sig["op"]] = counts.get(sig["op"], 0) + 1
  return dict(sorted(counts.items()))


def official_gpu_analyzer(model_content: bytes) -> dict:
  """Runs `tf.lite.experimental.Analyzer.analyze(gpu_compatibility=True)`.

  Returns:
    dict `compatible` (bool, its final verdict), `warnings` (its "GPU COMPATIBILITY
    WARNING" lines). See the module docstring for why this verdict is always True with
    the pip builds of TensorFlow 2.20.
  """
  buf = io.StringIO()
  with contextlib.redirect_stdout(buf):
    tf.lite.experimental.Analyzer.analyze(model_content=model_content,
                                          gpu_compatibility=True)
  text = buf.getvalue()
  warnings_ = [l.strip() for l in text.splitlines() if "GPU COMPATIBILITY WARNING" in l]
  return {"compatible": "looks compatible with GPU delegate" in text and not warnings_,
          "warnings": warnings_}


def _gpu_rule(sig) -> Optional[str]:
  """`CheckGpuDelegateCompatibility` (gpu_compatibility.cc) for one op; None if OK."""
  op, ins, outs, opt = sig["op"], [t for t in sig["inputs"] if t], sig["outputs"], sig["options"]
  runtime = [t for t in ins if not t["is_const"]]
  consts = [t for t in ins if t["is_const"]]
  if op in ("ADD", "MUL"):
    if len(ins) != 2:
      return f"{op} requires two input tensors."
    a, b = ins[0]["dims"], ins[1]["dims"]
    if len(a) > 1 and len(b) > 1 and len(a) != len(b):
      longer, shorter = (a, b) if len(a) >= len(b) else (b, a)
      for x, y in zip(reversed(longer), reversed(shorter)):
        if x != y and x != 1 and y != 1:
          return f"Doesn't support broadcasting - input0: {a}, input1: {b}"
    if op == "MUL" and len(a) == len(b):
      first_smaller = any(x < y for x, y in zip(a, b))
      second_smaller = any(y < x for x, y in zip(a, b))
      if first_smaller and second_smaller:
        return "MUL requires one tensor that not less than second in all dimensions."
    return None
  if op == "BATCH_MATMUL":
    return None if len(ins) == 2 and len(outs) == 1 else "Expected 2 inputs and 1 output"
  if op == "CAST":
    i, o = ins[0]["type"], outs[0]["type"]
    ok = ((i == "BOOL" and o in ("FLOAT16", "FLOAT32")) or
          (i in ("FLOAT16", "FLOAT32") and o == "BOOL") or
          (i in ("FLOAT32", "INT32") and o in ("FLOAT32", "INT32")))
    return None if ok else f"Not supported Cast case. Input type: {i} and output type: {o}"
  if op in ("CONCATENATION", "RELU", "RELU6", "LEAKY_RELU", "PACK", "SPLIT", "SPLIT_V",
            "PRELU", "RELU_N1_TO_1"):
    return None
  if op == "DEQUANTIZE":
    return "Unsupported dequantization type." if ins[0]["type"] == "INT16" else None
  if op == "QUANTIZE":
    return None if len(runtime) == 1 else "QUANTIZE needs 1 runtime input"
  if op == "FULLY_CONNECTED":
    if opt is not None and getattr(opt, "weightsFormat", 0) != 0:
      return f"Unsupported FullyConnected weights format: {opt.weightsFormat}"
    if len(runtime) > 2:
      return "FullyConnected doesn't support more than 2 runtime inputs."
    if ins[0]["is_const"]:
      return "FullyConnected doesn't support constant input."
    if opt is not None and getattr(opt, "keepNumDims", False) and \
        len(ins[0]["dims"]) != len(outs[0]["dims"]):
      return ("Input and output dimensions different and FullyConnected doesn't support "
              "keep_num_dims.")
    return None
  if op == "GATHER":
    if not (len(runtime) == 2 or (len(runtime) == 1 and len(consts) == 1)):
      return "Op can only handle 1 or 2 operand(s)."
    if ins[0]["type"] == "INT32":
      return "Does not accept INT32 input."
    if len(ins[1]["dims"]) != 1:
      return "Only support 1D indices"
    return None if ins[1]["type"] == "INT32" else "Only accept INT32 indices"
  if op in ("RESHAPE", "TRANSPOSE", "TILE"):
    return None if len(runtime) == 1 else f"{op} needs exactly 1 runtime input"
  if op == "SOFTMAX":
    return None if opt is None or opt.beta == 1 else "Softmax.beta != 1 is not supported."
  if op == "STRIDED_SLICE":
    if opt is not None:
      if opt.ellipsisMask:
        return "Slice does not support ellipsis_mask."
      if opt.newAxisMask:
        return "Slice does not support new_axis_mask."
      if opt.shrinkAxisMask:
        return "Slice does not support shrink_axis_mask parameter. "
    if len(ins) < 4:
      return "STRIDED_SLICE requires 4 inputs."
    if len(ins[0]["dims"]) not in (3, 4):
      return "STRIDED_SLICE supports for 3 or 4 dimensional tensors only."
    return None
  if op == "SLICE":
    if len(ins[0]["dims"]) not in (3, 4):
      return "SLICE supports for 3 or 4 dimensional tensors only."
    return None
  if op in ("PAD", "PADV2"):
    pad = ins[1]["dims"]
    if len(pad) != 2 or pad[0] not in (3, 4) or pad[1] != 2:
      return f"Invalid paddings tensor shape: expected 4x2 or 3x2, got {pad}"
    return None
  if op in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD"):
    if len(ins) > 1 and ins[1]["is_const"]:
      return None
    return f"{op} is only supported with constant axes."
  if op in ("ABS", "CEIL", "COS", "ELU", "EXP", "FLOOR", "GELU", "LOG", "LOGISTIC", "NEG",
            "RSQRT", "SIGN", "SIN", "SQRT", "SQUARE", "TANH", "HARD_SWISH"):
    return None if len(runtime) == 1 else "Op needs 1 runtime input"
  if op in ("DIV", "EQUAL", "FLOOR_DIV", "FLOOR_MOD", "GREATER", "GREATER_EQUAL",
            "LOGICAL_AND", "LESS", "LESS_EQUAL", "MAXIMUM", "MINIMUM", "NOT_EQUAL", "POW",
            "SQUARED_DIFFERENCE", "SUB", "ATAN2"):
    if len(runtime) == 2 or (len(runtime) == 1 and len(consts) == 1):
      return None
    return "Op can only handle 1 or 2 operand(s)."
  return f"Not supported op {op}"


def gpu_findings(model_content: bytes) -> List[str]:
  """GPU delegate incompatibilities, one line per op ("Op#i NAME: reason"); [] if none.

  Rules: `tensorflow/lite/tools/versioning/gpu_compatibility.cc`
  (`CheckGpuDelegateCompatibility`, enhanced broadcast, as the offline analyzer uses).
  """
  out = []
  for i, sig in enumerate(op_signatures(model_content)):
    reason = _gpu_rule(sig)
    if reason:
      out.append(f"Op#{i} {sig['op']}: {reason}")
  return out


def nnapi_findings(model_content: bytes) -> List[str]:
  """Ops outside `NNAPI_INT8_OPS` or with non-int8 data, one line each; [] if none.

  Every op's float/int8 activations must be int8 (QUANTIZE/DEQUANTIZE at the model's
  edges and int32 GATHER indices / reshape shapes excepted).
  """
  out = []
  for i, sig in enumerate(op_signatures(model_content)):
    op = sig["op"]
    if op not in NNAPI_INT8_OPS:
      out.append(f"Op#{i} {op}: not on the NNAPI int8 allow-list")
      continue
    if op in ("QUANTIZE", "DEQUANTIZE"):
      continue
    for t in [t for t in sig["inputs"] + sig["outputs"] if t]:
      if t["type"] in ("FLOAT32", "FLOAT16"):
        out.append(f"Op#{i} {op}: float tensor {t['name']!r} (NNAPI int8 needs int8 data)")
        break
  return out


def weight_quantization(model_content: bytes) -> dict:
  """For FULLY_CONNECTED ops: how many have int8 weights, and how many per-channel."""
  fcs = [s for s in op_signatures(model_content) if s["op"] == "FULLY_CONNECTED"]
  int8 = [s for s in fcs if s["inputs"][1]["type"] == "INT8"]
  return {"fully_connected": len(fcs), "int8_weights": len(int8),
          "per_channel": sum(1 for s in int8 if s["inputs"][1]["per_channel"])}


def io_details(model_content: bytes) -> dict:
  """The model's I/O as the interpreter sees it.

  Returns:
    `inputs`, `outputs`: signature tensor name -> (dtype name, shape list);
    `input_order`, `output_order`: the subgraph's input / output tensor names by
    position (what runtimes that feed tensors by index see).
  """
  interp = interpreter(model_content)
  sig = interp.get_signature_list()
  key = next(iter(sig))
  runner = interp.get_signature_runner(key)
  ins = runner.get_input_details()
  outs = runner.get_output_details()
  return {"inputs": {k: (np.dtype(v["dtype"]).name, list(v["shape"])) for k, v in ins.items()},
          "outputs": {k: (np.dtype(v["dtype"]).name, list(v["shape"])) for k, v in outs.items()},
          "input_order": [interp.get_input_details()[i]["name"]
                          for i in range(len(interp.get_input_details()))],
          "output_order": [interp.get_output_details()[i]["name"]
                           for i in range(len(interp.get_output_details()))]}


def xnnpack_placement(model_content: bytes, num_threads: int = 1,
                      custom_op_registerers=None) -> dict:
  """Where LiteRT runs each op of subgraph 0: inside XNNPACK partitions or on its
  builtin kernels (custom ops: `interpreter`'s `custom_op_registerers`).

  The interpreter (`interpreter`, XNNPACK applied by default) lists after delegation
  the model's own nodes and one `DELEGATE` node per XNNPACK partition
  (`Interpreter._get_ops_details`, LiteRT's experimental node listing). A model node
  runs on a builtin kernel when no partition produces its outputs and they are needed
  outside the partitions: as a partition's input, a model output or the input of
  another such node (decided from the last node back).

  Returns:
    dict `partitions` (int, number of XNNPACK partitions), `outside` (op name ->
    number of nodes run outside XNNPACK, sorted by name), `nodes` (model nodes).
  """
  interp = interpreter(model_content, num_threads=num_threads,
                       custom_op_registerers=custom_op_registerers)
  nodes = interp._get_ops_details()  # pylint: disable=protected-access
  partitions = [n for n in nodes if n["op_name"] == "DELEGATE"]
  own = [n for n in nodes if n["op_name"] != "DELEGATE"]
  produced = {int(t) for n in partitions for t in n["outputs"]}
  consumed = {int(t) for n in partitions for t in n["inputs"]}
  needed = consumed | {int(d["index"]) for d in interp.get_output_details()}
  consumers = collections.defaultdict(list)
  for n in own:
    for t in n["inputs"]:
      consumers[int(t)].append(n["index"])
  outside = set()
  for n in reversed(own):
    outs = [int(t) for t in n["outputs"]]
    if any(t in produced for t in outs):
      continue
    if any(t in needed or any(c in outside for c in consumers[t]) for t in outs):
      outside.add(n["index"])
  counts = collections.Counter(n["op_name"] for n in own if n["index"] in outside)
  return {"partitions": len(partitions), "outside": dict(sorted(counts.items())),
          "nodes": len(own)}
