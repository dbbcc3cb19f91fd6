"""One writer per destination: a non-blocking `filelock` lock with an owner record.

The lock is PARENT/.NAME.lock of a destination PARENT/NAME; the kernel drops it when its
holder dies, even by kill -9, so it never goes stale. The holder records itself in
PARENT/.NAME.owner (JSON: pid, start_ms, cmdline), which a contender reads to name it.
"""

import contextlib
import json
import os
import sys
from typing import Iterator, List, Optional

import filelock
import psutil

from publish.errors import DestinationBusyError
from publish.errors import cannot_write_beside
from publish.owners import entries
from publish.owners import entry_owner
from publish.owners import lock_path
from publish.owners import owner_alive
from publish.owners import owner_path
from publish.owners import split_destination
from publish.owners import process_start_ms

_held = {}  # lock path -> [FileLock, depth] of this process (the lock is reentrant here)


def one_line(args: List[str], limit: int = 300) -> str:
  """A command line on one line (whitespace runs as one space), at most `limit` chars."""
  text = " ".join(" ".join(a.split()) for a in args)
  return text if len(text) <= limit else text[:limit - 3] + "..."


def _read_owner(destination: str) -> Optional[dict]:
  """The live holder recorded in the owner file, else a live owner of a .tmp- entry."""
  try:
    with open(owner_path(destination), encoding="utf-8") as f:
      owner = json.load(f)
    if owner_alive(int(owner["pid"]), int(owner["start_ms"])):
      return owner
  except (OSError, ValueError, KeyError, TypeError):
    pass
  _, parent, _ = split_destination(destination)
  for entry in entries(destination):
    found = entry_owner(entry)
    if found and owner_alive(*found):
      try:
        cmdline = one_line(psutil.Process(found[0]).cmdline())
      except psutil.Error:
        cmdline = ""
      return {"pid": found[0], "start_ms": found[1], "cmdline": cmdline,
              "staging": os.path.join(parent, entry)}
  return None


@contextlib.contextmanager
def destination_lock(destination: str) -> Iterator[str]:
  """Holds the exclusive lock of `destination` (PARENT/.NAME.lock) for the block.

  Does not wait. Reentrant within one process. After acquiring, writes the owner file
  PARENT/.NAME.owner (JSON: pid, start_ms, cmdline) and removes it before releasing.

  Yields:
    The lock file's path.

  Raises:
    DestinationBusyError: another process holds the lock; the message names its pid,
      command line (if known) and the lock file.
    PublishError: the parent cannot be created or the lock file cannot be written.
  """
  destination, parent, _ = split_destination(destination)
  path = lock_path(destination)
  if path in _held:
    _held[path][1] += 1
    try:
      yield path
    finally:
      _held[path][1] -= 1
    return
  try:
    os.makedirs(parent, exist_ok=True)
    lock = _acquire(path)
  except filelock.Timeout:
    owner = _read_owner(destination)
    who = (f"pid {owner['pid']}" + (f" ({owner['cmdline']})" if owner.get("cmdline") else "")
           if owner else "another process (owner unknown)")
    raise DestinationBusyError(
        f"{destination} is being written by {who}, which holds the lock {path}; wait "
        "for it to finish or choose another destination", path, owner, who) from None
  except OSError as e:
    raise cannot_write_beside(destination, e) from None
  _held[path] = [lock, 1]
  try:
    me = psutil.Process()
    try:
      cmdline = one_line(me.cmdline())
    except psutil.Error:
      cmdline = one_line(sys.argv)
    record = {"pid": me.pid, "start_ms": process_start_ms(me), "cmdline": cmdline,
              "destination": destination}
    try:
      with open(owner_path(destination), "w", encoding="utf-8") as f:
        json.dump(record, f)
    except OSError as e:
      raise cannot_write_beside(destination, e) from None
    yield path
  finally:
    del _held[path]
    with contextlib.suppress(OSError):
      os.remove(owner_path(destination))
    if _locked_inode(lock, path):  # Removed while held; see `_acquire`.
      with contextlib.suppress(OSError):
        os.remove(path)
    lock.release()


def _locked_inode(lock: filelock.BaseFileLock, path: str) -> bool:
  """Whether `lock`'s open descriptor is the file at `path` now (same device and inode).

  Uses filelock's descriptor (`_context.lock_file_fd`, filelock >= 3.12); False when it
  is not available, which keeps the lock file in place.
  """
  fd = getattr(getattr(lock, "_context", None), "lock_file_fd", None)
  if not isinstance(fd, int):
    return False
  try:
    return os.path.samestat(os.fstat(fd), os.stat(path))
  except OSError:
    return False


def _acquire(path: str) -> filelock.BaseFileLock:
  """Takes the lock file `path` without waiting, on the file that is at `path` now.

  The holder removes the lock file while it still holds it, so the lock leaves nothing
  behind. A contender that opened the file before it was removed may get the lock on
  the removed inode: it notices (`_locked_inode`), lets go and tries again on the new
  file. Where filelock's descriptor cannot be inspected the file is kept instead.

  Raises:
    filelock.Timeout: another process holds the lock.
    OSError: the lock file cannot be created.
  """
  for _ in range(100):
    lock = filelock.FileLock(path, timeout=0)
    lock.acquire()
    fd = getattr(getattr(lock, "_context", None), "lock_file_fd", None)
    if not isinstance(fd, int) or _locked_inode(lock, path):
      return lock
    lock.release()
  raise filelock.Timeout(path)
