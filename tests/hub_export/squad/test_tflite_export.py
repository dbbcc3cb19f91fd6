"""The five .tflite files of the tiny squad/ export: MLPerf I/O, metadata, parity.

The reference is Model Garden's encoder + the SQuAD head in memory
(`model.reference_outputs`); windows are real XQuAD English (SQuAD v1.1 dev) questions
that the export neither calibrated nor verified on.
"""

import numpy as np
import pytest

from hub_export import verify
from hub_export.squad import constants
from hub_export.squad import tflite_analysis
from hub_export.squad import tflite_export
from hub_export.squad import tflite_metadata
from tests import testutil
from tests.hub_export.squad import metadata_fbs_reader as fbs
from tests.hub_export.squad.conftest import SEQ_LENGTH, read_file

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow

TFLITE = (tflite_export.FLOAT_FILE, tflite_export.GPU_FILE, tflite_export.INT8_FILE,
          tflite_export.NNAPI_FILE, tflite_export.DYNAMIC_FILE)


@pytest.mark.parametrize("name", TFLITE)
def test_tflite_has_mlperf_io(tiny_squad, name):
  io = tflite_analysis.io_details(read_file(tiny_squad, name))
  assert io["input_order"] == ["input_ids", "input_mask", "segment_ids"]
  assert io["output_order"] == ["end_logits", "start_logits"]
  for k in constants.INPUT_NAMES:
    assert io["inputs"][k] == ("int32", [1, SEQ_LENGTH])
  for k in constants.OUTPUT_NAMES:
    assert io["outputs"][k] == ("float32", [1, SEQ_LENGTH])


@pytest.mark.parametrize("name", TFLITE)
def test_tflite_carries_bert_question_answerer_metadata(tiny_squad, name):
  """Read back with the schema-based test reader, independent of our writer."""
  content = read_file(tiny_squad, name)
  meta = fbs.read(tflite_metadata.metadata_buffer(content))
  sg = meta["subgraph_metadata"][0]
  assert [t["name"] for t in sg["input_tensor_metadata"]] == ["ids", "mask", "segment_ids"]
  assert [t["name"] for t in sg["output_tensor_metadata"]] == ["end_logits",
                                                               "start_logits"]
  unit = sg["input_process_units"][0]
  assert unit["options_type"] == "BertTokenizerOptions"
  assert [(f["name"], f["type"]) for f in unit["vocab_file"]] == [
      ("vocab.txt", "VOCABULARY")]
  assert meta["min_parser_version"] == "1.1.0"
  with open(testutil.UNCASED_VOCAB, "rb") as f:
    assert tflite_metadata.packed_files(content) == {"vocab.txt": f.read()}
  rec = tiny_squad["manifest"]["checks"][name]["metadata"]
  assert rec["min_parser_version"] == "1.1.0" and rec["associated_files"] == ["vocab.txt"]
  # seq 128 here: the record says the Task Library (384 tokens) cannot run it.
  assert any("384" in c for c in rec["task_library_caveats"])


@pytest.mark.parametrize("name", (tflite_export.FLOAT_FILE, tflite_export.GPU_FILE))
def test_float_tflite_matches_float_model(tiny_squad, fresh_windows, name):
  got = tflite_analysis.run(read_file(tiny_squad, name), fresh_windows["batches"])
  for k, ref in fresh_windows["ref"].items():
    assert np.max(np.abs(got[k] - ref)) <= 1e-4 * np.max(np.abs(ref)), k


@pytest.mark.parametrize("name", tflite_export.INT8_FILES)
def test_int8_tflite_within_documented_sqnr(tiny_squad, fresh_windows, name):
  content = read_file(tiny_squad, name)
  got = tflite_analysis.run(content, fresh_windows["batches"])
  for k, ref in fresh_windows["ref"].items():
    assert verify.sqnr_db(got[k], ref) >= verify.TOLERANCES["squad_int8"]["target_sqnr_db"], k
  wq = tflite_analysis.weight_quantization(content)
  # Every FULLY_CONNECTED has int8 weights, per channel but for the two 1-column span
  # heads and the NNAPI variant's runtime-weight attention products. The dynamic-range
  # converter leaves weights under 1024 values in float: the two heads (1 x hidden).
  heads = 2
  runtime = 2 * 2 * 4 if name == tflite_export.NNAPI_FILE else 0
  if name == tflite_export.DYNAMIC_FILE:
    assert wq["int8_weights"] == wq["fully_connected"] - heads
    assert wq["per_channel"] == wq["int8_weights"]
  else:
    assert wq["int8_weights"] == wq["fully_connected"]
    assert wq["per_channel"] >= wq["fully_connected"] - heads - runtime
  fc_out = {s["outputs"][0]["type"] for s in tflite_analysis.op_signatures(content)
            if s["op"] == "FULLY_CONNECTED"}
  assert fc_out == ({"FLOAT32"} if name == tflite_export.DYNAMIC_FILE else {"INT8"})
