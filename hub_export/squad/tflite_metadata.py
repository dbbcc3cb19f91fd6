"""TFLite metadata on the SQuAD .tflite variants, for the Task Library's BertQuestionAnswerer.

`add_metadata` turns a finalized SQuAD .tflite (`tflite_export.finalize_io`: subgraph
inputs `input_ids`, `input_mask`, `segment_ids` int32 [1, S], outputs `end_logits`,
`start_logits` float32 [1, S], in that order) into the same model with
* a ModelMetadata flatbuffer (`metadata_schema.py`) in the model's `metadata` list under
  the name "TFLITE_METADATA", pointing at a new buffer. It has one SubGraphMetadata
  whose input_tensor_metadata are named `ids`, `mask`, `segment_ids` and
  output_tensor_metadata `end_logits`, `start_logits` (the names
  `bert_question_answerer.cc` looks up with `FindTensorByName`, position i of the
  metadata naming subgraph input/output i), each with FeatureProperties content, and
  input_process_units = [ProcessUnit{BertTokenizerOptions{vocab_file=[AssociatedFile
  "vocab.txt", type VOCABULARY]}}] (`BertQuestionAnswerer::InitializeFromMetadata`
  reads input process unit 0 as its tokenizer); it needs metadata parser 1.1.0;
* the vocabulary appended after the flatbuffer as a zip archive (ZIP_STORED, entry
  "vocab.txt"), which is how tflite-support's `MetadataPopulator`
  (`tensorflow_lite_support/metadata/python/metadata.py`, `_populate_associated_files`:
  `zipfile.ZipFile(model, "a").writestr(...)`) packs associated files. Entries get a
  fixed 1980-01-01 timestamp so that the same inputs give the same bytes.

`verify_metadata` checks a written file against what `add_metadata` means to write. The
tests read the result back with `tests/hub_export/squad/metadata_fbs_reader.py`, a
reader written from metadata_schema.fbs, independent of this writer.

What the Task Library does on its own, whatever the metadata says
(`bert_question_answerer.h`): it always lower-cases context and question
(`kUseLowerCase = true`) and always fills 384 tokens (`kMaxSeqLen`), query up to 64;
`task_library_caveats` lists where a model differs, and the description says it.
"""

import io
import os
import zipfile
from typing import Dict, List, Optional, Tuple

import numpy as np
from tensorflow.lite.python import schema_py_generated as tflite_schema

from hub_export.squad import constants
from hub_export.squad import metadata_schema as ms
from preprocessors import vocab as vocab_lib

METADATA_FIELD_NAME = "TFLITE_METADATA"  # metadata.py MetadataPopulator.METADATA_FIELD_NAME
VOCAB_NAME = "vocab.txt"

# Model tensor name (tflite_export.finalize_io) -> the metadata name that
# bert_question_answerer.cc looks for (kIdsTensorName, kMaskTensorName, ...).
TENSOR_NAMES = {"input_ids": "ids", "input_mask": "mask", "segment_ids": "segment_ids",
                "end_logits": "end_logits", "start_logits": "start_logits"}
TASK_LIBRARY_SEQ_LENGTH = 384  # bert_question_answerer.h kMaxSeqLen

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
                ) -> ms.ModelMetadata:
  """The BertQuestionAnswerer metadata of a SQuAD model with [1, seq_length] tensors.

  The model description gets the tokenizer's casing and any `task_library_caveats`
  appended, so a reader of the .tflite alone sees them.
  """
  notes = [f"Tokenizer: BERT WordPiece over the attached {VOCAB_NAME}, "
           f"{'lower-cased' if do_lower_case else 'cased'}; sequence length {seq_length}."]
  notes += [f"Task Library caveat: {c}." for c in task_library_caveats(seq_length,
                                                                        do_lower_case)]
  vocab = ms.AssociatedFile(name=VOCAB_NAME, type=ms.ASSOCIATED_FILE_VOCABULARY,
                            description="WordPiece vocabulary; a token's id is its 0-based "
                                        "line number.")

  def tensors(names):
    return tuple(ms.TensorMetadata(name=TENSOR_NAMES[k],
                                   description=_TENSOR_DESCRIPTIONS[TENSOR_NAMES[k]])
                 for k in names)
  return ms.ModelMetadata(
      name=name, description=" ".join([description] + notes).strip(), version=version,
      author=author, license=license_text,
      subgraph=ms.SubGraphMetadata(
          inputs=tensors(constants.INPUT_NAMES), outputs=tensors(constants.OUTPUT_NAMES),
          input_process_units=(ms.BertTokenizer(vocab_file=(vocab,)),)))


def _model_io(model_content: bytes) -> Tuple[tflite_schema.ModelT, int]:
  """Checks the MLPerf I/O of subgraph 0; returns the model object and S.

  Raises:
    ValueError: not a TFLite flatbuffer, already has TFLITE_METADATA or packed files,
      or subgraph 0's inputs/outputs are not `constants.INPUT_NAMES` ->
      `constants.OUTPUT_NAMES` in that order with int32 / float32 [1, S] tensors.
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
  if ins != list(constants.INPUT_NAMES) or outs != list(constants.OUTPUT_NAMES):
    raise ValueError(f"subgraph 0 has inputs {ins} and outputs {outs}; the metadata needs "
                     f"exactly {list(constants.INPUT_NAMES)} -> {list(constants.OUTPUT_NAMES)}"
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
