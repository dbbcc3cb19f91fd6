"""`python -m hub_export.squad.evaluate` on the tiny squad/ export and XQuAD English.

Truths used: the official SQuAD v1.1 script (tf-models-official's copy) re-scores the
predictions the report publishes; the float variants must agree with the SavedModel to
float precision, the int8 ones within the export's SQNR bound.
"""

import pytest
import json
import os
import subprocess
import sys

from official.nlp.tools import squad_evaluate_v1_1 as official

from hub_export import verify
from hub_export.squad import evaluate
from hub_export.squad import onnx_export
from hub_export.squad import tflite_export
from tests import testutil
from tests.hub_export.squad.conftest import XQUAD_EN

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow

N_QUESTIONS = 6
SUBSET = 3


def test_cli_reports_every_variant_with_official_scores(tiny_squad, tmp_path, capsys):
  out_json, out_md = str(tmp_path / "eval.json"), str(tmp_path / "eval.md")
  code = evaluate.main(["evaluate", f"--squad_dir={tiny_squad['dir']}",
                        f"--squad_file={XQUAD_EN}", f"--max_questions={N_QUESTIONS}",
                        f"--mlperf_questions={SUBSET}", f"--output_json={out_json}",
                        f"--output_md={out_md}"])
  assert code == 0
  with open(out_json, encoding="utf-8") as f:
    report = json.load(f)
  names = [evaluate.REFERENCE, tflite_export.FLOAT_FILE, tflite_export.GPU_FILE,
           tflite_export.INT8_FILE, tflite_export.NNAPI_FILE, tflite_export.DYNAMIC_FILE,
           onnx_export.FLOAT_FILE,
           onnx_export.INT8_FILE]
  assert sorted(report["variants"]) == sorted(names)
  assert report["questions"] == N_QUESTIONS and report["subset_questions"] == SUBSET
  with open(XQUAD_EN, encoding="utf-8") as f:
    data = json.load(f)["data"]
  qids = [qa["id"] for a in data for p in a["paragraphs"] for qa in p["qas"]]
  for name in names:
    e = report["variants"][name]
    preds = e["predictions"]
    assert sorted(preds) == sorted(qids[:N_QUESTIONS])
    # Official script over the same questions (articles restricted to them).
    restricted = [dict(a, paragraphs=[dict(p, qas=[q for q in p["qas"]
                                                   if q["id"] in preds])
                                      for p in a["paragraphs"]]) for a in data]
    want = official.evaluate(restricted, preds)  # fractions; ours are percent
    assert abs(e["all"]["f1"] - 100.0 * want["final_f1"]) < 1e-9, name
    assert abs(e["all"]["exact_match"] - 100.0 * want["exact_match"]) < 1e-9, name
    fid = e["fidelity"]
    if "int8" in name:
      assert min(fid["sqnr_db"].values()) >= verify.TOLERANCES["squad_int8"]["target_sqnr_db"], name
    else:
      assert min(fid["sqnr_db"].values()) >= 60.0, name  # float: ~1e-6 relative error
      assert fid["answer_f1"] == 100.0 and preds == report["variants"][
          evaluate.REFERENCE]["predictions"], name
  with open(out_md, encoding="utf-8") as f:
    table = f.read()
  assert table in capsys.readouterr().out
  assert table.count("\n| mobilebert_") == len(names) - 1


def test_cli_fails_cleanly_without_saved_model(tmp_path, capsys):
  code = evaluate.main(["evaluate", f"--squad_dir={tmp_path}", f"--squad_file={XQUAD_EN}"])
  assert code == 1
  assert "has no saved_model/" in capsys.readouterr().err
  assert os.listdir(tmp_path) == []


def test_module_runs_as_a_program(tmp_path):
  """`python -m hub_export.squad.evaluate` reaches `main` and exits with its code."""
  proc = subprocess.run(
      [sys.executable, "-m", "hub_export.squad.evaluate", f"--squad_dir={tmp_path}",
       f"--squad_file={XQUAD_EN}"], cwd=testutil.REPO, capture_output=True, text=True,
      check=False)
  assert proc.returncode == 1, proc.stderr[-2000:]
  assert "has no saved_model/" in proc.stderr
