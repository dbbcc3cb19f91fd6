"""TFLite metadata for BertQuestionAnswerer (`hub_export.squad.tflite_metadata`).

A tiny model with the MLPerf SQuAD I/O (an embedding lookup and two dot products, S=16)
is converted here; the metadata is read back with `metadata_fbs_reader`, a test-only
reader written from tflite-support's metadata_schema.fbs, independent of the writer
under test (the generated library readers cannot be installed beside TF 2.20 and
tf-models-official; see that module).
"""

import io
import os
import zipfile

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.lite.tools import flatbuffer_utils

from hub_export.squad import constants
from hub_export.squad import tflite_analysis
from hub_export.squad import tflite_export
from hub_export.squad import tflite_metadata as tm
from tests import testutil
from tests.hub_export.squad import metadata_fbs_reader as fbs

S = 16
ARGS = dict(vocab_file=testutil.UNCASED_VOCAB, do_lower_case=True, name="tiny QA",
            description="A test model.")


class _TinyQa(tf.Module):
  """MLPerf I/O: int32 [1, S] ids/mask/segments -> float32 [1, S] end/start logits."""

  def __init__(self, seq_length=S):
    super().__init__()
    rng = np.random.default_rng(0)
    self.table = tf.constant(rng.normal(size=(64, 4)).astype(np.float32))
    self.w = tf.constant(rng.normal(size=(2, 4)).astype(np.float32))
    self.serve = tf.function(self._serve, input_signature=[
        tf.TensorSpec([1, seq_length], tf.int32, name=n) for n in constants.INPUT_NAMES])

  def _serve(self, input_ids, input_mask, segment_ids):
    h = (tf.gather(self.table, input_ids % 64) * tf.cast(input_mask, tf.float32)[..., None]
         + tf.cast(segment_ids, tf.float32)[..., None])
    return {"start_logits": tf.reduce_sum(h * self.w[0], -1),
            "end_logits": tf.reduce_sum(h * self.w[1], -1)}


def _convert(module) -> bytes:
  return tf.lite.TFLiteConverter.from_concrete_functions(
      [module.serve.get_concrete_function()], module).convert()


@pytest.fixture(scope="module")
def bare():
  """A finalized tiny model without metadata."""
  return tflite_export.finalize_io(_convert(_TinyQa()))


@pytest.fixture(scope="module")
def with_meta(bare):
  return tm.add_metadata(bare, **ARGS)


def _parse(model_content):
  return fbs.read(tm.metadata_buffer(model_content))  # checks the "M001" identifier


def _vocab_bytes():
  with open(testutil.UNCASED_VOCAB, "rb") as f:
    return f.read()


def test_metadata_reads_back_with_schema_reader(with_meta):
  meta = _parse(with_meta)
  assert meta["name"] == "tiny QA"
  assert meta["description"].startswith("A test model. Tokenizer: BERT WordPiece")
  assert meta["min_parser_version"] == "1.1.0"
  assert len(meta["subgraph_metadata"]) == 1
  sg = meta["subgraph_metadata"][0]
  assert [t["name"] for t in sg["input_tensor_metadata"]] == ["ids", "mask", "segment_ids"]
  assert [t["name"] for t in sg["output_tensor_metadata"]] == ["end_logits",
                                                               "start_logits"]
  for t in sg["input_tensor_metadata"] + sg["output_tensor_metadata"]:
    assert t["content_properties_type"] == "FeatureProperties"
    assert t["description"]
    assert t["undecoded_fields"] == []
  assert sg["undecoded_fields"] == []
  assert len(sg["input_process_units"]) == 1 and sg["output_process_units"] is None
  unit = sg["input_process_units"][0]
  assert unit["options_type"] == "BertTokenizerOptions"
  [vocab] = unit["vocab_file"]
  assert vocab["name"] == "vocab.txt"
  assert vocab["type"] == "VOCABULARY"
  # The model's own entries (converter metadata) are kept, TFLITE_METADATA added last.
  m = flatbuffer_utils.convert_bytearray_to_object(bytearray(with_meta))
  names = [e.name.decode() for e in m.metadata]
  assert names[-1] == "TFLITE_METADATA" and names.count("TFLITE_METADATA") == 1
  assert "min_runtime_version" in names


def test_metadata_names_follow_subgraph_tensor_order(with_meta):
  """Metadata entry i names subgraph tensor i (what FindTensorByName relies on)."""
  sg = _parse(with_meta)["subgraph_metadata"][0]
  io_ = tflite_analysis.io_details(with_meta)
  got = [tm.TENSOR_NAMES[n] for n in io_["input_order"] + io_["output_order"]]
  assert got == [t["name"] for t in sg["input_tensor_metadata"] +
                 sg["output_tensor_metadata"]]


def test_vocab_is_zipped_after_the_model_stored_and_byte_equal(with_meta, tmp_path):
  path = tmp_path / "m.tflite"
  path.write_bytes(with_meta)
  with zipfile.ZipFile(path) as zf:
    assert zf.namelist() == ["vocab.txt"]
    info = zf.getinfo("vocab.txt")
    assert info.compress_type == zipfile.ZIP_STORED
    assert zf.read("vocab.txt") == _vocab_bytes()
  assert tm.packed_files(with_meta) == {"vocab.txt": _vocab_bytes()}


def test_outputs_bit_identical_and_tensors_unchanged(bare, with_meta):
  rng = np.random.default_rng(7)
  batches = [{"input_ids": rng.integers(0, 64, (1, S)),
              "input_mask": (np.arange(S) < rng.integers(3, S))[None].astype(np.int32),
              "segment_ids": (np.arange(S) > 5)[None].astype(np.int32)} for _ in range(4)]
  before = tflite_analysis.run(bare, batches)
  after = tflite_analysis.run(with_meta, batches)
  for k in constants.OUTPUT_NAMES:
    assert before[k].tobytes() == after[k].tobytes(), k
  a = flatbuffer_utils.convert_bytearray_to_object(bytearray(bare))
  b = flatbuffer_utils.convert_bytearray_to_object(bytearray(with_meta))
  assert len(b.buffers) == len(a.buffers) + 1
  for x, y in zip(a.buffers, b.buffers):
    assert (x.data is None) == (y.data is None)
    if x.data is not None:
      assert np.array_equal(x.data, y.data)
  assert tflite_analysis.op_counts(bare) == tflite_analysis.op_counts(with_meta)


def test_same_inputs_give_same_bytes(bare, with_meta):
  assert tm.add_metadata(bare, **ARGS) == with_meta


def test_verify_metadata_returns_manifest_record(with_meta):
  rec = tm.verify_metadata(with_meta, **ARGS)
  assert rec["min_parser_version"] == "1.1.0"
  assert rec["associated_files"] == ["vocab.txt"]
  assert rec["input_names"] == ["ids", "mask", "segment_ids"]
  assert rec["output_names"] == ["end_logits", "start_logits"]
  assert rec["metadata_bytes"] == len(tm.metadata_buffer(with_meta))
  assert len(rec["task_library_caveats"]) == 1 and "384" in rec["task_library_caveats"][0]


def test_verify_metadata_fails_on_other_vocab_description_or_no_metadata(bare, with_meta,
                                                                         tmp_path):
  other = testutil.write_tiny_vocab(str(tmp_path / "vocab.txt"))
  with pytest.raises(ValueError, match="expected exactly vocab.txt"):
    tm.verify_metadata(with_meta, **{**ARGS, "vocab_file": other})
  with pytest.raises(ValueError, match="TFLITE_METADATA buffer .* differs"):
    tm.verify_metadata(with_meta, **{**ARGS, "description": "another"})
  with pytest.raises(ValueError, match="no TFLITE_METADATA"):
    tm.verify_metadata(bare, **ARGS)


# Error branches of add_metadata.

def test_add_metadata_fails_if_input_order_is_not_mlperf(bare):
  m = flatbuffer_utils.convert_bytearray_to_object(bytearray(bare))
  m.subgraphs[0].inputs = list(m.subgraphs[0].inputs)[::-1]
  swapped = bytes(flatbuffer_utils.convert_object_to_bytearray(m))
  with pytest.raises(ValueError, match=r"inputs \['segment_ids', 'input_mask', "
                                       r"'input_ids'\].*in that order.*finalize_io"):
    tm.add_metadata(swapped, **ARGS)


def test_add_metadata_fails_if_output_order_is_not_mlperf(bare):
  m = flatbuffer_utils.convert_bytearray_to_object(bytearray(bare))
  m.subgraphs[0].outputs = list(m.subgraphs[0].outputs)[::-1]
  swapped = bytes(flatbuffer_utils.convert_object_to_bytearray(m))
  with pytest.raises(ValueError, match=r"outputs \['start_logits', 'end_logits'\]"):
    tm.add_metadata(swapped, **ARGS)


def test_add_metadata_fails_if_names_are_not_finalized():
  raw = _convert(_TinyQa())  # converter names: serving_default_input_ids:0, ...
  with pytest.raises(ValueError, match="serving_default_.*run tflite_export.finalize_io"):
    tm.add_metadata(raw, **ARGS)


def test_add_metadata_fails_if_input_is_not_int32(bare):
  m = flatbuffer_utils.convert_bytearray_to_object(bytearray(bare))
  sub = m.subgraphs[0]
  sub.tensors[sub.inputs[1]].type = 0  # FLOAT32
  bad = bytes(flatbuffer_utils.convert_object_to_bytearray(m))
  with pytest.raises(ValueError, match="'input_mask' has type FLOAT32.*expected INT32"):
    tm.add_metadata(bad, **ARGS)


def test_add_metadata_fails_if_model_already_has_metadata(with_meta):
  with pytest.raises(ValueError, match="already has packed associated files"):
    tm.add_metadata(with_meta, **ARGS)
  # The flatbuffer alone (zip cut off) still has TFLITE_METADATA.
  zip_start = min(i.header_offset for i in zipfile.ZipFile(io.BytesIO(with_meta)).infolist())
  with pytest.raises(ValueError, match="already has TFLITE_METADATA"):
    tm.add_metadata(with_meta[:zip_start], **ARGS)


def test_add_metadata_fails_if_vocab_missing_or_empty(bare, tmp_path):
  with pytest.raises(ValueError, match="Cannot read vocab file .*nope.txt"):
    tm.add_metadata(bare, **{**ARGS, "vocab_file": str(tmp_path / "nope.txt")})
  empty = tmp_path / "empty.txt"
  empty.write_bytes(b"")
  with pytest.raises(ValueError, match="is empty"):
    tm.add_metadata(bare, **{**ARGS, "vocab_file": str(empty)})
  no_cls = tmp_path / "no_cls.txt"
  no_cls.write_text("[PAD]\n[UNK]\n[SEP]\n[MASK]\nthe\n")
  with pytest.raises(ValueError, match=r"lacks special token\(s\) \[CLS\]"):
    tm.add_metadata(bare, **{**ARGS, "vocab_file": str(no_cls)})


def test_add_metadata_fails_on_non_tflite_bytes():
  with pytest.raises(ValueError, match="not a TFLite flatbuffer"):
    tm.add_metadata(b"\0" * 64, **ARGS)


def test_task_library_caveats():
  assert tm.task_library_caveats(384, True) == []
  assert any("384" in c for c in tm.task_library_caveats(128, True))
  assert any("lower-cases" in c for c in tm.task_library_caveats(384, False))
  desc = tm.qa_metadata(seq_length=384, do_lower_case=False, name="n",
                        description="d").description
  assert "cased;" in desc and "kUseLowerCase" in desc


def test_full_length_model_has_no_caveats(tmp_path):
  content = tflite_export.finalize_io(_convert(_TinyQa(seq_length=384)))
  out = tm.add_metadata(content, **ARGS)
  assert tm.verify_metadata(out, **ARGS)["task_library_caveats"] == []
  assert "Task Library caveat" not in _parse(out)["description"]
  assert os.path.getsize(testutil.UNCASED_VOCAB) == len(tm.packed_files(out)["vocab.txt"])
