"""Crash-safe directory publishing: one writer per destination, build beside it, swap in.

Every writer of this project (the bundle, the preprocessor SavedModel, the fine-tuned
classifier, the SQuAD package's directory) goes through `atomic_directory`:

    with publish.atomic_directory("out/bundle", overwrite=True) as work:
      ...write and verify everything inside `work`...
    # only now is out/bundle replaced by work

For a destination D = PARENT/NAME it guarantees:

* One writer per destination. An exclusive `filelock` lock on PARENT/.NAME.lock is taken
  first, without waiting: a second writer fails at once with `DestinationBusyError`,
  naming the holder (pid and command line, from PARENT/.NAME.owner, written after
  acquiring) and the lock file. The kernel drops the lock when its holder dies, even by
  kill -9, so a lock never goes stale. A normal release removes both files (the lock
  file while still holding it; a contender that opened it just before checks that it
  locked the file still at that path, else retries). After a kill -9 the two small
  files stay: .NAME.lock is empty and unlocked and .NAME.owner names a dead process;
  both are harmless, reused and removed by the next writer, and may be deleted
  whenever no export runs.
* Build beside, then rename. Everything is written into the staging directory
  PARENT/.NAME.tmp-PID-START-RANDOM (same filesystem as D) and moved to D by rename(2)
  only when complete, so D is never half-written.
* A kill -9 at any moment leaves D absent or complete, and with `overwrite` the old or
  the new directory:
  - new D: one rename(2), atomic on POSIX (Linux uses renameat2(RENAME_NOREPLACE) so a
    directory that appeared meanwhile is never replaced);
  - replacing D on Linux (glibc >= 2.28, a filesystem that supports it: ext4, xfs,
    btrfs, tmpfs, overlayfs, ...): renameat2(RENAME_EXCHANGE) swaps the staging
    directory and D in one step, so D is the old or the new directory at every instant;
  - elsewhere (other OS, older libc, or a filesystem answering EINVAL/ENOSYS/ENOTSUP):
    two renames, D -> PARENT/.NAME.old-PID-START-RANDOM then staging -> D. A kill
    between them leaves D missing for that moment, the old directory whole under the
    .old- name; the next writer into D (`recover`) renames it back first.
* No stale entries pile up. Each .tmp-/.old- name records its owner's pid and start
  time (`psutil`). The next writer into D, holding the lock, removes the .tmp- entries
  (and redundant .old- entries) whose owner is no longer running, i.e. the pid is gone,
  a zombie, or reused by a process started at another time (1 s tolerance), and ONLY
  those. Entries of an older naming without an owner are left alone.
* Scope: process death (kill -9, the OOM killer, a crash of Python or TensorFlow).
  Files are not fsync'ed; after a power loss or kernel crash the filesystem's own
  journaling decides what survives.
* Write errors (full disk, a file-size limit, a read-only destination): `write_failure`
  turns the OSError, or TensorFlow's error carrying the OS message, into one
  `WriteError` line naming the path and the cause; `atomic_directory` then removes the
  staging directory and keeps D as it was.

A destination inside a staging directory (e.g. the bundle's preprocessor/) is private
to the export that owns that staging directory: it is published by plain renames,
without its own lock or recovery (the outer destination's lock covers it).

This package imports nothing of the project (nor TensorFlow); `checkpoints`,
`preprocessors` and `hub_export` may all use it.
"""

import contextlib
import ctypes
import ctypes.util
import errno
import os
import shutil
import sys
import tempfile
from typing import Callable, Iterator, List, Optional

from publish.errors import DestinationBusyError
from publish.errors import PublishError
from publish.errors import WriteError
from publish.errors import cannot_write_beside
from publish.errors import write_failure
from publish.lock import destination_lock
from publish.owners import LOCK_SUFFIX
from publish.owners import OLD_INFIX
from publish.owners import OWNER_SUFFIX
from publish.owners import TMP_INFIX
from publish.owners import entries
from publish.owners import entry_owner
from publish.owners import inside_staging
from publish.owners import lock_path
from publish.owners import owner_alive
from publish.owners import owner_path
from publish.owners import owner_token
from publish.owners import split_destination

__all__ = ["DestinationBusyError", "LOCK_SUFFIX", "OLD_INFIX", "OWNER_SUFFIX", "PublishError",
           "TMP_INFIX", "WriteError", "atomic_directory", "destination_lock", "entries",
           "entry_owner", "inside_staging", "lock_path", "owner_alive", "owner_path",
           "publish_directory", "recover", "staging_dir", "write_failure"]

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
# The filesystem or kernel cannot do the renameat2 flag: fall back to rename(2).
_RENAMEAT2_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, getattr(errno, "ENOTSUP", -1),
                          getattr(errno, "EOPNOTSUPP", -1)}


def recover(destination: str) -> List[str]:
  """Repairs what a killed writer of `destination` left; call holding its lock.

  A .NAME.old- entry of a dead owner while `destination` is missing (a kill between
  the two renames of the fallback swap) is renamed back to `destination`. Every other
  .tmp-/.old- entry whose owner is gone is removed (an .old- one is first renamed to a
  .tmp- name, so that a half-removed directory is never renamed back). Entries of live
  owners and entries without an owner record are left alone.

  Returns:
    One line per action taken (e.g. "restored /x/out from /x/.out.old-...").
  """
  destination, parent, name = split_destination(destination)
  actions = []
  for entry in entries(destination):
    owner = entry_owner(entry)
    if owner is None or owner_alive(*owner):
      continue
    path = os.path.join(parent, entry)
    if entry.startswith(f".{name}{OLD_INFIX}"):
      if not os.path.lexists(destination):
        os.rename(path, destination)
        actions.append(f"restored {destination} from {path}")
        continue
      doomed = _fresh_name(parent, f".{name}{TMP_INFIX}")
      os.rename(path, doomed)
      path = doomed
    _remove(path)
    actions.append(f"removed {os.path.join(parent, entry)}")
  return actions


def _remove(path: str) -> None:
  if os.path.isdir(path) and not os.path.islink(path):
    shutil.rmtree(path, ignore_errors=True)
  else:
    with contextlib.suppress(FileNotFoundError):
      os.remove(path)


def _fresh_name(parent: str, prefix: str) -> str:
  """An unused path PARENT/PREFIXPID-START_MS-RANDOM owned by this process (not created)."""
  path = tempfile.mkdtemp(dir=parent, prefix=f"{prefix}{owner_token()}-")
  os.rmdir(path)
  return path


def staging_dir(destination: str) -> str:
  """Creates and returns an empty directory beside `destination` (same filesystem).

  Its name, .NAME.tmp-PID-START_MS-RANDOM, records this process as its owner.

  Raises:
    PublishError: the parent cannot be created or written (names it and the cause).
  """
  destination, parent, name = split_destination(destination)
  try:
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(dir=parent, prefix=f".{name}{TMP_INFIX}{owner_token()}-")
  except OSError as e:
    raise cannot_write_beside(destination, e) from None


_libc_renameat2 = None


def _renameat2(source: str, target: str, flags: int) -> bool:
  """renameat2(2) with `flags`; False if this OS/libc/filesystem cannot do it.

  Raises:
    OSError: any other failure (e.g. EEXIST with RENAME_NOREPLACE), with both paths.
  """
  global _libc_renameat2
  if not sys.platform.startswith("linux"):
    return False
  if _libc_renameat2 is None:
    try:
      libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
      function = libc.renameat2  # glibc >= 2.28
      function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                           ctypes.c_uint]
      function.restype = ctypes.c_int
      _libc_renameat2 = function
    except (OSError, AttributeError):
      _libc_renameat2 = False
  if not _libc_renameat2:
    return False
  if _libc_renameat2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target),
                     flags) == 0:
    return True
  code = ctypes.get_errno()
  if code in _RENAMEAT2_UNSUPPORTED:
    return False
  raise OSError(code, os.strerror(code), source, None, target)


def publish_directory(work: str, destination: str, *, overwrite: bool = False,
                      replaceable: Optional[Callable[[str], None]] = None) -> None:
  """Moves the finished directory `work` to `destination`.

  Args:
    work: a directory made by `staging_dir(destination)`, complete and verified.
    destination: where it goes.
    overwrite: replace an existing `destination`: swapped in one step where the OS
      can (Linux RENAME_EXCHANGE), else moved aside to .NAME.old-... first; the old
      directory is removed only after `work` is in place.
    replaceable: called with `destination` before replacing it; raises to refuse
      (e.g. "not a bundle of this tool").

  Raises:
    FileExistsError: `destination` exists and `overwrite` is False.
    OSError: a rename failed; `destination` is then as it was.
  """
  destination, parent, name = split_destination(destination)
  if not os.path.lexists(destination):
    try:
      if _renameat2(work, destination, _RENAME_NOREPLACE):
        return
    except FileExistsError:
      pass  # It appeared meanwhile: handled as an existing destination below.
    else:
      os.rename(work, destination)
      return
  if not overwrite:
    raise FileExistsError(f"{destination} already exists; pass a new directory or "
                          "allow overwriting")
  if replaceable is not None:
    replaceable(destination)
  if _renameat2(work, destination, _RENAME_EXCHANGE):
    _remove(work)  # `work` now holds the old directory.
    return
  backup = _fresh_name(parent, f".{name}{OLD_INFIX}")
  os.rename(destination, backup)
  try:
    os.rename(work, destination)
  except BaseException:
    os.rename(backup, destination)
    raise
  doomed = _fresh_name(parent, f".{name}{TMP_INFIX}")
  os.rename(backup, doomed)  # An .old- entry is always whole: remove under a .tmp- name.
  _remove(doomed)


@contextlib.contextmanager
def atomic_directory(destination: str, *, overwrite: bool = False,
                     replaceable: Optional[Callable[[str], None]] = None,
                     fix: str = "free space or choose another destination"
                     ) -> Iterator[str]:
  """Yields an empty staging directory; publishes it to `destination` on success.

  Holds `destination_lock` throughout and runs `recover` first (both skipped for a
  destination inside a staging directory). On any exception inside the block (or
  while publishing) the staging directory is removed and `destination` is left as it
  was; a failed write (`write_failure`) is raised as `WriteError`.

  Args:
    destination: the directory to write.
    overwrite: replace an existing `destination` (see `publish_directory`).
    replaceable: called with an existing `destination` before any work and again
      before replacing it; raises to refuse.
    fix: the advice ending a `WriteError` message.

  Raises:
    FileExistsError: `destination` exists and `overwrite` is False (checked before the
      block runs, and again when publishing).
    DestinationBusyError: another process is writing `destination`.
    WriteError: a write inside the block or the publishing rename failed for lack of
      space, a size limit or permissions.
    PublishError: the staging directory or the lock file cannot be created.
  """
  destination = os.path.abspath(destination)
  lock = (contextlib.nullcontext() if inside_staging(destination)
          else destination_lock(destination))
  with lock:
    if not inside_staging(destination):
      recover(destination)
    if os.path.lexists(destination) and not overwrite:
      raise FileExistsError(f"{destination} already exists; pass a new directory or "
                            "allow overwriting")
    if os.path.lexists(destination) and replaceable is not None:
      replaceable(destination)
    work = staging_dir(destination)
    try:
      yield work
      publish_directory(work, destination, overwrite=overwrite, replaceable=replaceable)
    except BaseException as e:
      _remove(work)
      failure = write_failure(e, where=work, fix=fix)
      if failure is not None and failure is not e:
        raise failure from None
      raise
