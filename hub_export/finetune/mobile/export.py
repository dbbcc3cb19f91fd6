"""`write_verified`: the classifier's `.tflite` files, written and checked on disk.

Each file is read back and run in LiteRT's interpreter (`runner.NliTfliteClassifier`) on
the verification pairs and compared with the SavedModel classifier on the same pairs:
  * its `tokenize` signature's `input_word_ids`, `input_mask` and `input_type_ids` are
    the SavedModel preprocessor's, id for id (`FinetuneError` otherwise);
  * each `classify_<S>` signature's probabilities are the SavedModel classifier's parts
    (its preprocessor packing to S, its encoder and head) run at S, by the file's row of
    `verify.TOLERANCES` (max |probability difference| <= `max_abs_probability`, label
    agreement >= `min_label_agreement`): `nli_tflite_float` for `convert.FLOAT_FILE`
    (1e-5 and the same labels), `nli_tflite_int8` for `convert.INT8_FILE` (the
    publishing gate, label agreement);
  * `runner.FIT` (each pair at the shortest length it fits in) against the SavedModel's
    `serving_default` (trained length): gated by the same row when the attention
    masking is "model_garden" (padding has no weight, so the lengths agree), recorded
    as `fit_vs_trained` when it is "original".
Neither file may need an op outside TFLite's builtins and the tensorflow-text kernels
(`preprocessors.tflite.check_tflite_ops`: no Flex).
"""

import json
import os
from typing import Callable, Dict, Sequence, Tuple

import numpy as np

from hub_export import verify
from hub_export.finetune.config import FinetuneError
from hub_export.finetune.mobile import card
from hub_export.finetune.mobile import convert
from hub_export.finetune.mobile import runner
from hub_export.finetune.mobile import weights as weights_lib
from preprocessors import vocab as vocab_lib

MANIFEST = "tflite_manifest.json"


def _figures(got: dict, want: np.ndarray) -> dict:
  diff = np.abs(got["probabilities"] - want)
  return {"pairs": int(len(want)),
          "max_abs_probability": float(diff.max()) if len(want) else 0.0,
          "mean_abs_probability": float(diff.mean()) if len(want) else 0.0,
          "label_agreement": float(np.mean(got["label_id"] == np.argmax(want, -1)))}


def check_figures(name: str, figures: dict, row: str) -> None:
  """Raises FinetuneError if `figures` break `verify.TOLERANCES[row]` (names both)."""
  bound = verify.TOLERANCES[row]
  problems = []
  if figures["max_abs_probability"] > bound.get("max_abs_probability", 1.0):
    problems.append(f"max |probability difference| {figures['max_abs_probability']:.3g} > "
                    f"{bound['max_abs_probability']:g}")
  need = bound.get("min_label_agreement", 1.0)
  if figures["label_agreement"] < need:
    problems.append(f"label agreement {figures['label_agreement']:.3f} < {need:g}")
  if problems:
    raise FinetuneError(f"{name} disagrees with the SavedModel classifier on "
                        f"{figures['pairs']} pairs: " + "; ".join(problems) +
                        f" (verify.TOLERANCES[{row!r}])")


def write_verified(directory: str, *, weights: weights_lib.NliWeights, vocab_file: str,
                   do_lower_case: bool, seq_length: int,
                   calibration: Sequence[Tuple[str, str]],
                   pairs: Sequence[Tuple[str, str]],
                   reference: Callable[[int], Tuple[np.ndarray, Dict[str, np.ndarray]]],
                   log: Callable[[str], None] = print) -> dict:
  """Converts, writes and checks `convert.FLOAT_FILE` and `convert.INT8_FILE`.

  Args:
    directory: an existing directory (the classifier export's staging directory).
    weights: the fine-tuned classifier (`weights.load_nli_weights`).
    vocab_file, do_lower_case: the bundle's tokenizer.
    seq_length: the classifier's trained S (the longest signature; see
      `convert.seq_lengths`).
    calibration: (premise, hypothesis) str pairs the int8 file is calibrated on.
    pairs: verification (premise, hypothesis) str pairs, distinct from `calibration`.
    reference: S -> (the SavedModel classifier's probabilities float32 [N, 3] on
      `pairs` packed to S, its packed `convert.FEATURE_NAMES` int32 [N, S]); at the
      trained S, its `serving_default` outputs.
    log: one line per step.

  Returns:
    The manifest (also written to `MANIFEST`): signatures, lengths, masking, and per
    file its bytes, figures per signature, `fit_vs_trained` and the
    `verify.TOLERANCES` row applied. The model-card section `card.ON_DEVICE_CARD` is
    written from it.

  Raises:
    FinetuneError: a file's ids differ, or it disagrees beyond its row (names the
      signature and the figures).
    ValueError: an op outside the builtins and tensorflow-text kernels; no calibration.
  """
  vocab = vocab_lib.load_vocab(vocab_file)
  premises = [p for p, _ in pairs]
  hypotheses = [h for _, h in pairs]
  lengths = convert.seq_lengths(seq_length)
  references = {s: reference(s) for s in lengths}
  trained_probabilities, trained_features = references[seq_length]
  default = convert.default_seq_length(weights.encoder.attention_mask, seq_length)
  exact_fit = default == convert.FIT
  files = {}
  for name, row in ((convert.FLOAT_FILE, "nli_tflite_float"),
                    (convert.INT8_FILE, "nli_tflite_int8")):
    log(f"{name}: converting (signatures {convert.TOKENIZE}, "
        f"{', '.join(convert.signature_key(s) for s in lengths)}) ...")
    if name == convert.FLOAT_FILE:
      content = convert.convert_float(weights, vocab=vocab, do_lower_case=do_lower_case,
                                      seq_length=seq_length)
    else:
      content = convert.convert_int8(weights, calibration, vocab=vocab,
                                     do_lower_case=do_lower_case, seq_length=seq_length)
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
      f.write(content)
    with open(path, "rb") as f:  # Verify what is on disk.
      on_disk = f.read()
    model = runner.NliTfliteClassifier(on_disk)
    _check_ids(name, model.tokenize(premises, hypotheses), trained_features, pairs)
    per_signature = {}
    for s in lengths:
      key = convert.signature_key(s)
      figures = _figures(model.classify(premises, hypotheses, seq_length=s),
                         np.asarray(references[s][0], np.float32))
      check_figures(f"{name} signature {key}", figures, row)
      per_signature[key] = figures
    fit = model.classify(premises, hypotheses, seq_length=runner.FIT)
    fit_figures = _figures(fit, np.asarray(trained_probabilities, np.float32))
    fit_figures["pairs_per_seq_length"] = {
        str(s): int(np.sum(fit["seq_length"] == s)) for s in lengths}
    if exact_fit:
      check_figures(f"{name} ({runner.FIT!r}: each pair at the shortest length it fits)",
                    fit_figures, row)
    trained = per_signature[convert.signature_key(seq_length)]
    placement = _xnnpack_placement(on_disk)
    log(f"{name}: {len(on_disk) / 1e6:.1f} MB, {trained['pairs']} pairs, ids identical, "
        f"{placement['partitions']} XNNPACK partition(s) in {placement['signature']}; "
        + "; ".join(f"{k} max |probability difference| {f['max_abs_probability']:.2e}, "
                    f"label agreement {f['label_agreement']:.3f}"
                    for k, f in per_signature.items())
        + f"; {runner.FIT!r} vs the trained length: max |probability difference| "
        f"{fit_figures['max_abs_probability']:.2e}, label agreement "
        f"{fit_figures['label_agreement']:.3f}"
        + ("" if exact_fit else " (recorded: 'original' masking gives padding weight)"))
    files[name] = {"bytes": len(on_disk), "figures": trained, "signatures": per_signature,
                   "fit_vs_trained": fit_figures, "fit_vs_trained_gated": exact_fit,
                   "xnnpack": placement,
                   "tolerance": {row: verify.TOLERANCES[row]}}
  manifest = {
      "seq_length": seq_length, "seq_lengths": list(lengths),
      "attention_mask": weights.encoder.attention_mask,
      "signatures": {
          convert.TOKENIZE: {
              "inputs": {n: "string [1]" for n in convert.INPUT_NAMES},
              "outputs": {**{k: f"int32 [1, {seq_length}]" for k in convert.FEATURE_NAMES},
                          "num_tokens": "int32 [1]"}},
          **{convert.signature_key(s): {
              "inputs": {n: "string [1]" for n in convert.INPUT_NAMES},
              "outputs": {"probabilities": "float32 [1, 3]", "label_id": "int32 [1]"},
              "seq_length": s} for s in lengths}},
      "default_seq_length": default,
      "calibration_pairs": len(calibration), "files": files}
  with open(os.path.join(directory, MANIFEST), "w", encoding="utf-8") as f:
    json.dump(manifest, f, indent=2)
  with open(os.path.join(directory, card.ON_DEVICE_CARD), "w", encoding="utf-8") as f:
    f.write(card.render(manifest, do_lower_case=do_lower_case))
  return manifest


def _xnnpack_placement(content: bytes) -> dict:
  """{"signature": the signature of subgraph 0, "partitions": its XNNPACK partitions}
  (`hub_export.squad.tflite_analysis.xnnpack_placement`; one means every network op
  runs in XNNPACK, the tokenizer and packing ops beside it)."""
  import tensorflow_text as tf_text  # pylint: disable=g-import-not-at-top
  from hub_export.squad import tflite_analysis  # pylint: disable=g-import-not-at-top
  first = {i: k for k, i in convert.signature_keys(content).items()}[0]
  placement = tflite_analysis.xnnpack_placement(
      content, custom_op_registerers=tf_text.tflite_registrar.SELECT_TFTEXT_OPS)
  return {"signature": first, "partitions": placement["partitions"]}


def _check_ids(name, got, want, pairs):
  """Raises FinetuneError naming the first pair whose packed features differ."""
  for k in convert.FEATURE_NAMES:
    same = np.all(got[k] == np.asarray(want[k]), axis=-1)
    if got[k].shape != np.shape(want[k]) or not same.all():
      i = int(np.argmin(same)) if got[k].shape == np.shape(want[k]) else 0
      raise FinetuneError(
          f"{name} signature {convert.TOKENIZE!r}: {k} differs from the SavedModel "
          f"preprocessor's on pair {i} {pairs[i]!r}: {got[k][i].tolist()} vs "
          f"{np.asarray(want[k])[i].tolist()}")
