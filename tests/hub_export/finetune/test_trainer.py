"""finetune.trainer on the real XNLI files with the tiny multilingual-vocab bundle.

Training to memorization, exact resume after an interruption, a mirrored strategy over
two logical CPUs, and the checks of FinetuneConfig.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from hub_export import pipeline
from hub_export.finetune import config
from hub_export.finetune import data
from hub_export.finetune import trainer
from tests import testutil
from tests.hub_export.finetune.conftest import EN_DEV
from tests.hub_export.finetune.conftest import in_memory_probabilities
from tests.hub_export.finetune.conftest import train_pairs

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow


def test_overfits_64_english_pairs(trained, bundle):
  log = trained["result"].train_log
  assert [r["step"] for r in log] == list(range(10, 201, 10))
  assert log[0]["loss"] > 1.0 and log[-1]["loss"] < 0.1 * log[0]["loss"]
  assert all(r["examples_per_second"] > 0 for r in log)
  # Accuracy on the training pairs, recomputed here with dropout off.
  train = train_pairs()
  probabilities = in_memory_probabilities(trained["result"].model, bundle, train.premises,
                                          train.hypotheses)
  accuracy = np.mean(np.argmax(probabilities, axis=-1) == train.labels)
  assert accuracy >= 0.95, accuracy
  # Every step saw each of the 64 pairs exactly once (batch = the whole set).
  assert [s for s, _ in trained["steps"]] == list(range(1, 201))
  assert all(sorted(ids) == list(range(64)) for _, ids in trained["steps"])
  assert any("step 200/200" in line and "examples/s" in line for line in trained["lines"])
  assert os.listdir(os.path.join(trained["cfg"].model_dir, "train"))  # TensorBoard events.


class _Interrupted(Exception):
  pass


def _small_cfg(bundle, model_dir, **overrides):
  kwargs = dict(bundle_dir=bundle, model_dir=str(model_dir), train_file=EN_DEV,
                max_train_examples=24, seq_length=32, batch_size=8, num_train_steps=8,
                checkpoint_every=3, log_every=4, seed=5)
  kwargs.update(overrides)
  return config.FinetuneConfig(**kwargs)


def test_resume_after_interruption_continues_from_the_saved_step(bundle, tmp_path):
  def recorder(seen, stop_after=None):
    def on_step(step, ids):
      seen[step] = ids.tolist()
      if step == stop_after:
        raise _Interrupted()
    return on_step

  # The uninterrupted order: 8 steps x 8 = 64 positions over 24 pairs, i.e. epochs 0 and 1
  # whole and 16 pairs of epoch 2.
  order = data.example_order(24, seed=5, num_positions=64)
  reference = {s: order[8 * (s - 1):8 * s].tolist() for s in range(1, 9)}

  first = {}
  with pytest.raises(_Interrupted):
    trainer.run(_small_cfg(bundle, tmp_path / "run"), log=lambda _: None,
                on_step=recorder(first, stop_after=5))
  assert tf.train.latest_checkpoint(str(tmp_path / "run")).endswith("ckpt-3")
  resumed, lines = {}, []
  result = trainer.run(_small_cfg(bundle, tmp_path / "run"), log=lines.append,
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

  with pytest.raises(config.FinetuneError,
                     match=r"cannot resume .*seed: saved 5, now 6.*pass a new --model_dir"):
    trainer.run(_small_cfg(bundle, tmp_path / "run", seed=6), log=lambda _: None)


_MIRRORED_SNIPPET = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from hub_export.finetune import cli
sys.exit(cli.run_main(sys.argv))
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


@pytest.mark.parametrize("overrides,pattern", [
    (dict(bundle_dir="/nonexistent"), r"--bundle_dir=/nonexistent does not exist \(expected a bundle"),
    (dict(seq_length=2), r"--seq_length=2 must be in \[3, 512\]"),
    (dict(num_epochs=None, num_train_steps=None), r"pass --num_epochs > 0 or --num_train_steps"),
    (dict(distribution_strategy="horovod"), r"--distribution_strategy=horovod is not one of"),
    (dict(warmup_proportion=1.0), r"--warmup_proportion=1.0 must be in \[0, 1\)"),
    (dict(batch_size=0), r"--batch_size=0 must be >= 1"),
])
def test_config_check_names_the_bad_value(bundle, tmp_path, overrides, pattern):
  kwargs = dict(bundle_dir=bundle, model_dir=str(tmp_path), train_file=EN_DEV)
  kwargs.update(overrides)
  with pytest.raises(config.FinetuneError, match=pattern):
    config.FinetuneConfig(**kwargs).check()


def test_config_check_refuses_an_existing_export_dir(bundle, tmp_path):
  with pytest.raises(config.FinetuneError, match="already exists"):
    config.FinetuneConfig(bundle_dir=bundle, model_dir=str(tmp_path), train_file=EN_DEV,
                          export_dir=str(tmp_path)).check()


def test_records_the_bundles_attention_masking_and_trains_in_model_garden_mode(
    bundle, tmp_path):
  """Fine-tuning works in either masking mode and records the one it trained with."""
  lines = []
  trainer.run(_small_cfg(bundle, tmp_path / "default", num_train_steps=2), log=lines.append)
  with open(tmp_path / "default" / "run_config.json") as f:
    assert json.load(f)["attention_mask"] == "original"  # the export's default
  assert any("masks padded keys as 'original'" in line for line in lines)
  source = os.path.join(os.path.dirname(bundle), "source_ckpt")
  mg = pipeline.export_bundle(
      str(tmp_path / "mg_bundle"), checkpoint=source,
      bert_config_file=os.path.join(source, "bert_config.json"),
      vocab_file=os.path.join(source, "vocab.txt"),
      options=pipeline.BundleOptions(attention_mask="model_garden"), log=lambda _: None)
  result = trainer.run(_small_cfg(mg.export_dir, tmp_path / "mg", num_train_steps=2),
                       log=lambda _: None)
  assert result.step == 2
  with open(tmp_path / "mg" / "run_config.json") as f:
    assert json.load(f)["attention_mask"] == "model_garden"
