"""`write_verified`: the classifier's `.tflite` files, written and checked on disk.

Each file is read back and run in LiteRT's interpreter (`runner.NliTfliteClassifier`) on
the verification pairs and compared with the SavedModel classifier's probabilities on the
same pairs, by its row of `verify.TOLERANCES` (max |probability difference| <=
`max_abs_probability`, label agreement >= `min_label_agreement`):
  * `nli_tflite_float` for `convert.FLOAT_FILE`: 1e-5 and the same labels;
  * `nli_tflite_int8` for `convert.INT8_FILE`: the publishing gate (label agreement).
Neither may need an op outside TFLite's builtins and the tensorflow-text kernels
(`preprocessors.tflite.check_tflite_ops`: no Flex).
"""

import json
import os
from typing import Callable, Sequence, Tuple

import numpy as np

from hub_export import verify
from hub_export.finetune.config import FinetuneError
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
                   pairs: Sequence[Tuple[str, str]], reference: np.ndarray,
                   log: Callable[[str], None] = print) -> dict:
  """Converts, writes and checks `convert.FLOAT_FILE` and `convert.INT8_FILE`.

  Args:
    directory: an existing directory (the classifier export's staging directory).
    weights: the fine-tuned classifier (`weights.load_nli_weights`).
    vocab_file, do_lower_case: the bundle's tokenizer.
    seq_length: the classifier's trained S; the files pack pairs to it.
    calibration: (premise, hypothesis) str pairs the int8 file is calibrated on.
    pairs: verification (premise, hypothesis) str pairs, distinct from `calibration`.
    reference: the SavedModel classifier's probabilities on `pairs`, float32 [N, 3].
    log: one line per step.

  Returns:
    The manifest (also written to `MANIFEST`): per file its bytes, figures and the
    `verify.TOLERANCES` row applied.

  Raises:
    FinetuneError: a file disagrees beyond its row.
    ValueError: an op outside the builtins and tensorflow-text kernels; no calibration.
  """
  vocab = vocab_lib.load_vocab(vocab_file)
  premises = [p for p, _ in pairs]
  hypotheses = [h for _, h in pairs]
  files = {}
  for name, row in ((convert.FLOAT_FILE, "nli_tflite_float"),
                    (convert.INT8_FILE, "nli_tflite_int8")):
    log(f"{name}: converting (seq_length {seq_length}) ...")
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
    got = runner.NliTfliteClassifier(on_disk).classify(premises, hypotheses)
    figures = _figures(got, np.asarray(reference, np.float32))
    check_figures(name, figures, row)
    log(f"{name}: {len(on_disk) / 1e6:.1f} MB, {figures['pairs']} pairs, max |probability "
        f"difference| {figures['max_abs_probability']:.2e}, label agreement "
        f"{figures['label_agreement']:.3f}")
    files[name] = {"bytes": len(on_disk), "figures": figures,
                   "tolerance": {row: verify.TOLERANCES[row]}}
  manifest = {"seq_length": seq_length, "attention_mask": weights.encoder.attention_mask,
              "inputs": {n: "string [1]" for n in convert.INPUT_NAMES},
              "outputs": {"probabilities": "float32 [1, 3]", "label_id": "int32 [1]"},
              "calibration_pairs": len(calibration), "files": files}
  with open(os.path.join(directory, MANIFEST), "w", encoding="utf-8") as f:
    json.dump(manifest, f, indent=2)
  return manifest
