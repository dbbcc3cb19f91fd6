"""The errors of `publish`: one line each, naming the path and the cause.

`write_failure` turns a failed write (no space, a file-size limit, a read-only
destination) into a `WriteError`, whether it came as an OSError or as TensorFlow's own
error carrying the operating system's words; TensorFlow is not imported here.
"""

import errno
import os
import re
from typing import Optional

# errno -> what it most likely means for an export.
_WRITE_ERRNOS = {
    errno.ENOSPC: "the disk is full or a file-size limit was hit",
    errno.EFBIG: "the disk is full or a file-size limit was hit",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the destination is read-only",
    errno.EACCES: "the destination is not writable",
    errno.EPERM: "the destination is not writable",
}
# The OS messages TensorFlow embeds in its own errors (tf.errors.*), with their errno.
_TF_CAUSES = {os.strerror(code): code for code in _WRITE_ERRNOS}


class PublishError(OSError):
  """The destination cannot be written or replaced; the message names path and cause.

  Attributes:
    reason: the operating system's words for the cause (e.g. "Permission denied").
  """

  def __init__(self, message: str, reason: str = ""):
    super().__init__(message)
    self.reason = reason

  def __str__(self):
    return self.args[0]


class DestinationBusyError(PublishError):
  """Another process is writing the same destination (it holds the lock).

  Attributes:
    lock_file: the lock file's path.
    owner: {"pid", "start_ms", "cmdline"} of the holder, or None if unknown.
    holder: "pid N (COMMAND LINE)", or "another process (owner unknown)".
  """

  def __init__(self, message: str, lock_file: str, owner: Optional[dict], holder: str):
    super().__init__(message, "locked by another process")
    self.lock_file = lock_file
    self.owner = owner
    self.holder = holder


class WriteError(PublishError):
  """Writing failed midway (no space, a file-size limit, a read-only destination).

  Attributes:
    path: the file or directory that could not be written.
    reason: the operating system's words (e.g. "No space left on device").
  """

  def __init__(self, message: str, path: str, reason: str):
    super().__init__(message, reason)
    self.path = path


def cannot_write_beside(destination: str, e: OSError) -> PublishError:
  reason = e.strerror or str(e)
  return PublishError(f"cannot write beside {destination} ({reason}); choose a directory "
                      "you can write to", reason)


def write_failure(e: BaseException, *, where: str,
                  fix: str = "free space or choose another destination"
                  ) -> Optional[WriteError]:
  """The one-line `WriteError` for a failed write, or None if `e` is not one.

  Recognizes OSError with errno ENOSPC, EFBIG, EDQUOT, EROFS, EACCES or EPERM, and
  TensorFlow's errors (`tf.errors.OpError`, matched by its `error_code` and `message`
  attributes, so TensorFlow is not imported here) whose message carries the OS's
  words for one of them, e.g. "/x/variables/...tempstate123; File too large".

  Args:
    e: the exception raised while writing.
    where: the directory being written, named when the error names no file.
    fix: the advice that ends the message.

  Returns:
    WriteError "cannot write PATH: CAUSE (meaning); FIX", or None.
  """
  if isinstance(e, WriteError):
    return e
  path = cause = code = None
  if isinstance(e, OSError) and e.errno in _WRITE_ERRNOS:
    code, cause = e.errno, e.strerror or os.strerror(e.errno)
    path = e.filename or where
    if isinstance(path, bytes):
      path = os.fsdecode(path)
  elif hasattr(e, "error_code") and isinstance(getattr(e, "message", None), str):
    message = e.message
    for words, errno_code in _TF_CAUSES.items():
      if words in message:
        code, cause = errno_code, words
        break
    if code is None:
      return None
    text = re.sub(r"^\{\{[^}]*\}\}\s*", "", message)
    text = re.sub(r"\s*\[Op:[^\]]*\]\s*$", "", text)
    found = re.search(r"(/[^;\s'\"]+)\s*;\s*" + re.escape(cause), text) or \
        re.search(r"(/[^;\s'\",]+)", text)
    path = found.group(1) if found else where
  else:
    return None
  # A permission error on another path (e.g. an unreadable input) is not a write error.
  outside = not os.path.abspath(path).startswith(os.path.dirname(os.path.abspath(where)))
  if code in (errno.EACCES, errno.EPERM, errno.EROFS) and outside:
    return None
  return WriteError(f"cannot write {path}: {cause} ({_WRITE_ERRNOS[code]}); {fix}",
                    path=path, reason=cause)
