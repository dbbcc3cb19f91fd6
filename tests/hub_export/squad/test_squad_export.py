"""squad/ of a tiny bundle: artifacts, MLPerf I/O, parity with the float model, checks.

The reference is Model Garden's encoder + the SQuAD head in memory
(`model.reference_logits`); windows are real XQuAD English (SQuAD v1.1 dev) questions
that the export neither calibrated nor verified on.
"""

import os
import warnings

import numpy as np
import onnx
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  # pylint: disable=unused-import

from checkpoints import model as model_lib
from hub_export.squad import export as squad_export
from hub_export.squad import features as features_lib
from hub_export.squad import model as qa_model
from hub_export.squad import onnx_export
from hub_export.squad import squad_eval
from hub_export.squad import tflite_export
from hub_export.squad import tflite_metadata
from tests.hub_export.squad.conftest import SEQ_LENGTH, XQUAD_EN
from tests import testutil
from tests.hub_export.squad import metadata_fbs_reader as fbs

TFLITE = (tflite_export.FLOAT_FILE, tflite_export.GPU_FILE, tflite_export.INT8_FILE,
          tflite_export.NNAPI_FILE)


@pytest.fixture(scope="module")
def fresh_windows(tiny_squad):
  """Windows of XQuAD questions 20..27 (the export used 0..11) and their reference."""
  examples = features_lib.read_squad_json(XQUAD_EN, limit=28)[20:]
  m = tiny_squad["manifest"]
  feats = features_lib.Featurizer(
      testutil.UNCASED_VOCAB, do_lower_case=True, max_seq_length=SEQ_LENGTH,
      doc_stride=m["doc_stride"], max_query_length=m["max_query_length"]).features(examples)
  batches = list(features_lib.iter_batches(feats))
  ref = squad_export.reference_outputs(tiny_squad["model"], batches)
  return dict(examples=examples, features=feats, batches=batches, ref=ref)


def _read(tiny_squad, name):
  with open(os.path.join(tiny_squad["dir"], name), "rb") as f:
    return f.read()



@pytest.mark.parametrize("name", TFLITE)
def test_tflite_has_mlperf_io(tiny_squad, name):
  io = tflite_export.io_details(_read(tiny_squad, name))
  assert io["input_order"] == ["input_ids", "input_mask", "segment_ids"]
  assert io["output_order"] == ["end_logits", "start_logits"]
  for k in qa_model.INPUT_NAMES:
    assert io["inputs"][k] == ("int32", [1, SEQ_LENGTH])
  for k in qa_model.OUTPUT_NAMES:
    assert io["outputs"][k] == ("float32", [1, SEQ_LENGTH])


@pytest.mark.parametrize("name", TFLITE)
def test_tflite_carries_bert_question_answerer_metadata(tiny_squad, name):
  """Read back with the schema-based test reader, independent of our writer."""
  content = _read(tiny_squad, name)
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
  got = tflite_export.run(_read(tiny_squad, name), fresh_windows["batches"])
  for k, ref in fresh_windows["ref"].items():
    assert np.max(np.abs(got[k] - ref)) <= 1e-4 * np.max(np.abs(ref)), k


@pytest.mark.parametrize("name", (tflite_export.INT8_FILE, tflite_export.NNAPI_FILE))
def test_int8_tflite_within_documented_sqnr(tiny_squad, fresh_windows, name):
  content = _read(tiny_squad, name)
  got = tflite_export.run(content, fresh_windows["batches"])
  for k, ref in fresh_windows["ref"].items():
    assert squad_eval.sqnr_db(got[k], ref) >= squad_export.TOLERANCES["int8_target_sqnr_db"], k
  wq = tflite_export.weight_quantization(content)
  # Every FULLY_CONNECTED has int8 weights; all but the two 1-column span heads (and
  # the NNAPI variant's runtime-weight attention products) per channel.
  assert wq["int8_weights"] == wq["fully_connected"]
  assert wq["per_channel"] >= wq["fully_connected"] - 2 - (
      2 * 2 * 4 if name == tflite_export.NNAPI_FILE else 0)
  types = {t["type"] for s in tflite_export.op_signatures(content) for t in s["outputs"]}
  assert "INT8" in types


def test_onnx_float_and_int8(tiny_squad, fresh_windows):
  for name in (onnx_export.FLOAT_FILE, onnx_export.INT8_FILE):
    path = os.path.join(tiny_squad["dir"], name)
    m = onnx.load(path)
    assert [i.name for i in m.graph.input] == list(qa_model.INPUT_NAMES)
    assert [o.name for o in m.graph.output] == list(qa_model.OUTPUT_NAMES)
    got = onnx_export.run(onnx_export.session(path), fresh_windows["batches"])
    for k, ref in fresh_windows["ref"].items():
      if name == onnx_export.FLOAT_FILE:
        assert np.max(np.abs(got[k] - ref)) <= 1e-4 * np.max(np.abs(ref)), k
      else:
        assert squad_eval.sqnr_db(got[k], ref) >= 20.0, k
  qdq = onnx_export.qdq_summary(os.path.join(tiny_squad["dir"], onnx_export.INT8_FILE))
  assert qdq["QuantizeLinear"] > 0 and qdq["per_channel_weights"] > 0


def test_gpu_check_passes_gpu_variant_and_fails_plain_float(tiny_squad):
  assert tflite_export.gpu_findings(_read(tiny_squad, tflite_export.GPU_FILE)) == []
  plain = tflite_export.gpu_findings(_read(tiny_squad, tflite_export.FLOAT_FILE))
  assert any("BROADCAST_TO" in f for f in plain), plain
  assert any("shrink_axis_mask" in f for f in plain), plain


def test_official_gpu_analyzer_is_a_stub_in_this_tensorflow():
  """Why `gpu_findings` exists: the pip Analyzer passes TOPK_V2, a non-GPU op."""
  fn = tf.function(lambda x: tf.math.top_k(x, 2).values,
                   input_signature=[tf.TensorSpec([4, 8], tf.float32)])
  content = tf.lite.TFLiteConverter.from_concrete_functions(
      [fn.get_concrete_function()], tf.Module()).convert()
  assert tflite_export.official_gpu_analyzer(content)["compatible"]  # wrongly
  assert tflite_export.gpu_findings(content) == ["Op#0 TOPK_V2: Not supported op TOPK_V2"]


def test_nnapi_check_passes_nnapi_variant_and_fails_plain_int8(tiny_squad):
  assert tflite_export.nnapi_findings(_read(tiny_squad, tflite_export.NNAPI_FILE)) == []
  plain = tflite_export.nnapi_findings(_read(tiny_squad, tflite_export.INT8_FILE))
  assert plain and all("BATCH_MATMUL" in f for f in plain), plain
  # Float models fail it too (float data).
  assert tflite_export.nnapi_findings(_read(tiny_squad, tflite_export.GPU_FILE))


def test_answer_signature_returns_context_substring_like_python_pipeline(tiny_squad,
                                                                        fresh_windows):
  loaded = tf.saved_model.load(os.path.join(tiny_squad["dir"], "saved_model"))
  answer = loaded.signatures["answer"]
  ref = fresh_windows["ref"]
  want = features_lib.best_answers(fresh_windows["examples"], fresh_windows["features"],
                                   ref["start_logits"], ref["end_logits"])
  for ex in fresh_windows["examples"]:
    out = answer(question=tf.constant(ex.question), context=tf.constant(ex.context))
    text = out["answer"].numpy().decode("utf-8")
    start, limit = int(out["start_byte"]), int(out["limit_byte"])
    assert text and text in ex.context
    assert ex.context.encode("utf-8")[start:limit].decode("utf-8") == text
    assert text == want[ex.qid], ex.qid


def test_manifest_records_checks(tiny_squad):
  m = tiny_squad["manifest"]
  assert m["squad_head"] == "from the checkpoint"
  assert set(m["files"]) == set(TFLITE) | {onnx_export.FLOAT_FILE, onnx_export.INT8_FILE}
  assert m["checks"][tflite_export.GPU_FILE]["gpu_findings"] == []
  assert os.path.isfile(os.path.join(tiny_squad["dir"], squad_export.MANIFEST))


def test_qa_forward_matches_reference_with_padding(tiny_squad):
  model = tiny_squad["model"]
  weights = qa_model.QaWeights.from_model(model)
  batch = testutil.encoder_inputs(30522, batch=2, seq_length=SEQ_LENGTH, seed=5)
  for row in range(2):
    args = [tf.constant(batch[k][row:row + 1]) for k in
            ("input_word_ids", "input_mask", "input_type_ids")]
    ref = qa_model.reference_logits(model, *args)
    for opts in (qa_model.ForwardOptions(), qa_model.ForwardOptions(nnapi=True)):
      got = qa_model.QaForward(weights, seq_length=SEQ_LENGTH, options=opts)(*args)
      for k in qa_model.OUTPUT_NAMES:
        r = ref[k].numpy()
        assert np.max(np.abs(got[k].numpy() - r)) <= 1e-5 * np.max(np.abs(r)), (k, opts)


def test_fresh_head_is_seeded_and_warns(tiny_squad):
  model = model_lib.MobileBertModel(config=tiny_squad["config"],
                                    encoder=tiny_squad["model"].encoder, masked_lm=None,
                                    squad=None)
  with pytest.raises(ValueError, match="no SQuAD head"):
    qa_model.QaWeights.from_model(model)
  lines = []
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    assert qa_model.ensure_squad_head(model, seed=3, log=lines.append)
  assert any("UNTRAINED" in str(w.message) for w in caught)
  assert "FRESH, UNTRAINED head" in lines[0]
  w = model.squad.output_weights.numpy()
  assert 0 < np.std(w) <= 0.02 and np.max(np.abs(w)) <= 0.04
  assert not qa_model.ensure_squad_head(model, seed=3, log=lines.append)


def test_export_fails_without_calibration_room(tmp_path, tiny_squad):
  with pytest.raises(ValueError, match="calibration_questions=0"):
    squad_export.export_squad(str(tmp_path / "s"), tiny_squad["model"],
                              vocab_file=testutil.UNCASED_VOCAB, do_lower_case=True,
                              squad_file=XQUAD_EN, calibration_questions=0)
  assert not os.path.exists(tmp_path / "s")


def test_model_card_section_lists_every_file_with_its_figure(tiny_squad):
  m = tiny_squad["manifest"]
  summary = {"files": m["files"], "squad_head": m["squad_head"],
             "figures": {n: c.get("figures") for n, c in m["checks"].items()},
             "tolerances": m["tolerances"], "seq_length": m["seq_length"]}
  text = squad_export.model_card_section(summary)
  assert squad_export.model_card_section(None) == ""
  assert "```" not in text  # the model card's code blocks are executed by its tests
  for name in m["files"]:
    row = next(l for l in text.splitlines() if l.startswith(f"| `squad/{name}` |"))
    fig = m["checks"][name]["figures"]
    if "int8" in name:
      want = f"start_logits SQNR {fig['start_logits']['sqnr_db']:.1f} dB"
    else:
      want = f"start_logits max rel. diff {fig['start_logits']['max_rel']:.1e}"
    assert want in row, row
  assert f"[1, {SEQ_LENGTH}]" in text and "from the checkpoint" in text
