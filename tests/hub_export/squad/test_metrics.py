"""EM/F1 against the official SQuAD v1.1 script (tf-models-official's copy), SQNR goldens."""

import json
import math

import pytest
from official.nlp.tools import squad_evaluate_v1_1 as official

from hub_export import verify
from hub_export.squad import metrics
from tests.hub_export.squad.conftest import XQUAD_EN

TRICKY = ["The Denver Broncos", "denver broncos.", "  a   Panthers!!", "An apple, the pie",
          "theater", "Ångström — 1,000", "", "the", "U.S.A.", "Super Bowl 50's MVP"]


def _fixed_predictions(data):
  """A deterministic prediction file exercising every scoring path."""
  preds = {}
  for i, qa in enumerate(qa for a in data for p in a["paragraphs"] for qa in p["qas"]):
    gold = qa["answers"][0]["text"]
    kind = i % 6
    if kind == 0:
      preds[qa["id"]] = gold                         # exact
    elif kind == 1:
      preds[qa["id"]] = f"The {gold}."               # exact after normalization
    elif kind == 2:
      preds[qa["id"]] = gold.split()[0] + " extra words"  # partial overlap
    elif kind == 3:
      preds[qa["id"]] = "completely unrelated"       # wrong
    elif kind == 4:
      preds[qa["id"]] = ""                           # empty answer
    # kind 5: unanswered (missing from the file)
  return preds


def test_normalization_matches_official():
  for s in TRICKY:
    assert metrics.normalize_answer(s) == official._normalize_answer(s), s  # pylint: disable=protected-access


def test_em_f1_match_official_script_on_fixed_prediction_file(tmp_path):
  with open(XQUAD_EN) as f:
    data = json.load(f)["data"]
  preds = _fixed_predictions(data)
  path = tmp_path / "predictions.json"
  path.write_text(json.dumps(preds))
  preds = json.loads(path.read_text())
  ours = metrics.evaluate(data, preds)
  theirs = official.evaluate(data, preds)
  assert ours["total"] == 1190 and ours["answered"] == len(preds)
  assert ours["exact_match"] == pytest.approx(100.0 * theirs["exact_match"], abs=1e-9)
  assert ours["f1"] == pytest.approx(100.0 * theirs["final_f1"], abs=1e-9)
  # Not trivially 0 or 100: every path of the metric was taken.
  assert 20 < ours["exact_match"] < 50 and ours["exact_match"] < ours["f1"] < 60


def test_subset_keeps_only_named_questions():
  with open(XQUAD_EN) as f:
    data = json.load(f)["data"]
  first = [qa["id"] for qa in data[0]["paragraphs"][0]["qas"]][:2]
  sub = metrics.subset(data, first)
  assert [qa["id"] for a in sub for p in a["paragraphs"] for qa in p["qas"]] == first


def test_sqnr_hand_checked():
  # signal 1 + 1 = 2, noise 0.01 + 0.01 = 0.02 -> 10 log10(100) = 20 dB.
  assert verify.sqnr_db([[1.1, 0.9]], [[1.0, 1.0]]) == pytest.approx(20.0)
  assert math.isinf(verify.sqnr_db([[1.0]], [[1.0]]))


def test_sqnr_fails_on_shape_mismatch():
  with pytest.raises(ValueError, match="shapes differ"):
    verify.sqnr_db([[1.0, 2.0]], [[1.0]])


def test_evaluate_fails_on_question_without_answers():
  data = [{"paragraphs": [{"context": "x", "qas": [{"id": "q1", "question": "?",
                                                     "answers": []}]}]}]
  with pytest.raises(ValueError, match="q1 has no answers"):
    metrics.evaluate(data, {"q1": "x"})


def test_fidelity_answer_agreement():
  ref = {"end_logits": [[0.0, 1.0]], "start_logits": [[1.0, 0.0]]}
  got = {"end_logits": [[0.0, 1.0]], "start_logits": [[0.0, 1.0]]}
  fig = metrics.fidelity(got, ref, {"a": "Denver Broncos", "b": "x"},
                            {"a": "the Denver Broncos", "b": "y"})
  assert fig["argmax_agreement"] == {"end_logits": 1.0, "start_logits": 0.0}
  assert fig["answer_em"] == pytest.approx(50.0) and fig["answer_f1"] == pytest.approx(50.0)
