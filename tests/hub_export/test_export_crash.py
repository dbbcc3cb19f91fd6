"""The real export CLI killed with SIGKILL, run twice at once, and out of file size.

Tiny 2-block checkpoint with a 10-token vocab; every export runs `export_main.py` in its
own process group. Kill moments are triggered by the export's own log lines (spread over
the export: before the staging directory exists, while the worker writes preprocessor/,
during the encoder save, during verification, around publishing).
`benchmarks/kill_export.py` runs many more, at random moments.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

import publish
from tests import testutil

pytestmark = pytest.mark.slow

REPO = testutil.REPO
GUARD_S = 1800  # Timeouts are guards only.
ENV = dict(os.environ, PYTHONUNBUFFERED="1")
# The tiny export's largest file of checkpoint/ is 298,355 bytes, of encoder/ its
# saved_model.pb (353,623 bytes): a limit between them fails inside the encoder save.
FSIZE_LIMIT = 320_000


@pytest.fixture(scope="module")
def source(tmp_path_factory):
  root = tmp_path_factory.mktemp("crash_source")
  vocab = testutil.write_tiny_vocab(str(root / "vocab.txt"))
  d = str(root / "src")
  testutil.write_checkpoint(d, testutil.tiny_config(vocab_size=10), vocab_file=vocab, seed=3)
  return d


def _command(source, dest, overwrite=False):
  return [sys.executable, "export_main.py", f"--checkpoint_dir={source}",
          f"--export_dir={dest}"] + (["--overwrite"] if overwrite else [])


def _start(cmd):
  return subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _wait_for(process, marker):
  """Reads the export's output until a line containing `marker`; returns all lines."""
  lines = []
  for line in process.stdout:
    lines.append(line)
    if marker in line:
      return lines
  pytest.fail(f"the export ended (exit {process.wait()}) before {marker!r}:\n"
              + "".join(lines[-20:]))


def _kill(process, whole_group):
  """SIGKILLs the export (its process group, or the leader alone); returns survivors."""
  children = psutil.Process(process.pid).children(recursive=True)
  if whole_group:
    os.killpg(process.pid, signal.SIGKILL)
  else:
    os.kill(process.pid, signal.SIGKILL)
  process.stdout.read()
  assert process.wait(timeout=GUARD_S) == -signal.SIGKILL
  _, alive = psutil.wait_procs(children, timeout=60)
  for p in alive:
    p.kill()
  return alive


def _check_complete(bundle):
  """A complete bundle: manifest.json parses and every SavedModel loads."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_text  # pylint: disable=g-import-not-at-top,unused-import  # preprocessor ops
  with open(os.path.join(bundle, "manifest.json"), encoding="utf-8") as f:
    manifest = json.load(f)
  tf.saved_model.load(os.path.join(bundle, "encoder"))
  tf.saved_model.load(os.path.join(bundle, "preprocessor"))
  return manifest


def _rerun(source, dest, overwrite):
  result = subprocess.run(_command(source, dest, overwrite), cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=GUARD_S, check=False)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  return _check_complete(dest)


# (log line that triggers the kill, seconds after it, kill the whole group?)
NEW_DESTINATION_KILLS = (
    ("Saving preprocessor/", 0.0, True),  # No staging directory yet, or just made.
    ("Converting", 3.0, False),  # The worker writes preprocessor/ meanwhile.
    ("Saving encoder/", 2.0, True),  # Inside the encoder save.
)
OVERWRITE_KILLS = (
    ("Verifying encoder/", 0.0, False),
    ("Waiting for preprocessor/", 0.5, True),
    ("Verified:", 0.0, False),  # Writing manifest/README, publishing.
)


def test_kill_9_leaves_nothing_half_written_and_reruns_succeed(source, tmp_path):
  dest = str(tmp_path / "bundle")
  # A new destination: after each kill it is absent (or, if published, complete); the
  # same command then runs again over what the killed one left.
  for marker, delay, whole_group in NEW_DESTINATION_KILLS:
    export = _start(_command(source, dest))
    _wait_for(export, marker)
    time.sleep(delay)
    assert _kill(export, whole_group) == []
    assert not os.path.lexists(dest) or _check_complete(dest)
  assert not os.path.lexists(dest)  # Every kill came before publishing.
  assert publish.entries(dest), "the killed exports should have left staging directories"
  first = _rerun(source, dest, overwrite=False)
  assert publish.entries(dest) == []
  # Over an existing bundle: after each kill the old or the new bundle is there.
  for marker, delay, whole_group in OVERWRITE_KILLS:
    export = _start(_command(source, dest, overwrite=True))
    _wait_for(export, marker)
    time.sleep(delay)
    assert _kill(export, whole_group) == []
    manifest = _check_complete(dest)
    assert manifest["created_utc"] >= first["created_utc"]
  second = _rerun(source, dest, overwrite=True)
  assert second["created_utc"] > first["created_utc"]
  assert publish.entries(dest) == []


def test_a_second_export_into_the_same_directory_fails_at_once(source, tmp_path):
  dest = str(tmp_path / "bundle")
  first = _start(_command(source, dest))
  try:
    _wait_for(first, "Converting")
    os.killpg(first.pid, signal.SIGSTOP)  # Holds the lock until killed, however slow.
    second = subprocess.run(_command(source, dest), cwd=REPO, env=ENV, capture_output=True,
                            text=True, timeout=GUARD_S, check=False)
    assert second.returncode == 1
    errors = [line for line in second.stderr.splitlines() if "export failed" in line]
    assert errors == [
        f"export failed: another export is writing --export_dir={dest}: pid {first.pid} "
        f"({' '.join(_command(source, dest))}) holds the lock "
        f"{publish.lock_path(dest)}; wait for it to finish or choose another --export_dir"]
  finally:
    _kill(first, whole_group=True)


def test_the_worker_dies_with_its_parent(tmp_path):
  vocab = testutil.write_tiny_vocab(str(tmp_path / "vocab.txt"))
  parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
      import sys, time
      from hub_export import worker
      w = worker.PreprocessorWorker(sys.argv[1], sys.argv[2], True, 16)
      print(w.pid, flush=True)
      time.sleep(600)
      """), str(tmp_path / "stage" / "preprocessor"), vocab], cwd=REPO, env=ENV,
      stdout=subprocess.PIPE, text=True)
  worker_pid = int(parent.stdout.readline())
  children = psutil.Process(parent.pid).children(recursive=True)
  assert worker_pid in [p.pid for p in children]
  parent.kill()  # SIGKILL to the parent alone: nothing of Python runs there any more.
  parent.wait(timeout=GUARD_S)
  _, alive = psutil.wait_procs(children, timeout=60)
  for p in alive:
    p.kill()
  assert alive == []


WATCHDOG_ONLY_CHILD = """
import sys, time
from hub_export import worker


def main(lifeline, parent_pid):
  sys.platform = "not-linux"  # _die_with_parent then skips PR_SET_PDEATHSIG.
  worker._die_with_parent(lifeline, parent_pid)
  time.sleep(600)
"""


def test_the_watchdog_alone_ends_the_child_when_the_parent_dies(tmp_path):
  # The child's module is light (no TensorFlow), so its watchdog runs within a second.
  (tmp_path / "watchdog_only_child.py").write_text(WATCHDOG_ONLY_CHILD)
  parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
      import multiprocessing, os, sys, time
      sys.path.insert(0, sys.argv[1])
      import watchdog_only_child
      if __name__ == "__main__":
        ctx = multiprocessing.get_context("spawn")
        lifeline, keep = ctx.Pipe(duplex=False)
        child = ctx.Process(target=watchdog_only_child.main, args=(lifeline, os.getpid()))
        child.start()
        lifeline.close()
        print(child.pid, flush=True)
        time.sleep(600)
      """), str(tmp_path)], cwd=REPO, env=ENV, stdout=subprocess.PIPE, text=True)
  child = psutil.Process(int(parent.stdout.readline()))
  time.sleep(5)  # Let the child reach its watchdog; a guard, not a measurement.
  assert child.is_running() and child.status() != psutil.STATUS_ZOMBIE
  parent.kill()
  parent.wait(timeout=GUARD_S)
  _, alive = psutil.wait_procs([child], timeout=60)
  for p in alive:
    p.kill()
  assert alive == []


def test_a_file_size_limit_in_the_encoder_save_is_one_line_and_keeps_the_old_bundle(
    source, tiny_bundle, tmp_path):
  dest = tmp_path / "bundle"
  shutil.copytree(tiny_bundle["dir"], dest)  # The old bundle, which --overwrite would replace.
  old_manifest = (dest / "manifest.json").read_text()
  old_files = sorted(os.listdir(dest))
  child = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
      import resource, signal, sys
      signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
      resource.setrlimit(resource.RLIMIT_FSIZE, ({FSIZE_LIMIT}, resource.RLIM_INFINITY))
      import export_main
      sys.exit(export_main.run_main(sys.argv))
      """), f"--checkpoint_dir={source}", f"--export_dir={dest}", "--overwrite"],
      cwd=REPO, env=ENV, capture_output=True, text=True, timeout=GUARD_S, check=False)
  assert child.returncode == 1, child.stdout[-3000:] + child.stderr[-3000:]
  errors = [line for line in child.stderr.splitlines() if "export failed" in line]
  assert len(errors) == 1, child.stderr[-3000:]
  prefix = f"export failed: cannot write {tmp_path}/.bundle{publish.TMP_INFIX}"
  assert errors[0].startswith(prefix), errors
  assert "/encoder/" in errors[0], errors
  assert errors[0].endswith(": File too large (the disk is full or a file-size limit was "
                            "hit); free space or choose another --export_dir"), errors
  assert (dest / "manifest.json").read_text() == old_manifest
  assert sorted(os.listdir(dest)) == old_files
  assert publish.entries(str(dest)) == []


def test_a_file_size_limit_in_the_classifier_export_is_one_line_and_leaves_nothing(
    tiny_bundle, tmp_path):
  # An untrained head is enough: the export's write path is under test, not training.
  export_dir = tmp_path / "classifier"
  child = subprocess.run([sys.executable, "-c", textwrap.dedent("""
      import os, resource, signal, sys
      import tensorflow as tf
      import publish
      from hub_export.finetune import classifier
      bundle, export_dir, model_dir, limit = sys.argv[1:]
      model = classifier.build_classifier(os.path.join(bundle, "encoder"), seq_length=16)
      checkpoint = tf.train.Checkpoint(model=model).save(os.path.join(model_dir, "ckpt"))
      signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
      resource.setrlimit(resource.RLIMIT_FSIZE, (int(limit), resource.RLIM_INFINITY))
      try:
        classifier.export_classifier(export_dir, bundle_dir=bundle, checkpoint=checkpoint,
                                     seq_length=16)
      except publish.WriteError as e:
        print(f"WriteError|{e}")
      """), tiny_bundle["dir"], str(export_dir), str(tmp_path / "model"), "200000"],
      cwd=REPO, env=ENV, capture_output=True, text=True, timeout=GUARD_S, check=False)
  assert child.returncode == 0, child.stdout[-3000:] + child.stderr[-3000:]
  (line,) = [x for x in child.stdout.splitlines() if x.startswith("WriteError|")]
  message = line.split("|", 1)[1]
  assert message.startswith(f"cannot write {tmp_path}/.classifier{publish.TMP_INFIX}")
  assert message.endswith(": File too large (the disk is full or a file-size limit was "
                          "hit); free space or choose another --export_dir")
  assert sorted(os.listdir(tmp_path)) == ["model"]  # No classifier, no staging, no lock.
