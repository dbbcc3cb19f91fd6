"""Quantization-parameter rewrites of a converted int8 `.tflite`, for the kernels that run it.

`zero_point_zero_matmul_rhs`: LiteRT's XNNPACK delegate takes an int8 BATCH_MATMUL only
when its right-hand operand is quantized with zero point 0; the TFLite converter
calibrates every activation asymmetrically (zero point anywhere in [-128, 127]), so the
attention products q k^T and p v of a post-training-quantized MobileBERT fall back to the
builtin BATCH_MATMUL kernel, and each one splits the XNNPACK graph (on the released
config at seq 384: 46 XNNPACK partitions and about 4x the latency of the rewritten model;
figures in benchmarks/README.md, "XNNPACK placement of the int8 models"). The rewrite
re-expresses the right-hand operands symmetrically over the calibrated range. It is a
valid int8 model by construction: the op that produces such a tensor (FULLY_CONNECTED,
MUL or ADD) requantizes its int32 accumulators to whatever output scale and zero point
the tensor carries (TFLite's 8-bit quantization spec,
https://www.tensorflow.org/lite/performance/quantization_spec: these ops' outputs have
free per-tensor parameters), and the RESHAPE / TRANSPOSE between that op and the
BATCH_MATMUL, whose outputs must keep their input's parameters (the same spec), get the
same new parameters. The cost is resolution: the step grows from (hi - lo) / 255 to
max(|lo|, |hi|) / 127, at most 2x for ranges that do not straddle zero and about 1x for
the near-symmetric key and value projections.
"""

import dataclasses
from typing import List, Tuple

from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

from hub_export.squad.tflite_graph import OP_NAMES

# Ops that carry their input's quantization to their output unchanged (the spec's
# "input and outputs must all have same scale/zero_point"); the rewrite walks back
# through them.
_SAME_PARAMS = ("RESHAPE", "TRANSPOSE")
# Ops whose int8 output has free per-tensor parameters; the rewrite stops at them.
_FREE_OUTPUT = ("FULLY_CONNECTED", "MUL", "ADD", "SUB", "BATCH_MATMUL")
_INT8 = schema.TensorType.INT8


@dataclasses.dataclass(frozen=True)
class Requantized:
  """One BATCH_MATMUL right-hand operand that was re-expressed with zero point 0.

  Attributes:
    tensors: names of the rewritten tensors, from the BATCH_MATMUL operand back to the
      output of the op that computes it.
    old: (scale, zero_point) before; new: (scale, 0) after.
  """
  tensors: Tuple[str, ...]
  old: Tuple[float, int]
  new: Tuple[float, int]


def zero_point_zero_matmul_rhs(model_content: bytes) -> Tuple[bytes, List[Requantized]]:
  """Gives every int8 BATCH_MATMUL's right-hand operand zero point 0 (see module doc).

  For an operand with scale s and zero point z (representable range
  [s (-128 - z), s (127 - z)]) the new scale is max(|lo|, |hi|) / 127, so every value
  the calibration saw stays representable. Operands that already have zero point 0 and
  float BATCH_MATMULs are left alone.

  Args:
    model_content: a `.tflite` flatbuffer (every subgraph is rewritten).

  Returns:
    (the rewritten flatbuffer, one `Requantized` per rewritten operand).

  Raises:
    ValueError: an operand is per-channel quantized, is computed by an op whose output
      parameters are fixed (e.g. SOFTMAX), or passes through a RESHAPE / TRANSPOSE whose
      output parameters differ from its input's (not a converter-made graph); the
      message names the tensor.
  """
  m = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_content))
  names = [OP_NAMES.get(max(c.builtinCode, c.deprecatedBuiltinCode), "?")
           for c in m.operatorCodes]
  done = []
  for sub in m.subgraphs:
    producer = {t: op for op in sub.operators for t in op.outputs}
    for op in sub.operators:
      if names[op.opcodeIndex] != "BATCH_MATMUL":
        continue
      rhs = sub.tensors[op.inputs[1]]
      q = rhs.quantization
      if rhs.type != _INT8 or q is None or q.scale is None or len(q.scale) == 0:
        continue
      label = rhs.name.decode()
      if len(q.scale) != 1:
        raise ValueError(f"BATCH_MATMUL operand {label!r} is per-channel quantized "
                         f"({len(q.scale)} scales); expected one scale per tensor")
      scale, zero = float(q.scale[0]), int(q.zeroPoint[0])
      if zero == 0:
        continue
      chain = [op.inputs[1]]
      while True:
        src = producer.get(chain[-1])
        kind = names[src.opcodeIndex] if src is not None else "a model input"
        if kind in _SAME_PARAMS:
          chain.append(src.inputs[0])
          continue
        if kind not in _FREE_OUTPUT:
          raise ValueError(f"BATCH_MATMUL operand {label!r} is computed by {kind}, whose "
                           "output quantization cannot change; only the outputs of "
                           f"{', '.join(_FREE_OUTPUT)} (through {', '.join(_SAME_PARAMS)}) "
                           "can be given zero point 0")
        break
      for t in chain:
        tq = sub.tensors[t].quantization
        if len(tq.scale) != 1 or float(tq.scale[0]) != scale or int(tq.zeroPoint[0]) != zero:
          raise ValueError(f"tensor {sub.tensors[t].name.decode()!r} on the way to "
                           f"BATCH_MATMUL operand {label!r} has quantization "
                           f"({list(tq.scale)}, {list(tq.zeroPoint)}), not its input's "
                           f"({scale}, {zero})")
      lo, hi = scale * (-128 - zero), scale * (127 - zero)
      new_scale = max(abs(lo), abs(hi)) / 127.0
      for t in chain:
        sub.tensors[t].quantization.scale = [new_scale]
        sub.tensors[t].quantization.zeroPoint = [0]
      done.append(Requantized(tensors=tuple(sub.tensors[t].name.decode() for t in chain),
                              old=(scale, zero), new=(new_scale, 0)))
  return bytes(flatbuffer_utils.convert_object_to_bytearray(m)), done
