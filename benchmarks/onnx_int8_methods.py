r"""Every int8 quantization method of `onnx_export.INT8_METHODS` on a bundle's SQuAD model.

Usage (from the repo root):
  PYTHONPATH=. python benchmarks/onnx_int8_methods.py --bundle_dir=BUNDLE \
      [--squad_file=../shared/data/squad/xquad/xquad.en.json] \
      [--calibration_questions=100] [--verify_questions=8] [--rounds=10] [--gap_s=0.2]

BUNDLE is an export with `--task=squad` (its `checkpoint/` and
`squad/mobilebert_float.onnx`). Each method quantizes the graph `onnx_export` quantizes
for it (`quantizable_source`), calibrated where it is static on the windows of the first
`--calibration_questions` XQuAD questions; each model is checked with the export's int8
gate (logit SQNR against Model Garden's encoder + head on the windows of the next
`--verify_questions` questions) and timed against `squad/mobilebert_float.onnx` at 1 and
2 onnxruntime intra-op threads: median of `--rounds` interleaved rounds (one call of every
model per round, batch 1, each after an idle `--gap_s`: onnxruntime's worker threads
spin for a while after a call and would take the cores from the next session's). Prints what was tried, the CPU's 8-bit dot-product flags, and
the fastest method at both thread counts that holds the gate, which is the one
`onnx_export.INT8_METHOD` should name.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SQUAD = os.path.join(os.path.dirname(REPO), "shared", "data", "squad", "xquad",
                             "xquad.en.json")


def main(argv) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--bundle_dir", required=True)
  parser.add_argument("--squad_file", default=DEFAULT_SQUAD)
  parser.add_argument("--calibration_questions", type=int, default=100)
  parser.add_argument("--verify_questions", type=int, default=8)
  parser.add_argument("--rounds", type=int, default=10)
  parser.add_argument("--gap_s", type=float, default=0.2)
  args = parser.parse_args(argv[1:])
  float_onnx = os.path.join(args.bundle_dir, "squad", "mobilebert_float.onnx")
  if not os.path.isfile(float_onnx):
    print(f"error: {float_onnx} is missing; pass a bundle exported with --task=squad",
          file=sys.stderr)
    return 1
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  sys.path.insert(0, REPO)
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  # pylint: disable=g-import-not-at-top
  import numpy as np
  import int8_gemm_ceiling
  from checkpoints import converter
  from checkpoints.config import MobileBertConfig
  from hub_export import verify
  from hub_export.squad import constants
  from hub_export.squad import equalization as equalization_lib
  from hub_export.squad import features as features_lib
  from hub_export.squad import forward
  from hub_export.squad import model as qa_model
  from hub_export.squad import onnx_export
  # pylint: enable=g-import-not-at-top
  ckpt = os.path.join(args.bundle_dir, "checkpoint")
  with open(os.path.join(ckpt, "bert_config.json")) as f:
    config = MobileBertConfig.from_dict(json.load(f))
  with open(os.path.join(args.bundle_dir, "manifest.json")) as f:
    manifest = json.load(f)
  model, _ = converter.load_model(os.path.join(ckpt, converter.TF2_PREFIX_NAME), config,
                                  with_mlm=False,
                                  attention_mask=manifest["attention_mask"]["mode"])
  qa_model.ensure_squad_head(model, seed=0, log=lambda _: None)
  squad = manifest["squad"]
  s = squad["seq_length"]
  featurizer = features_lib.Featurizer(
      os.path.join(ckpt, "vocab.txt"), do_lower_case=manifest["do_lower_case"],
      max_seq_length=s, doc_stride=min(constants.DOC_STRIDE, s // 3),
      max_query_length=min(constants.MAX_QUERY_LENGTH, s // 4))
  examples = features_lib.read_squad_json(
      args.squad_file, limit=args.calibration_questions + args.verify_questions)
  cal = list(features_lib.iter_batches(featurizer.features(
      examples[:args.calibration_questions])))
  ver = list(features_lib.iter_batches(featurizer.features(
      examples[args.calibration_questions:])))
  ref = qa_model.reference_outputs(model, ver)
  weights = forward.QaWeights.from_model(model)
  eq = equalization_lib.calibrate_equalization(weights, cal, seq_length=s)
  bound = verify.TOLERANCES["squad_int8"]["min_sqnr_db"]
  flags = sorted(int8_gemm_ceiling.cpu_flags() & set(int8_gemm_ceiling.DOT_PRODUCT_FLAGS))
  feed = {k: np.asarray(ver[0][k], np.int32) for k in constants.INPUT_NAMES}
  with tempfile.TemporaryDirectory() as tmp:
    paths, sqnr = {"float (squad/mobilebert_float.onnx)": float_onnx}, {}
    for method in onnx_export.INT8_METHODS:
      src = os.path.join(tmp, f"{method}.src.onnx")
      paths[method] = os.path.join(tmp, f"{method}.onnx")
      onnx_export.quantizable_source(weights, method=method, equalization=eq,
                                     seq_length=s, path=src)
      onnx_export.quantize(src, paths[method], method=method, calibration=cal)
      got = onnx_export.run(onnx_export.session(paths[method]), ver)
      sqnr[method] = min(verify.sqnr_db(got[k], ref[k]) for k in ref)
    ms = {}
    for threads in (1, 2):
      sessions = {n: onnx_export.session(p, num_threads=threads) for n, p in paths.items()}
      times = {n: [] for n in sessions}
      for sess in sessions.values():
        sess.run(None, feed)
      for _ in range(args.rounds):
        for n, sess in sessions.items():
          time.sleep(args.gap_s)
          start = time.perf_counter()
          sess.run(None, feed)
          times[n].append(time.perf_counter() - start)
      ms[threads] = {n: statistics.median(v) * 1e3 for n, v in times.items()}
  ref_name = next(iter(paths))
  print(f"onnxruntime int8 methods, batch 1, seq {s}, median of {args.rounds} interleaved "
        f"rounds; {os.cpu_count()} CPUs; 8-bit dot-product CPU flags: "
        f"{' '.join(flags) or 'none'}; gate: logit SQNR >= {bound:g} dB on {len(ver)} "
        "windows\n")
  print("| model | min SQNR dB | 1 thread ms | x float | 2 threads ms | x float | gate |")
  print("|---|---|---|---|---|---|---|")
  for n in paths:
    q = sqnr.get(n)
    print(f"| {n} | {'-' if q is None else f'{q:.1f}'} | {ms[1][n]:.1f} | "
          f"{ms[1][ref_name] / ms[1][n]:.2f} | {ms[2][n]:.1f} | "
          f"{ms[2][ref_name] / ms[2][n]:.2f} | "
          f"{'-' if q is None else ('holds' if q >= bound else 'FAILS')} |")
  held = [n for n in onnx_export.INT8_METHODS if sqnr[n] >= bound]
  if not held:
    print("\nno method holds the gate")
    return 2
  best = min(held, key=lambda n: max(ms[1][n] / ms[1][ref_name], ms[2][n] / ms[2][ref_name]))
  print(f"\nfastest at both thread counts that holds the gate: {best} "
        f"(onnx_export.INT8_METHOD = {onnx_export.INT8_METHOD!r})")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
