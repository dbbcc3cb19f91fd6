"""Subgraph 0 of a .tflite flatbuffer, read with TFLite's generated schema accessors.

`Graph(model_content)` reads tensors lazily (dtype name, shape, quantization parameters,
constness) and yields the operators in graph order with their input and output tensors;
`OP_NAMES` / `TYPE_NAMES` map the schema's enum values (`BuiltinOperator`, `TensorType`
in `tensorflow/lite/schema/schema.fbs`) to their names.
"""

import dataclasses
from typing import Dict, List, Optional, Tuple

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema

OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}


@dataclasses.dataclass(frozen=True)
class Tensor:
  """A tensor of subgraph 0: dtype name, shape, quantization, constness."""
  index: int
  name: str
  dtype: str
  shape: Tuple[int, ...]
  scales: np.ndarray  # float32 [n], n = 0 without quantization parameters
  zero_points: np.ndarray  # int64 [m]
  quantized_dimension: int
  buffer: int
  is_const: bool


class Graph:
  """Subgraph 0 of a .tflite, read lazily with the flatbuffer accessors."""

  def __init__(self, model_content: bytes):
    self._content = bytes(model_content)
    buf = bytearray(self._content)
    if len(buf) < 8 or not schema.Model.ModelBufferHasIdentifier(buf, 0):
      raise ValueError("model_content is not a TFLite flatbuffer (no 'TFL3' file "
                       "identifier); pass the bytes of a .tflite file")
    self._model = schema.Model.GetRootAsModel(buf, 0)
    if self._model.SubgraphsLength() != 1:
      raise ValueError(f"the model has {self._model.SubgraphsLength()} subgraphs; the "
                       "quantization spec check reads single-subgraph models only")
    self._sub = self._model.Subgraphs(0)
    self._codes = [self._model.OperatorCodes(i)
                   for i in range(self._model.OperatorCodesLength())]
    self._tensors: Dict[int, Tensor] = {}
    self.outputs = set(int(j) for j in self._sub.OutputsAsNumpy()) \
        if self._sub.OutputsLength() else set()
    self.producer: Dict[int, str] = {}
    self.consumers: Dict[int, List[str]] = {}
    for name, ins, outs in self.ops():
      for t in outs:
        self.producer[t.index] = name
      for t in ins:
        if t is not None:
          self.consumers.setdefault(t.index, []).append(name)

  def tensor(self, index: int) -> Optional[Tensor]:
    if index < 0:
      return None
    if index not in self._tensors:
      t = self._sub.Tensors(index)
      q = t.Quantization()
      scales = (q.ScaleAsNumpy().astype(np.float32) if q is not None and q.ScaleLength()
                else np.zeros([0], np.float32))
      zero_points = (q.ZeroPointAsNumpy().astype(np.int64)
                     if q is not None and q.ZeroPointLength() else np.zeros([0], np.int64))
      b = self._model.Buffers(t.Buffer())
      self._tensors[index] = Tensor(
          index=index, name=t.Name().decode("utf-8", "replace"),
          dtype=TYPE_NAMES.get(t.Type(), str(t.Type())),
          shape=tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else (),
          scales=scales, zero_points=zero_points,
          quantized_dimension=q.QuantizedDimension() if q is not None else 0,
          buffer=t.Buffer(),
          is_const=bool(b is not None and (b.DataLength() > 0 or b.Offset() > 1)))
    return self._tensors[index]

  def int8_values(self, t: Tensor) -> np.ndarray:
    """The data of a constant int8 tensor, int8 with its shape."""
    b = self._model.Buffers(t.buffer)
    if b.Offset() > 1:  # Data stored after the flatbuffer (models over 2 GB).
      raw = self._content[b.Offset():b.Offset() + b.Size()]
    else:
      raw = b.DataAsNumpy().tobytes()
    values = np.frombuffer(raw, np.int8)
    return values.reshape(t.shape) if values.size == int(np.prod(t.shape)) else values

  def ops(self):
    """Yields (op name, [input Tensor or None], [output Tensor]) in graph order."""
    for i in range(self._sub.OperatorsLength()):
      op = self._sub.Operators(i)
      code = self._codes[op.OpcodeIndex()]
      op_id = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
      name = OP_NAMES.get(op_id, str(op_id))
      if name == "CUSTOM":
        name = "CUSTOM:" + (code.CustomCode() or b"").decode()
      ins = [self.tensor(int(j)) for j in op.InputsAsNumpy()] if op.InputsLength() else []
      outs = [self.tensor(int(j)) for j in op.OutputsAsNumpy()] if op.OutputsLength() else []
      yield name, ins, [t for t in outs if t is not None]
