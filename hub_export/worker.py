"""The preprocessor worker: saves and checks `preprocessor/` in a second process.

The preprocessor does not depend on the model, so the pipeline builds, saves and checks
it in a fresh "spawn" process (forking a process that runs TensorFlow is unsafe) while
its own process converts, saves and verifies the encoder.
"""

import multiprocessing
import os

from hub_export import verify
from hub_export.errors import ExportError


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
    self._process = ctx.Process(
        target=_main, name="preprocessor-export",
        args=(send, path, vocab_path, do_lower_case, seq_length, with_tflite), daemon=True)
    self._process.start()
    send.close()

  def result(self) -> dict:
    """Waits for the worker; its figures (`verify.verify_preprocessor`, + "tflite").

    Raises:
      ExportError: the worker reported an error (its message, prefixed with
        "preprocessor/: "), or died before reporting (with its exit code).
    """
    try:
      status, value = self._receive.recv()
    except EOFError:
      self._process.join()
      raise ExportError(f"the preprocessor worker died (exit code {self._process.exitcode})"
                        " before reporting; rerun the export") from None
    self._process.join()
    if status != "ok":
      raise ExportError(f"preprocessor/: {value}")
    return value

  def stop(self) -> None:
    """Ends the worker if it still runs; idempotent."""
    if self._process.is_alive():
      self._process.terminate()
    self._process.join()
    self._receive.close()


def _main(send, path, vocab_path, do_lower_case, seq_length, with_tflite) -> None:
  """Worker-process entry point; sends ("ok", figures) or ("error", message).

  With `with_tflite`, also writes `preprocessor.tflite` beside `path` (TFLite builtins +
  tensorflow-text's registered TFLite ops, no Flex), after running both of its
  signatures in the TFLite interpreter against the reloaded SavedModel
  (`preprocessors.tflite.verify_tflite_preprocessor`, which raises on any mismatch).
  """
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
    send.send(("error", f"{type(e).__name__}: {e}"))
  finally:
    send.close()
