"""Who owns what beside a destination: names, owner records and liveness.

For a destination PARENT/NAME, `publish` keeps beside it the staging directories
.NAME.tmp-PID-START_MS-RANDOM, the backups .NAME.old-PID-START_MS-RANDOM of the
two-rename swap, the lock file .NAME.lock and the owner file .NAME.owner. PID and
START_MS (the process's start time, ms since the epoch, from `psutil`) name the process
that made an entry, so a later writer can tell an entry of a dead process (removable)
from one of a running process (left alone), even when the pid has been reused.
"""

import os
import re
from typing import List, Optional, Tuple

import psutil

TMP_INFIX = ".tmp-"
OLD_INFIX = ".old-"
LOCK_SUFFIX = ".lock"
OWNER_SUFFIX = ".owner"
# Start times of one process read twice may differ by the kernel's boot-time rounding.
START_TIME_TOLERANCE_MS = 1000
# An entry name's owner: ".NAME.tmp-PID-START_MS-RANDOM" (RANDOM from tempfile).
_OWNED = re.compile(r"-(?P<pid>\d+)-(?P<start>\d+)-[A-Za-z0-9_]+$")
_STAGING_COMPONENT = re.compile(r"^\..+" + re.escape(TMP_INFIX) + r"\d+-\d+-[A-Za-z0-9_]+$")


def process_start_ms(process: psutil.Process) -> int:
  """The start time of `process`, ms since the epoch."""
  return int(process.create_time() * 1000)


def owner_token() -> str:
  """PID-START_MS of this process, as recorded in entry names and the owner file."""
  me = psutil.Process()
  return f"{me.pid}-{process_start_ms(me)}"


def owner_alive(pid: int, start_ms: int) -> bool:
  """Whether the process `pid` that started at `start_ms` (ms since the epoch) still runs.

  False if `pid` does not exist, is a zombie, or belongs to a process started at
  another time (the pid was reused); True if it cannot be inspected (AccessDenied),
  which keeps its entries.
  """
  try:
    process = psutil.Process(pid)
    if process.status() == psutil.STATUS_ZOMBIE:
      return False
    return abs(process_start_ms(process) - start_ms) <= START_TIME_TOLERANCE_MS
  except psutil.NoSuchProcess:
    return False
  except psutil.AccessDenied:
    return True


def entry_owner(entry_name: str) -> Optional[Tuple[int, int]]:
  """(pid, start_ms) recorded in a .tmp-/.old- entry name, or None (older naming)."""
  match = _OWNED.search(entry_name)
  return (int(match["pid"]), int(match["start"])) if match else None


def split_destination(destination: str) -> Tuple[str, str, str]:
  """(absolute destination, its parent, its name)."""
  destination = os.path.abspath(destination)
  return destination, os.path.dirname(destination), os.path.basename(destination)


def lock_path(destination: str) -> str:
  """PARENT/.NAME.lock of `destination` PARENT/NAME."""
  _, parent, name = split_destination(destination)
  return os.path.join(parent, f".{name}{LOCK_SUFFIX}")


def owner_path(destination: str) -> str:
  """PARENT/.NAME.owner: the lock holder's pid, start time and command line (JSON)."""
  _, parent, name = split_destination(destination)
  return os.path.join(parent, f".{name}{OWNER_SUFFIX}")


def entries(destination: str) -> List[str]:
  """Names of the .NAME.tmp-* and .NAME.old-* entries beside `destination`, sorted."""
  _, parent, name = split_destination(destination)
  try:
    names = os.listdir(parent)
  except FileNotFoundError:
    return []
  prefixes = (f".{name}{TMP_INFIX}", f".{name}{OLD_INFIX}")
  return sorted(n for n in names if n.startswith(prefixes))


def inside_staging(path: str) -> bool:
  """Whether `path` lies inside a staging directory (a private, unpublished build)."""
  parts = os.path.abspath(path).split(os.sep)[:-1]
  return any(_STAGING_COMPONENT.match(p) for p in parts)
