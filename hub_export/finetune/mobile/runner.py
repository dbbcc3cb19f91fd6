"""Running a classifier `.tflite` in LiteRT's interpreter, with checked inputs."""

from typing import Optional, Sequence

import numpy as np
import tensorflow_text as tf_text

from hub_export.finetune.mobile import convert

FIT = convert.FIT


class NliTfliteClassifier:
  """One `.tflite` classifier (`convert.FLOAT_FILE` or `INT8_FILE`) in LiteRT.

  `seq_lengths` are the packed lengths of its `classify_<S>` signatures, ascending;
  `metadata` is the file's `convert.read_metadata` record. `classify(premises,
  hypotheses)` runs pair by pair (the signatures' inputs are string [1]) and returns
  `probabilities` float32 [N, 3], `label_id` int32 [N] and `seq_length` int32 [N], the
  S each pair ran at; `tokenize` returns the packed features the `tokenize` signature
  computes.

  By default (`seq_length=None`) a pair runs at the length that gives the SavedModel
  classifier's result: with "model_garden" attention masking the shortest signature it
  fits in (`FIT`: padding has no weight), with "original" masking the trained length
  (padding has weight, `checkpoints.attention_mask`).
  """

  def __init__(self, model_content: bytes, *, num_threads: int = 1):
    """Raises: ValueError: not a TFLite flatbuffer, or without the classifier's
    signatures (names what it has)."""
    if not isinstance(model_content, bytes) or model_content[4:8] != b"TFL3":
      raise ValueError("model_content is not a TFLite flatbuffer (no 'TFL3' identifier); "
                       f"pass the bytes of {convert.FLOAT_FILE} or {convert.INT8_FILE}")
    from ai_edge_litert import interpreter as litert  # pylint: disable=g-import-not-at-top
    self._interpreter = litert.InterpreterWithCustomOps(
        model_content=model_content, num_threads=num_threads,
        custom_op_registerers=tf_text.tflite_registrar.SELECT_TFTEXT_OPS)
    signatures = self._interpreter.get_signature_list()
    classify = sorted((int(k[len(convert.CLASSIFY_PREFIX):]), k) for k in signatures
                      if k.startswith(convert.CLASSIFY_PREFIX) and
                      k[len(convert.CLASSIFY_PREFIX):].isdigit())
    if convert.TOKENIZE not in signatures or not classify:
      raise ValueError(f"the model has signatures {sorted(signatures)}; expected "
                       f"'{convert.TOKENIZE}' and '{convert.CLASSIFY_PREFIX}<S>' (a file "
                       "written by hub_export.finetune.mobile)")
    for key in [convert.TOKENIZE] + [k for _, k in classify]:
      if sorted(signatures[key]["inputs"]) != sorted(convert.INPUT_NAMES):
        raise ValueError(f"signature {key!r} has inputs {signatures[key]['inputs']}, "
                         f"expected {list(convert.INPUT_NAMES)}")
    self.seq_lengths = tuple(s for s, _ in classify)
    self.metadata = convert.read_metadata(model_content)
    if sorted(self.metadata["seq_lengths"]) != list(self.seq_lengths):
      raise ValueError(f"the model's metadata lists lengths {self.metadata['seq_lengths']} "
                       f"but its signatures are for {list(self.seq_lengths)}")
    self._runners = {s: self._interpreter.get_signature_runner(k) for s, k in classify}
    self._tokenize = self._interpreter.get_signature_runner(convert.TOKENIZE)

  def tokenize(self, premises: Sequence[str], hypotheses: Sequence[str]) -> dict:
    """`convert.FEATURE_NAMES` int32 [N, max(seq_lengths)] and `num_tokens` int32 [N].

    Raises: ValueError: as `classify`."""
    rows = [self._tokenize(premise=_as_input(p), hypothesis=_as_input(h))
            for p, h in _checked(premises, hypotheses)]
    names = convert.FEATURE_NAMES + ("num_tokens",)
    if not rows:
      s = max(self.seq_lengths)
      return {k: np.zeros([0, s] if k != "num_tokens" else [0], np.int32) for k in names}
    return {k: np.concatenate([r[k] for r in rows]) for k in names}

  def classify(self, premises: Sequence[str], hypotheses: Sequence[str], *,
               seq_length: Optional[int] = None) -> dict:
    """Classifies each pair.

    Args:
      premises, hypotheses: str (or UTF-8 bytes) sequences of one length N.
      seq_length: `FIT`: each pair runs at `convert.select_seq_length` of its
        `num_tokens` (the `tokenize` signature first); one of `seq_lengths`: all pairs
        at that length; None: `FIT` if the file's attention masking is "model_garden",
        else its trained length.

    Returns:
      `probabilities` float32 [N, 3], `label_id` int32 [N], `seq_length` int32 [N].

    Raises:
      ValueError: non-string items, lists of different lengths, or a `seq_length` the
        file has no signature for (names the value and the choices).
    """
    if seq_length is None:
      seq_length = convert.default_seq_length(self.metadata["attention_mask"],
                                              self.metadata["trained_seq_length"])
    if seq_length != FIT and seq_length not in self._runners:
      raise ValueError(f"seq_length={seq_length!r}; this file has classify signatures for "
                       f"{list(self.seq_lengths)} (or pass {FIT!r} to choose per pair, "
                       "None for the file's default)")
    probabilities, labels, lengths = [], [], []
    for p, h in _checked(premises, hypotheses):
      p, h = _as_input(p), _as_input(h)
      s = seq_length
      if s == FIT:
        n = int(self._tokenize(premise=p, hypothesis=h)["num_tokens"][0])
        s = convert.select_seq_length(n, self.seq_lengths)
      out = self._runners[s](premise=p, hypothesis=h)
      probabilities.append(out["probabilities"])
      labels.append(out["label_id"])
      lengths.append(s)
    if not probabilities:
      return {"probabilities": np.zeros([0, 3], np.float32),
              "label_id": np.zeros([0], np.int32), "seq_length": np.zeros([0], np.int32)}
    return {"probabilities": np.concatenate(probabilities),
            "label_id": np.concatenate(labels),
            "seq_length": np.asarray(lengths, np.int32)}


def _checked(premises, hypotheses):
  premises, hypotheses = list(premises), list(hypotheses)
  if len(premises) != len(hypotheses):
    raise ValueError(f"got {len(premises)} premises and {len(hypotheses)} hypotheses; "
                     "pass one hypothesis per premise")
  for name, texts in (("premises", premises), ("hypotheses", hypotheses)):
    bad = [t for t in texts if not isinstance(t, (str, bytes))]
    if bad:
      raise ValueError(f"{name} must be str or UTF-8 bytes, got {type(bad[0]).__name__} "
                       f"{bad[0]!r}")
  return list(zip(premises, hypotheses))


def _as_input(text) -> np.ndarray:
  return np.array([text.encode("utf-8") if isinstance(text, str) else bytes(text)],
                  dtype=object)
