r"""Size, latency, XNNPACK placement and fidelity of every squad/ variant, in one run.

Usage (from the repo root):
  PYTHONPATH=. python benchmarks/squad_mobile_benchmark.py --squad_dir=BUNDLE/squad \
      [--squad_file=../shared/data/squad/xquad/xquad.en.json] [--questions=8] \
      [--rounds=15] [--gap_s=0.2] [--output_json=FILE]

For the SavedModel (`mlperf` signature), each `.tflite` (LiteRT interpreter, XNNPACK
delegate) and each `.onnx` (onnxruntime CPU), at batch 1 and the bundle's sequence length
(384 for MLPerf):
  * size on disk (SavedModel: the whole directory, variables and vocab included);
  * latency with 1 and with 2 threads: median of `--rounds` interleaved rounds, each
    round timing one call of every variant on one real XQuAD window (after one warm-up
    call each), so that a change in machine load falls on every variant alike, with an
    idle `--gap_s` before each call: the runtimes' worker threads spin for a while after
    a call (onnxruntime, TensorFlow), and without the gap they take the cores from the
    next variant's threads in the same process. Each
    thread count runs in its own child process (the TensorFlow thread pools are fixed
    at start-up: intra_op = N, inter_op = 1; TFLite num_threads = N; onnxruntime
    intra_op_num_threads = N);
  * the dense-layer ceiling of `int8_gemm_ceiling.py` (one block's 15 dense layers as
    float and as int8 TFLite) timed in the same rounds: how much faster int8 matrix
    products are than float ones on this CPU;
  * XNNPACK partitions and the ops LiteRT runs outside them
    (`tflite_analysis.xnnpack_placement`);
  * fidelity against the float SavedModel on the windows of the first `--questions`
    questions (`hub_export.squad.evaluate`: logit SQNR, start/end argmax agreement,
    answer F1 with the SavedModel's answers as ground truth);
  * ratios against the SavedModel and the float `.tflite` (and the ONNX int8 model
    against the float ONNX model), the CPU's 8-bit dot-product flags, and the targets:
    the fastest int8 `.tflite` at least 3x the SavedModel and 2x the float `.tflite` at
    1 and 2 threads, `mobilebert_int8_384.tflite` faster than the float `.tflite`, the
    int8 ONNX model at least 1.5x the float ONNX model.
The load average is printed before and after: on a shared machine latencies are
indicative. Untrained (seeded) weights have small logit margins, so agreement figures
understate what a trained model keeps.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SQUAD = os.path.join(os.path.dirname(REPO), "shared", "data", "squad", "xquad",
                             "xquad.en.json")
# Targets (issue text of the mobile package): the fastest int8 .tflite against the float
# SavedModel and the float .tflite; the int8 ONNX model against the float ONNX model.
TARGET_VS_SAVED_MODEL = 3.0
TARGET_VS_FLOAT_TFLITE = 2.0
TARGET_ONNX = 1.5
CEILING = ("ceiling: dense layers float", "ceiling: dense layers int8")


def _fmt_db(x: float) -> str:
  return "inf" if x == float("inf") else f"{x:.1f}"


def _dir_bytes(path):
  if os.path.isfile(path):
    return os.path.getsize(path)
  return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def _child(args) -> dict:
  """Latency of every variant with `args.threads` threads, interleaved rounds."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.threading.set_intra_op_parallelism_threads(args.threads)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  import tensorflow_text  # noqa: F401  # pylint: disable=g-import-not-at-top,unused-import
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import int8_gemm_ceiling  # pylint: disable=g-import-not-at-top
  from hub_export.squad import constants  # pylint: disable=g-import-not-at-top
  from hub_export.squad import evaluate  # pylint: disable=g-import-not-at-top
  from hub_export.squad import features as features_lib  # pylint: disable=g-import-not-at-top
  from hub_export.squad import onnx_export  # pylint: disable=g-import-not-at-top
  from hub_export.squad import tflite_analysis  # pylint: disable=g-import-not-at-top

  loaded = tf.saved_model.load(os.path.join(args.squad_dir, "saved_model"))
  sig = loaded.signatures["mlperf"]
  s = int(loaded.seq_length.numpy())
  featurizer = features_lib.Featurizer(
      loaded.vocab_file.asset_path.numpy().decode(), do_lower_case=bool(
          loaded.do_lower_case.numpy()), max_seq_length=s,
      doc_stride=int(loaded.doc_stride.numpy()),
      max_query_length=int(loaded.max_query_length.numpy()))
  window = next(features_lib.iter_batches(featurizer.features(
      features_lib.read_squad_json(args.squad_file, limit=1))))
  feed = {k: np.asarray(window[k], np.int32) for k in constants.INPUT_NAMES}

  tf_feed = {k: tf.constant(v) for k, v in feed.items()}
  calls = {"saved_model": lambda: sig(**tf_feed)["end_logits"].numpy()}
  for name in evaluate.variants(args.squad_dir):
    path = os.path.join(args.squad_dir, name)
    if name.endswith(".tflite"):
      with open(path, "rb") as f:
        interp = tflite_analysis.interpreter(f.read(), num_threads=args.threads)
      runner = interp.get_signature_runner(next(iter(interp.get_signature_list())))
      calls[name] = lambda r=runner: r(**feed)
    else:
      sess = onnx_export.session(path, num_threads=args.threads)
      calls[name] = lambda se=sess: se.run(None, feed)
  block = int8_gemm_ceiling.block_function(s)
  x = np.random.default_rng(2).normal(size=(s, 512)).astype(np.float32)
  for label, int8 in zip(CEILING, (False, True)):
    calls[label] = int8_gemm_ceiling.invoker(int8_gemm_ceiling.convert(block, int8, s), x,
                                             args.threads)
  times = {name: [] for name in calls}
  for call in calls.values():
    call()  # warm-up
  for _ in range(args.rounds):
    for name, call in calls.items():
      time.sleep(args.gap_s)
      start = time.perf_counter()
      call()
      times[name].append(time.perf_counter() - start)
  return {"seq_length": s, "latency_s": {k: statistics.median(v) for k, v in times.items()}}


def _placement(squad_dir: str, names) -> dict:
  from hub_export.squad import tflite_analysis  # pylint: disable=g-import-not-at-top
  out = {}
  for n in names:
    if n.endswith(".tflite"):
      with open(os.path.join(squad_dir, n), "rb") as f:
        out[n] = tflite_analysis.xnnpack_placement(f.read())
  return out


def main(argv) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--squad_dir", required=True)
  parser.add_argument("--squad_file", default=DEFAULT_SQUAD)
  parser.add_argument("--questions", type=int, default=8,
                      help="questions whose windows measure fidelity")
  parser.add_argument("--rounds", type=int, default=15,
                      help="interleaved rounds (one timed call of every variant each)")
  parser.add_argument("--gap_s", type=float, default=0.2,
                      help="idle seconds before each timed call (see the docstring)")
  parser.add_argument("--output_json", default=None)
  parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)  # child
  parser.add_argument("--child_out", default=None, help=argparse.SUPPRESS)
  args = parser.parse_args(argv[1:])
  if not os.path.isdir(os.path.join(args.squad_dir, "saved_model")):
    print(f"error: {args.squad_dir} has no saved_model/ (pass a bundle's squad/ dir)",
          file=sys.stderr)
    return 1
  if args.rounds < 10:
    print(f"error: --rounds={args.rounds}; at least 10 for a median", file=sys.stderr)
    return 1
  if args.threads:
    with open(args.child_out, "w", encoding="utf-8") as f:
      json.dump(_child(args), f)
    return 0

  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import int8_gemm_ceiling  # pylint: disable=g-import-not-at-top
  flags = sorted(int8_gemm_ceiling.cpu_flags() & set(int8_gemm_ceiling.DOT_PRODUCT_FLAGS))
  load_before = os.getloadavg()
  print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} "
        f"{load_before[2]:.2f} on {os.cpu_count()} CPUs; 8-bit dot-product CPU flags: "
        f"{' '.join(flags) or 'none'}")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
             PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
  latency = {}
  with tempfile.TemporaryDirectory() as tmp:
    for threads in (1, 2):
      child_out = os.path.join(tmp, f"t{threads}.json")
      subprocess.run([sys.executable, os.path.abspath(__file__),
                      f"--squad_dir={args.squad_dir}", f"--squad_file={args.squad_file}",
                      f"--rounds={args.rounds}", f"--threads={threads}",
                      f"--gap_s={args.gap_s}",
                      f"--child_out={child_out}"], env=env, check=True,
                     stderr=subprocess.DEVNULL)
      with open(child_out, encoding="utf-8") as f:
        latency[threads] = json.load(f)
  sys.path.insert(0, REPO)
  from hub_export.squad import evaluate  # pylint: disable=g-import-not-at-top
  from hub_export.squad import onnx_export  # pylint: disable=g-import-not-at-top
  from hub_export.squad import tflite_export  # pylint: disable=g-import-not-at-top
  report = evaluate.evaluate_dir(args.squad_dir, args.squad_file,
                                 max_questions=args.questions,
                                 mlperf_questions=args.questions, log=lambda _: None)
  names = list(report["variants"])
  placement = _placement(args.squad_dir, names)
  load_after = os.getloadavg()
  sizes = {n: _dir_bytes(os.path.join(args.squad_dir, n)) for n in names}
  lat = {t: latency[t]["latency_s"] for t in (1, 2)}
  float_tflite = tflite_export.FLOAT_FILE
  print(f"\nsquad/ of {args.squad_dir}: batch 1, seq {latency[1]['seq_length']}, median "
        f"of {args.rounds} interleaved rounds; fidelity vs saved_model on "
        f"{report['windows']} windows of {report['questions']} XQuAD questions\n")
  print("| variant | MB | x smaller | XNNPACK partitions (ops outside) | 1 thread ms | "
        "x SavedModel | x float tflite | 2 threads ms | x SavedModel | x float tflite | "
        "SQNR start/end dB | argmax agree start/end | answer F1 vs float |")
  print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
  rows = {}
  for n in names:
    fi = report["variants"][n]["fidelity"]
    rows[n] = {"bytes": sizes[n], "size_ratio": sizes["saved_model"] / sizes[n],
               "fidelity": fi, "xnnpack": placement.get(n)}
    cells = []
    for t in (1, 2):
      ms = lat[t][n]
      rows[n][f"latency_{t}t_s"] = ms
      rows[n][f"vs_saved_model_{t}t"] = lat[t]["saved_model"] / ms
      rows[n][f"vs_float_tflite_{t}t"] = lat[t][float_tflite] / ms
      cells.append(f"{ms * 1e3:.1f} | {rows[n][f'vs_saved_model_{t}t']:.2f} | "
                   f"{rows[n][f'vs_float_tflite_{t}t']:.2f}")
    p = placement.get(n)
    where = (f"{p['partitions']} ({', '.join(f'{k} {v}' for k, v in p['outside'].items())})"
             if p else "-")
    sq = fi["sqnr_db"]
    print(f"| {n} | {sizes[n] / 1e6:.1f} | {rows[n]['size_ratio']:.2f} | {where} | "
          f"{cells[0]} | {cells[1]} | "
          f"{_fmt_db(sq['start_logits'])}/{_fmt_db(sq['end_logits'])} | "
          f"{fi['argmax_agreement']['start_logits']:.2f}/"
          f"{fi['argmax_agreement']['end_logits']:.2f} | {fi['answer_f1']:.1f} |")
  ceiling = {t: lat[t][CEILING[0]] / lat[t][CEILING[1]] for t in (1, 2)}
  print(f"\ndense-layer ceiling (int8_gemm_ceiling.py, same rounds): int8 TFLite "
        f"{ceiling[1]:.2f}x float TFLite at 1 thread, {ceiling[2]:.2f}x at 2 threads "
        f"({lat[1][CEILING[1]] * 1e3:.2f} / {lat[1][CEILING[0]] * 1e3:.2f} ms at 1 thread)")
  int8_tflite = [n for n in tflite_export.INT8_FILES if n in rows]
  verdicts = {}
  if int8_tflite:
    best = max(int8_tflite, key=lambda n: min(rows[n]["vs_saved_model_1t"],
                                              rows[n]["vs_saved_model_2t"]))
    r = rows[best]
    for t in (1, 2):
      print(f"{best} at {t} thread(s): {r[f'vs_saved_model_{t}t']:.2f}x the SavedModel "
            f"(target {TARGET_VS_SAVED_MODEL:g}x), {r[f'vs_float_tflite_{t}t']:.2f}x the "
            f"float .tflite (target {TARGET_VS_FLOAT_TFLITE:g}x); model int8/float "
            f"{r[f'vs_float_tflite_{t}t']:.2f}x against the dense-layer ceiling "
            f"{ceiling[t]:.2f}x")
    verdicts["fastest_int8"] = best
    verdicts["fastest_int8_met"] = all(
        r[f"vs_saved_model_{t}t"] >= TARGET_VS_SAVED_MODEL and
        r[f"vs_float_tflite_{t}t"] >= TARGET_VS_FLOAT_TFLITE for t in (1, 2))
  if tflite_export.INT8_FILE in rows:
    r = rows[tflite_export.INT8_FILE]
    verdicts["mlperf_int8_faster_than_float"] = all(
        r[f"vs_float_tflite_{t}t"] > 1 for t in (1, 2))
  if onnx_export.INT8_FILE in rows and onnx_export.FLOAT_FILE in rows:
    o = {t: lat[t][onnx_export.FLOAT_FILE] / lat[t][onnx_export.INT8_FILE] for t in (1, 2)}
    print(f"{onnx_export.INT8_FILE}: {o[1]:.2f}x / {o[2]:.2f}x the float ONNX model at "
          f"1 / 2 threads (target {TARGET_ONNX:g}x)")
    verdicts["onnx_int8_met"] = all(v >= TARGET_ONNX for v in o.values())
    verdicts["onnx_int8_vs_float"] = o
  print("targets: " + ", ".join(f"{k} {'MET' if v else 'NOT MET'}" for k, v in
                                verdicts.items() if isinstance(v, bool)))
  print(f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
  if args.output_json:
    with open(args.output_json, "w", encoding="utf-8") as f:
      json.dump({"rows": rows, "ceiling": ceiling, "verdicts": verdicts,
                 "cpu_dot_product_flags": flags, "load_before": load_before,
                 "load_after": load_after, "rounds": args.rounds,
                 "questions": report["questions"]}, f, indent=1, default=float)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
