"""publish under kill -9, a second writer and failed writes (real processes, no TensorFlow)."""

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time

import filelock
import psutil
import pytest

import publish

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GUARD_S = 120  # Timeouts are guards only.


def _python(code, *args, **kwargs):
  """Starts `code` in a fresh interpreter with the repository importable."""
  return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          **kwargs)


def _wait_line(process, want):
  line = process.stdout.readline()
  assert want in line, f"got {line!r}; stderr: {process.stderr.read()}"
  return line


def _old_bundle(path, text="old"):
  os.makedirs(path)
  with open(os.path.join(path, "a.txt"), "w") as f:
    f.write(text)


def _read(path):
  with open(os.path.join(path, "a.txt")) as f:
    return f.read()


# A writer that dies by SIGKILL between the two renames of the fallback swap.
KILLED_BETWEEN_RENAMES = """
import os, signal, sys
import publish
publish._renameat2 = lambda source, target, flags: False  # The non-Linux path.
real_rename, calls = os.rename, []
def rename(source, target):
  calls.append(source)
  if len(calls) == 2:  # destination -> .old- done; staging -> destination next.
    os.kill(os.getpid(), signal.SIGKILL)
  real_rename(source, target)
os.rename = rename
with publish.atomic_directory(sys.argv[1], overwrite=True) as work:
  open(os.path.join(work, "a.txt"), "w").write("new")
"""


def test_exchange_swaps_in_one_step_on_linux(tmp_path, monkeypatch):
  if not sys.platform.startswith("linux"):
    pytest.skip("renameat2(RENAME_EXCHANGE) is Linux-only")
  dest = str(tmp_path / "out")
  _old_bundle(dest)
  renames = []
  real_rename = os.rename
  monkeypatch.setattr(os, "rename", lambda a, b: (renames.append((a, b)), real_rename(a, b)))
  with publish.atomic_directory(dest, overwrite=True) as work:
    with open(os.path.join(work, "a.txt"), "w") as f:
      f.write("new")
  if renames:
    pytest.skip(f"this filesystem does not do RENAME_EXCHANGE (renames: {renames})")
  assert _read(dest) == "new"
  assert publish.entries(dest) == []


def test_a_kill_between_the_fallback_renames_is_recovered_next_run(tmp_path):
  dest = str(tmp_path / "out")
  _old_bundle(dest)
  writer = _python(KILLED_BETWEEN_RENAMES, dest)
  writer.communicate(timeout=GUARD_S)
  assert writer.returncode == -signal.SIGKILL
  # The window the fallback cannot close: no destination, the old one whole aside.
  assert not os.path.lexists(dest)
  (old,) = [e for e in publish.entries(dest) if publish.OLD_INFIX in e]
  assert _read(str(tmp_path / old)) == "old"
  # The next writer renames it back before anything else; here it then refuses.
  with pytest.raises(FileExistsError):
    with publish.atomic_directory(dest):
      pytest.fail("the block must not run")
  assert _read(dest) == "old"
  assert publish.entries(dest) == []


def test_a_kill_between_the_fallback_renames_then_overwrite_succeeds(tmp_path):
  dest = str(tmp_path / "out")
  _old_bundle(dest)
  _python(KILLED_BETWEEN_RENAMES, dest).communicate(timeout=GUARD_S)
  assert not os.path.lexists(dest)
  with publish.atomic_directory(dest, overwrite=True) as work:
    assert _read(dest) == "old"  # Restored before the block runs.
    with open(os.path.join(work, "a.txt"), "w") as f:
      f.write("newer")
  assert _read(dest) == "newer"
  assert publish.entries(dest) == []


def test_an_error_between_the_fallback_renames_restores_the_old_directory(tmp_path,
                                                                           monkeypatch):
  dest = str(tmp_path / "out")
  _old_bundle(dest)
  monkeypatch.setattr(publish, "_renameat2", lambda source, target, flags: False)
  real_rename, calls = os.rename, []

  def rename(source, target):
    calls.append(source)
    if len(calls) == 2:
      raise OSError(errno.EIO, "Input/output error", source)
    real_rename(source, target)

  monkeypatch.setattr(os, "rename", rename)
  with pytest.raises(OSError, match="Input/output error"):
    with publish.atomic_directory(dest, overwrite=True) as work:
      with open(os.path.join(work, "a.txt"), "w") as f:
        f.write("new")
  assert _read(dest) == "old"
  assert publish.entries(dest) == []


def test_stale_entries_of_dead_owners_only_are_removed(tmp_path):
  dest = str(tmp_path / "out")
  # A writer killed inside the block leaves its staging directory.
  killed = _python("""
      import os, signal, sys
      import publish
      with publish.atomic_directory(sys.argv[1]) as work:
        open(os.path.join(work, "half.txt"), "w").write("half")
        os.kill(os.getpid(), signal.SIGKILL)
      """, dest)
  killed.communicate(timeout=GUARD_S)
  (dead,) = publish.entries(dest)
  # A live process's staging directory (of another destination's writer, say) with the
  # same name pattern, a reused pid (our pid, another start time) and an entry of an
  # older naming without an owner.
  sleeper = _python("""
      import sys, time
      import publish
      print(publish.staging_dir(sys.argv[1]), flush=True)
      time.sleep(600)
      """, dest)
  try:
    live = os.path.basename(sleeper.stdout.readline().strip())
    start_ms = int(psutil.Process().create_time() * 1000)
    reused = f".out{publish.TMP_INFIX}{os.getpid()}-{start_ms - 10_000}-abc123"
    unowned = f".out{publish.TMP_INFIX}k3j4h5g6"
    for name in (reused, unowned):
      os.mkdir(tmp_path / name)
    with publish.atomic_directory(dest) as work:
      with open(os.path.join(work, "a.txt"), "w") as f:
        f.write("new")
      assert sorted(publish.entries(dest)) == sorted([live, unowned, os.path.basename(work)])
    assert not os.path.exists(tmp_path / dead) and not os.path.exists(tmp_path / reused)
    assert publish.entries(dest) == sorted([live, unowned])
  finally:
    sleeper.kill()
    sleeper.communicate()


def test_a_second_writer_fails_at_once_naming_the_first(tmp_path):
  dest = str(tmp_path / "out")
  holder = _python("""
      import sys
      import publish
      with publish.atomic_directory(sys.argv[1]) as work:
        print("writing", flush=True)
        sys.stdin.readline()
      """, dest, "--marker-of-the-holder", stdin=subprocess.PIPE)
  try:
    _wait_line(holder, "writing")
    with pytest.raises(publish.DestinationBusyError) as e:
      with publish.atomic_directory(dest):
        pytest.fail("the block must not run")
    message = str(e.value)
    assert "\n" not in message
    assert f"pid {holder.pid} (" in message and "--marker-of-the-holder" in message
    assert publish.lock_path(dest) in message and e.value.lock_file == publish.lock_path(dest)
    holder.kill()  # kill -9 of the holder frees the lock with it.
    holder.communicate(timeout=GUARD_S)
    with publish.atomic_directory(dest) as work:
      with open(os.path.join(work, "a.txt"), "w") as f:
        f.write("mine")
    assert _read(dest) == "mine"
    assert publish.entries(dest) == []
    # The killed holder left the lock and owner files; the next writer removed them.
    assert sorted(os.listdir(tmp_path)) == ["out"]
  finally:
    if holder.poll() is None:
      holder.kill()
      holder.communicate()


def test_the_lock_is_reentrant_in_one_process(tmp_path):
  dest = str(tmp_path / "out")
  with publish.destination_lock(dest):
    with publish.atomic_directory(dest) as work:
      with open(os.path.join(work, "a.txt"), "w") as f:
        f.write("x")
  assert _read(dest) == "x"


def test_a_file_size_limit_is_one_write_error_and_leaves_nothing(tmp_path):
  dest = str(tmp_path / "out")
  _old_bundle(dest)
  writer = _python("""
      import os, resource, signal, sys
      import publish
      signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
      resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, resource.RLIM_INFINITY))
      try:
        with publish.atomic_directory(sys.argv[1], overwrite=True) as work:
          with open(os.path.join(work, "big.bin"), "wb") as f:
            f.write(b"x" * 1_000_000)
      except publish.WriteError as e:
        print(f"WriteError|{e.path}|{e}")
      """, dest)
  out, err = writer.communicate(timeout=GUARD_S)
  assert writer.returncode == 0, err
  _, path, message = out.strip().split("|")
  assert message == (f"cannot write {path}: File too large (the disk is full or a "
                     "file-size limit was hit); free space or choose another destination")
  assert os.path.basename(path).startswith(f".out{publish.TMP_INFIX}{writer.pid}-")
  assert _read(dest) == "old"
  assert publish.entries(dest) == []


class _TfLikeError(Exception):
  """Stands for tf.errors.OpError (error_code, message) without importing TensorFlow."""

  def __init__(self, message):
    super().__init__(message)
    self.message = message
    self.error_code = 11


def test_tensorflow_write_errors_name_the_file_and_the_cause(tmp_path):
  work = str(tmp_path / ".out.tmp-1-2-abc")
  # The message TensorFlow 2.20 raises (OutOfRangeError) when SaveV2 hits RLIMIT_FSIZE.
  tf_message = ("{{function_node __wrapped__SaveV2_dtypes_2_device_/job:localhost/replica:0"
                f"/task:0/device:CPU:0}} {work}/variables/variables_temp/part-00000-of-00001"
                ".data-00000-of-00001.tempstate3029499714457759576; File too large "
                "[Op:SaveV2]")
  failure = publish.write_failure(_TfLikeError(tf_message), where=work, fix="FIX")
  assert str(failure) == (
      f"cannot write {work}/variables/variables_temp/part-00000-of-00001.data-00000-of-00001"
      ".tempstate3029499714457759576: File too large (the disk is full or a file-size limit "
      "was hit); FIX")
  assert publish.write_failure(_TfLikeError("Graph execution error: x"), where=work) is None
  full = OSError(errno.ENOSPC, "No space left on device", f"{work}/a")
  assert str(publish.write_failure(full, where=work, fix="FIX")) == (
      f"cannot write {work}/a: No space left on device (the disk is full or a file-size "
      "limit was hit); FIX")
  # Reading an unreadable input elsewhere is not a write error of the destination.
  unreadable = PermissionError(errno.EACCES, "Permission denied", "/etc/some_input")
  assert publish.write_failure(unreadable, where=work) is None


def test_a_read_only_parent_is_a_publish_error_naming_the_path(tmp_path):
  if os.geteuid() == 0:
    pytest.skip("running as root: chmod does not stop root's writes, and a read-only "
                "mount needs privileges the tests do not have")
  parent = tmp_path / "ro"
  parent.mkdir()
  os.chmod(parent, 0o555)
  try:
    with pytest.raises(publish.PublishError, match=r"cannot write beside .*ro/out "
                       r"\(Permission denied\)"):
      with publish.atomic_directory(str(parent / "out")):
        pytest.fail("the block must not run")
  finally:
    os.chmod(parent, 0o755)
  assert os.listdir(parent) == []


def test_a_rename_refused_by_a_read_only_filesystem_keeps_the_old_directory(tmp_path,
                                                                          monkeypatch):
  dest = str(tmp_path / "out")
  _old_bundle(dest)

  def read_only(*_):
    raise OSError(errno.EROFS, "Read-only file system", dest)

  monkeypatch.setattr(publish, "_renameat2", read_only)
  with pytest.raises(publish.WriteError, match=r"^cannot write .*/out: Read-only file "
                     r"system \(the destination is read-only\); free space or choose"):
    with publish.atomic_directory(dest, overwrite=True) as work:
      with open(os.path.join(work, "a.txt"), "w") as f:
        f.write("new")
  assert _read(dest) == "old"
  assert publish.entries(dest) == []


def test_writers_racing_for_one_destination_never_overlap(tmp_path):
  # The lock file is removed at each release while contenders open and lock it: four
  # processes enter and leave the lock 40 times each, logging both; no two may overlap.
  # (A smoke test: the narrow removal race itself is forced in the next test.)
  dest, log = str(tmp_path / "out"), str(tmp_path / "log.txt")
  racers = [_python("""
      import os, sys, time
      import publish
      dest, log, done = sys.argv[1], sys.argv[2], 0
      while done < 40:
        try:
          with publish.destination_lock(dest):
            with open(log, "a") as f:
              f.write(f"enter {os.getpid()}\\n")
            time.sleep(0.001)
            with open(log, "a") as f:
              f.write(f"leave {os.getpid()}\\n")
          done += 1
        except publish.DestinationBusyError:
          time.sleep(0.0005)
      """, dest, log) for _ in range(4)]
  for racer in racers:
    _, err = racer.communicate(timeout=GUARD_S)
    assert racer.returncode == 0, err
  with open(log) as f:
    events = f.read().split("\n")[:-1]
  assert len(events) == 4 * 40 * 2
  for enter, leave in zip(events[::2], events[1::2]):
    assert enter.startswith("enter ") and leave == "leave " + enter.split()[1]
  assert os.listdir(tmp_path) == ["log.txt"]  # Neither lock nor owner file is left.


def test_a_lock_won_on_a_removed_lock_file_is_let_go_and_retaken(tmp_path, monkeypatch):
  # The race the removal at release opens: we lock the inode a holder has just removed
  # (and a newcomer re-created). We must notice and lock the file now at the path.
  path = str(tmp_path / ".out.lock")
  real_lock, attempts = filelock.FileLock, []

  def stale_first(lock_file, timeout):
    lock = real_lock(lock_file, timeout=timeout)
    if not attempts:
      real_acquire = lock.acquire

      def acquire():
        real_acquire()
        os.remove(lock_file)
        open(lock_file, "w").close()

      lock.acquire = acquire
    attempts.append(lock)
    return lock

  monkeypatch.setattr(filelock, "FileLock", stale_first)
  lock = publish.lock._acquire(path)  # pylint: disable=protected-access
  try:
    assert len(attempts) == 2 and not attempts[0].is_locked
    assert publish.lock._locked_inode(lock, path)  # pylint: disable=protected-access
  finally:
    lock.release()
