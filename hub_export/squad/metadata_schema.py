"""TFLite ModelMetadata (tflite-support's metadata_schema.fbs) as dataclasses, and its writer.

The tables this package writes, as frozen dataclasses (`AssociatedFile`,
`BertTokenizer` (a ProcessUnit with BertTokenizerOptions), `TensorMetadata`,
`SubGraphMetadata`, `ModelMetadata`), serialized by `ModelMetadata.to_bytes` with the
`flatbuffers` package (a TensorFlow dependency) at the field slots of
`tensorflow_lite_support/metadata/metadata_schema.fbs`, file identifier "M001". Writing
the flatbuffer here keeps tflite-support (it pins protobuf < 4; TensorFlow 2.20 needs
>= 5.28) and mediapipe (its wheels lack the `_pywrap_metadata_version` extension its
`MetadataPopulator` imports) out of the exporter (README.md of this package, "TFLite
metadata").

`ModelMetadata.min_parser_version` follows `GetMinimumMetadataParserVersion` of
tflite-support `tensorflow_lite_support/metadata/cc/metadata_version.cc`: start at
"1.0.0"; an AssociatedFile of type VOCABULARY attached to the model, a subgraph or a
tensor raises it to 1.0.1; a present input_process_units or output_process_units field
raises it to 1.1.0, and so does a ProcessUnit whose options are BertTokenizerOptions.
(That file does not look inside BertTokenizerOptions' own vocab_file list.) The other
members it versions (SentencePiece / Regex tokenizers, tensor groups, audio properties)
are not written by this module.
"""

import dataclasses
from typing import Dict, List, Optional, Tuple

import flatbuffers

METADATA_FILE_IDENTIFIER = b"M001"  # metadata_schema.fbs `file_identifier`

# metadata_schema.fbs enum values.
ASSOCIATED_FILE_UNKNOWN = 0
ASSOCIATED_FILE_VOCABULARY = 5  # AssociatedFileType.VOCABULARY
_PROCESS_UNIT_BERT_TOKENIZER = 4  # ProcessUnitOptions union: BertTokenizerOptions
_CONTENT_FEATURE_PROPERTIES = 1  # ContentProperties union: FeatureProperties

# metadata_version.cc GetMemberVersion.
_V_DEFAULT = (1, 0, 0)
_V_VOCABULARY_FILE = (1, 0, 1)  # kAssociatedFileTypeVocabulary
_V_PROCESS_UNITS = (1, 1, 0)  # kSubGraphMetadataInput/OutputProcessUnits
_V_BERT_TOKENIZER = (1, 1, 0)  # kProcessUnitOptionsBertTokenizerOptions


@dataclasses.dataclass(frozen=True)
class AssociatedFile:
  """metadata_schema.fbs `AssociatedFile` (name, description, type)."""
  name: str
  description: str = ""
  type: int = ASSOCIATED_FILE_UNKNOWN


@dataclasses.dataclass(frozen=True)
class BertTokenizer:
  """A ProcessUnit with `BertTokenizerOptions{vocab_file}`."""
  vocab_file: Tuple[AssociatedFile, ...]


@dataclasses.dataclass(frozen=True)
class TensorMetadata:
  """metadata_schema.fbs `TensorMetadata`: name, description, FeatureProperties content."""
  name: str
  description: str = ""
  associated_files: Tuple[AssociatedFile, ...] = ()


@dataclasses.dataclass(frozen=True)
class SubGraphMetadata:
  """metadata_schema.fbs `SubGraphMetadata` (the fields this module writes).

  `input_process_units` / `output_process_units`: None leaves the field out (which
  matters for `min_parser_version`); a tuple, even empty, writes it.
  """
  inputs: Tuple[TensorMetadata, ...]
  outputs: Tuple[TensorMetadata, ...]
  name: str = ""
  description: str = ""
  associated_files: Tuple[AssociatedFile, ...] = ()
  input_process_units: Optional[Tuple[BertTokenizer, ...]] = None
  output_process_units: Optional[Tuple[BertTokenizer, ...]] = None


@dataclasses.dataclass(frozen=True)
class ModelMetadata:
  """metadata_schema.fbs `ModelMetadata` with one subgraph; empty strings are left out."""
  subgraph: SubGraphMetadata
  name: str = ""
  description: str = ""
  version: str = ""
  author: str = ""
  license: str = ""
  associated_files: Tuple[AssociatedFile, ...] = ()

  def min_parser_version(self) -> str:
    """The smallest metadata parser that reads every field, "major.minor.patch".

    Rules: `GetMinimumMetadataParserVersion` in tflite-support
    `tensorflow_lite_support/metadata/cc/metadata_version.cc` (see the module docstring).
    """
    version = _V_DEFAULT

    def files(fs):
      return max([_V_VOCABULARY_FILE for f in fs if f.type == ASSOCIATED_FILE_VOCABULARY],
                 default=_V_DEFAULT)

    def units(us):
      if us is None:
        return _V_DEFAULT
      return max([_V_PROCESS_UNITS] + [_V_BERT_TOKENIZER for u in us
                                       if isinstance(u, BertTokenizer)])

    sg = self.subgraph
    version = max(version, files(self.associated_files), files(sg.associated_files),
                  units(sg.input_process_units), units(sg.output_process_units),
                  *(files(t.associated_files) for t in sg.inputs + sg.outputs))
    return ".".join(str(v) for v in version)

  def to_bytes(self) -> bytes:
    """The ModelMetadata flatbuffer (identifier "M001"), min_parser_version filled in."""
    return _Writer().model(self)

  def associated_file_names(self) -> List[str]:
    """Every AssociatedFile name, in the order `MetadataPopulator` collects them."""
    sg = self.subgraph
    names = [f.name for f in self.associated_files + sg.associated_files]
    for t in sg.inputs + sg.outputs:
      names += [f.name for f in t.associated_files]
    for units in (sg.input_process_units or (), sg.output_process_units or ()):
      for u in units:
        names += [f.name for f in u.vocab_file]
    return names


class _Writer:
  """Serializes `ModelMetadata` with flatbuffers.Builder.

  Field slots are the declaration order of each table in metadata_schema.fbs (no field
  there has an explicit `id` or is deprecated): AssociatedFile {0 name, 1 description,
  2 type}; BertTokenizerOptions {0 vocab_file}; ProcessUnit {0 options_type,
  1 options}; Content {0 content_properties_type, 1 content_properties};
  TensorMetadata {0 name, 1 description, 3 content, 6 associated_files};
  SubGraphMetadata {0 name, 1 description, 2 input_tensor_metadata,
  3 output_tensor_metadata, 4 associated_files, 5 input_process_units,
  6 output_process_units}; ModelMetadata {0 name, 1 description, 2 version,
  3 subgraph_metadata, 4 author, 5 license, 6 associated_files, 7 min_parser_version}.
  Children are built before their parent opens (flatbuffers cannot nest tables).
  """

  def __init__(self):
    self.b = flatbuffers.Builder(1024)

  def _vector(self, offsets):
    self.b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
      self.b.PrependUOffsetTRelative(off)
    return self.b.EndVector()

  def _strings(self, **fields):
    return {k: self.b.CreateString(v) for k, v in fields.items() if v}

  def _table(self, n_slots, offsets: Dict[int, int], scalars=()):
    """offsets: slot -> uoffset; scalars: (slot, prepend method name, value)."""
    self.b.StartObject(n_slots)
    for slot, off in sorted(offsets.items()):
      self.b.PrependUOffsetTRelativeSlot(slot, off, 0)
    for slot, method, value in scalars:
      getattr(self.b, method)(slot, value, 0)
    return self.b.EndObject()

  def _file(self, f: AssociatedFile):
    s = self._strings(name=f.name, description=f.description)
    return self._table(5, {0: s["name"], **({1: s["description"]} if "description" in s
                                             else {})},
                       [(2, "PrependInt8Slot", f.type)])

  def _files(self, files):
    return self._vector([self._file(f) for f in files]) if files else None

  def _unit(self, u: BertTokenizer):
    vocab = self._files(u.vocab_file)
    options = self._table(1, {0: vocab} if vocab else {})
    return self._table(2, {1: options},
                       [(0, "PrependUint8Slot", _PROCESS_UNIT_BERT_TOKENIZER)])

  def _units(self, units):
    if units is None:
      return None
    return self._vector([self._unit(u) for u in units])

  def _tensor(self, t: TensorMetadata):
    s = self._strings(name=t.name, description=t.description)
    feature = self._table(0, {})
    content = self._table(3, {1: feature},
                          [(0, "PrependUint8Slot", _CONTENT_FEATURE_PROPERTIES)])
    files = self._files(t.associated_files)
    slots = {3: content}
    for slot, key in ((0, "name"), (1, "description")):
      if key in s:
        slots[slot] = s[key]
    if files:
      slots[6] = files
    return self._table(7, slots)

  def _subgraph(self, sg: SubGraphMetadata):
    ins = self._vector([self._tensor(t) for t in sg.inputs])
    outs = self._vector([self._tensor(t) for t in sg.outputs])
    files = self._files(sg.associated_files)
    in_units = self._units(sg.input_process_units)
    out_units = self._units(sg.output_process_units)
    s = self._strings(name=sg.name, description=sg.description)
    slots = {2: ins, 3: outs}
    for slot, value in ((0, s.get("name")), (1, s.get("description")), (4, files),
                        (5, in_units), (6, out_units)):
      if value is not None:
        slots[slot] = value
    return self._table(10, slots)

  def model(self, m: ModelMetadata) -> bytes:
    subgraphs = self._vector([self._subgraph(m.subgraph)])
    files = self._files(m.associated_files)
    s = self._strings(name=m.name, description=m.description, version=m.version,
                      author=m.author, license=m.license,
                      min_parser_version=m.min_parser_version())
    slots = {3: subgraphs}
    for slot, key in ((0, "name"), (1, "description"), (2, "version"), (4, "author"),
                      (5, "license"), (7, "min_parser_version")):
      if key in s:
        slots[slot] = s[key]
    if files:
      slots[6] = files
    root = self._table(8, slots)
    self.b.Finish(root, file_identifier=METADATA_FILE_IDENTIFIER)
    return bytes(self.b.Output())
