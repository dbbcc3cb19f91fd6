"""Writes and verifies a bundle's `squad/` directory (`export_squad`).

`SquadOptions.export` calls `export_squad` inside the bundle's staging directory, which
itself builds `squad/` in a staging directory of its own (`publish.atomic_directory`),
so `squad/` appears only once every artifact below was written, reloaded and matched
against the float model:

  squad/saved_model/                      `saved_model.py` (mlperf + answer signatures)
  squad/mobilebert_float_384.tflite       `tflite_export.py`: plain conversion of the
  squad/mobilebert_float_384_gpu.tflite     SavedModel, GPU rewrites, full-integer int8,
  squad/mobilebert_int8_384.tflite          int8 with only NNAPI allow-list ops; each
  squad/mobilebert_int8_384_nnapi.tflite    with TFLite metadata (`tflite_metadata.py`),
  squad/mobilebert_dynamic_int8_384.tflite  and dynamic-range int8 beside MLPerf's four
  squad/mobilebert_float.onnx             `onnx_export.py`: tf2onnx, and onnxruntime
  squad/mobilebert_int8_dynamic.onnx        dynamic int8, per-channel weights
  squad/squad_manifest.json               I/O, op counts, checks, fidelity figures, the
                                            masking of padded attention keys

Bounds (`checks.py`, the `squad_float` and `squad_int8` rows of
`hub_export.verify.TOLERANCES`): float variants max |got - ref| <= max_rel * max |ref|
per output; int8 variants logit SQNR >= min_sqnr_db per output (the publishing gate: a
collapsed int8 model is far below it), each figure also recorded against
target_sqnr_db (`meets_target`). The reference is Model Garden's encoder + the SQuAD
head in memory (`model.reference_outputs`), on the windows of the `verify_questions`
questions of the SQuAD file that follow the calibration questions.
"""

import json
import os
import time
from typing import Callable

import publish
from hub_export.squad import checks
from hub_export.squad import constants
from hub_export.squad import equalization as equalization_lib
from hub_export.squad import features as features_lib
from hub_export.squad import forward
from hub_export.squad import model as qa_model
from hub_export.squad import onnx_export
from hub_export.squad import saved_model as saved_model_lib
from hub_export.squad import tflite_analysis
from hub_export.squad import tflite_export


# 8-bit dot-product flags of /proc/cpuinfo named with latency figures.
DOT_PRODUCT_FLAGS = ("avx_vnni", "avx512_vnni", "amx_int8", "asimddp", "i8mm")
LATENCY_CALLS = 5


def _cpu_dot_product_flags() -> list:
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith(("flags", "Features")):
          return sorted(set(line.split(":", 1)[1].split()) & set(DOT_PRODUCT_FLAGS))
  except OSError:
    pass
  return []


def latency_record(squad_dir: str, names, window: dict) -> dict:
  """Median latency of each .tflite / .onnx file of `names` on the exporting machine.

  One thread, batch 1, `LATENCY_CALLS` calls after a warm-up, on `window`; indicative
  only (the machine may be busy): `benchmarks/squad_mobile_benchmark.py` is the
  measurement. Returns {"threads": 1, "calls", "cpu_dot_product_flags", "cpu_count",
  "median_ms": {file: ms}}.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  feed = {k: np.asarray(window[k], np.int32) for k in constants.INPUT_NAMES}
  out = {}
  for name in names:
    path = os.path.join(squad_dir, name)
    if name.endswith(".tflite"):
      with open(path, "rb") as f:
        interp = tflite_analysis.interpreter(f.read(), num_threads=1)
      runner = interp.get_signature_runner()
      call = lambda r=runner: r(**feed)  # pylint: disable=unnecessary-lambda-assignment
    elif name.endswith(".onnx"):
      sess = onnx_export.session(path, num_threads=1)
      call = lambda se=sess: se.run(None, feed)  # pylint: disable=unnecessary-lambda-assignment
    else:
      continue
    call()
    times = []
    for _ in range(LATENCY_CALLS):
      start = time.perf_counter()
      call()
      times.append(time.perf_counter() - start)
    out[name] = round(sorted(times)[len(times) // 2] * 1e3, 2)
  return {"threads": 1, "calls": LATENCY_CALLS,
          "cpu_dot_product_flags": _cpu_dot_product_flags(), "cpu_count": os.cpu_count(),
          "median_ms": out}


def export_squad(squad_dir: str, model, *, vocab_file: str, do_lower_case: bool,
                 squad_file: str, calibration_questions: int = 100,
                 verify_questions: int = 8,
                 seq_length: int = constants.MAX_SEQ_LENGTH,
                 head_seed: int = 0, with_onnx: bool = True,
                 log: Callable[[str], None] = print) -> dict:
  """Writes `squad_dir` (must not exist) with every variant, each verified.

  Args:
    squad_dir: directory to create (inside the bundle's staging directory).
    model: converted `checkpoints.model.MobileBertModel`; without a SQuAD head a fresh
      seeded one is made with a loud warning (`model.ensure_squad_head`). Every
      variant computes its masking of padded keys (`model.attention_mask`).
    vocab_file, do_lower_case: the bundle's tokenizer.
    squad_file: SQuAD v1.1 JSON; its first `calibration_questions` questions calibrate
      the int8 variants (MLPerf: 100), the next `verify_questions` verify.
    calibration_questions, verify_questions: both >= 1.
    seq_length: S, 384 for MLPerf; smaller for tests. The doc stride is
      min(128, S // 3), the query length min(64, S // 4).
    head_seed: seed of a fresh head.
    with_onnx: also write the two ONNX models.
    log: one line per step.

  Returns:
    The squad manifest (also written to `squad_dir/squad_manifest.json`), with
    `attention_mask` (the mode) and the values added to the scores of padded keys in
    the float and the quantized graphs of `forward.QaForward` (`float_mask_value`,
    `quant_mask_value`), and `latency` (`latency_record`, indicative).

  Raises:
    FileExistsError: `squad_dir` exists.
    checks.SquadExportError: an artifact failed its check; nothing is left at
      `squad_dir`.
    ValueError: bad sizes, or a SQuAD file with fewer than 2 questions.
  """
  if calibration_questions < 1 or verify_questions < 1:
    raise ValueError(f"calibration_questions={calibration_questions} and verify_questions="
                     f"{verify_questions} must both be >= 1")
  with publish.atomic_directory(squad_dir) as work:
    start = time.time()
    fresh = qa_model.ensure_squad_head(model, seed=head_seed, log=log)
    examples = features_lib.read_squad_json(
        squad_file, limit=calibration_questions + verify_questions)
    if len(examples) < 2:
      raise ValueError(f"{squad_file} has {len(examples)} question(s); need at least 2 "
                       "(calibration and verification)")
    n_cal = min(calibration_questions, len(examples) - 1)
    stride = min(constants.DOC_STRIDE, seq_length // 3)
    qlen = min(constants.MAX_QUERY_LENGTH, seq_length // 4)
    featurizer = features_lib.Featurizer(vocab_file, do_lower_case=do_lower_case,
                                         max_seq_length=seq_length, doc_stride=stride,
                                         max_query_length=qlen)
    cal = list(features_lib.iter_batches(featurizer.features(examples[:n_cal])))
    ver = list(features_lib.iter_batches(featurizer.features(examples[n_cal:])))
    log(f"SQuAD: {n_cal} calibration questions ({len(cal)} windows), "
        f"{len(examples) - n_cal} verification questions ({len(ver)} windows) from "
        f"{squad_file}")
    ref = qa_model.reference_outputs(model, ver)

    log("squad/saved_model ...")
    sm_path = os.path.join(work, "saved_model")
    loaded, sm_check = saved_model_lib.export_verified(
        sm_path, model, vocab_file=vocab_file, do_lower_case=do_lower_case,
        seq_length=seq_length, doc_stride=stride, max_query_length=qlen, windows=ver,
        reference=ref, probe=examples[n_cal])
    weights = forward.QaWeights.from_model(model)
    equalization = None
    if weights.config.normalization_type == "no_norm":
      log("squad/ int8: per-channel shift/scale of NoNorm outputs (calibration windows) ...")
      equalization = equalization_lib.calibrate_equalization(weights, cal,
                                                             seq_length=seq_length)
    variants = tflite_export.export_verified(
        work, saved_model_dir=sm_path, weights=weights, calibration=cal, windows=ver,
        reference=ref, equalization=equalization, seq_length=seq_length,
        vocab_file=vocab_file, do_lower_case=do_lower_case, fresh_head=fresh, log=log)
    if with_onnx:
      log("squad/ ONNX float (tf2onnx) and int8 (onnxruntime, "
          f"{onnx_export.INT8_METHOD}) ...")
      variants.update(onnx_export.export_verified(
          work, mlperf_fn=loaded.signatures["mlperf"], weights=weights,
          equalization=equalization, seq_length=seq_length, calibration=cal, windows=ver,
          reference=ref))

    log("squad/ latency of each file on this CPU (indicative) ...")
    speed = latency_record(work, variants, ver[0])
    manifest = {
        "seq_length": seq_length, "doc_stride": stride, "max_query_length": qlen,
        "n_best_size": constants.N_BEST_SIZE,
        "max_answer_length": constants.MAX_ANSWER_LENGTH,
        "inputs": list(constants.INPUT_NAMES), "outputs": list(constants.OUTPUT_NAMES),
        "squad_head": "fresh seeded UNTRAINED head" if fresh else "from the checkpoint",
        "squad_file": os.path.abspath(squad_file), "calibration_questions": n_cal,
        "calibration_windows": len(cal), "verification_windows": len(ver),
        "attention_mask": weights.attention_mask,
        "float_mask_value": forward.additive_mask_value(weights.attention_mask,
                                                        quantized=False),
        "quant_mask_value": forward.additive_mask_value(weights.attention_mask,
                                                        quantized=True),
        "tolerances": checks.tolerances(),
        "int8_equalization": ("per-channel shift/scale of every NoNorm output folded into "
                              "the weights (equalization.calibrate_equalization)"
                              if equalization else "none"),
        "gpu_rewrites": [list(r) for r in forward.GPU_REWRITES],
        "nnapi_int8_ops": tflite_analysis.NNAPI_INT8_OPS,
        "int8_float_ops": {tflite_export.INT8_FILE: list(tflite_export.INT8_FLOAT_OPS)},
        "int8_matmul_rhs": "zero point 0 (quant_rewrite.zero_point_zero_matmul_rhs)",
        "which_file": tflite_export.PICK,
        "files": {name: entry["bytes"] for name, entry in variants.items()},
        "latency": speed,
        "checks": {"saved_model": sm_check, **variants},
        "seconds": round(time.time() - start, 1)}
    with open(os.path.join(work, constants.MANIFEST), "w") as f:
      json.dump(manifest, f, indent=2, default=float)
  log(f"squad/ written and verified in {manifest['seconds']} s")
  return manifest
