"""Test-only reader of TFLite ModelMetadata flatbuffers, written from the schema.

Independent of `hub_export/squad/metadata_schema.py` (the writer under test): it reads
the buffer with `flatbuffers.table.Table` at the vtable slots that tflite-support's
`tensorflow_lite_support/metadata/metadata_schema.fbs` defines (file_identifier "M001";
field k of a table is at vtable offset 4 + 2 k, a union field takes two: its `_type`
byte, then the value). Only the tables the SQuAD metadata uses are decoded; a field
this reader does not decode is reported by name when present, so nothing written goes
unseen. The library readers (tflite-support's or mediapipe's generated
`metadata_schema_py_generated`) cannot be installed beside TensorFlow 2.20 and
tf-models-official (protobuf < 4; absl-py ~= 2.3 against tensorflow-model-optimization's
absl-py ~= 1.2).
"""

import flatbuffers
from flatbuffers import number_types as N
from flatbuffers import table as fb_table

FILE_IDENTIFIER = b"M001"
# metadata_schema.fbs enums / unions.
ASSOCIATED_FILE_TYPES = {0: "UNKNOWN", 1: "DESCRIPTIONS", 2: "TENSOR_AXIS_LABELS",
                         3: "TENSOR_VALUE_LABELS", 4: "TENSOR_AXIS_SCORE_CALIBRATION",
                         5: "VOCABULARY", 6: "SCANN_INDEX_FILE"}
CONTENT_PROPERTIES = {0: None, 1: "FeatureProperties", 2: "ImageProperties",
                      3: "BoundingBoxProperties", 4: "AudioProperties"}
PROCESS_UNIT_OPTIONS = {0: None, 1: "NormalizationOptions", 2: "ScoreCalibrationOptions",
                        3: "ScoreThresholdingOptions", 4: "BertTokenizerOptions",
                        5: "SentencePieceTokenizerOptions", 6: "RegexTokenizerOptions"}

# Field names in declaration order (slot k -> vtable offset 4 + 2 k).
MODEL_METADATA = ("name", "description", "version", "subgraph_metadata", "author",
                  "license", "associated_files", "min_parser_version")
SUBGRAPH_METADATA = ("name", "description", "input_tensor_metadata",
                     "output_tensor_metadata", "associated_files", "input_process_units",
                     "output_process_units", "input_tensor_groups",
                     "output_tensor_groups", "custom_metadata")
TENSOR_METADATA = ("name", "description", "dimension_names", "content", "process_units",
                   "stats", "associated_files")
CONTENT = ("content_properties_type", "content_properties", "range")
PROCESS_UNIT = ("options_type", "options")
BERT_TOKENIZER_OPTIONS = ("vocab_file",)
ASSOCIATED_FILE = ("name", "description", "type", "locale", "version")


class _T:
  """A table at `pos` of `buf`, fields looked up by declared name."""

  def __init__(self, buf, pos, fields):
    self._t = fb_table.Table(buf, pos)
    self._fields = fields

  def _off(self, field):
    return self._t.Offset(4 + 2 * self._fields.index(field))

  def present(self):
    return [f for f in self._fields if self._off(f)]

  def string(self, field):
    o = self._off(field)
    return self._t.String(o + self._t.Pos).decode("utf-8") if o else None

  def byte(self, field):
    o = self._off(field)
    return self._t.Get(N.Int8Flags, o + self._t.Pos) if o else 0

  def ubyte(self, field):
    o = self._off(field)
    return self._t.Get(N.Uint8Flags, o + self._t.Pos) if o else 0

  def table(self, field, fields):
    o = self._off(field)
    return _T(self._t.Bytes, self._t.Indirect(o + self._t.Pos), fields) if o else None

  def union(self, field, fields):
    o = self._off(field)
    if not o:
      return None
    t = fb_table.Table(bytearray(), 0)
    self._t.Union(t, o)
    return _T(t.Bytes, t.Pos, fields)

  def tables(self, field, fields):
    o = self._off(field)
    if not o:
      return None
    start, n = self._t.Vector(o), self._t.VectorLen(o)
    return [_T(self._t.Bytes, self._t.Indirect(start + 4 * i), fields) for i in range(n)]


def _file(t):
  return {"name": t.string("name"), "description": t.string("description"),
          "type": ASSOCIATED_FILE_TYPES.get(t.byte("type"), t.byte("type")),
          "locale": t.string("locale"), "version": t.string("version")}


def _files(t, field):
  got = t.tables(field, ASSOCIATED_FILE)
  return None if got is None else [_file(f) for f in got]


def _unit(t):
  kind = PROCESS_UNIT_OPTIONS.get(t.ubyte("options_type"), t.ubyte("options_type"))
  out = {"options_type": kind}
  if kind == "BertTokenizerOptions":
    opts = t.union("options", BERT_TOKENIZER_OPTIONS)
    out["vocab_file"] = _files(opts, "vocab_file")
  return out


def _units(t, field):
  got = t.tables(field, PROCESS_UNIT)
  return None if got is None else [_unit(u) for u in got]


def _tensor(t):
  out = {"name": t.string("name"), "description": t.string("description")}
  content = t.table("content", CONTENT)
  if content is not None:
    out["content_properties_type"] = CONTENT_PROPERTIES.get(
        content.ubyte("content_properties_type"), content.ubyte("content_properties_type"))
    out["content_range_present"] = "range" in content.present()
  out["process_units"] = _units(t, "process_units")
  out["associated_files"] = _files(t, "associated_files")
  out["undecoded_fields"] = [f for f in t.present() if f in ("dimension_names", "stats")]
  return out


def read(buf: bytes) -> dict:
  """The ModelMetadata in `buf` as nested dicts (names as in the .fbs).

  Raises:
    ValueError: `buf` lacks the "M001" file identifier.
  """
  buf = bytearray(buf)
  if bytes(buf[4:8]) != FILE_IDENTIFIER:
    raise ValueError(f"not a ModelMetadata buffer: identifier {bytes(buf[4:8])!r}, "
                     f"expected {FILE_IDENTIFIER!r}")
  root = _T(buf, flatbuffers.encode.Get(N.UOffsetTFlags.packer_type, buf, 0),
            MODEL_METADATA)
  out = {f: root.string(f) for f in ("name", "description", "version", "author",
                                     "license", "min_parser_version")}
  out["associated_files"] = _files(root, "associated_files")
  subgraphs = []
  for sg in root.tables("subgraph_metadata", SUBGRAPH_METADATA) or []:
    subgraphs.append({
        "name": sg.string("name"), "description": sg.string("description"),
        "input_tensor_metadata": [_tensor(t) for t in
                                  sg.tables("input_tensor_metadata", TENSOR_METADATA) or []],
        "output_tensor_metadata": [_tensor(t) for t in
                                   sg.tables("output_tensor_metadata", TENSOR_METADATA)
                                   or []],
        "associated_files": _files(sg, "associated_files"),
        "input_process_units": _units(sg, "input_process_units"),
        "output_process_units": _units(sg, "output_process_units"),
        "undecoded_fields": [f for f in sg.present() if f in (
            "input_tensor_groups", "output_tensor_groups", "custom_metadata")]})
  out["subgraph_metadata"] = subgraphs
  return out
