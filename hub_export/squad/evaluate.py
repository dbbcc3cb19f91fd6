"""SQuAD v1.1 EM/F1 of every squad/ variant and its fidelity against the float SavedModel.

  python -m hub_export.squad.evaluate --squad_dir=BUNDLE/squad \
      --squad_file=../shared/data/squad/xquad/xquad.en.json \
      --output_json=eval.json --output_md=eval.md [--max_questions=N]

`--bundle_dir=BUNDLE` instead of `--squad_dir` evaluates the bundle's squad/ after
checking that BUNDLE is a complete bundle of this tool exported with --task=squad
(`hub_export.bundle_check.check_bundle`).

Variants: `saved_model` (the `mlperf` signature of squad/saved_model, the float reference),
each `*.tflite` (LiteRT interpreter, XNNPACK, 1 thread) and each `*.onnx` (onnxruntime CPU)
present in `--squad_dir`. Every variant gets the same windows (the SavedModel's own
settings: seq_length, doc_stride, max_query_length, its vocab and do_lower_case) and
the same answer decoding (`features.best_answers`: n-best 20, max answer 30).

Reported per variant (`metrics.py`): official SQuAD v1.1 EM/F1 (percent) over the first
`--mlperf_questions` questions (MLPerf Mobile's 100-question subset: the first 100
questions of the file, the same ones the int8 models are calibrated on by default, so
that figure is not a held-out score) and over all questions read; fidelity against the
SavedModel: logit SQNR per output (dB), start/end argmax agreement, answer EM/F1 taking
the SavedModel's answers as ground truth. Written as JSON (`--output_json`, with each
variant's predictions) and a Markdown table (`--output_md`, also printed).
"""

import json
import os
import sys
import time
from typing import Callable, Dict, List, Optional

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  # pylint: disable=unused-import  (ops of the SavedModel)

from hub_export import bundle_check
from hub_export.squad import constants
from hub_export.squad import features as features_lib
from hub_export.squad import metrics
from hub_export.squad import model as qa_model
from hub_export.squad import onnx_export
from hub_export.squad import tflite_analysis

REFERENCE = "saved_model"


def _saved_model_runner(path: str):
  loaded = tf.saved_model.load(path)
  sig = loaded.signatures["mlperf"]

  def run(batches):
    return qa_model.stack_outputs(
        lambda b: sig(**{k: tf.constant(np.asarray(b[k], np.int32))
                         for k in constants.INPUT_NAMES}), batches)
  settings = {"vocab_file": loaded.vocab_file.asset_path.numpy().decode("utf-8"),
              "do_lower_case": bool(loaded.do_lower_case.numpy()),
              "seq_length": int(loaded.seq_length.numpy()),
              "doc_stride": int(loaded.doc_stride.numpy()),
              "max_query_length": int(loaded.max_query_length.numpy()),
              "n_best_size": int(loaded.n_best_size.numpy()),
              "max_answer_length": int(loaded.max_answer_length.numpy())}
  return run, settings


def variants(squad_dir: str) -> Dict[str, Callable]:
  """Variant name (file name) -> runner(batches) -> {output: float32 [N, S]}, in a fixed
  order: TFLite files, then ONNX files, sorted by name. The SavedModel is not included."""
  out = {}
  names = sorted(os.listdir(squad_dir), key=lambda n: (not n.endswith(".tflite"), n))
  for name in names:
    path = os.path.join(squad_dir, name)
    if name.endswith(".tflite"):
      with open(path, "rb") as f:
        content = f.read()
      out[name] = (lambda c: lambda batches: tflite_analysis.run(
          tflite_analysis.interpreter(c), batches))(content)
    elif name.endswith(".onnx"):
      out[name] = (lambda p: lambda batches: onnx_export.run(
          onnx_export.session(p), batches))(path)
  return out


def resolve_squad_dir(*, squad_dir: Optional[str], bundle_dir: Optional[str]) -> str:
  """The squad/ directory to evaluate, from `--squad_dir` or `--bundle_dir` (checked).

  Args:
    squad_dir: a squad/ directory (with saved_model/), or None.
    bundle_dir: a bundle exported with --task=squad, or None; exactly one is given.

  Returns:
    the squad/ directory.

  Raises:
    ValueError: both or neither given; `bundle_dir` is not a complete bundle of this
      tool (`bundle_check.BundleError`) or has no squad/; `squad_dir` is a bundle's root,
      or its saved_model/ is missing or truncated. One line each.
  """
  if (squad_dir is None) == (bundle_dir is None):
    raise ValueError(f"--squad_dir={squad_dir} and --bundle_dir={bundle_dir}: pass exactly "
                     "one (a bundle's squad/ directory, or the bundle)")
  if bundle_dir is not None:
    manifest = bundle_check.check_bundle(bundle_dir, flag="--bundle_dir")
    if "squad" not in manifest:
      raise bundle_check.BundleError(
          f"--bundle_dir={bundle_dir} has no SQuAD package (its manifest.json has no "
          "'squad' entry; expected a bundle exported with --task=squad); export one with "
          "export_main.py --task=squad", "not_a_bundle")
    squad_dir = os.path.join(bundle_dir, "squad")
    problem = bundle_check.saved_model_problem(os.path.join(squad_dir, "saved_model"))
    if problem:
      raise bundle_check.BundleError(
          f"--bundle_dir={bundle_dir} is a truncated bundle (squad/{problem}; expected a "
          "complete squad/saved_model); export the bundle again with export_main.py",
          "truncated")
    return squad_dir
  if not os.path.isdir(squad_dir):
    raise ValueError(f"--squad_dir={squad_dir} is not a directory (expected a bundle's "
                     "squad/ directory); pass BUNDLE/squad or --bundle_dir=BUNDLE")
  if os.path.isfile(os.path.join(squad_dir, "manifest.json")):
    raise ValueError(f"--squad_dir={squad_dir} is a bundle, not its squad/ directory; pass "
                     f"--bundle_dir={squad_dir} or --squad_dir={os.path.join(squad_dir, 'squad')}")
  if os.path.isdir(os.path.join(squad_dir, "saved_model")):
    problem = bundle_check.saved_model_problem(os.path.join(squad_dir, "saved_model"))
    if problem:
      raise ValueError(f"--squad_dir={squad_dir} is truncated ({problem}; expected a "
                       "complete saved_model/); export the bundle again with --task=squad")
  return squad_dir


def evaluate_dir(squad_dir: str, squad_file: str, *, max_questions: Optional[int] = None,
                 mlperf_questions: int = 100,
                 log: Callable[[str], None] = print) -> dict:
  """Evaluates every variant of `squad_dir` on `squad_file` (see the module docstring).

  Args:
    squad_dir: a bundle's squad/ directory (with saved_model/).
    squad_file: SQuAD v1.1-format JSON.
    max_questions: read only the first N questions (None: all).
    mlperf_questions: size of the leading subset scored separately (MLPerf: 100).

  Returns:
    dict `settings`, `questions`, `windows`, `subset_questions`, and `variants`: name ->
    {`bytes`, `seconds`, `all` {exact_match, f1, ...}, `subset` {...}, `fidelity`
    (`metrics.fidelity` against the SavedModel), `predictions` qid -> text}.

  Raises:
    ValueError: no squad/saved_model in `squad_dir`, bad sizes or SQuAD file.
  """
  sm_path = os.path.join(squad_dir, "saved_model")
  if not os.path.isdir(sm_path):
    raise ValueError(f"{squad_dir} has no saved_model/; pass the squad/ directory of a "
                     "bundle exported with --task=squad")
  if mlperf_questions < 1 or (max_questions is not None and max_questions < 1):
    raise ValueError(f"mlperf_questions={mlperf_questions} and max_questions="
                     f"{max_questions} must be >= 1")
  with open(squad_file, encoding="utf-8") as f:
    dataset = json.load(f)["data"]
  examples = features_lib.read_squad_json(squad_file, limit=max_questions)
  if not examples:
    raise ValueError(f"{squad_file} has no questions")
  ref_run, settings = _saved_model_runner(sm_path)
  featurizer = features_lib.Featurizer(
      settings["vocab_file"], do_lower_case=settings["do_lower_case"],
      max_seq_length=settings["seq_length"], doc_stride=settings["doc_stride"],
      max_query_length=settings["max_query_length"])
  feats = featurizer.features(examples)
  batches = list(features_lib.iter_batches(feats))
  qids = [e.qid for e in examples]
  sub_qids = qids[:mlperf_questions]
  data_all = metrics.subset(dataset, qids)
  data_sub = metrics.subset(dataset, sub_qids)
  log(f"{len(examples)} questions, {len(batches)} windows of {settings['seq_length']}")

  def score(name, runner, nbytes):
    t = time.time()
    logits = runner(batches)
    seconds = time.time() - t
    preds = features_lib.best_answers(
        examples, feats, logits["start_logits"], logits["end_logits"],
        n_best_size=settings["n_best_size"], max_answer_length=settings["max_answer_length"])
    entry = {"bytes": nbytes, "seconds": round(seconds, 2),
             "all": metrics.evaluate(data_all, preds),
             "subset": metrics.evaluate(data_sub, {q: preds[q] for q in sub_qids}),
             "predictions": preds}
    log(f"  {name}: F1 {entry['all']['f1']:.2f} EM {entry['all']['exact_match']:.2f} "
        f"({seconds:.1f} s)")
    return entry, logits

  sm_bytes = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(sm_path)
                 for f in fs)
  results = {}
  results[REFERENCE], ref = score(REFERENCE, ref_run, sm_bytes)
  for name, runner in variants(squad_dir).items():
    entry, got = score(name, runner, os.path.getsize(os.path.join(squad_dir, name)))
    results[name] = entry
    entry["fidelity"] = metrics.fidelity(got, ref, entry["predictions"],
                                            results[REFERENCE]["predictions"])
  results[REFERENCE]["fidelity"] = metrics.fidelity(
      ref, ref, results[REFERENCE]["predictions"], results[REFERENCE]["predictions"])
  return {"squad_dir": os.path.abspath(squad_dir), "squad_file": os.path.abspath(squad_file),
          "settings": {k: v for k, v in settings.items() if k != "vocab_file"},
          "questions": len(examples), "windows": len(batches),
          "subset_questions": len(sub_qids), "variants": results}


def markdown(report: dict) -> str:
  """The report as a Markdown table (one row per variant)."""
  n, m = report["questions"], report["subset_questions"]
  lines = [f"SQuAD v1.1 on {os.path.basename(report['squad_file'])}: first {m} questions "
           f"(MLPerf subset) and all {n} read; fidelity against `{REFERENCE}` on "
           f"{report['windows']} windows.", "",
           f"| variant | MB | EM/F1 first {m} | EM/F1 all {n} | SQNR start/end dB | "
           "argmax agree start/end | answer EM/F1 vs float |",
           "|---|---|---|---|---|---|---|"]
  for name, e in report["variants"].items():
    fi = e["fidelity"]
    sq = fi["sqnr_db"]
    ag = fi["argmax_agreement"]
    fmt = lambda x: "inf" if x == float("inf") else f"{x:.1f}"  # pylint: disable=unnecessary-lambda-assignment
    lines.append(
        f"| {name} | {e['bytes'] / 1e6:.1f} | {e['subset']['exact_match']:.1f}/"
        f"{e['subset']['f1']:.1f} | {e['all']['exact_match']:.1f}/{e['all']['f1']:.1f} | "
        f"{fmt(sq['start_logits'])}/{fmt(sq['end_logits'])} | "
        f"{ag['start_logits']:.2f}/{ag['end_logits']:.2f} | "
        f"{fi['answer_em']:.1f}/{fi['answer_f1']:.1f} |")
  return "\n".join(lines) + "\n"


def main(argv: List[str]) -> int:
  """CLI entry point; returns the exit code (1 with a message on bad input)."""
  import argparse  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(prog="python -m hub_export.squad.evaluate",
                                   description=__doc__.split("\n")[0])
  parser.add_argument("--squad_dir", default=None, help="a bundle's squad/ directory")
  parser.add_argument("--bundle_dir", default=None,
                      help="a bundle exported with --task=squad (instead of --squad_dir)")
  parser.add_argument("--squad_file", required=True, help="SQuAD v1.1-format JSON")
  parser.add_argument("--max_questions", type=int, default=None,
                      help="evaluate only the first N questions (default: all)")
  parser.add_argument("--mlperf_questions", type=int, default=100,
                      help="leading subset scored separately (MLPerf Mobile: 100)")
  parser.add_argument("--output_json", default=None)
  parser.add_argument("--output_md", default=None)
  args = parser.parse_args(argv[1:])
  try:
    squad_dir = resolve_squad_dir(squad_dir=args.squad_dir, bundle_dir=args.bundle_dir)
    report = evaluate_dir(squad_dir, args.squad_file, max_questions=args.max_questions,
                          mlperf_questions=args.mlperf_questions)
  except (ValueError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  table = markdown(report)
  print(table)
  if args.output_json:
    with open(args.output_json, "w", encoding="utf-8") as f:
      json.dump(report, f, indent=1, default=float)
  if args.output_md:
    with open(args.output_md, "w", encoding="utf-8") as f:
      f.write(table)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
