"""The model card's `keras_hub/` section, from the summary `KerasHubOptions.export` returns.

Its two fenced blocks are the files of `snippets/` as they stand (each runs against a
bundle with `keras_hub/`: tests/hub_export/keras_hub_preset/test_snippets.py, the
fine-tuning one on the TensorFlow, JAX and PyTorch backends); every figure comes from
the summary.
"""

import os
from typing import Optional

TITLE = "## Keras 3 on every backend: the keras-hub preset (`keras_hub/`)"
SNIPPETS = ("keras_hub_fine_tune.py", "keras_hub_upload.py")
_SNIPPET_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "snippets")


def snippet(name: str) -> str:
  """The text of `snippets/<name>` (one of `SNIPPETS`).

  Raises:
    ValueError: `name` is not in `SNIPPETS`.
  """
  if name not in SNIPPETS:
    raise ValueError(f"unknown keras_hub snippet {name!r}; choose one of {list(SNIPPETS)}")
  with open(os.path.join(_SNIPPET_DIR, name), encoding="utf-8") as f:
    return f.read()


def _block(name: str) -> str:
  return f"```python\n{snippet(name)}```"


def section(summary: Optional[dict]) -> str:
  """Markdown: what the preset is, how to load it on each backend, its check, upload.

  Args:
    summary: `export.export_preset`'s manifest entry, or None (no section).

  Returns:
    The section starting with `TITLE`, or "" without a summary.
  """
  if not summary:
    return ""
  figures = summary["figures"]
  worst = ", ".join(f"`{k}` {v['max_rel']:.1e}" for k, v in sorted(figures.items()))
  bound = summary["tolerances"]["keras_hub"]["max_rel"]
  mlm = ("`task.json` + `task.weights.h5` hold the `MobileBertMaskedLM` with the "
         "checkpoint's pre-training head, so `MaskedLM.from_preset` gives that head."
         if summary["with_mlm"] else
         "The checkpoint had no pre-training head, so the preset has none: "
         "`MaskedLM.from_preset` would start from a freshly initialized head.")
  tok = summary["tokenizer"]
  paragraphs = [
      TITLE,
      "`keras_hub/` is a keras-hub preset directory, exactly as keras-hub's "
      "`save_to_preset` writes one (`config.json`, `model.weights.h5`, `metadata.json`, "
      "`tokenizer.json`, `preprocessor.json`, `assets/tokenizer/vocabulary.txt`), with "
      "the same weights as `encoder/`. Its classes are this tool's "
      "`hub_export.keras_hub_preset` (`MobileBertBackbone`, `MobileBertTokenizer`, "
      "`MobileBertTextClassifierPreprocessor`, `MobileBertTextClassifier`, "
      "`MobileBertMaskedLM`), written in backend-agnostic Keras 3 ops: import the package "
      "(with this tool on `PYTHONPATH`) and keras-hub's own `from_preset` loads the preset "
      "on the TensorFlow, JAX or PyTorch backend. " + mlm,
      f"Checked before publishing (keras {summary['keras_version']}, keras-hub "
      f"{summary['keras_hub_version']}, {summary['backend']} backend): reloaded with "
      f"`from_preset`, its outputs on the encoder's probe batches differ from "
      f"`encoder/`'s by at most {worst} (relative to the largest output, bound "
      f"{bound:g}); its preprocessor gives the same ids, segment ids and mask as "
      f"`preprocessor/` on {tok['sentences']} hard probe sentences and {tok['pairs']} "
      f"pairs at sequence length {tok['sequence_length']}. The tokenizer is the "
      "FullTokenizer-exact one of `preprocessor/`, not keras-hub's `WordPieceTokenizer`, "
      "which splits and normalizes text differently.",
      "Load, run the masked LM, fine-tune and save a classifier (set `KERAS_BACKEND` "
      "before the first `import keras`; this file runs as is on all three backends):",
      _block("keras_hub_fine_tune.py"),
      "Publish the preset on Kaggle Models (keras-hub checks the directory first):",
      _block("keras_hub_upload.py"),
  ]
  return "\n\n".join(paragraphs) + "\n"
