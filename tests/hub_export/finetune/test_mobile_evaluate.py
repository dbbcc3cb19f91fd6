"""finetune.mobile.evaluate: every variant of the trained run's export on 15 XNLI languages."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from hub_export.finetune import data
from hub_export.finetune.mobile import convert
from hub_export.finetune.mobile import evaluate
from tests.hub_export.finetune.conftest import XNLI_DIR

pytestmark = pytest.mark.slow

PAIRS = 8


def _error_lines(stderr):
  return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def run(trained, tmp_path_factory):
  out = tmp_path_factory.mktemp("eval_mobile")
  argv = ["evaluate", f"--classifier_dir={trained['cfg'].export_dir}",
          f"--eval_dir={XNLI_DIR}", f"--max_eval_examples={PAIRS}", f"--output_dir={out}"]
  return out, argv


def test_all_variants_on_15_languages(trained, run, capsys):
  out, argv = run
  assert evaluate.run_main(argv) == 0, capsys.readouterr().err
  stdout = capsys.readouterr().out
  for name in ("results.json", "results.md", "accuracy.png"):
    assert os.path.getsize(out / name) > 0, name
  with open(out / "accuracy.png", "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  markdown = (out / "results.md").read_text(encoding="utf-8")
  assert markdown in stdout
  rows = [line for line in markdown.splitlines() if line.startswith("| ")]
  header, body = rows[0], rows[1:]
  assert "saved_model accuracy (%)" in header and "int8 agreement (%)" in header
  assert "saved_model agreement" not in header
  assert [r.split("|")[1].strip() for r in body] == [*data.XNLI_LANGUAGES, "**average**"]

  with open(out / "results.json", encoding="utf-8") as f:
    table = json.load(f)
  assert table["variants"] == ["saved_model", "float", "int8"]
  assert [r["language"] for r in table["languages"]] == list(data.XNLI_LANGUAGES)
  serve = tf.saved_model.load(trained["cfg"].export_dir).signatures["serving_default"]
  accuracies = []
  for row in table["languages"]:
    gold = data.read_nli_file(os.path.join(XNLI_DIR, f"dev-{row['language']}.tsv"),
                              limit=PAIRS)
    labels = serve(premise=tf.constant(gold.premises),
                   hypothesis=tf.constant(gold.hypotheses))["label"].numpy()
    want = np.mean([label.decode() == data.LABELS[g] for label, g in zip(labels, gold.labels)])
    assert row["examples"] == PAIRS
    assert row["variants"]["saved_model"]["accuracy"] == pytest.approx(want), row
    assert row["variants"]["float"]["label_agreement"] == 1.0, row
    assert row["variants"]["float"]["max_abs_probability"] <= 1e-5, row
    assert 0.0 <= row["variants"]["int8"]["label_agreement"] <= 1.0
    accuracies.append(want)
  assert table["average"]["examples"] == 15 * PAIRS
  assert table["average"]["variants"]["saved_model"]["accuracy"] == pytest.approx(
      np.mean(accuracies))
  assert table["average"]["variants"]["float"]["label_agreement"] == 1.0


def test_a_missing_file_is_named_unless_its_variant_is_excluded(trained, tmp_path, capsys):
  partial = tmp_path / "classifier"
  partial.mkdir()
  export_dir = trained["cfg"].export_dir
  for name in os.listdir(export_dir):
    if name != convert.INT8_FILE:
      os.symlink(os.path.join(export_dir, name), partial / name)
  argv = ["evaluate", f"--classifier_dir={partial}", f"--eval_dir={XNLI_DIR}",
          "--max_eval_examples=2", "--eval_languages=en", f"--output_dir={tmp_path / 'out'}"]
  assert evaluate.run_main(argv) == 1
  [line] = _error_lines(capsys.readouterr().err)
  assert f"{partial / convert.INT8_FILE} does not exist" in line
  assert "--variants=saved_model,float" in line
  assert not os.path.exists(tmp_path / "out")
  assert evaluate.run_main(argv + ["--variants=saved_model,float"]) == 0
  with open(tmp_path / "out" / "results.json", encoding="utf-8") as f:
    assert json.load(f)["variants"] == ["saved_model", "float"]


@pytest.mark.parametrize("flag, match", [
    ("--eval_languages=en,xx", "--eval_languages=en,xx: ['xx'] are not XNLI languages"),
    ("--variants=float,int8", "--variants=float,int8 must be distinct names among"),
    ("--num_threads=0", "num_threads"),
    ("--tflite_seq_length=short", "--tflite_seq_length='short'; expected 'default'"),
])
def test_bad_flags_are_usage_errors_naming_the_value(run, flag, match, capsys):
  _, argv = run
  assert evaluate.run_main(argv + [flag]) == 2
  stderr = capsys.readouterr().err
  assert stderr.strip().splitlines() == _error_lines(stderr)
  [line] = _error_lines(stderr)
  assert match in line


def test_a_missing_eval_file_is_named(run, tmp_path, capsys):
  _, argv = run
  assert evaluate.run_main(argv + [f"--eval_dir={tmp_path}", "--eval_split=test"]) == 1
  [line] = _error_lines(capsys.readouterr().err)
  assert f"evaluation files not found: ar: {tmp_path / 'test-ar.tsv'}" in line


def test_the_tflite_variants_run_at_the_length_asked(run, tmp_path, capsys):
  _, argv = run
  argv = argv[:-1] + [f"--output_dir={tmp_path}", "--eval_languages=de",
                      "--variants=saved_model,float"]
  assert evaluate.run_main(argv + ["--tflite_seq_length=16"]) == 0
  with open(tmp_path / "results.json", encoding="utf-8") as f:
    table = json.load(f)
  assert table["tflite_seq_length"] == "16"
  # Packed to 16 tokens, most XNLI pairs are cut: not the SavedModel's (trained 32) input.
  assert table["languages"][0]["variants"]["float"]["max_abs_probability"] > 1e-5
  assert evaluate.run_main(argv + ["--tflite_seq_length=64"]) == 1
  [line] = _error_lines(capsys.readouterr().err)
  assert "seq_length=64; this file has classify signatures for [16, 32]" in line
