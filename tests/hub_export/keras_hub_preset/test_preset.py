"""The bundle's keras_hub/ preset end to end: written by the CLI, moved, loaded on every
Keras backend in a fresh interpreter, compared with encoder/, fine-tuned, saved, uploaded.

References come from this process (TensorFlow): the bundle's encoder SavedModel on the
export's probe batches, and the original BERT packing of XNLI dev pairs (`xnli_pairs`).
`backend_check.py` runs each backend's side.
"""

import json
import os
import runpy
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from checkpoints.config import MobileBertConfig
from hub_export import verify
from hub_export.keras_hub_preset import card
from preprocessors import vocab as vocab_lib
from tests import testutil
from tests.hub_export.keras_hub_preset import xnli_pairs

pytestmark = pytest.mark.slow

BOUND = verify.TOLERANCES["keras_hub"]["max_rel"]
PRESET_FILES = ["assets/tokenizer/vocabulary.txt", "config.json", "metadata.json",
                "model.weights.h5", "preprocessor.json", "task.json", "task.weights.h5",
                "tokenizer.json"]
PAIR_LANGS = ("el", "zh", "hi", "th", "ar", "ru", "de", "en")
PAIR_SEQUENCE_LENGTH = 48


def _reference(bundle: str, path: str) -> str:
  """Writes the .npz `backend_check.py` compares with; returns `path`."""
  with open(os.path.join(bundle, "manifest.json"), encoding="utf-8") as f:
    manifest = json.load(f)
  config = MobileBertConfig.from_json_file(os.path.join(bundle, "checkpoint",
                                                        "bert_config.json"))
  vocab_file = os.path.join(bundle, "checkpoint", "vocab.txt")
  batches = verify.probe_batch(config, vocab_lib.load_vocab(vocab_file).special_ids, seed=3)
  encoder = tf.saved_model.load(os.path.join(bundle, "encoder"))
  arrays = {"num_batches": len(batches), "pair_sequence_length": PAIR_SEQUENCE_LENGTH}
  for i, b in enumerate(batches):
    out = encoder.mlm({k: b[k] for k in verify.ENCODER_INPUTS + ("masked_lm_positions",)},
                      training=False)
    arrays.update({f"{i}/token_ids": b["input_word_ids"], f"{i}/segment_ids":
                   b["input_type_ids"], f"{i}/padding_mask": b["input_mask"],
                   f"{i}/mask_positions": b["masked_lm_positions"],
                   **{f"{i}/{k}": out[k].numpy()
                      for k in ("sequence_output", "pooled_output", "mlm_logits")}})
  truth = xnli_pairs.truth(vocab_file, manifest["do_lower_case"])
  premises, hypotheses = [], []
  for lang in PAIR_LANGS:
    p, h = xnli_pairs.xnli(lang, 2)
    premises += p
    hypotheses += h
  packed = [xnli_pairs.original_pack(truth, a, b, PAIR_SEQUENCE_LENGTH)
            for a, b in zip(premises, hypotheses)]
  for j, key in enumerate(("token_ids", "segment_ids", "padding_mask")):
    arrays[f"pair/{key}"] = np.array([p[j] for p in packed], np.int64)
  np.savez(path, premises=np.array(premises), hypotheses=np.array(hypotheses), **arrays)
  return path


def test_cli_writes_the_preset_and_records_its_check(keras_hub_bundle):
  preset = os.path.join(keras_hub_bundle["dir"], "keras_hub")
  files = sorted(os.path.relpath(os.path.join(r, n), preset)
                 for r, _, names in os.walk(preset) for n in names)
  assert files == PRESET_FILES
  with open(os.path.join(keras_hub_bundle["dir"], "manifest.json"), encoding="utf-8") as f:
    entry = json.load(f)["keras_hub"]
  assert sorted(entry["files"]) == PRESET_FILES
  assert entry["tasks"] == ["MaskedLM", "TextClassifier"]
  assert set(entry["figures"]) == {"sequence_output", "pooled_output", "mlm_logits"}
  assert all(f["max_rel"] < BOUND for f in entry["figures"].values()), entry["figures"]
  assert entry["tokenizer"]["identical"] and entry["tokenizer"]["sentences"] >= 14
  with open(os.path.join(preset, "config.json"), encoding="utf-8") as f:
    config = json.load(f)
  assert config["registered_name"] == "mobilebert>MobileBertBackbone"
  assert config["config"]["vocabulary_size"] == 119547
  assert config["config"]["attention_mask"] == "original"
  with open(os.path.join(preset, "tokenizer.json"), encoding="utf-8") as f:
    assert json.load(f)["config"]["do_lower_case"] is False


def test_model_card_section_shows_the_snippets_and_figures(keras_hub_bundle):
  with open(os.path.join(keras_hub_bundle["dir"], "README.md"), encoding="utf-8") as f:
    readme = f.read()
  assert card.TITLE in readme
  for name in card.SNIPPETS:
    assert f"```python\n{card.snippet(name)}```\n" in readme, name
  section = readme[readme.index(card.TITLE):readme.index("## Limits")]
  assert section.count("\n\n```python\n") == len(card.SNIPPETS)
  assert section.count("\n```\n\n") == len(card.SNIPPETS)  # one blank line after each
  assert readme.index(card.TITLE) < readme.index("## Limits")
  assert card.section(None) == ""
  with pytest.raises(ValueError, match="unknown keras_hub snippet"):
    card.snippet("nope.py")


def _run_backend(backend, cases, tmp_path):
  case_file, result_file = tmp_path / f"{backend}.json", tmp_path / f"{backend}.out.json"
  case_file.write_text(json.dumps(cases))
  env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=testutil.REPO,
             TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  proc = subprocess.run(
      [sys.executable, "-m", "tests.hub_export.keras_hub_preset.backend_check",
       str(case_file), str(result_file)], cwd=str(tmp_path), env=env, capture_output=True,
      text=True, timeout=1200, check=False)
  assert proc.returncode == 0, proc.stderr[-4000:]
  return json.loads(result_file.read_text())


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_from_preset_fit_and_save_on_every_backend(backend, keras_hub_bundle, full_preset,
                                                   tmp_path):
  """Tiny (moved bundle, sources deleted) on every backend, with one fit step and a
  save/reload; the full-size preset on JAX and PyTorch (TensorFlow: the export check)."""
  cases = [{"preset": os.path.join(keras_hub_bundle["dir"], "keras_hub"), "fit": True,
            "reference": _reference(keras_hub_bundle["dir"], str(tmp_path / "tiny.npz"))}]
  if backend != "tensorflow":
    cases.append({"preset": full_preset["preset"], "fit": False,
                  "reference": _reference(full_preset["bundle"],
                                          str(tmp_path / "full.npz"))})
  results = _run_backend(backend, cases, tmp_path)
  for case, result in zip(cases, results):
    assert result["backend"] == backend
    assert all(v < BOUND for v in result["max_rel"].values()), (case["preset"], result)
    assert set(result["max_rel"]) == {"sequence_output", "pooled_output", "mlm_logits"}
    assert result["ids_identical"], case["preset"]
  tiny = results[0]
  assert tiny["trainable_weights"] > 100
  assert tiny["unchanged_after_fit"] == []
  assert tiny["reload_max_abs"] < 1e-6 and tiny["reload_backbone_max_abs"] < 1e-6


def test_full_size_preset_verified_at_export(full_preset):
  summary = full_preset["summary"]
  assert summary["with_mlm"] and summary["tokenizer"]["identical"]
  assert all(f["max_rel"] < BOUND for f in summary["figures"].values()), summary["figures"]


def test_fine_tune_snippet_runs_as_it_stands(keras_hub_bundle, tmp_path):
  link = tmp_path / "path" / "to" / "bundle"
  link.parent.mkdir(parents=True)
  link.symlink_to(keras_hub_bundle["dir"], target_is_directory=True)
  env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
  env.update(PYTHONPATH=testutil.REPO, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run(
      [sys.executable, os.path.join(os.path.dirname(card.__file__), "snippets",
                                    "keras_hub_fine_tune.py")],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "(1, 64)" in proc.stdout and "(1, 1, 119547)" in proc.stdout
  assert "(2, 3)" in proc.stdout
  assert (tmp_path / "my_mobilebert_classifier" / "task.json").is_file()


def test_upload_snippet_passes_keras_hubs_checks_and_reaches_kaggle(keras_hub_bundle,
                                                                  tmp_path, monkeypatch):
  """keras-hub's `upload_preset` validates the directory, then hands it to kagglehub;
  here kagglehub's upload records its arguments instead of using the network."""
  from keras_hub.src.utils import preset_utils  # pylint: disable=g-import-not-at-top
  calls = []
  monkeypatch.setattr(preset_utils.kagglehub, "model_upload",
                      lambda handle, path: calls.append((handle, path)))
  link = tmp_path / "path" / "to" / "bundle"
  link.parent.mkdir(parents=True)
  link.symlink_to(keras_hub_bundle["dir"], target_is_directory=True)
  monkeypatch.chdir(tmp_path)
  runpy.run_path(os.path.join(os.path.dirname(card.__file__), "snippets",
                              "keras_hub_upload.py"))
  assert calls == [("your_username/mobilebert/keras/multi_cased_L-24_H-128",
                    "path/to/bundle/keras_hub")]
  truncated = tmp_path / "truncated"
  shutil.copytree(os.path.join(keras_hub_bundle["dir"], "keras_hub"), truncated)
  os.remove(truncated / "model.weights.h5")
  import keras_hub  # pylint: disable=g-import-not-at-top
  with pytest.raises(FileNotFoundError, match="weights file is missing"):
    keras_hub.upload_preset("kaggle://u/mobilebert/keras/v", str(truncated))
  assert len(calls) == 1


def test_xnli_recipe_fine_tunes_the_preset_with_fit_on_torch(keras_hub_bundle, tmp_path):
  """`python -m hub_export.finetune --engine=keras_hub` under KERAS_BACKEND=torch: trains,
  writes the 15-language table format for the languages asked, saves a loadable preset."""
  xnli = os.path.join(testutil.SHARED_DATA, "xnli", "xtreme_dev")
  env = dict(os.environ, KERAS_BACKEND="torch", PYTHONPATH=testutil.REPO,
             TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run(
      [sys.executable, "-m", "hub_export.finetune", "--engine=keras_hub",
       f"--bundle_dir={keras_hub_bundle['dir']}", f"--train_file={xnli}/dev-en.tsv",
       "--max_train_examples=16", "--batch_size=8", "--num_train_steps=2",
       f"--eval_dir={xnli}", "--eval_languages=en,de,zh", "--max_eval_examples=16",
       "--seq_length=32", f"--model_dir={tmp_path / 'model'}",
       f"--export_dir={tmp_path / 'classifier'}"],
      cwd=testutil.REPO, env=env, capture_output=True, text=True, timeout=900, check=False)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  assert "keras-hub engine on the torch backend" in proc.stdout
  with open(tmp_path / "model" / "eval" / "results.json", encoding="utf-8") as f:
    table = json.load(f)
  assert [r["language"] for r in table["languages"]] == ["en", "de", "zh"]
  assert table["backend"] == "torch" and table["step"] == 2
  assert all(r["examples"] == 16 for r in table["languages"])
  assert (tmp_path / "model" / "eval" / "accuracy.png").is_file()
  with open(tmp_path / "classifier" / "task.json", encoding="utf-8") as f:
    assert json.load(f)["registered_name"] == "mobilebert>MobileBertTextClassifier"
