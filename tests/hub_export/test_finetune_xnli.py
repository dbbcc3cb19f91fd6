"""finetune_xnli on the real XNLI files with a tiny multilingual-vocab bundle.

The bundle: the original config's structure at toy size (2 blocks, hidden 64, no_norm),
the real multilingual cased vocab (119,547), seeded random weights, dropout 0 in the
encoder so that a short run can memorize 64 pairs.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
from sklearn import metrics

from hub_export import finetune_xnli
from hub_export import nli_data
from hub_export import pipeline
from tests import testutil

XNLI_DIR = os.path.join(testutil.SHARED_DATA, "xnli", "xtreme_dev")
EN_DEV = os.path.join(XNLI_DIR, "dev-en.tsv")
SEQ_LENGTH = 32


def _count_lines(path):
  with open(path, "rb") as f:
    return f.read().count(b"\n")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
  root = tmp_path_factory.mktemp("finetune_bundle")
  source = str(root / "source_ckpt")
  testutil.write_checkpoint(
      source, testutil.tiny_config(vocab_size=119547, hidden_dropout_prob=0.0,
                                   attention_probs_dropout_prob=0.0),
      vocab_file=testutil.MULTI_CASED_VOCAB, seed=11)
  result = pipeline.export_bundle(
      str(root / "bundle"), checkpoint=source,
      bert_config_file=os.path.join(source, "bert_config.json"),
      vocab_file=os.path.join(source, "vocab.txt"), log=lambda _: None)
  return result.export_dir


@pytest.fixture(scope="module")
def trained(bundle, tmp_path_factory):
  """200 full-batch steps on the first 64 English pairs; eval on all 15 languages; export."""
  root = tmp_path_factory.mktemp("finetune_run")
  steps = []
  lines = []
  cfg = finetune_xnli.FinetuneConfig(
      bundle_dir=bundle, model_dir=str(root / "model"), train_file=EN_DEV,
      max_train_examples=64, eval_dir=XNLI_DIR, seq_length=SEQ_LENGTH, batch_size=64,
      eval_batch_size=256, learning_rate=5e-3, num_train_steps=200, dropout_rate=0.0,
      log_every=10, checkpoint_every=100, export_dir=str(root / "classifier"))
  result = finetune_xnli.run(cfg, log=lines.append,
                             on_step=lambda step, ids: steps.append((step, ids.tolist())))
  return dict(cfg=cfg, result=result, steps=steps, lines=lines, root=root)


def _train_pairs():
  return nli_data.read_nli_file(EN_DEV, limit=64)


def _in_memory_probabilities(model, bundle, premises, hypotheses):
  pre = finetune_xnli.load_preprocessor(bundle)
  features = finetune_xnli.pack_pairs(pre, tf.constant(premises), tf.constant(hypotheses),
                                      SEQ_LENGTH)
  return tf.nn.softmax(model(features, training=False)).numpy()


def test_overfits_64_english_pairs(trained, bundle):
  log = trained["result"].train_log
  assert [r["step"] for r in log] == list(range(10, 201, 10))
  assert log[0]["loss"] > 1.0 and log[-1]["loss"] < 0.1 * log[0]["loss"]
  assert all(r["examples_per_second"] > 0 for r in log)
  # Accuracy on the training pairs, recomputed here with dropout off.
  train = _train_pairs()
  probabilities = _in_memory_probabilities(trained["result"].model, bundle, train.premises,
                                           train.hypotheses)
  accuracy = np.mean(np.argmax(probabilities, axis=-1) == train.labels)
  assert accuracy >= 0.95, accuracy
  # Every step saw each of the 64 pairs exactly once (batch = the whole set).
  assert [s for s, _ in trained["steps"]] == list(range(1, 201))
  assert all(sorted(ids) == list(range(64)) for _, ids in trained["steps"])
  assert any("step 200/200" in line and "examples/s" in line for line in trained["lines"])
  assert os.listdir(os.path.join(trained["cfg"].model_dir, "train"))  # TensorBoard events.


def test_evaluates_all_15_languages_with_their_example_counts(trained):
  model_dir = trained["cfg"].model_dir
  with open(os.path.join(model_dir, "eval", "results.json")) as f:
    table = json.load(f)
  assert [r["language"] for r in table["languages"]] == list(nli_data.XNLI_LANGUAGES)
  for row in table["languages"]:
    assert row["examples"] == _count_lines(os.path.join(XNLI_DIR, f"dev-{row['language']}.tsv"))
    assert 0 <= row["accuracy"] <= 1 and 0 <= row["macro_f1"] <= 1
  assert table["average"]["examples"] == 15 * 2490
  assert table["average"]["accuracy"] == pytest.approx(
      np.mean([r["accuracy"] for r in table["languages"]]))
  assert table["step"] == 200 and table["bundle_trained"] is True
  with open(os.path.join(model_dir, "eval", "results.md")) as f:
    markdown = f.read()
  for lang in nli_data.XNLI_LANGUAGES:
    assert f"| {lang} | 2490 |" in markdown
  assert "| **average** | 37350 |" in markdown
  with open(os.path.join(model_dir, "eval", "accuracy.png"), "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  assert os.listdir(os.path.join(model_dir, "eval"))  # Events beside the tables.


def test_english_accuracy_agrees_with_the_exported_classifier(trained):
  # The exported SavedModel, run over all English dev pairs, scored here against the file.
  served = tf.saved_model.load(trained["cfg"].export_dir).signatures["serving_default"]
  dev = nli_data.read_nli_file(EN_DEV)
  labels = []
  for i in range(0, len(dev), 500):
    out = served(premise=tf.constant(dev.premises[i:i + 500]),
                 hypothesis=tf.constant(dev.hypotheses[i:i + 500]))
    labels += [x.decode() for x in out["label"].numpy()]
  accuracy = np.mean(np.array(labels) == np.array([nli_data.LABELS[i] for i in dev.labels]))
  row = trained["result"].results["languages"][nli_data.XNLI_LANGUAGES.index("en")]
  assert accuracy == pytest.approx(row["accuracy"], abs=1.5 / len(dev))


def test_exported_classifier_matches_the_in_memory_model(trained, bundle):
  export_dir = trained["cfg"].export_dir
  train = _train_pairs()
  premises = list(train.premises) + ["Der Hund schläft.", "東京は日本の首都です。", ""]
  hypotheses = list(train.hypotheses) + ["Ein Tier ruht.", "東京は都市です。", "Nothing."]
  want = _in_memory_probabilities(trained["result"].model, bundle, premises, hypotheses)
  want_labels = [nli_data.LABELS[i] for i in np.argmax(want, axis=-1)]

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
    finetune_xnli.export_classifier(
        trained["cfg"].export_dir, bundle_dir=bundle,
        checkpoint=tf.train.latest_checkpoint(trained["cfg"].model_dir),
        seq_length=SEQ_LENGTH)


class _Interrupted(Exception):
  pass


def _small_cfg(bundle, model_dir, **overrides):
  kwargs = dict(bundle_dir=bundle, model_dir=str(model_dir), train_file=EN_DEV,
                max_train_examples=24, seq_length=32, batch_size=8, num_train_steps=8,
                checkpoint_every=3, log_every=4, seed=5)
  kwargs.update(overrides)
  return finetune_xnli.FinetuneConfig(**kwargs)


def test_resume_after_interruption_continues_from_the_saved_step(bundle, tmp_path):
  def recorder(seen, stop_after=None):
    def on_step(step, ids):
      seen[step] = ids.tolist()
      if step == stop_after:
        raise _Interrupted()
    return on_step

  # The uninterrupted order: 8 steps x 8 = 64 positions over 24 pairs, i.e. epochs 0 and 1
  # whole and 16 pairs of epoch 2.
  order = nli_data.example_order(24, seed=5, num_positions=64)
  reference = {s: order[8 * (s - 1):8 * s].tolist() for s in range(1, 9)}

  first = {}
  with pytest.raises(_Interrupted):
    finetune_xnli.run(_small_cfg(bundle, tmp_path / "run"), log=lambda _: None,
                      on_step=recorder(first, stop_after=5))
  assert tf.train.latest_checkpoint(str(tmp_path / "run")).endswith("ckpt-3")
  resumed, lines = {}, []
  result = finetune_xnli.run(_small_cfg(bundle, tmp_path / "run"), log=lines.append,
                             on_step=recorder(resumed))
  assert any("Resumed from" in line and "at step 3" in line for line in lines)
  assert sorted(resumed) == [4, 5, 6, 7, 8] and result.step == 8
  # Steps 1-3 of the interrupted run plus 4-8 of the resumed one read exactly what an
  # uninterrupted run reads: nothing repeated, nothing skipped.
  assert {s: first[s] for s in (1, 2, 3)} == {s: reference[s] for s in (1, 2, 3)}
  assert resumed == {s: reference[s] for s in range(4, 9)}
  seen = [i for s in (1, 2, 3) for i in first[s]] + [i for s in range(4, 9) for i in resumed[s]]
  assert sorted(seen[:24]) == sorted(seen[24:48]) == list(range(24))
  assert len(set(seen[48:])) == 16

  with pytest.raises(finetune_xnli.FinetuneError,
                     match=r"cannot resume .*seed: saved 5, now 6.*pass a new --model_dir"):
    finetune_xnli.run(_small_cfg(bundle, tmp_path / "run", seed=6), log=lambda _: None)


_MIRRORED_SNIPPET = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from hub_export import finetune_xnli
sys.exit(finetune_xnli.run_main(sys.argv))
"""


def test_mirrored_strategy_on_two_logical_cpus_runs_a_step(bundle, tmp_path):
  env = dict(os.environ, PYTHONPATH=testutil.REPO, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run(
      [sys.executable, "-c", _MIRRORED_SNIPPET, f"--bundle_dir={bundle}",
       f"--model_dir={tmp_path / 'model'}", f"--train_file={EN_DEV}",
       "--max_train_examples=8", "--seq_length=32", "--batch_size=4", "--num_train_steps=2",
       "--log_every=1", "--distribution_strategy=mirrored"],
      capture_output=True, text=True, env=env, timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "over 2 replica(s)" in proc.stdout
  assert "step 2/2" in proc.stdout
  assert tf.train.latest_checkpoint(str(tmp_path / "model")).endswith("ckpt-2")


def test_cli_reports_bad_data_and_bad_flags(bundle, tmp_path, capsys):
  bad = tmp_path / "train.tsv"
  bad.write_bytes(b"a\tb\tneutral\r\na\tb\tunsure\r\n")
  code = finetune_xnli.run_main(["finetune_xnli", f"--bundle_dir={bundle}",
                                 f"--model_dir={tmp_path / 'm'}", f"--train_file={bad}"])
  assert code == 1
  assert f"{bad}: line 2 has the unknown label 'unsure'" in capsys.readouterr().err
  assert not os.path.exists(tmp_path / "m")

  assert finetune_xnli.run_main(["finetune_xnli", f"--bundle_dir={bundle}"]) == 2
  assert "--model_dir" in capsys.readouterr().err
  assert finetune_xnli.run_main(["finetune_xnli", f"--bundle_dir={bundle}", "--model_dir=m",
                                 f"--train_file={EN_DEV}", "--eval_files=en"]) == 2
  assert "is not lang=path" in capsys.readouterr().err


@pytest.mark.parametrize("overrides,pattern", [
    (dict(bundle_dir="/nonexistent"), r"--bundle_dir=/nonexistent has no encoder/saved_model"),
    (dict(seq_length=2), r"--seq_length=2 must be in \[3, 512\]"),
    (dict(num_epochs=None, num_train_steps=None), r"pass --num_epochs > 0 or --num_train_steps"),
    (dict(distribution_strategy="horovod"), r"--distribution_strategy=horovod is not one of"),
    (dict(warmup_proportion=1.0), r"--warmup_proportion=1.0 must be in \[0, 1\)"),
    (dict(batch_size=0), r"--batch_size=0 must be >= 1"),
])
def test_config_check_names_the_bad_value(bundle, tmp_path, overrides, pattern):
  kwargs = dict(bundle_dir=bundle, model_dir=str(tmp_path), train_file=EN_DEV)
  kwargs.update(overrides)
  with pytest.raises(finetune_xnli.FinetuneError, match=pattern):
    finetune_xnli.FinetuneConfig(**kwargs).check()


def test_config_check_refuses_an_existing_export_dir(bundle, tmp_path):
  with pytest.raises(finetune_xnli.FinetuneError, match="already exists"):
    finetune_xnli.FinetuneConfig(bundle_dir=bundle, model_dir=str(tmp_path), train_file=EN_DEV,
                                 export_dir=str(tmp_path)).check()


def test_scores_match_scikit_learn():
  rng = np.random.default_rng(0)
  cases = [(rng.integers(0, 3, 500), rng.integers(0, 3, 500)),
           (np.array([0, 1, 2, 0]), np.array([0, 0, 0, 0])),  # Two classes never predicted.
           (np.array([1, 1, 1]), np.array([1, 1, 1]))]        # Classes 0 and 2 absent.
  for labels, predictions in cases:
    got = finetune_xnli.classification_scores(labels, predictions)
    assert got["examples"] == len(labels)
    assert got["accuracy"] == pytest.approx(metrics.accuracy_score(labels, predictions))
    assert got["macro_f1"] == pytest.approx(metrics.f1_score(
        labels, predictions, average="macro", labels=[0, 1, 2], zero_division=0))
