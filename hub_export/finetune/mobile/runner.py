"""Running a classifier `.tflite` in LiteRT's interpreter, with checked inputs."""

from typing import Sequence

import numpy as np
import tensorflow_text as tf_text

from hub_export.finetune.mobile import convert


class NliTfliteClassifier:
  """One `.tflite` classifier (`convert.FLOAT_FILE` or `INT8_FILE`) in LiteRT.

  `classify(premises, hypotheses)` runs the file's signature pair by pair (its inputs are
  string [1]) and returns `probabilities` float32 [N, 3] and `label_id` int32 [N].
  """

  def __init__(self, model_content: bytes, *, num_threads: int = 1):
    """Raises: ValueError: not a TFLite flatbuffer, or without the classifier's inputs."""
    if not isinstance(model_content, bytes) or model_content[4:8] != b"TFL3":
      raise ValueError("model_content is not a TFLite flatbuffer (no 'TFL3' identifier); "
                       f"pass the bytes of {convert.FLOAT_FILE} or {convert.INT8_FILE}")
    from ai_edge_litert import interpreter as litert  # pylint: disable=g-import-not-at-top
    self._interpreter = litert.InterpreterWithCustomOps(
        model_content=model_content, num_threads=num_threads,
        custom_op_registerers=tf_text.tflite_registrar.SELECT_TFTEXT_OPS)
    signatures = self._interpreter.get_signature_list()
    if len(signatures) != 1:
      raise ValueError(f"the model has signatures {sorted(signatures)}, expected one")
    (key, io), = signatures.items()
    if sorted(io["inputs"]) != sorted(convert.INPUT_NAMES):
      raise ValueError(f"the model's inputs are {io['inputs']}, expected "
                       f"{list(convert.INPUT_NAMES)}")
    self._runner = self._interpreter.get_signature_runner(key)

  def classify(self, premises: Sequence[str], hypotheses: Sequence[str]) -> dict:
    """Raises: ValueError: non-string items, or lists of different lengths (names them)."""
    premises, hypotheses = list(premises), list(hypotheses)
    if len(premises) != len(hypotheses):
      raise ValueError(f"got {len(premises)} premises and {len(hypotheses)} hypotheses; "
                       "pass one hypothesis per premise")
    for name, texts in (("premises", premises), ("hypotheses", hypotheses)):
      bad = [t for t in texts if not isinstance(t, (str, bytes))]
      if bad:
        raise ValueError(f"{name} must be str or UTF-8 bytes, got {type(bad[0]).__name__} "
                         f"{bad[0]!r}")
    probabilities, labels = [], []
    for p, h in zip(premises, hypotheses):
      out = self._runner(premise=_as_input(p), hypothesis=_as_input(h))
      probabilities.append(out["probabilities"])
      labels.append(out["label_id"])
    if not probabilities:
      return {"probabilities": np.zeros([0, 3], np.float32),
              "label_id": np.zeros([0], np.int32)}
    return {"probabilities": np.concatenate(probabilities),
            "label_id": np.concatenate(labels)}


def _as_input(text) -> np.ndarray:
  return np.array([text.encode("utf-8") if isinstance(text, str) else bytes(text)],
                  dtype=object)
