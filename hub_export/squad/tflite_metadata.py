"""TFLite metadata on the SQuAD .tflite variants, for the Task Library's BertQuestionAnswerer.

`add_metadata` turns a finalized SQuAD .tflite (`tflite_export.finalize_io`: subgraph
inputs `input_ids`, `input_mask`, `segment_ids` int32 [1, S], outputs `end_logits`,
`start_logits` float32 [1, S], in that order) into the same model with
* a ModelMetadata flatbuffer (schema: tflite-support
  `tensorflow_lite_support/metadata/metadata_schema.fbs`, file identifier "M001") in the
  model's `metadata` list under the name "TFLITE_METADATA", pointing at a new buffer.
  It has one SubGraphMetadata whose input_tensor_metadata are named `ids`, `mask`,
  `segment_ids` and output_tensor_metadata `end_logits`, `start_logits` (the names
  `bert_question_answerer.cc` looks up with `FindTensorByName`, position i of the
  metadata naming subgraph input/output i), each with FeatureProperties content, and
  input_process_units = [ProcessUnit{BertTokenizerOptions{vocab_file=[AssociatedFile
  "vocab.txt", type VOCABULARY]}}] (`BertQuestionAnswerer::InitializeFromMetadata`
  reads input process unit 0 as its tokenizer);
* the vocabulary appended after the flatbuffer as a zip archive (ZIP_STORED, entry
  "vocab.txt"), which is how tflite-support's `MetadataPopulator`
  (`tensorflow_lite_support/metadata/python/metadata.py`, `_populate_associated_files`:
  `zipfile.ZipFile(model, "a").writestr(...)`) packs associated files. Entries get a
  fixed 1980-01-01 timestamp so that the same inputs give the same bytes.

The flatbuffer is written here with the `flatbuffers` package (a TensorFlow dependency),
so the exporter needs neither tflite-support (it pins protobuf < 4, TensorFlow 2.20
needs >= 5.28) nor mediapipe (its pip wheels lack the `_pywrap_metadata_version`
extension that its `MetadataPopulator` imports, and every recent mediapipe pins
absl-py ~= 2.3 against tf-models-official's tensorflow-model-optimization, absl-py ~= 1.2).
The tests read the result back with `tests/hub_export/squad/metadata_fbs_reader.py`, a
reader written from metadata_schema.fbs, independent of this writer.

`min_parser_version` follows `GetMinimumMetadataParserVersion` of tflite-support
`tensorflow_lite_support/metadata/cc/metadata_version.cc`: start at "1.0.0"; an
AssociatedFile of type VOCABULARY attached to the model, a subgraph or a tensor raises it
to 1.0.1; a present input_process_units or output_process_units field raises it to 1.1.0,
and so does a ProcessUnit whose options are BertTokenizerOptions. (That file does not
look inside BertTokenizerOptions' own vocab_file list.) The other members it versions
(SentencePiece / Regex tokenizers, tensor groups, audio properties) are not written by
this module. The SQuAD metadata therefore needs parser 1.1.0.

What the Task Library does on its own, whatever the metadata says
(`bert_question_answerer.h`): it always lower-cases context and question
(`kUseLowerCase = true`) and always fills 384 tokens (`kMaxSeqLen`), query up to 64;
`task_library_caveats` lists where a model differs, and the description says it.
"""

import dataclasses
import io
import os
import zipfile
from typing import Dict, List, Optional, Tuple

import flatbuffers
import numpy as np
from tensorflow.lite.python import schema_py_generated as tflite_schema

from hub_export.squad import model as qa_model
from preprocessors import vocab as vocab_lib

METADATA_FIELD_NAME = "TFLITE_METADATA"  # metadata.py MetadataPopulator.METADATA_FIELD_NAME
METADATA_FILE_IDENTIFIER = b"M001"  # metadata_schema.fbs `file_identifier`
VOCAB_NAME = "vocab.txt"

# Model tensor name (tflite_export.finalize_io) -> the metadata name that
# bert_question_answerer.cc looks for (kIdsTensorName, kMaskTensorName, ...).
TENSOR_NAMES = {"input_ids": "ids", "input_mask": "mask", "segment_ids": "segment_ids",
                "end_logits": "end_logits", "start_logits": "start_logits"}
TASK_LIBRARY_SEQ_LENGTH = 384  # bert_question_answerer.h kMaxSeqLen

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

_TYPE_NAMES = {v: k for k, v in vars(tflite_schema.TensorType).items()
               if not k.startswith("_")}

_TENSOR_DESCRIPTIONS = {
    "ids": "WordPiece token ids of [CLS] question [SEP] context [SEP], zero-padded.",
    "mask": "1 for real tokens, 0 for padding.",
    "segment_ids": "0 for [CLS], the question and its [SEP]; 1 for the context and its "
                   "[SEP]; 0 for padding.",
    "end_logits": "Logit of each position being the last token of the answer span "
                  "(closed interval).",
    "start_logits": "Logit of each position being the first token of the answer span.",
}


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


def task_library_caveats(seq_length: int, do_lower_case: bool) -> List[str]:
  """Where BertQuestionAnswerer's fixed preprocessing differs from this model; [] if none.

  Source: tflite-support `tensorflow_lite_support/cc/task/text/bert_question_answerer.h`
  (`kMaxSeqLen = 384`, `kUseLowerCase = true`).
  """
  out = []
  if seq_length != TASK_LIBRARY_SEQ_LENGTH:
    out.append(f"inputs are [1, {seq_length}] but BertQuestionAnswerer always fills "
               f"{TASK_LIBRARY_SEQ_LENGTH} tokens (kMaxSeqLen): it cannot run this model")
  if not do_lower_case:
    out.append("the vocabulary is cased but BertQuestionAnswerer always lower-cases "
               "context and question (kUseLowerCase): cased words map to [UNK] or "
               "other pieces")
  return out


def qa_metadata(*, seq_length: int, do_lower_case: bool, name: str, description: str,
                version: str = "", author: str = "", license_text: str = ""
                ) -> ModelMetadata:
  """The BertQuestionAnswerer metadata of a SQuAD model with [1, seq_length] tensors.

  The model description gets the tokenizer's casing and any `task_library_caveats`
  appended, so a reader of the .tflite alone sees them.
  """
  notes = [f"Tokenizer: BERT WordPiece over the attached {VOCAB_NAME}, "
           f"{'lower-cased' if do_lower_case else 'cased'}; sequence length {seq_length}."]
  notes += [f"Task Library caveat: {c}." for c in task_library_caveats(seq_length,
                                                                        do_lower_case)]
  vocab = AssociatedFile(name=VOCAB_NAME, type=ASSOCIATED_FILE_VOCABULARY,
                         description="WordPiece vocabulary; a token's id is its 0-based "
                                     "line number.")

  def tensors(names):
    return tuple(TensorMetadata(name=TENSOR_NAMES[k], description=_TENSOR_DESCRIPTIONS[
        TENSOR_NAMES[k]]) for k in names)
  return ModelMetadata(
      name=name, description=" ".join([description] + notes).strip(), version=version,
      author=author, license=license_text,
      subgraph=SubGraphMetadata(
          inputs=tensors(qa_model.INPUT_NAMES), outputs=tensors(qa_model.OUTPUT_NAMES),
          input_process_units=(BertTokenizer(vocab_file=(vocab,)),)))


def _model_io(model_content: bytes) -> Tuple[tflite_schema.ModelT, int]:
  """Checks the MLPerf I/O of subgraph 0; returns the model object and S.

  Raises:
    ValueError: not a TFLite flatbuffer, already has TFLITE_METADATA or packed files,
      or subgraph 0's inputs/outputs are not `INPUT_NAMES` -> `OUTPUT_NAMES` in that
      order with int32 / float32 [1, S] tensors.
  """
  if not tflite_schema.Model.ModelBufferHasIdentifier(model_content, 0):
    raise ValueError("model_content is not a TFLite flatbuffer (no 'TFL3' identifier at "
                     "byte 4); pass the bytes that the TFLite converter returned")
  packed = packed_files(model_content)
  if packed:
    raise ValueError(f"the model already has packed associated files {sorted(packed)}; "
                     "pass the model without metadata (as tflite_export.finalize_io "
                     "returns it)")
  from tensorflow.lite.tools import flatbuffer_utils  # pylint: disable=g-import-not-at-top
  m = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_content))
  names = [md.name.decode() for md in (m.metadata or [])]
  if METADATA_FIELD_NAME in names:
    raise ValueError(f"the model already has {METADATA_FIELD_NAME} (its metadata entries: "
                     f"{names}); pass the model without metadata (as "
                     "tflite_export.finalize_io returns it), not one add_metadata wrote")
  sub = m.subgraphs[0]
  ins = [sub.tensors[i].name.decode() for i in sub.inputs]
  outs = [sub.tensors[i].name.decode() for i in sub.outputs]
  if ins != list(qa_model.INPUT_NAMES) or outs != list(qa_model.OUTPUT_NAMES):
    raise ValueError(f"subgraph 0 has inputs {ins} and outputs {outs}; the metadata needs "
                     f"exactly {list(qa_model.INPUT_NAMES)} -> {list(qa_model.OUTPUT_NAMES)}"
                     " in that order (metadata entry i names tensor i); run "
                     "tflite_export.finalize_io on the converted model first")
  shapes = set()
  for idx, want in [(i, tflite_schema.TensorType.INT32) for i in sub.inputs] + \
                   [(i, tflite_schema.TensorType.FLOAT32) for i in sub.outputs]:
    t = sub.tensors[idx]
    shape = [int(d) for d in (t.shape if t.shape is not None else [])]
    if t.type != want or len(shape) != 2 or shape[0] != 1:
      raise ValueError(f"tensor {t.name.decode()!r} has type {_TYPE_NAMES.get(t.type)} and "
                       f"shape {shape}; expected {_TYPE_NAMES[want]} [1, S] (MLPerf SQuAD "
                       "I/O: int32 inputs, float32 logits)")
    shapes.add(shape[1])
  if len(shapes) != 1:
    raise ValueError(f"the model's tensors have different sequence lengths {sorted(shapes)};"
                     " all five must be [1, S] with one S")
  return m, shapes.pop()


def _read_vocab(vocab_file: str) -> bytes:
  """The vocab file's bytes after `preprocessors.vocab.load_vocab` validated it."""
  vocab_lib.load_vocab(vocab_file)  # Raises ValueError: missing, empty, no [CLS]/[SEP]...
  with open(vocab_file, "rb") as f:
    return f.read()


def add_metadata(model_content: bytes, *, vocab_file: str, do_lower_case: bool,
                 name: str, description: str, version: str = "", author: str = "",
                 license_text: str = "") -> bytes:
  """Returns `model_content` with BertQuestionAnswerer metadata and vocab.txt packed.

  Args:
    model_content: a finalized SQuAD .tflite (`tflite_export.finalize_io`): subgraph 0
      inputs `input_ids`, `input_mask`, `segment_ids` int32 [1, S], outputs
      `end_logits`, `start_logits` float32 [1, S], in that order; no metadata yet.
    vocab_file: the bundle's vocab.txt (packed byte for byte as "vocab.txt").
    do_lower_case: the bundle's tokenizer casing (recorded in the description; the
      Task Library lower-cases regardless, see `task_library_caveats`).
    name, description, version, author, license_text: ModelMetadata strings (empty ones
      are not written).

  Returns:
    The model flatbuffer with a "TFLITE_METADATA" entry (a new buffer holding
    `qa_metadata(...).to_bytes()`), followed by a ZIP_STORED archive holding vocab.txt.
    Tensors, operators and weights are unchanged, so outputs are bit-identical.

  Raises:
    ValueError: the model is not a TFLite flatbuffer, already has TFLITE_METADATA or
      packed files, or its I/O is not the MLPerf names, order, dtypes and [1, S]
      shapes; or the vocab file is missing, unreadable, empty or invalid
      (`preprocessors.vocab.load_vocab`).
  """
  vocab = _read_vocab(vocab_file)
  m, seq_length = _model_io(model_content)
  meta = qa_metadata(seq_length=seq_length, do_lower_case=do_lower_case, name=name,
                     description=description, version=version, author=author,
                     license_text=license_text).to_bytes()
  # As MetadataPopulator._populate_metadata_buffer: a new buffer + Metadata entry.
  buf = tflite_schema.BufferT()
  buf.data = np.frombuffer(meta, np.uint8)
  m.buffers.append(buf)
  entry = tflite_schema.MetadataT()
  entry.name = METADATA_FIELD_NAME
  entry.buffer = len(m.buffers) - 1
  m.metadata = (m.metadata or []) + [entry]
  from tensorflow.lite.tools import flatbuffer_utils  # pylint: disable=g-import-not-at-top
  out = io.BytesIO()
  out.write(flatbuffer_utils.convert_object_to_bytearray(m))
  # As MetadataPopulator._populate_associated_files: mode "a" on a non-zip file appends
  # a new archive after the flatbuffer (local header offsets are absolute).
  with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as zf:
    info = zipfile.ZipInfo(VOCAB_NAME, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    zf.writestr(info, vocab)
  return out.getvalue()


def metadata_buffer(model_content: bytes) -> Optional[bytes]:
  """The TFLITE_METADATA buffer of a model, or None (as metadata.py get_metadata_buffer)."""
  m = tflite_schema.Model.GetRootAsModel(bytearray(model_content), 0)
  for i in range(m.MetadataLength()):
    if m.Metadata(i).Name().decode() == METADATA_FIELD_NAME:
      return m.Buffers(m.Metadata(i).Buffer()).DataAsNumpy().tobytes()
  return None


def packed_files(model_content: bytes) -> Dict[str, bytes]:
  """name -> bytes of the associated files zipped after the flatbuffer ({} if none)."""
  try:
    with zipfile.ZipFile(io.BytesIO(model_content)) as zf:
      return {n: zf.read(n) for n in zf.namelist()}
  except zipfile.BadZipFile:
    return {}


def verify_metadata(model_content: bytes, *, vocab_file: str, do_lower_case: bool,
                    name: str, description: str, version: str = "", author: str = "",
                    license_text: str = "") -> dict:
  """Checks a written model against what `add_metadata` with these arguments writes.

  Args: as `add_metadata`; S is read from the model's tensors.

  Returns:
    The manifest record: `min_parser_version`, `associated_files` (packed names),
    `input_names` / `output_names` (metadata names, in tensor order), `metadata_bytes`,
    `task_library_caveats`.

  Raises:
    ValueError: no TFLITE_METADATA, a buffer that differs from the expected one, or
      packed files other than exactly vocab.txt with the vocab file's bytes.
  """
  got = metadata_buffer(model_content)
  if got is None:
    raise ValueError(f"the model has no {METADATA_FIELD_NAME} entry")
  m = tflite_schema.Model.GetRootAsModel(bytearray(model_content), 0)
  t = m.Subgraphs(0).Tensors(int(m.Subgraphs(0).Inputs(0)))
  seq_length = int(t.Shape(1))
  meta = qa_metadata(seq_length=seq_length, do_lower_case=do_lower_case, name=name,
                     description=description, version=version, author=author,
                     license_text=license_text)
  if got != meta.to_bytes():
    raise ValueError(f"the model's {METADATA_FIELD_NAME} buffer ({len(got)} bytes) differs "
                     "from the expected BertQuestionAnswerer metadata")
  files = packed_files(model_content)
  vocab = _read_vocab(vocab_file)
  if list(files) != [VOCAB_NAME] or files[VOCAB_NAME] != vocab:
    raise ValueError(f"the model packs {sorted(files)}; expected exactly {VOCAB_NAME} "
                     f"with the {len(vocab)} bytes of {os.path.basename(vocab_file)}")
  sg = meta.subgraph
  return {"min_parser_version": meta.min_parser_version(),
          "associated_files": list(files),
          "input_names": [x.name for x in sg.inputs],
          "output_names": [x.name for x in sg.outputs],
          "metadata_bytes": len(got),
          "task_library_caveats": task_library_caveats(seq_length, do_lower_case)}
