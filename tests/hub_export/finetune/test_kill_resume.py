"""Fine-tuning killed with SIGKILL at spread-out moments, rerun until done.

The run is the CLI's (`cli.config_from_argv` -> `trainer.run`) in a subprocess that also
appends each step's example indices to a file (`on_step`), so the test can prove that the
steps that count (those up to the checkpoint the next run resumed from) read every
position of the data order exactly once. Kills: inside a step, while the checkpoint of
step 6 is written, at a random time after training starts, during evaluation and during
the export; then a final rerun. The end state is compared with an uninterrupted run of
the same settings: every checkpointed variable, the data order and the exported
classifier's probabilities.

Exact resume needs the encoder's dropout off (`trainer`'s module docstring); the tiny
bundle of `conftest.bundle` has it off, and the head's dropout is on (rate 0.3), so the
step-seeded head dropout is what is tested.
"""

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
import tensorflow as tf

from hub_export.finetune import classifier
from hub_export.finetune import cli
from hub_export.finetune import resume
from hub_export.finetune import trainer
from tests import testutil
from tests.hub_export.finetune.conftest import EN_DEV
from tests.hub_export.finetune.conftest import in_memory_probabilities

# End-to-end: trains in subprocesses (not in the fast run).
pytestmark = pytest.mark.slow

_STEPS = 12
_RUNNER = """
import json, os, sys
from hub_export.finetune import cli, trainer
cfg = cli.config_from_argv(sys.argv)
with open(os.environ["STEP_RECORD"], "a") as out:
  def on_step(step, ids):
    out.write(json.dumps([step, ids.tolist()]) + "\\n")
    out.flush()
  trainer.run(cfg, log=lambda line: print(line, flush=True), on_step=on_step)
"""
# (trigger line regex, (min, max) seconds after it to send SIGKILL).
_KILLS = (
    (r"^step 3/", (0.0, 0.2)),  # Inside step 4 (or 5).
    (r"^step 6/", (0.0, 0.05)),  # The step-6 checkpoint is being written.
    (r"^Training steps", (0.5, 3.0)),  # Anywhere in the remaining steps.
    (r"^Evaluating", (0.0, 0.5)),
    (r"^Results: |Results: ", (0.2, 1.5)),  # The export runs after the results line.
)


def _argv(bundle, model_dir, export_dir):
  return ["prog", f"--bundle_dir={bundle}", f"--model_dir={model_dir}",
          f"--train_file={EN_DEV}", "--max_train_examples=20", "--seq_length=32",
          "--batch_size=4", f"--num_train_steps={_STEPS}", "--checkpoint_every=2",
          "--log_every=1", "--seed=3", "--dropout_rate=0.3", "--learning_rate=1e-3",
          f"--eval_files=en={EN_DEV}", "--max_eval_examples=16", "--eval_languages=en",
          f"--export_dir={export_dir}", "--notflite"]


def _run(argv, record, trigger=None, delay=0.0, timeout=600):
  """Runs the CLI runner; SIGKILLs it `delay` s after a line matches `trigger`.

  Returns:
    (output lines, killed, return code).
  """
  env = dict(os.environ, PYTHONPATH=testutil.REPO, TF_CPP_MIN_LOG_LEVEL="2",
             STEP_RECORD=str(record))
  proc = subprocess.Popen([sys.executable, "-c", _RUNNER, *argv[1:]], env=env,
                          cwd=testutil.REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  lines, killed = [], threading.Event()

  def kill():
    if proc.poll() is None:
      killed.set()
      proc.send_signal(signal.SIGKILL)

  timer = None
  for line in proc.stdout:
    lines.append(line.rstrip("\n"))
    if trigger and timer is None and re.search(trigger, line):
      timer = threading.Timer(delay, kill)
      timer.start()
  try:
    proc.wait(timeout=timeout)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
    if timer is not None:
      timer.cancel()
  return lines, killed.is_set(), proc.returncode


def _resumed_step(lines):
  for line in lines:
    m = re.search(r"Resumed from \S+ at step (\d+)", line)
    if m:
      return int(m.group(1))
  return 0


def _read_record(path):
  if not os.path.exists(path):
    return {}
  steps = {}
  with open(path) as f:
    for line in f:
      if line.endswith("\n"):  # A line cut by the kill is not a finished step.
        step, ids = json.loads(line)
        steps[step] = ids
  return steps


def _checkpoint_tensors(prefix):
  reader = tf.train.load_checkpoint(prefix)
  # Variables only: not the object graph (a serialized proto) nor the save counter.
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
          if "save_counter" not in name and name != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def test_sigkill_at_spread_out_moments_then_rerun_matches_an_uninterrupted_run(
    bundle, tmp_path):
  rng = random.Random(20261202)
  model_dir, export_dir = tmp_path / "killed", tmp_path / "killed_classifier"
  argv = _argv(bundle, model_dir, export_dir)
  runs = []  # (lines, killed, rc, record path)
  for i, (trigger, (low, high)) in enumerate(_KILLS + ((None, (0, 0)),)):
    record = tmp_path / f"steps_{i}.jsonl"
    lines, killed, rc = _run(argv, record, trigger, rng.uniform(low, high))
    runs.append((lines, killed, rc, record))
    if not killed:
      break
  lines, killed, rc, _ = runs[-1]
  assert not killed and rc == 0, "\n".join(lines[-40:])
  kills = sum(1 for r in runs if r[1])
  assert kills >= 4, [r[0][-3:] for r in runs]  # Steps, checkpoint, eval always reached.
  assert all(r[2] == -signal.SIGKILL for r in runs[:-1])

  # The steps that count: those of run i up to the step run i+1 resumed from.
  resumed = [_resumed_step(r[0]) for r in runs[1:]]
  assert resumed == sorted(resumed), resumed  # Never goes back to an older checkpoint.
  effective = {}
  for (_, _, _, record), until in zip(runs, resumed + [_STEPS]):
    for step, ids in _read_record(record).items():
      if step <= until:
        assert step not in effective, f"step {step} counted twice"
        effective[step] = ids
  assert sorted(effective) == list(range(1, _STEPS + 1))
  # TF's state file named only complete checkpoints here (the fallback for one that is
  # not is tested below, on damaged files).
  for lines, _, _, _ in runs:
    assert not any("skipping checkpoint" in line for line in lines), lines

  # The uninterrupted run, in-process.
  reference_dir = tmp_path / "reference"
  reference_steps = {}
  cfg = cli.config_from_argv(_argv(bundle, reference_dir, tmp_path / "reference_classifier"))
  result = trainer.run(cfg, log=lambda _: None,
                       on_step=lambda step, ids: reference_steps.update({step: ids.tolist()}))
  assert effective == reference_steps
  seen = [i for s in range(1, _STEPS + 1) for i in effective[s]]  # 48 = 2 epochs + 8.
  assert sorted(seen[:20]) == sorted(seen[20:40]) == list(range(20))
  assert len(set(seen[40:])) == 8

  got = _checkpoint_tensors(str(model_dir / f"ckpt-{_STEPS}"))
  want = _checkpoint_tensors(str(reference_dir / f"ckpt-{_STEPS}"))
  assert sorted(got) == sorted(want)
  diff = max(float(np.max(np.abs(got[k].astype(np.float64) - want[k])))
             for k in want if want[k].dtype.kind == "f")
  print(f"kills {kills}, resumed at steps {resumed}, max |weight difference| {diff:.3g}")
  assert diff <= 1e-5, diff
  assert all(np.array_equal(got[k], want[k]) for k in want if want[k].dtype.kind != "f")
  with open(model_dir / "eval" / "results.json") as f:
    assert json.load(f)["step"] == _STEPS

  # The export: complete and the uninterrupted model's probabilities.
  import tensorflow_text  # noqa: F401  # pylint: disable=g-import-not-at-top,unused-import
  served = tf.saved_model.load(str(export_dir))
  premises, hypotheses = ["A man sleeps.", "Der Hund bellt."], ["A person rests.", "Stille."]
  probabilities = served.signatures["serving_default"](
      premise=tf.constant(premises), hypothesis=tf.constant(hypotheses))["probabilities"]
  np.testing.assert_allclose(
      probabilities.numpy(),
      in_memory_probabilities(result.model, bundle, premises, hypotheses), atol=1e-5)


def _save_three(directory):
  value = tf.Variable(np.arange(1000, dtype=np.float32))
  checkpoint = tf.train.Checkpoint(value=value)
  manager = tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep=3)
  for step in (2, 4, 6):
    value.assign(np.full(1000, step, np.float32))
    manager.save(checkpoint_number=step)
  return value, checkpoint


@pytest.mark.parametrize("damage", ["truncated_data", "flipped_byte", "missing_index",
                                    "truncated_index"])
def test_an_incomplete_latest_checkpoint_is_skipped_with_a_logged_line(tmp_path, damage):
  value, checkpoint = _save_three(tmp_path)
  data_file = str(tmp_path / "ckpt-6.data-00000-of-00001")
  index_file = str(tmp_path / "ckpt-6.index")
  if damage == "truncated_data":
    os.truncate(data_file, os.path.getsize(data_file) // 2)
  elif damage == "flipped_byte":
    with open(data_file, "r+b") as f:
      f.seek(100)
      byte = f.read(1)
      f.seek(100)
      f.write(bytes([byte[0] ^ 0xFF]))
  elif damage == "missing_index":
    os.remove(index_file)
  else:
    os.truncate(index_file, os.path.getsize(index_file) - 10)
  assert resume.checkpoint_problem(str(tmp_path / "ckpt-6")) is not None
  value.assign(np.zeros(1000, np.float32))
  lines = []
  restored = resume.restore_latest_complete(checkpoint, str(tmp_path), lines.append)
  assert restored == str(tmp_path / "ckpt-4")
  np.testing.assert_array_equal(value.numpy(), np.full(1000, 4, np.float32))
  assert len(lines) == 1 and re.match(r"WARNING: skipping checkpoint .*ckpt-6: ", lines[0])


def test_no_complete_checkpoint_starts_afresh_and_says_so(tmp_path):
  value, checkpoint = _save_three(tmp_path)
  for step in (2, 4, 6):
    os.remove(tmp_path / f"ckpt-{step}.index")
  lines = []
  assert resume.restore_latest_complete(checkpoint, str(tmp_path), lines.append) is None
  assert len(lines) == 4 and "none of the 3 checkpoint(s)" in lines[-1]
  assert resume.restore_latest_complete(checkpoint, str(tmp_path / "empty"),
                                         lines.append) is None


def test_step_seeded_dropout_depends_on_seed_and_step_only():
  step = tf.Variable(7, dtype=tf.int64)
  layer = classifier.StepSeededDropout(0.5, seed=3, step=lambda: step)
  x = tf.ones([8, 64])
  first = layer(x, training=True).numpy()
  np.testing.assert_array_equal(first, layer(x, training=True).numpy())
  np.testing.assert_array_equal(
      first, classifier.StepSeededDropout(0.5, seed=3, step=lambda: step)(x, training=True))
  assert set(np.unique(first)) == {0.0, 2.0}
  assert 0.3 < np.mean(first == 0) < 0.7
  np.testing.assert_array_equal(layer(x, training=False), x)
  step.assign(8)
  assert not np.array_equal(first, layer(x, training=True).numpy())
  step.assign(7)
  other_seed = classifier.StepSeededDropout(0.5, seed=4, step=lambda: step)
  assert not np.array_equal(first, other_seed(x, training=True).numpy())
  # The split over replicas: test_multi_worker (2 workers vs one device, same weights).
  with pytest.raises(ValueError, match="no step source"):
    classifier.StepSeededDropout(0.5, seed=3)(x, training=True)
