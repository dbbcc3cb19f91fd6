"""Writes and verifies the bundle's `squad/` directory (issue #6).

`export_squad` is called by `hub_export.pipeline` inside the bundle's temporary directory,
so nothing is published unless every artifact below was written, reloaded and matched
the float model:

  squad/saved_model/                      `saved_model.py` (mlperf + answer signatures)
  squad/mobilebert_float_384.tflite       plain float conversion of the SavedModel
  squad/mobilebert_float_384_gpu.tflite   float, GPU rewrites (`model.GPU_REWRITES`)
  squad/mobilebert_int8_384.tflite        full-integer int8, per-channel weights
  squad/mobilebert_int8_384_nnapi.tflite  int8, only NNAPI allow-list ops
  (each .tflite carries TFLite metadata for the Task Library's BertQuestionAnswerer,
  with vocab.txt packed: `tflite_metadata.py`)
  squad/mobilebert_float.onnx             tf2onnx
  squad/mobilebert_int8_qdq.onnx          onnxruntime static QDQ, per-channel
  squad/squad_manifest.json               I/O, op counts, checks, fidelity figures

Tolerances (`TOLERANCES`): float variants max |got - ref| <= 1e-4 * max |ref| per output;
int8 variants logit SQNR >= 15 dB per output (publishing gate: a collapsed int8 model is
far below, e.g. -0.1 dB for the seeded full-size demo without the NoNorm equalization),
and each int8 figure is recorded against the issue's 20 dB target (`meets_target`; the
tests hold the tiny and 8-block seeded checkpoints to 20 dB); the reference is Model Garden's encoder +
the SQuAD head in memory, on windows of `verify_questions` questions of the SQuAD file
that follow the calibration questions.
"""

import dataclasses
import json
import os
import time
from typing import Callable, Optional

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  # pylint: disable=unused-import  (registers ops of the SavedModel)

from hub_export.squad import features as features_lib
from hub_export.squad import model as qa_model
from hub_export.squad import onnx_export
from hub_export.squad import saved_model as saved_model_lib
from hub_export.squad import squad_eval
from hub_export.squad import tflite_export
from hub_export.squad import tflite_metadata

TOLERANCES = {"float_rel": 1e-4, "int8_min_sqnr_db": 15.0, "int8_target_sqnr_db": 20.0}
MANIFEST = "squad_manifest.json"
# ModelMetadata name and description of each TFLite variant.
TFLITE_DESCRIPTIONS = {
    tflite_export.FLOAT_FILE: ("float32", "float32, plain conversion of the SavedModel's "
                               "mlperf signature."),
    tflite_export.GPU_FILE: ("float32, GPU", "float32, graph rewritten for the TFLite GPU "
                             "delegate (same function)."),
    tflite_export.INT8_FILE: ("int8", "full-integer int8 (per-channel weights), int32 "
                              "inputs, float32 logits."),
    tflite_export.NNAPI_FILE: ("int8, NNAPI", "full-integer int8 using only NNAPI int8 "
                               "operations, int32 inputs, float32 logits."),
}


class SquadExportError(ValueError):
  """An artifact failed its check; the message names it, the figure and the bound."""


def reference_outputs(model, batches) -> dict:
  """Model Garden encoder + SQuAD head, window by window: float32 [N, S] per output."""
  got = {k: [] for k in qa_model.OUTPUT_NAMES}
  for b in batches:
    out = qa_model.reference_logits(model, *(tf.constant(b[k]) for k in qa_model.INPUT_NAMES))
    for k in got:
      got[k].append(out[k].numpy().reshape(-1))
  return {k: np.stack(v) for k, v in got.items()}


def _float_check(name, got, ref) -> dict:
  fig = {}
  for k in qa_model.OUTPUT_NAMES:
    scale = float(np.max(np.abs(ref[k]))) or 1.0
    diff = float(np.max(np.abs(got[k] - ref[k])))
    fig[k] = {"max_abs": diff, "max_rel": diff / scale}
    if diff / scale > TOLERANCES["float_rel"]:
      raise SquadExportError(
          f"squad/{name}: {k} differs from the float model by {diff:.3g} "
          f"({diff / scale:.3g} of max |logit|), over the {TOLERANCES['float_rel']:g} bound")
  return fig


def _int8_check(name, got, ref) -> dict:
  fig = {}
  for k in qa_model.OUTPUT_NAMES:
    db = squad_eval.sqnr_db(got[k], ref[k])
    fig[k] = {"sqnr_db": db,
              "argmax_agreement": float(np.mean(got[k].argmax(-1) == ref[k].argmax(-1))),
              "meets_target": bool(db >= TOLERANCES["int8_target_sqnr_db"])}
    if db < TOLERANCES["int8_min_sqnr_db"]:
      raise SquadExportError(
          f"squad/{name}: {k} SQNR {db:.1f} dB against the float model, under the "
          f"{TOLERANCES['int8_min_sqnr_db']:g} dB bound (quantization collapsed?)")
  return fig


def export_squad(squad_dir: str, model, *, vocab_file: str, do_lower_case: bool,
                 squad_file: str, calibration_questions: int = 100,
                 verify_questions: int = 8,
                 seq_length: int = features_lib.MAX_SEQ_LENGTH,
                 head_seed: int = 0, with_onnx: bool = True,
                 log: Callable[[str], None] = print) -> dict:
  """Writes `squad_dir` (must not exist) with every variant, each verified.

  Args:
    squad_dir: directory to create (inside the bundle's temporary directory).
    model: converted `checkpoints.model.MobileBertModel`; without a SQuAD head a fresh
      seeded one is made with a loud warning (`model.ensure_squad_head`).
    vocab_file, do_lower_case: the bundle's tokenizer.
    squad_file: SQuAD v1.1 JSON; its first `calibration_questions` questions calibrate
      the int8 variants (MLPerf: 100), the next `verify_questions` verify.
    seq_length: 384 for MLPerf; smaller for tests.
    head_seed: seed of a fresh head.
    with_onnx: also write the two ONNX models.
    log: one line per step.

  Returns:
    The squad manifest (also written to `squad_dir/squad_manifest.json`).

  Raises:
    FileExistsError: `squad_dir` exists.
    SquadExportError: an artifact failed its check.
    ValueError: bad SQuAD file or sizes.
  """
  if os.path.exists(squad_dir):
    raise FileExistsError(f"{squad_dir} exists")
  if calibration_questions < 1 or verify_questions < 1:
    raise ValueError(f"calibration_questions={calibration_questions} and verify_questions="
                     f"{verify_questions} must both be >= 1")
  start = time.time()
  fresh = qa_model.ensure_squad_head(model, seed=head_seed, log=log)
  examples = features_lib.read_squad_json(
      squad_file, limit=calibration_questions + verify_questions)
  if len(examples) < 2:
    raise ValueError(f"{squad_file} has {len(examples)} question(s); need at least 2 "
                     "(calibration and verification)")
  n_cal = min(calibration_questions, len(examples) - 1)
  stride = min(features_lib.DOC_STRIDE, seq_length // 3)
  qlen = min(features_lib.MAX_QUERY_LENGTH, seq_length // 4)
  featurizer = features_lib.Featurizer(vocab_file, do_lower_case=do_lower_case,
                                       max_seq_length=seq_length, doc_stride=stride,
                                       max_query_length=qlen)
  cal = list(features_lib.iter_batches(featurizer.features(examples[:n_cal])))
  ver = list(features_lib.iter_batches(featurizer.features(examples[n_cal:])))
  log(f"SQuAD: {n_cal} calibration questions ({len(cal)} windows), "
      f"{len(examples) - n_cal} verification questions ({len(ver)} windows) from {squad_file}")
  ref = reference_outputs(model, ver)
  os.makedirs(squad_dir)
  files, checks = {}, {}

  log("squad/saved_model ...")
  sm_path = os.path.join(squad_dir, "saved_model")
  module = saved_model_lib.SquadModule(
      model, vocab_file=vocab_file, do_lower_case=do_lower_case, seq_length=seq_length,
      doc_stride=stride, max_query_length=qlen)
  saved_model_lib.save(module, sm_path)
  loaded = tf.saved_model.load(sm_path)
  sig = loaded.signatures["mlperf"]
  got = {k: [] for k in qa_model.OUTPUT_NAMES}
  for b in ver:
    out = sig(**{k: tf.constant(b[k]) for k in qa_model.INPUT_NAMES})
    for k in got:
      got[k].append(out[k].numpy().reshape(-1))
  checks["saved_model"] = _float_check("saved_model", {k: np.stack(v) for k, v in got.items()},
                                       ref)
  ex = examples[n_cal]
  ans = loaded.signatures["answer"](question=tf.constant(ex.question),
                                    context=tf.constant(ex.context))
  text = ans["answer"].numpy().decode("utf-8")
  if text not in ex.context:
    raise SquadExportError(f"squad/saved_model answer signature returned {text!r}, not a "
                           "substring of the context")
  checks["saved_model"]["answer_probe"] = {"qid": ex.qid, "answer": text}

  weights = qa_model.QaWeights.from_model(model)
  variants = {}
  log("squad/ TFLite float (plain conversion of the SavedModel) ...")
  conv = tf.lite.TFLiteConverter.from_saved_model(sm_path, signature_keys=["mlperf"])
  variants[tflite_export.FLOAT_FILE] = tflite_export.finalize_io(conv.convert())
  log("squad/ TFLite float, GPU rewrites ...")
  variants[tflite_export.GPU_FILE] = tflite_export.convert_gpu(weights, seq_length)
  equalization = None
  if weights.config.normalization_type == "no_norm":
    log("squad/ int8: per-channel shift/scale of NoNorm outputs (calibration windows) ...")
    equalization = qa_model.calibrate_equalization(weights, cal, seq_length=seq_length)
  log(f"squad/ TFLite int8 (calibrating on {len(cal)} windows) ...")
  variants[tflite_export.INT8_FILE] = tflite_export.convert_int8(
      weights, cal, seq_length=seq_length, equalization=equalization)
  log("squad/ TFLite int8, NNAPI allow-list ...")
  variants[tflite_export.NNAPI_FILE] = tflite_export.convert_int8(
      weights, cal, seq_length=seq_length, nnapi=True, equalization=equalization)
  head_note = (" Its SQuAD head is a fresh seeded UNTRAINED head: answers are not "
               "meaningful." if fresh else "")
  for name, content in variants.items():
    kind, what = TFLITE_DESCRIPTIONS[name]
    meta_args = dict(
        vocab_file=vocab_file, do_lower_case=do_lower_case,
        name=f"MobileBERT SQuAD 1.1 question answering ({kind})",
        description=("Extractive question answering: the answer is the context span "
                     "between the best start and end logits. MobileBERT, " + what +
                     head_note))
    content = tflite_metadata.add_metadata(content, **meta_args)
    path = os.path.join(squad_dir, name)
    with open(path, "wb") as f:
      f.write(content)
    with open(path, "rb") as f:  # Verify what is on disk.
      on_disk = f.read()
    io = tflite_export.io_details(on_disk)
    if io["input_order"] != list(qa_model.INPUT_NAMES) or \
        io["output_order"] != list(qa_model.OUTPUT_NAMES):
      raise SquadExportError(f"squad/{name}: I/O order {io['input_order']} -> "
                             f"{io['output_order']}, expected MLPerf's")
    got = tflite_export.run(on_disk, ver)
    is_int8 = "int8" in name
    fig = (_int8_check if is_int8 else _float_check)(name, got, ref)
    try:
      meta = tflite_metadata.verify_metadata(on_disk, **meta_args)
    except ValueError as e:
      raise SquadExportError(f"squad/{name}: TFLite metadata check failed: {e}") from e
    entry = {"bytes": len(on_disk), "figures": fig, "ops": tflite_export.op_counts(on_disk),
             "io": {k: v for k, v in io.items() if k in ("inputs", "outputs")},
             "metadata": meta}
    entry["gpu_findings"] = tflite_export.gpu_findings(on_disk)
    entry["official_gpu_analyzer"] = tflite_export.official_gpu_analyzer(on_disk)
    if is_int8:
      entry["nnapi_findings"] = tflite_export.nnapi_findings(on_disk)
      entry["weights"] = tflite_export.weight_quantization(on_disk)
    checks[name] = entry
    files[name] = len(on_disk)
  caveats = checks[tflite_export.FLOAT_FILE]["metadata"].get("task_library_caveats")
  if caveats:
    log("WARNING: the TFLite Task Library's BertQuestionAnswerer cannot use these "
        ".tflite files as they are: " + "; ".join(caveats) + ". The interpreter (MLPerf "
        "I/O) and squad/saved_model are unaffected.")
  if checks[tflite_export.GPU_FILE]["gpu_findings"]:
    raise SquadExportError(f"squad/{tflite_export.GPU_FILE} has GPU-incompatible ops: "
                           f"{checks[tflite_export.GPU_FILE]['gpu_findings'][:5]}")
  if checks[tflite_export.NNAPI_FILE]["nnapi_findings"]:
    raise SquadExportError(f"squad/{tflite_export.NNAPI_FILE} has ops off the NNAPI int8 "
                           f"allow-list: {checks[tflite_export.NNAPI_FILE]['nnapi_findings'][:5]}")

  if with_onnx:
    log("squad/ ONNX float (tf2onnx) and int8 QDQ (onnxruntime) ...")
    f_path = os.path.join(squad_dir, onnx_export.FLOAT_FILE)
    onnx_export.convert_function(sig, seq_length, f_path)
    checks[onnx_export.FLOAT_FILE] = {"figures": _float_check(
        onnx_export.FLOAT_FILE, onnx_export.run(onnx_export.session(f_path), ver), ref)}
    # QDQ quantization of the finite-mask graph (see onnx_export's docstring).
    fwd = qa_model.QaForward(weights, seq_length=seq_length, options=qa_model.ForwardOptions(
        mask_value=qa_model.QUANT_MASK_VALUE), equalization=equalization)
    import tempfile  # pylint: disable=g-import-not-at-top
    with tempfile.TemporaryDirectory() as tmp:
      src = os.path.join(tmp, "finite_mask.onnx")
      onnx_export.convert_function(
          lambda input_ids, input_mask, segment_ids: fwd(input_ids, input_mask, segment_ids),
          seq_length, src)
      q_path = os.path.join(squad_dir, onnx_export.INT8_FILE)
      onnx_export.quantize_qdq(src, cal, q_path)
    checks[onnx_export.INT8_FILE] = {
        "figures": _int8_check(onnx_export.INT8_FILE,
                               onnx_export.run(onnx_export.session(q_path), ver), ref),
        "qdq": onnx_export.qdq_summary(q_path)}
    for name in (onnx_export.FLOAT_FILE, onnx_export.INT8_FILE):
      files[name] = os.path.getsize(os.path.join(squad_dir, name))
      checks[name]["bytes"] = files[name]

  manifest = {
      "seq_length": seq_length, "doc_stride": stride, "max_query_length": qlen,
      "n_best_size": features_lib.N_BEST_SIZE,
      "max_answer_length": features_lib.MAX_ANSWER_LENGTH,
      "inputs": list(qa_model.INPUT_NAMES), "outputs": list(qa_model.OUTPUT_NAMES),
      "squad_head": "fresh seeded UNTRAINED head" if fresh else "from the checkpoint",
      "squad_file": os.path.abspath(squad_file), "calibration_questions": n_cal,
      "calibration_windows": len(cal), "verification_windows": len(ver),
      "quant_mask_value": qa_model.QUANT_MASK_VALUE, "tolerances": TOLERANCES,
      "int8_equalization": ("per-channel shift/scale of every NoNorm output folded into "
                            "the weights (model.calibrate_equalization)"
                            if equalization else "none"),
      "gpu_rewrites": [list(r) for r in qa_model.GPU_REWRITES],
      "nnapi_int8_ops": tflite_export.NNAPI_INT8_OPS, "files": files, "checks": checks,
      "seconds": round(time.time() - start, 1)}
  with open(os.path.join(squad_dir, MANIFEST), "w") as f:
    json.dump(manifest, f, indent=2, default=float)
  log(f"squad/ written and verified in {manifest['seconds']} s")
  return manifest


def float_reference_fn(saved_model_dir: str) -> Optional[Callable]:
  """The `mlperf` signature of a saved squad/saved_model (for the benchmark/eval)."""
  return tf.saved_model.load(saved_model_dir).signatures["mlperf"]


@dataclasses.dataclass(frozen=True)
class SquadOptions:
  """`export_main.py --task=squad`: what the squad/ step needs beyond the bundle.

  Attributes:
    squad_file: SQuAD v1.1 JSON (calibration: its first `calibration_questions`).
    calibration_questions: MLPerf Mobile calibrates on the first 100 questions.
    seq_length: 384 (MLPerf); must fit max_position_embeddings.
    with_onnx: also write the ONNX models.
  """
  squad_file: Optional[str]
  calibration_questions: int = 100
  seq_length: int = features_lib.MAX_SEQ_LENGTH
  with_onnx: bool = True

  def check(self, max_position_embeddings: int) -> None:
    """Raises ValueError naming the bad option (before any export work)."""
    if not self.squad_file:
      raise ValueError("--task=squad needs --squad_file=PATH (a SQuAD v1.1 JSON; its first "
                       "questions calibrate the int8 models)")
    if not os.path.isfile(self.squad_file):
      raise ValueError(f"--squad_file={self.squad_file} does not exist")
    if not 16 <= self.seq_length <= max_position_embeddings:
      raise ValueError(f"squad seq_length={self.seq_length} must be in [16, "
                       f"{max_position_embeddings}] (max_position_embeddings)")
    if self.calibration_questions < 1:
      raise ValueError(f"--squad_calibration_questions={self.calibration_questions} must "
                       "be >= 1")


def export_into_bundle(work: str, *, config, vocab_file: str, do_lower_case: bool,
                       options: SquadOptions, log: Callable[[str], None] = print) -> dict:
  """The pipeline's squad step: `work/squad/` from the bundle's own `work/checkpoint/`.

  Reads the TF2 checkpoint the pipeline just wrote (with its `squad` head if the source
  had `cls/squad/*`), so the squad artifacts derive from exactly what the bundle ships.

  Returns:
    A summary for manifest.json: files with sizes, per-variant figures, head origin.
  """
  from checkpoints import converter  # pylint: disable=g-import-not-at-top
  prefix = os.path.join(work, "checkpoint", converter.TF2_PREFIX_NAME)
  model, _ = converter.load_model(prefix, config, with_mlm=False)
  m = export_squad(os.path.join(work, "squad"), model, vocab_file=vocab_file,
                   do_lower_case=do_lower_case, squad_file=options.squad_file,
                   calibration_questions=options.calibration_questions,
                   seq_length=options.seq_length, with_onnx=options.with_onnx, log=log)
  figures = {name: c.get("figures") for name, c in m["checks"].items()}
  return {"files": m["files"], "squad_head": m["squad_head"], "figures": figures,
          "tolerances": m["tolerances"], "details": f"squad/{MANIFEST}",
          "seq_length": m["seq_length"], "int8_equalization": m["int8_equalization"]}


def model_card_section(summary: Optional[dict]) -> str:
  """The bundle README's `squad/` section from `export_into_bundle`'s summary ("" if None).

  Lists each file with its size and its verification figure (float: largest relative
  logit difference; int8: logit SQNR in dB against the float model), the head's origin,
  the MLPerf I/O and the evaluation and benchmark commands. No code blocks: the model
  card's fenced blocks are executed by its tests.
  """
  if not summary:
    return ""
  lines = ["", "## SQuAD 1.1 mobile package (`squad/`)",
           "Extractive question answering as MLPerf Mobile ships MobileBERT: inputs "
           "`input_ids`, `input_mask`, `segment_ids` int32 [1, "
           f"{summary.get('seq_length', features_lib.MAX_SEQ_LENGTH)}], outputs `end_logits`, "
           "`start_logits` float32 (`squad/saved_model` also has an `answer` signature: "
           "question and context strings -> answer text and byte span).",
           f"SQuAD head: {summary['squad_head']}.", "",
           "| file | MB | verified against the float model |", "|---|---|---|"]
  for name, nbytes in summary["files"].items():
    fig = summary["figures"].get(name) or {}
    if any("sqnr_db" in (v or {}) for v in fig.values() if isinstance(v, dict)):
      what = ", ".join(f"{k} SQNR {v['sqnr_db']:.1f} dB" for k, v in sorted(fig.items())
                       if isinstance(v, dict) and "sqnr_db" in v)
    else:
      what = ", ".join(f"{k} max rel. diff {v['max_rel']:.1e}" for k, v in sorted(fig.items())
                       if isinstance(v, dict) and "max_rel" in v)
    lines.append(f"| `squad/{name}` | {nbytes / 1e6:.1f} | {what} |")
  tol = summary.get("tolerances", TOLERANCES)
  lines += ["", f"Bounds: float variants {tol['float_rel']:g} of max |logit|, int8 variants "
            f">= {tol['int8_min_sqnr_db']:g} dB (target {tol.get('int8_target_sqnr_db', 20):g} dB). int8: full-integer, per-channel weights, "
            "NoNorm outputs shifted and scaled per channel (folded into the weights), "
            f"attention mask {qa_model.QUANT_MASK_VALUE:g}. Details in "
            f"`{summary.get('details', 'squad/' + MANIFEST)}`. The .tflite files carry "
            "TFLite metadata for the TFLite Task Library's BertQuestionAnswerer (tensors "
            "`ids`, `mask`, `segment_ids` -> `end_logits`, `start_logits`, vocab.txt "
            "packed); that API always feeds 384 tokens and lower-cases its input. "
            "EM/F1 of every variant: "
            "`python -m hub_export.squad.evaluate --squad_dir=squad --squad_file=SQUAD.json` "
            "(exporter repository); size and latency: "
            "`benchmarks/squad_mobile_benchmark.py`.", ""]
  return "\n".join(lines)
