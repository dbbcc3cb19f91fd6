"""multi_worker_mirrored with two CLI worker processes on 127.0.0.1.

Two `python -m hub_export.finetune` workers (TF_CONFIG, free local ports) train with a
global batch of 8; worker 1 is SIGKILLed after the chief's step-4 checkpoint; the chief
must then fail on its own (the strategy's health check aborts its collectives) with the
CLI's error line; both are restarted with the same command and resume. The loss of every
step and the final weights must be those of one device with batch 8 (in-process, the
same settings), within float noise; the head's dropout is on (rate 0.3), so its masks
must split over the two workers as on one device.
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from hub_export.finetune import config
from hub_export.finetune import data
from hub_export.finetune import input_pipeline
from hub_export.finetune import trainer
from tests import testutil
from tests.hub_export.finetune.conftest import EN_DEV

# End-to-end: trains in subprocesses (not in the fast run).
pytestmark = pytest.mark.slow

_STEPS = 8
_SETTINGS = dict(max_train_examples=24, seq_length=32, batch_size=8,
                 num_train_steps=_STEPS, checkpoint_every=2, log_every=1, seed=5,
                 dropout_rate=0.3, learning_rate=1e-3)
# Guards only (the run is killed and the test fails if one is exceeded), never asserted.
_START_GUARD_S = 600
_FAIL_GUARD_S = 300


class _Worker:
  """A CLI worker subprocess whose merged stdout/stderr lines are collected."""

  def __init__(self, argv, cluster, index):
    env = dict(os.environ, PYTHONPATH=testutil.REPO, TF_CPP_MIN_LOG_LEVEL="2",
               TF_CONFIG=json.dumps({"cluster": {"worker": cluster},
                                     "task": {"type": "worker", "index": index}}))
    self.proc = subprocess.Popen([sys.executable, "-m", "hub_export.finetune", *argv],
                                 env=env, cwd=testutil.REPO, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
    self.lines = []
    self._reader = threading.Thread(target=self._read, daemon=True)
    self._reader.start()

  def _read(self):
    for line in self.proc.stdout:
      self.lines.append(line.rstrip("\n"))

  def wait_for_line(self, pattern, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      if any(re.search(pattern, line) for line in list(self.lines)):
        return True
      if self.proc.poll() is not None:
        self._reader.join(5)
        return any(re.search(pattern, line) for line in self.lines)
      time.sleep(0.05)
    return False

  def wait(self, timeout):
    try:
      rc = self.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
      return None
    self._reader.join(10)
    return rc

  def kill(self):
    if self.proc.poll() is None:
      self.proc.send_signal(signal.SIGKILL)
    self.proc.wait()
    self._reader.join(10)

  def text(self):
    return "\n".join(self.lines[-60:])


def _argv(bundle, model_dir):
  return [f"--bundle_dir={bundle}", f"--model_dir={model_dir}", f"--train_file={EN_DEV}",
          "--distribution_strategy=multi_worker_mirrored",
          *[f"--{k}={v}" for k, v in _SETTINGS.items()]]


def _start_pair(bundle, model_dir):
  cluster = [f"127.0.0.1:{p}" for p in testutil.free_ports(2)]
  return [_Worker(_argv(bundle, model_dir), cluster, i) for i in (0, 1)]


def _losses(lines):
  out = {}
  for line in lines:
    m = re.match(r"step (\d+)/\d+  loss (\S+)", line)
    if m:
      out[int(m.group(1))] = float(m.group(2))
  return out


def _checkpoint_tensors(prefix):
  reader = tf.train.load_checkpoint(prefix)
  # Variables only: not the object graph (a serialized proto) nor the save counter.
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
          if "save_counter" not in name and name != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def test_two_workers_survive_a_sigkill_and_match_one_device(bundle, tmp_path):
  model_dir = tmp_path / "multi"
  workers = _start_pair(bundle, model_dir)
  try:
    assert workers[0].wait_for_line(r"^Saved checkpoint .*ckpt-4$", _START_GUARD_S), \
        workers[0].text() + "\n--- worker 1:\n" + workers[1].text()
    workers[1].kill()
    killed_at = time.monotonic()
    rc = workers[0].wait(_FAIL_GUARD_S)
    print(f"the chief exited {time.monotonic() - killed_at:.0f} s after worker 1 was killed")
    assert rc is not None, "the chief still runs after its peer died:\n" + workers[0].text()
    assert rc == 1, workers[0].text()
    assert any(line.startswith("error: a multi_worker_mirrored collective failed") and
               "restart all of them with the same command" in line
               for line in workers[0].lines), workers[0].text()
  finally:
    for w in workers:
      w.kill()
  first = workers[0].lines
  assert any("over 2 replica(s)" in line for line in first), workers[0].text()

  workers = _start_pair(bundle, model_dir)
  try:
    rcs = [w.wait(_START_GUARD_S) for w in workers]
  finally:
    for w in workers:
      w.kill()
  assert rcs == [0, 0], workers[0].text() + "\n--- worker 1:\n" + workers[1].text()
  resumed = [int(re.search(r"at step (\d+)", line).group(1))
             for w in workers for line in w.lines if "Resumed from" in line]
  assert len(resumed) == 2 and resumed[0] == resumed[1] >= 4, resumed
  assert all(str(model_dir) in line for w in workers for line in w.lines
             if "Resumed from" in line)  # Both restore the chief's checkpoint.
  assert not os.path.exists(model_dir / ".workertemp_worker_1")

  # One device, batch 8, in-process.
  reference_dir = tmp_path / "one_device"
  result = trainer.run(config.FinetuneConfig(
      bundle_dir=bundle, model_dir=str(reference_dir), train_file=EN_DEV, **_SETTINGS),
      log=lambda _: None)
  want = {r["step"]: r["loss"] for r in result.train_log}
  before = {s: v for s, v in _losses(first).items() if s <= resumed[0]}
  after = _losses(workers[0].lines)
  assert sorted(before) == list(range(1, resumed[0] + 1))
  assert sorted(after) == list(range(resumed[0] + 1, _STEPS + 1))
  got = {**before, **after}
  # The CLI prints 4 decimals.
  assert max(abs(got[s] - want[s]) for s in want) <= 2e-4, (got, want)

  multi = _checkpoint_tensors(str(model_dir / f"ckpt-{_STEPS}"))
  single = _checkpoint_tensors(str(reference_dir / f"ckpt-{_STEPS}"))
  assert sorted(multi) == sorted(single)
  diff = max(float(np.max(np.abs(multi[k].astype(np.float64) - single[k])))
             for k in single if single[k].dtype.kind == "f")
  print(f"resumed at step {resumed[0]}; max |loss difference| "
        f"{max(abs(got[s] - want[s]) for s in want):.2g}; max |weight difference| {diff:.3g}")
  assert diff <= 1e-4, diff


def test_each_input_pipeline_reads_its_contiguous_share_of_every_step(bundle):
  train = data.read_nli_file(EN_DEV, limit=24)
  order = data.example_order(24, seed=5, num_positions=3 * 8)
  dataset_fn = input_pipeline.train_dataset_fn(
      train, order, preprocessor=input_pipeline.load_preprocessor(bundle), seq_length=32,
      global_batch_size=8, num_replicas=2)
  shares = []
  for pipeline_id in (0, 1):
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline_id,
                                         num_replicas_in_sync=2)
    shares.append([b["index"].numpy().tolist() for b in dataset_fn(context)])
  by_step = order.reshape(3, 8).tolist()
  assert shares[0] == [row[:4] for row in by_step]
  assert shares[1] == [row[4:] for row in by_step]
