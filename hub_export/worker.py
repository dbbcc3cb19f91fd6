"""The preprocessor worker: saves and checks `preprocessor/` in a second process.

The preprocessor does not depend on the model, so the pipeline builds, saves and checks
it in a fresh "spawn" process (forking a process that runs TensorFlow is unsafe) while
its own process converts, saves and verifies the encoder.

The worker never outlives its parent, even one killed by SIGKILL: on Linux it asks the
kernel for SIGKILL when the parent dies (`prctl(PR_SET_PDEATHSIG, SIGKILL)`), and on
every OS a watchdog thread exits the worker as soon as its lifeline pipe from the
parent reaches end-of-file (the parent's end closes when the parent dies) or its
parent pid changes.
"""

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
import threading

from hub_export import verify
from hub_export.errors import ExportError
import publish

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
WATCHDOG_PERIOD_S = 0.5  # How often the watchdog also compares the parent pid.


class PreprocessorWorker:
  """Saves the preprocessor SavedModel, reloads it and checks its ids, in a process.

  `result` returns the check's figures or raises `ExportError` with the worker's
  message; `stop` ends the worker if it still runs (a failed export does not wait).

  Args:
    path: where `preprocessor/` goes (inside the bundle's staging directory).
    vocab_path, do_lower_case, seq_length: the tokenizer and its default length.
    with_tflite: also write `preprocessor.tflite` beside `path`.
  """

  def __init__(self, path: str, vocab_path: str, do_lower_case: bool, seq_length: int,
               with_tflite: bool = False):
    ctx = multiprocessing.get_context("spawn")
    self._receive, send = ctx.Pipe(duplex=False)
    # The worker only reads `lifeline`; this process never writes `self._lifeline`, whose
    # closing (at the latest when this process dies) ends the worker.
    lifeline, self._lifeline = ctx.Pipe(duplex=False)
    self._process = ctx.Process(
        target=_main, name="preprocessor-export",
        args=(send, lifeline, os.getpid(), path, vocab_path, do_lower_case, seq_length,
              with_tflite), daemon=True)
    self._process.start()
    send.close()
    lifeline.close()

  def result(self) -> dict:
    """Waits for the worker; its figures (`verify.verify_preprocessor`, + "tflite").

    Raises:
      ExportError: the worker reported an error (its message, prefixed with
        "preprocessor/: "), or died before reporting (with its exit code).
      publish.WriteError: writing preprocessor/ failed (no space, a file-size limit,
        read-only); names the path and the cause.
    """
    try:
      status, value = self._receive.recv()
    except EOFError:
      self._process.join()
      raise ExportError(f"the preprocessor worker died (exit code {self._process.exitcode})"
                        " before reporting; rerun the export") from None
    self._process.join()
    if status == "write_error":
      raise publish.WriteError(*value)
    if status != "ok":
      raise ExportError(f"preprocessor/: {value}")
    return value

  @property
  def pid(self) -> int:
    """The worker's process id."""
    return self._process.pid

  def stop(self) -> None:
    """Ends the worker if it still runs; idempotent."""
    if self._process.is_alive():
      self._process.terminate()
    self._process.join()
    self._receive.close()
    self._lifeline.close()


def _die_with_parent(lifeline, parent_pid: int) -> None:
  """Makes this process end when `parent_pid` ends (see the module docstring).

  Args:
    lifeline: the read end of the parent's lifeline pipe (a multiprocessing Connection).
    parent_pid: the pid of the process that started this one.
  """
  if sys.platform.startswith("linux"):
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
      code = ctypes.get_errno()
      raise OSError(code, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(code)}")
  if os.getppid() != parent_pid:  # The parent died before the request took effect.
    os._exit(1)  # pylint: disable=protected-access

  def watch():
    while True:
      try:
        if lifeline.poll(WATCHDOG_PERIOD_S):
          lifeline.recv()  # The parent never sends: this raises EOFError once it is gone.
      except (EOFError, OSError):
        os._exit(1)  # pylint: disable=protected-access
      if os.getppid() != parent_pid:
        os._exit(1)  # pylint: disable=protected-access

  threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _main(send, lifeline, parent_pid, path, vocab_path, do_lower_case, seq_length,
          with_tflite) -> None:
  """Worker-process entry point; sends ("ok", figures), ("write_error", WriteError
  args) or ("error", message). Ends with its parent (`_die_with_parent`).

  With `with_tflite`, also writes `preprocessor.tflite` beside `path` (TFLite builtins +
  tensorflow-text's registered TFLite ops, no Flex), after running both of its
  signatures in the TFLite interpreter against the reloaded SavedModel
  (`preprocessors.tflite.verify_tflite_preprocessor`, which raises on any mismatch).
  """
  _die_with_parent(lifeline, parent_pid)
  try:
    from preprocessors import export as preprocessor_export  # pylint: disable=g-import-not-at-top
    from preprocessors import probes  # pylint: disable=g-import-not-at-top
    preprocessor_export.save_preprocessor(path, vocab_file=vocab_path,
                                          do_lower_case=do_lower_case, seq_length=seq_length)
    check = verify.verify_preprocessor(path, vocab_path=vocab_path,
                                       do_lower_case=do_lower_case, seq_length=seq_length,
                                       sentences=probes.PROBE_SENTENCES)
    if with_tflite:
      from preprocessors import tflite as preprocessor_tflite  # pylint: disable=g-import-not-at-top
      model = preprocessor_tflite.convert_preprocessor_to_tflite(
          vocab_file=vocab_path, do_lower_case=do_lower_case, seq_length=seq_length)
      check["tflite"] = preprocessor_tflite.verify_tflite_preprocessor(
          model, saved_model_dir=path)
      with open(os.path.join(os.path.dirname(path), "preprocessor.tflite"), "wb") as f:
        f.write(model)
    send.send(("ok", check))
  except Exception as e:  # pylint: disable=broad-except  # Reported to the parent.
    failure = publish.write_failure(e, where=os.path.dirname(path),
                                    fix="free space or choose another --export_dir")
    if failure is not None:
      send.send(("write_error", (str(failure), failure.path, failure.reason)))
    else:
      send.send(("error", f"{type(e).__name__}: {e}"))
  finally:
    send.close()
