"""Atomic directory publishing: build beside the destination, rename into place.

Every writer of this project (the bundle, the preprocessor SavedModel, the fine-tuned
classifier, the SQuAD package's directory) goes through `atomic_directory`, so a
failure at any point leaves nothing at the destination and keeps what was there:

    with publish.atomic_directory("out/bundle", overwrite=True) as work:
      ...write and verify everything inside `work`...
    # only now is out/bundle replaced by work

The staging directory is a sibling of the destination (`.NAME.tmp-XXXXXX`), so the
final `os.rename` stays on one filesystem and is atomic there (POSIX rename(2)).

This package imports nothing of the project; `checkpoints`, `preprocessors` and
`hub_export` may all use it.
"""

import contextlib
import os
import shutil
import tempfile
from typing import Callable, Iterator, Optional

TMP_INFIX = ".tmp-"
OLD_INFIX = ".old-"


class PublishError(OSError):
  """The destination cannot be written or replaced; the message names path and cause.

  Attributes:
    reason: the operating system's words for the cause (e.g. "Permission denied").
  """

  def __init__(self, message: str, reason: str = ""):
    super().__init__(message)
    self.reason = reason


def staging_dir(destination: str) -> str:
  """Creates and returns an empty directory beside `destination` (same filesystem).

  Raises:
    PublishError: the parent cannot be created or written (names it and the cause).
  """
  destination = os.path.abspath(destination)
  parent = os.path.dirname(destination)
  try:
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(dir=parent,
                            prefix=f".{os.path.basename(destination)}{TMP_INFIX}")
  except OSError as e:
    reason = e.strerror or str(e)
    raise PublishError(f"cannot write beside {destination} ({reason}); choose a directory "
                       "you can write to", reason) from None


def publish_directory(work: str, destination: str, *, overwrite: bool = False,
                      replaceable: Optional[Callable[[str], None]] = None) -> None:
  """Moves the finished directory `work` to `destination`.

  Args:
    work: a directory made by `staging_dir(destination)`, complete and verified.
    destination: where it goes.
    overwrite: replace an existing `destination`; it is moved aside first and removed
      only after `work` is in place (on a failure it is moved back).
    replaceable: called with `destination` before replacing it; raises to refuse
      (e.g. "not a bundle of this tool").

  Raises:
    FileExistsError: `destination` exists and `overwrite` is False.
    OSError: a rename failed; `destination` is then as it was.
  """
  destination = os.path.abspath(destination)
  if not os.path.lexists(destination):
    os.rename(work, destination)
    return
  if not overwrite:
    raise FileExistsError(f"{destination} already exists; pass a new directory or "
                          "allow overwriting")
  if replaceable is not None:
    replaceable(destination)
  backup = tempfile.mkdtemp(dir=os.path.dirname(destination),
                            prefix=f".{os.path.basename(destination)}{OLD_INFIX}")
  os.rmdir(backup)
  os.rename(destination, backup)
  try:
    os.rename(work, destination)
  except BaseException:
    os.rename(backup, destination)
    raise
  shutil.rmtree(backup, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(destination: str, *, overwrite: bool = False,
                     replaceable: Optional[Callable[[str], None]] = None) -> Iterator[str]:
  """Yields an empty staging directory; publishes it to `destination` on success.

  On any exception inside the block (or while publishing) the staging directory is
  removed and `destination` is left as it was.

  Raises:
    FileExistsError: `destination` exists and `overwrite` is False (checked before the
      block runs, and again when publishing).
    PublishError: the staging directory cannot be created.
  """
  destination = os.path.abspath(destination)
  if os.path.lexists(destination) and not overwrite:
    raise FileExistsError(f"{destination} already exists; pass a new directory or "
                          "allow overwriting")
  if os.path.lexists(destination) and replaceable is not None:
    replaceable(destination)
  work = staging_dir(destination)
  try:
    yield work
    publish_directory(work, destination, overwrite=overwrite, replaceable=replaceable)
  except BaseException:
    shutil.rmtree(work, ignore_errors=True)
    raise
