"""Evaluation results: per-language scores and their files (results.json/.md, accuracy.png).

The results table is a dict:
  {"languages": [{"language", "examples", "accuracy", "macro_f1"}, ...],
   "average": {"examples", "accuracy", "macro_f1"}, ...}
with accuracy and F1 as fractions in [0, 1]; the average is the unweighted mean over the
languages (XNLI's reported figure), `examples` in it their sum. `trainer.run` adds `step`,
`split`, `bundle_dir`, `bundle_trained`, `files` and `max_eval_examples`.
"""

import json
import os
from typing import Callable, Dict, Optional

import numpy as np
import tensorflow as tf
import tf_keras

from hub_export.finetune import data
from hub_export.finetune import input_pipeline


def classification_scores(labels: np.ndarray, predictions: np.ndarray) -> dict:
  """Accuracy and macro-F1 over the classes of `data.LABELS`.

  Args:
    labels: int [N], the true label ids.
    predictions: int [N], the predicted label ids.

  Returns:
    {"examples": N, "accuracy": fraction, "macro_f1": fraction}. Macro-F1: the
    unweighted mean over the 3 classes of F1 = 2PR/(P+R), with F1 = 0 for a class whose
    precision and recall are both 0 or undefined (scikit-learn's
    `f1_score(average='macro', labels=[0, 1, 2], zero_division=0)`).
  """
  labels = np.asarray(labels)
  predictions = np.asarray(predictions)
  f1s = []
  for c in range(len(data.LABELS)):
    tp = np.sum((predictions == c) & (labels == c))
    fp = np.sum((predictions == c) & (labels != c))
    fn = np.sum((predictions != c) & (labels == c))
    f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
  return {"examples": int(labels.size), "accuracy": float(np.mean(labels == predictions)),
          "macro_f1": float(np.mean(f1s))}


def evaluate(model: tf_keras.Model, files: Dict[str, str], *, preprocessor, seq_length: int,
             batch_size: int, max_examples: Optional[int] = None,
             tfds_data_dir: Optional[str] = None,
             log: Callable[[str], None] = print) -> dict:
  """`evaluate_with` for a tf_keras classifier on the bundle's preprocessor.

  Args:
    model: the classifier, encoder inputs int32 [B, S] -> logits float32 [B, 3].
    files: {lang: file or `tfds:` spec} (`data.eval_files`), in table order.
    preprocessor: the bundle's loaded preprocessor.
    seq_length: S.
    batch_size: evaluation batch size.
    max_examples, tfds_data_dir, log: as `evaluate_with`.

  Returns, Raises: as `evaluate_with`.
  """

  def predict_logits(examples):
    dataset = input_pipeline.eval_dataset(examples, preprocessor=preprocessor,
                                          seq_length=seq_length, batch_size=batch_size)
    return model.predict(dataset, verbose=0)

  return evaluate_with(predict_logits, files, max_examples=max_examples,
                       tfds_data_dir=tfds_data_dir, log=log)


def evaluate_with(predict_logits: Callable, files: Dict[str, str], *,
                  max_examples: Optional[int] = None, tfds_data_dir: Optional[str] = None,
                  log: Callable[[str], None] = print) -> dict:
  """Accuracy and macro-F1 per language and their unweighted average (XNLI's figure).

  Args:
    predict_logits: `data.NliExamples` -> float logits [N, 3].
    files: {lang: file or `tfds:` spec} (`data.eval_files`), in table order.
    max_examples: score only the first N pairs per language (None: all).
    tfds_data_dir: TFDS data directory for `tfds:` specs.
    log: receives one line per language.

  Returns:
    The results table (module docstring) with "languages" and "average".

  Raises:
    data.NliDataError, FileNotFoundError: a bad evaluation file.
    RuntimeError: the model returned logits of another shape than [N, 3].
  """
  rows = []
  for lang, path in files.items():
    examples = data.load_examples(path, limit=max_examples, tfds_data_dir=tfds_data_dir)
    logits = np.asarray(predict_logits(examples))
    if logits.shape != (len(examples), len(data.LABELS)):
      raise RuntimeError(f"predicted logits of shape {logits.shape} for {len(examples)} "
                         f"pairs of {path}")
    row = {"language": lang, **classification_scores(examples.labels,
                                                     np.argmax(logits, axis=-1))}
    rows.append(row)
    log(f"  {lang}: {row['examples']} pairs, accuracy {100 * row['accuracy']:.2f}%, "
        f"macro-F1 {100 * row['macro_f1']:.2f}%")
  average = {"examples": int(sum(r["examples"] for r in rows)),
             "accuracy": float(np.mean([r["accuracy"] for r in rows])),
             "macro_f1": float(np.mean([r["macro_f1"] for r in rows]))}
  return {"languages": rows, "average": average}


def markdown_table(table: dict) -> str:
  """The results table in Markdown: language, examples, accuracy and macro-F1 in %."""
  lines = ["| language | examples | accuracy (%) | macro-F1 (%) |", "|---|---:|---:|---:|"]
  for row in table["languages"]:
    lines.append(f"| {row['language']} | {row['examples']} | {100 * row['accuracy']:.2f} | "
                 f"{100 * row['macro_f1']:.2f} |")
  avg = table["average"]
  lines.append(f"| **average** | {avg['examples']} | {100 * avg['accuracy']:.2f} | "
               f"{100 * avg['macro_f1']:.2f} |")
  return "\n".join(lines) + "\n"


def write_results(out_dir: str, table: dict) -> Dict[str, str]:
  """Writes `results.json`, `results.md` and `accuracy.png` (matplotlib) into `out_dir`.

  Args:
    out_dir: created if missing; existing files of these names are replaced.
    table: the results table (module docstring); `split` and `step`, when present, go
      into the plot's title.

  Returns:
    {"json": path, "markdown": path, "plot": path}.
  """
  os.makedirs(out_dir, exist_ok=True)
  paths = {"json": os.path.join(out_dir, "results.json"),
           "markdown": os.path.join(out_dir, "results.md"),
           "plot": os.path.join(out_dir, "accuracy.png")}
  with open(paths["json"], "w") as f:
    json.dump(table, f, indent=2)
    f.write("\n")
  with open(paths["markdown"], "w") as f:
    f.write(markdown_table(table))
  _plot_accuracy(paths["plot"], table)
  return paths


def _plot_accuracy(path: str, table: dict) -> None:
  """A bar per language (accuracy in %), the average and chance (1/3) as lines."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  langs = [row["language"] for row in table["languages"]]
  accs = [100 * row["accuracy"] for row in table["languages"]]
  fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(langs) + 2), 3.5))
  ax.bar(langs, accs, color="#4878a8")
  ax.axhline(100 * table["average"]["accuracy"], color="black", linewidth=1,
             label=f"average {100 * table['average']['accuracy']:.1f}")
  ax.axhline(100 / len(data.LABELS), color="gray", linestyle=":", linewidth=1,
             label="chance 33.3")
  ax.set_ylim(0, 100)
  ax.set_ylabel("accuracy (%)")
  ax.set_title(f"XNLI {table.get('split', '')} accuracy, step {table.get('step', '?')}")
  ax.legend(loc="upper right", fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def write_summaries(summary_dir: str, table: dict, *, step: int) -> None:
  """TensorBoard scalars `accuracy/<lang>`, `macro_f1/<lang>` and `accuracy/average`."""
  with tf.summary.create_file_writer(summary_dir).as_default():
    for row in table["languages"]:
      tf.summary.scalar(f"accuracy/{row['language']}", row["accuracy"], step=step)
      tf.summary.scalar(f"macro_f1/{row['language']}", row["macro_f1"], step=step)
    tf.summary.scalar("accuracy/average", table["average"]["accuracy"], step=step)
