"""finetune.classifier: the exported serving classifier of the trained run, on disk."""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub

from hub_export import verify
from hub_export.finetune import classifier
from hub_export.finetune import config
from hub_export.finetune import data
from hub_export.finetune import trainer
from tests.hub_export.finetune.conftest import EN_DEV
from tests.hub_export.finetune.conftest import SEQ_LENGTH
from tests.hub_export.finetune.conftest import in_memory_probabilities
from tests.hub_export.finetune.conftest import train_pairs

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow


def test_english_accuracy_agrees_with_the_exported_classifier(trained):
  # The exported SavedModel, run over all English dev pairs, scored here against the file.
  served = tf.saved_model.load(trained["cfg"].export_dir).signatures["serving_default"]
  dev = data.read_nli_file(EN_DEV)
  labels = []
  for i in range(0, len(dev), 500):
    out = served(premise=tf.constant(dev.premises[i:i + 500]),
                 hypothesis=tf.constant(dev.hypotheses[i:i + 500]))
    labels += [x.decode() for x in out["label"].numpy()]
  accuracy = np.mean(np.array(labels) == np.array([data.LABELS[i] for i in dev.labels]))
  row = trained["result"].results["languages"][data.XNLI_LANGUAGES.index("en")]
  assert accuracy == pytest.approx(row["accuracy"], abs=1.5 / len(dev))


def test_exported_classifier_matches_the_in_memory_model(trained, bundle):
  export_dir = trained["cfg"].export_dir
  train = train_pairs()
  premises = list(train.premises) + ["Der Hund schläft.", "東京は日本の首都です。", ""]
  hypotheses = list(train.hypotheses) + ["Ein Tier ruht.", "東京は都市です。", "Nothing."]
  want = in_memory_probabilities(trained["result"].model, bundle, premises, hypotheses)
  want_labels = [data.LABELS[i] for i in np.argmax(want, axis=-1)]

  loaded = tf.saved_model.load(export_dir)
  assert list(loaded.signatures) == ["serving_default"]
  signature = loaded.signatures["serving_default"]
  assert sorted(signature.structured_outputs) == ["label", "probabilities"]
  assert sorted(signature.structured_input_signature[1]) == ["hypothesis", "premise"]
  out = signature(premise=tf.constant(premises), hypothesis=tf.constant(hypotheses))
  assert out["probabilities"].dtype == tf.float32 and out["probabilities"].shape == (67, 3)
  np.testing.assert_allclose(out["probabilities"].numpy(), want, atol=1e-5)
  assert [x.decode() for x in out["label"].numpy()] == want_labels
  assert [x.decode() for x in loaded.label_names.numpy()] == [
      "entailment", "neutral", "contradiction"]

  layer = hub.KerasLayer(export_dir)
  via_keras = layer({"premise": tf.constant(premises), "hypothesis": tf.constant(hypotheses)})
  np.testing.assert_allclose(via_keras["probabilities"].numpy(), want, atol=1e-5)
  assert [x.decode() for x in via_keras["label"].numpy()] == want_labels


def test_export_refuses_an_existing_directory(trained, bundle):
  with pytest.raises(FileExistsError, match="already exists"):
    classifier.export_classifier(
        trained["cfg"].export_dir, bundle_dir=bundle,
        checkpoint=tf.train.latest_checkpoint(trained["cfg"].model_dir),
        seq_length=SEQ_LENGTH)


def test_export_fails_if_the_reloaded_model_disagrees_and_leaves_nothing(
    trained, bundle, tmp_path, monkeypatch):
  # No difference can be <= -1: the bound is read from verify.TOLERANCES at call time.
  monkeypatch.setitem(verify.TOLERANCES["classifier"], "max_abs_probability", -1.0)
  export_dir = tmp_path / "classifier"
  with pytest.raises(config.FinetuneError,
                     match=r"reloaded classifier disagrees .*\(tolerance -1\)"):
    classifier.export_classifier(
        str(export_dir), bundle_dir=bundle,
        checkpoint=tf.train.latest_checkpoint(trained["cfg"].model_dir),
        seq_length=SEQ_LENGTH, log=lambda _: None)
  assert os.listdir(tmp_path) == []  # Neither the classifier nor a staging directory.


def test_export_fails_without_a_checkpoint(bundle, tmp_path):
  with pytest.raises(config.FinetuneError, match="no fine-tuning checkpoint to export"):
    classifier.export_classifier(str(tmp_path / "classifier"), bundle_dir=bundle,
                                 checkpoint=None, seq_length=SEQ_LENGTH)
  assert not os.path.exists(tmp_path / "classifier")


def test_the_export_records_its_run_and_a_rerun_keeps_it(trained, tmp_path):
  """A run killed after its export landed is rerun: the export is kept, not refused."""
  cfg = dataclasses.replace(trained["cfg"], eval_dir=None)
  record = config.export_record(cfg.export_dir)
  assert record == {"model_dir": os.path.abspath(cfg.model_dir), "checkpoint": "ckpt-200",
                    "bundle_dir": os.path.abspath(cfg.bundle_dir), "seq_length": SEQ_LENGTH}
  before = sorted(os.listdir(cfg.export_dir))
  lines = []
  result = trainer.run(cfg, log=lines.append)
  assert result.export_dir == cfg.export_dir and result.step == 200
  assert any(line.startswith(f"Serving classifier already exported to {cfg.export_dir}")
             and line.endswith("; kept") for line in lines), lines
  assert sorted(os.listdir(cfg.export_dir)) == before
  # Another run's --export_dir, or a directory without the record, is still refused.
  with pytest.raises(config.FinetuneError, match=r"--export_dir=.* already exists \(and is "
                     r"not this --model_dir's export\)"):
    dataclasses.replace(cfg, model_dir=str(tmp_path / "other")).check()
  plain = tmp_path / "plain"
  plain.mkdir()
  with pytest.raises(config.FinetuneError, match="already exists"):
    dataclasses.replace(cfg, export_dir=str(plain)).check()
