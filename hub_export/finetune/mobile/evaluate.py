r"""Scores every variant of a classifier export on XNLI: the SavedModel and its .tflite files.

  python -m hub_export.finetune.mobile.evaluate --classifier_dir=out/xnli_classifier \
      --eval_dir=xtreme/download/xnli --output_dir=out/xnli_eval_mobile

Variants (`VARIANTS`): `saved_model` (the serving classifier in --classifier_dir, the
reference), `float` (`convert.FLOAT_FILE`) and `int8` (`convert.INT8_FILE`), each run on
the same pairs (the .tflite files in LiteRT, pair by pair, `runner.NliTfliteClassifier`).
Per language and variant: accuracy and macro-F1 against the gold labels
(`results.classification_scores`); for the .tflite variants also the label agreement with
the SavedModel's `label` output and the max and mean |probability difference| to its
`probabilities`. Outputs in --output_dir (required; created if missing, files of these
names replaced): results.json (the table, see `evaluate`), results.md (the printed
Markdown table) and accuracy.png (grouped bars per language and variant).
"""

import json
import os
import sys
from typing import Callable, Dict, Optional, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # As in `cli`: before TensorFlow loads.

from absl import flags  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from hub_export.finetune import config  # pylint: disable=g-import-not-at-top
from hub_export.finetune import data  # pylint: disable=g-import-not-at-top
from hub_export.finetune import results  # pylint: disable=g-import-not-at-top
from hub_export.finetune.mobile import convert  # pylint: disable=g-import-not-at-top
from hub_export.finetune.mobile import runner  # pylint: disable=g-import-not-at-top

REFERENCE = "saved_model"
TFLITE_FILES = {"float": convert.FLOAT_FILE, "int8": convert.INT8_FILE}
VARIANTS = (REFERENCE, *TFLITE_FILES)
_BATCH_SIZE = 64  # SavedModel pairs per call.


class UsageError(ValueError):
  """A flag value the command line refuses (exit code 2)."""


def variant_files(classifier_dir: str, variants: Sequence[str]) -> Dict[str, str]:
  """{variant: its file or directory} in `VARIANTS` order.

  Raises:
    UsageError: an unknown or repeated variant, or variants without `REFERENCE`.
    FileNotFoundError: a selected variant's file is missing (names the file and the fix).
  """
  unknown = [v for v in variants if v not in VARIANTS]
  if unknown or len(set(variants)) != len(variants) or REFERENCE not in variants:
    raise UsageError(f"--variants={','.join(variants)} must be distinct names among "
                     f"{list(VARIANTS)} including {REFERENCE!r} (the reference of the "
                     f"agreement columns), e.g. --variants={REFERENCE},float")
  files = {}
  for variant in (v for v in VARIANTS if v in variants):
    path = os.path.join(classifier_dir, "saved_model.pb" if variant == REFERENCE
                        else TFLITE_FILES[variant])
    if not os.path.isfile(path):
      skip = ",".join(v for v in variants if v != variant)
      fix = (f"export it with `python -m hub_export.finetune ... --tflite` or pass "
             f"--variants={skip}" if variant != REFERENCE else
             "pass a classifier export written by `python -m hub_export.finetune "
             "--export_dir=DIR`")
      raise FileNotFoundError(f"the {variant} variant's file {path} does not exist; {fix}")
    files[variant] = classifier_dir if variant == REFERENCE else path
  return files


def _saved_model_predictor(classifier_dir: str) -> Callable:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  serve = tf.saved_model.load(classifier_dir).signatures["serving_default"]

  def predict(premises, hypotheses):
    probabilities, labels = [], []
    for i in range(0, len(premises), _BATCH_SIZE):
      out = serve(premise=tf.constant(premises[i:i + _BATCH_SIZE]),
                  hypothesis=tf.constant(hypotheses[i:i + _BATCH_SIZE]))
      probabilities.append(out["probabilities"].numpy())
      labels += [data.LABELS.index(x.decode("utf-8")) for x in out["label"].numpy()]
    return {"probabilities": np.concatenate(probabilities),
            "label_id": np.asarray(labels, np.int32)}
  return predict


def _tflite_predictor(path: str, num_threads: int, seq_length) -> Callable:
  with open(path, "rb") as f:
    model = runner.NliTfliteClassifier(f.read(), num_threads=num_threads)
  return lambda premises, hypotheses: model.classify(premises, hypotheses,
                                                     seq_length=seq_length)


def parse_seq_length(value: str):
  """--tflite_seq_length: "default" -> None, "fit" -> `runner.FIT`, digits -> int.

  Raises:
    UsageError: anything else (names the value and the choices).
  """
  if value == "default":
    return None
  if value == runner.FIT:
    return runner.FIT
  if value.isdigit():
    return int(value)
  raise UsageError(f"--tflite_seq_length={value!r}; expected 'default' (the file's "
                   "default), 'fit' (each pair at the shortest signature it fits in) or "
                   "a signature's length such as 128")


def evaluate(files: Dict[str, str], eval_files: Dict[str, str], *,
             max_examples: Optional[int] = None, num_threads: int = 1,
             seq_length=None, log: Callable[[str], None] = print) -> dict:
  """Runs every variant on every language's pairs.

  Args:
    files: {variant: path} (`variant_files`), `REFERENCE` first.
    eval_files: {lang: XTREME .tsv file or `tfds:` spec} (`data.eval_files`), table order.
    max_examples: score only the first N pairs per language (None: all).
    num_threads: LiteRT interpreter threads.
    seq_length: the .tflite variants' `runner.NliTfliteClassifier.classify`
      `seq_length` (None: the file's default; "fit"; or a signature's length).
    log: receives one line per language and variant.

  Returns:
    {"variants": [...], "languages": [{"language", "examples", "variants": {variant:
    scores}}, ...], "average": {"examples", "variants": {...}}}. Scores are fractions in
    [0, 1]: `accuracy`, `macro_f1`, and for .tflite variants `label_agreement`, and
    `max_abs_probability` / `mean_abs_probability` (probability units, vs the SavedModel).
    The average is the unweighted mean over languages (`max_abs_probability`: the
    maximum), its `examples` their sum.

  Raises:
    data.NliDataError, FileNotFoundError: a bad evaluation file.
    ValueError: a .tflite file LiteRT cannot run as the classifier, or a
      `seq_length` it has no signature for.
  """
  predictors = {v: _saved_model_predictor(p) if v == REFERENCE else
                _tflite_predictor(p, num_threads, seq_length) for v, p in files.items()}
  rows = []
  for lang, path in eval_files.items():
    examples = data.load_examples(path, limit=max_examples)
    row = {"language": lang, "examples": len(examples), "variants": {}}
    for variant, predict in predictors.items():
      got = predict(list(examples.premises), list(examples.hypotheses))
      scores = results.classification_scores(examples.labels, got["label_id"])
      del scores["examples"]
      if variant == REFERENCE:
        reference = got
      else:
        diff = np.abs(got["probabilities"] - reference["probabilities"])
        scores.update(label_agreement=float(np.mean(got["label_id"] ==
                                                    reference["label_id"])),
                      max_abs_probability=float(diff.max()),
                      mean_abs_probability=float(diff.mean()))
      row["variants"][variant] = scores
      log(f"  {lang} {variant}: {len(examples)} pairs, " + ", ".join(
          f"{k} {v:.4g}" for k, v in scores.items()))
    rows.append(row)
  average = {"examples": sum(r["examples"] for r in rows), "variants": {}}
  for variant in files:
    average["variants"][variant] = {
        key: float((np.max if key == "max_abs_probability" else np.mean)(
            [r["variants"][variant][key] for r in rows]))
        for key in rows[0]["variants"][variant]}
  return {"variants": list(files), "languages": rows, "average": average}


def markdown_table(table: dict) -> str:
  """Language rows and the average: examples, accuracy per variant and label agreement
  per .tflite variant, in %."""
  variants = table["variants"]
  tflite = [v for v in variants if v != REFERENCE]
  lines = ["| language | examples | " + " | ".join(
      [f"{v} accuracy (%)" for v in variants] + [f"{v} agreement (%)" for v in tflite]) +
           " |", "|---|" + "---:|" * (1 + len(variants) + len(tflite))]
  for name, row in [(r["language"], r) for r in table["languages"]] + [
      ("**average**", table["average"])]:
    cells = [f"{100 * row['variants'][v]['accuracy']:.2f}" for v in variants] + [
        f"{100 * row['variants'][v]['label_agreement']:.2f}" for v in tflite]
    lines.append(f"| {name} | {row['examples']} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def write_results(out_dir: str, table: dict) -> Dict[str, str]:
  """Writes `results.json`, `results.md`, `accuracy.png` into `out_dir` (created if
  missing; files replaced); returns {"json": path, "markdown": path, "plot": path}."""
  os.makedirs(out_dir, exist_ok=True)
  paths = {"json": os.path.join(out_dir, "results.json"),
           "markdown": os.path.join(out_dir, "results.md"),
           "plot": os.path.join(out_dir, "accuracy.png")}
  with open(paths["json"], "w", encoding="utf-8") as f:
    json.dump(table, f, indent=2)
    f.write("\n")
  with open(paths["markdown"], "w", encoding="utf-8") as f:
    f.write(markdown_table(table))
  _plot_accuracy(paths["plot"], table)
  return paths


def _plot_accuracy(path: str, table: dict) -> None:
  """Grouped bars: per language and the average, one bar per variant (accuracy in %)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  rows = table["languages"] + [dict(table["average"], language="average")]
  variants = table["variants"]
  x = np.arange(len(rows))
  width = 0.8 / len(variants)
  fig, ax = plt.subplots(figsize=(max(5, 0.25 * len(rows) * len(variants) + 2), 3.5))
  for i, variant in enumerate(variants):
    ax.bar(x + (i - (len(variants) - 1) / 2) * width,
           [100 * r["variants"][variant]["accuracy"] for r in rows], width, label=variant)
  ax.axhline(100 / len(data.LABELS), color="gray", linestyle=":", linewidth=1,
             label="chance 33.3")
  ax.set_xticks(x, [r["language"] for r in rows])
  ax.set_ylim(0, 100)
  ax.set_ylabel("accuracy (%)")
  ax.set_title(f"XNLI {table.get('split', '')} accuracy per variant")
  ax.legend(loc="upper right", fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def define_flags() -> flags.FlagValues:
  """The command line's flags, in their own FlagValues (as `cli.define_flags`)."""
  fv = flags.FlagValues()
  flags.DEFINE_string("classifier_dir", None, "A classifier export (--export_dir of "
                      "python -m hub_export.finetune).", flag_values=fv)
  flags.DEFINE_string("eval_dir", None, "Directory with XTREME {eval_split}-{lang}.tsv "
                      "files (or tfds:xnli, a prepared TFDS xnli).", flag_values=fv)
  flags.DEFINE_string("output_dir", None, "results.json, results.md, accuracy.png go here.",
                      flag_values=fv)
  flags.DEFINE_enum("eval_split", "dev", list(config.EVAL_SPLITS), "XTREME file prefix.",
                    flag_values=fv)
  flags.DEFINE_list("eval_languages", list(data.XNLI_LANGUAGES), "XNLI languages, in "
                    "table order.", flag_values=fv)
  flags.DEFINE_integer("max_eval_examples", None, "Score only the first N pairs per "
                       "language.", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("num_threads", 1, "LiteRT interpreter threads.", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_string("tflite_seq_length", "default", "Length the .tflite variants pack "
                      "pairs to: default (the file's: 'fit' with model_garden masking, "
                      "else the trained length), fit (each pair at the shortest "
                      "signature it fits in), or a signature's length.", flag_values=fv)
  flags.DEFINE_list("variants", list(VARIANTS), f"Variants to score, among {list(VARIANTS)}"
                    f"; {REFERENCE} is required (the agreement reference).", flag_values=fv)
  for name in ("classifier_dir", "eval_dir", "output_dir"):
    flags.mark_flag_as_required(name, flag_values=fv)
  return fv


def run_main(argv: Sequence[str]) -> int:
  """The command line: prints the Markdown table; returns 0 ok, 1 bad input, 2 usage
  (errors go to stderr as one line `error: <message>`)."""
  if any(a in ("--help", "-h", "--helpfull") for a in argv[1:]):
    print(__doc__)
    print(define_flags().get_help())
    return 0
  try:
    fv = define_flags()
    fv(list(argv))
    bad = [lang for lang in fv.eval_languages if lang not in data.XNLI_LANGUAGES]
    if bad or not fv.eval_languages or len(set(fv.eval_languages)) < len(fv.eval_languages):
      raise UsageError(f"--eval_languages={','.join(fv.eval_languages)}: {bad} are not XNLI "
                       f"languages, or the list is empty or repeats one; expected distinct "
                       f"codes among {','.join(data.XNLI_LANGUAGES)}")
    files = variant_files(fv.classifier_dir, fv.variants)
    eval_files = data.eval_files(languages=fv.eval_languages, eval_dir=fv.eval_dir,
                                 split=fv.eval_split)
    seq_length = parse_seq_length(fv.tflite_seq_length)
    table = evaluate(files, eval_files, max_examples=fv.max_eval_examples,
                     num_threads=fv.num_threads, seq_length=seq_length,
                     log=lambda line: print(line, flush=True))
    table.update(classifier_dir=os.path.abspath(fv.classifier_dir), split=fv.eval_split,
                 tflite_seq_length=fv.tflite_seq_length,
                 max_eval_examples=fv.max_eval_examples, eval_files=eval_files,
                 variant_files=files)
    paths = write_results(fv.output_dir, table)
  except (flags.Error, UsageError, ValueError, OSError) as e:
    message = str(e).replace("\n", "; ")  # absl lists several missing flags on lines.
    print(f"error: {message}", file=sys.stderr)
    return 2 if isinstance(e, (flags.Error, UsageError)) else 1
  print(markdown_table(table), end="")
  print(f"wrote {', '.join(paths.values())}")
  return 0


if __name__ == "__main__":
  sys.exit(run_main(sys.argv))
