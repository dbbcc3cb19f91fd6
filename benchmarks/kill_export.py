r"""kill -9 of a running export at random moments: is anything ever half-written or lost?

  python benchmarks/kill_export.py --trials 30

Each trial starts the real CLI (`python export_main.py --checkpoint_dir=SRC
--export_dir=DEST`, half of the trials with `--overwrite` over an existing bundle) on
a tiny 2-block checkpoint with a 10-token vocab, SIGKILLs it at a moment drawn evenly
from [0.05, 1.1] x the duration of one export measured first (alternately the whole
process group and the leader alone, so the worker must die by itself), then checks:

* partial bundles: DEST exists but is not a complete bundle (manifest.json parses, and
  the same file list as the reference export; the directory only ever appears by a
  rename of a staging directory whose manifest.json is written last);
* lost bundles: with --overwrite, DEST is absent (neither the old nor the new bundle);
* orphan processes: children of the killed export (psutil, listed just before the
  kill) still alive 30 s after it;
* failed reruns: the same command run again does not succeed (without --overwrite, a
  rerun refusing a complete bundle that the killed run had already published counts
  as success), or leaves DEST incomplete;
* stale temp entries: .DEST.tmp-*/.DEST.old-* beside DEST after the rerun.

It prints one table; every count but "trials" must be 0.
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import psutil

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import publish  # pylint: disable=g-import-not-at-top,wrong-import-position
from tests import testutil  # pylint: disable=g-import-not-at-top,wrong-import-position

RUN_TIMEOUT_S = 1800  # Guard only.


def _command(source, dest, overwrite):
  return [sys.executable, os.path.join(REPO, "export_main.py"), f"--checkpoint_dir={source}",
          f"--export_dir={dest}"] + (["--overwrite"] if overwrite else [])


def _files(bundle):
  return sorted(os.path.relpath(os.path.join(d, f), bundle)
                for d, _, names in os.walk(bundle) for f in names)


def is_complete(bundle, reference_files):
  """Whether `bundle` has a parseable manifest.json and the reference export's files."""
  try:
    with open(os.path.join(bundle, "manifest.json"), encoding="utf-8") as f:
      json.load(f)
  except (OSError, ValueError):
    return False
  return _files(bundle) == reference_files


def _run(cmd, log_path):
  with open(log_path, "ab") as log:
    return subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                          timeout=RUN_TIMEOUT_S, check=False).returncode


def _kill_at(cmd, seconds, whole_group, log_path):
  """Starts `cmd`, SIGKILLs it after `seconds` (if still running); returns (rc, orphans)."""
  with open(log_path, "ab") as log:
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                               start_new_session=True)
  deadline = time.time() + seconds
  children = []
  while time.time() < deadline and process.poll() is None:
    try:
      children = psutil.Process(process.pid).children(recursive=True) or children
    except psutil.NoSuchProcess:
      pass
    time.sleep(0.05)
  if process.poll() is None:
    try:
      children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
      pass
    if whole_group:
      os.killpg(process.pid, signal.SIGKILL)
    else:
      os.kill(process.pid, signal.SIGKILL)
  rc = process.wait()
  _, alive = psutil.wait_procs(children, timeout=30)
  for p in alive:  # Clean up after counting them.
    try:
      p.kill()
    except psutil.Error:
      pass
  return rc, len(alive)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--trials", type=int, default=30)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--keep", action="store_true", help="keep the work directory")
  args = parser.parse_args()
  rng = random.Random(args.seed)
  root = tempfile.mkdtemp(prefix="kill_export_")
  log_path = os.path.join(root, "exports.log")
  source = os.path.join(root, "src")
  vocab = testutil.write_tiny_vocab(os.path.join(root, "vocab.txt"))
  testutil.write_checkpoint(source, testutil.tiny_config(vocab_size=10), vocab_file=vocab,
                            seed=3)
  reference = os.path.join(root, "reference")
  start = time.time()
  if _run(_command(source, reference, False), log_path) != 0:
    sys.exit(f"the reference export failed; see {log_path}")
  duration = time.time() - start
  reference_files = _files(reference)
  print(f"reference export: {duration:.1f} s, {len(reference_files)} files; log {log_path}",
        flush=True)
  counts = dict(trials=0, partial_bundles=0, lost_bundles=0, orphan_processes=0,
                failed_reruns=0, stale_temp_entries=0)
  fractions = [0.05 + 1.05 * (i + rng.random()) / args.trials for i in range(args.trials)]
  rng.shuffle(fractions)
  for trial, fraction in enumerate(fractions):
    overwrite = trial % 2 == 1
    whole_group = (trial // 2) % 2 == 0
    dest = os.path.join(root, f"trial{trial:03d}", "bundle")
    os.makedirs(os.path.dirname(dest))
    if overwrite:
      shutil.copytree(reference, dest)
    cmd = _command(source, dest, overwrite)
    rc, orphans = _kill_at(cmd, fraction * duration, whole_group, log_path)
    present = os.path.lexists(dest)
    complete = present and is_complete(dest, reference_files)
    counts["trials"] += 1
    counts["orphan_processes"] += orphans
    counts["partial_bundles"] += int(present and not complete)
    counts["lost_bundles"] += int(overwrite and not present)
    rerun = _run(cmd, log_path)
    ok = (rerun == 0 or (not overwrite and complete and rerun == 1)) and \
        is_complete(dest, reference_files)
    counts["failed_reruns"] += int(not ok)
    stale = publish.entries(dest)
    counts["stale_temp_entries"] += len(stale)
    print(f"trial {trial:3d}: kill at {fraction:4.2f} x {duration:.0f} s "
          f"({'group' if whole_group else 'leader'}{', --overwrite' if overwrite else ''}): "
          f"exit {rc}, destination {'complete' if complete else 'PARTIAL' if present else 'absent'}"
          f", orphans {orphans}, rerun exit {rerun}{'' if ok else ' FAILED'}, stale {stale}",
          flush=True)
    if not args.keep:
      shutil.rmtree(os.path.dirname(dest), ignore_errors=True)
  print()
  print("| " + " | ".join(counts) + " |")
  print("|" + "---|" * len(counts))
  print("| " + " | ".join(str(v) for v in counts.values()) + " |")
  if not args.keep:
    shutil.rmtree(root, ignore_errors=True)
  sys.exit(0 if all(v == 0 for k, v in counts.items() if k != "trials") else 1)


if __name__ == "__main__":
  main()
