r"""Size, latency and fidelity of every squad/ variant of a bundle, in one run.

Usage (from the repo root):
  PYTHONPATH=. python benchmarks/squad_mobile_benchmark.py --squad_dir=BUNDLE/squad \
      [--squad_file=../shared/data/squad/xquad/xquad.en.json] [--questions=8] [--runs=5]
      [--output_json=FILE]

For the SavedModel (`mlperf` signature), each `.tflite` (LiteRT interpreter, XNNPACK
delegate) and each `.onnx` (onnxruntime CPU), at batch 1 and the bundle's sequence length
(384 for MLPerf):
  * size on disk (SavedModel: the whole directory, variables and vocab included);
  * latency with 1 and with 2 threads: median of `--runs` timed calls on one real XQuAD
    window after one warm-up call. Each thread count runs in its own child process (the
    TensorFlow thread pools are fixed at start-up: intra_op = N, inter_op = 1; TFLite
    num_threads = N; onnxruntime intra_op_num_threads = N);
  * fidelity against the float SavedModel on the windows of the first `--questions`
    questions (`hub_export.squad.evaluate`: logit SQNR, start/end argmax agreement,
    answer EM/F1 with the SavedModel's answers as ground truth);
  * ratios against the SavedModel, and the mobile package's targets: int8 TFLite at
    least 3x faster than the float SavedModel and at most 1/3 of its size, logit SQNR at
    least `hub_export.verify.TOLERANCES["squad_int8"]["target_sqnr_db"]`.
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
# The int8 TFLite model against the float SavedModel: speed-up and size ratio to reach.
TARGET_SPEEDUP = 3.0
TARGET_SIZE_RATIO = 3.0


def _fmt_db(x: float) -> str:
  return "inf" if x == float("inf") else f"{x:.1f}"


def _dir_bytes(path):
  if os.path.isfile(path):
    return os.path.getsize(path)
  return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def _child(args) -> dict:
  """Latency of every variant with `args.threads` threads (runs in a fresh process)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.threading.set_intra_op_parallelism_threads(args.threads)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  import tensorflow_text  # noqa: F401  # pylint: disable=g-import-not-at-top,unused-import
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

  def timed(call):
    call()  # warm-up
    times = []
    for _ in range(args.runs):
      t = time.perf_counter()
      call()
      times.append(time.perf_counter() - t)
    return statistics.median(times)

  tf_feed = {k: tf.constant(v) for k, v in feed.items()}
  out = {"saved_model": timed(lambda: sig(**tf_feed)["end_logits"].numpy())}
  for name in evaluate.variants(args.squad_dir):
    path = os.path.join(args.squad_dir, name)
    if name.endswith(".tflite"):
      with open(path, "rb") as f:
        interp = tflite_analysis.interpreter(f.read(), num_threads=args.threads)
      runner = interp.get_signature_runner(next(iter(interp.get_signature_list())))
      out[name] = timed(lambda r=runner: r(**feed))
    else:
      sess = onnx_export.session(path, num_threads=args.threads)
      out[name] = timed(lambda se=sess: se.run(None, feed))
  return {"seq_length": s, "latency_s": out}


def main(argv) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--squad_dir", required=True)
  parser.add_argument("--squad_file", default=DEFAULT_SQUAD)
  parser.add_argument("--questions", type=int, default=8,
                      help="questions whose windows measure fidelity")
  parser.add_argument("--runs", type=int, default=5, help="timed calls per variant")
  parser.add_argument("--output_json", default=None)
  parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)  # child
  parser.add_argument("--child_out", default=None, help=argparse.SUPPRESS)
  args = parser.parse_args(argv[1:])
  if not os.path.isdir(os.path.join(args.squad_dir, "saved_model")):
    print(f"error: {args.squad_dir} has no saved_model/ (pass a bundle's squad/ dir)",
          file=sys.stderr)
    return 1
  if args.threads:
    with open(args.child_out, "w", encoding="utf-8") as f:
      json.dump(_child(args), f)
    return 0

  load_before = os.getloadavg()
  print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} "
        f"{load_before[2]:.2f} on {os.cpu_count()} CPUs")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
             PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
  latency = {}
  with tempfile.TemporaryDirectory() as tmp:
    for threads in (1, 2):
      child_out = os.path.join(tmp, f"t{threads}.json")
      subprocess.run([sys.executable, os.path.abspath(__file__),
                      f"--squad_dir={args.squad_dir}", f"--squad_file={args.squad_file}",
                      f"--runs={args.runs}", f"--threads={threads}",
                      f"--child_out={child_out}"], env=env, check=True,
                     stderr=subprocess.DEVNULL)
      with open(child_out, encoding="utf-8") as f:
        latency[threads] = json.load(f)
  sys.path.insert(0, REPO)
  from hub_export import verify  # pylint: disable=g-import-not-at-top
  from hub_export.squad import evaluate  # pylint: disable=g-import-not-at-top
  from hub_export.squad import tflite_export  # pylint: disable=g-import-not-at-top
  report = evaluate.evaluate_dir(args.squad_dir, args.squad_file,
                                 max_questions=args.questions,
                                 mlperf_questions=args.questions, log=lambda _: None)
  load_after = os.getloadavg()
  names = list(report["variants"])
  sizes = {n: _dir_bytes(os.path.join(args.squad_dir, n)) for n in names}
  ref_t = {t: latency[t]["latency_s"]["saved_model"] for t in (1, 2)}
  print(f"\nsquad/ of {args.squad_dir}: batch 1, seq {latency[1]['seq_length']}, "
        f"median of {args.runs} runs; fidelity vs saved_model on {report['windows']} "
        f"windows of {report['questions']} XQuAD questions\n")
  print("| variant | MB | x smaller | 1 thread ms | x faster | 2 threads ms | x faster | "
        "SQNR start/end dB | argmax agree start/end | answer F1 vs float |")
  print("|---|---|---|---|---|---|---|---|---|---|")
  rows = {}
  for n in names:
    fi = report["variants"][n]["fidelity"]
    t1, t2 = latency[1]["latency_s"][n], latency[2]["latency_s"][n]
    rows[n] = {"bytes": sizes[n], "size_ratio": sizes["saved_model"] / sizes[n],
               "latency_1t_s": t1, "latency_2t_s": t2, "speedup_1t": ref_t[1] / t1,
               "speedup_2t": ref_t[2] / t2, "fidelity": fi}
    sq = fi["sqnr_db"]
    print(f"| {n} | {sizes[n] / 1e6:.1f} | {rows[n]['size_ratio']:.2f} | {t1 * 1e3:.1f} | "
          f"{rows[n]['speedup_1t']:.2f} | {t2 * 1e3:.1f} | {rows[n]['speedup_2t']:.2f} | "
          f"{_fmt_db(sq['start_logits'])}/{_fmt_db(sq['end_logits'])} | "
          f"{fi['argmax_agreement']['start_logits']:.2f}/"
          f"{fi['argmax_agreement']['end_logits']:.2f} | {fi['answer_f1']:.1f} |")
  i8 = rows.get(tflite_export.INT8_FILE)
  if i8:
    target_sqnr = verify.TOLERANCES["squad_int8"]["target_sqnr_db"]
    ok_speed = min(i8["speedup_1t"], i8["speedup_2t"]) >= TARGET_SPEEDUP
    ok_size = i8["size_ratio"] >= TARGET_SIZE_RATIO
    ok_sqnr = min(i8["fidelity"]["sqnr_db"].values()) >= target_sqnr
    print(f"\ntargets (int8 TFLite vs float SavedModel): >= {TARGET_SPEEDUP:g}x faster: "
          f"{'MET' if ok_speed else 'NOT MET'} ({i8['speedup_1t']:.2f}x / "
          f"{i8['speedup_2t']:.2f}x); <= 1/{TARGET_SIZE_RATIO:g} size: "
          f"{'MET' if ok_size else 'NOT MET'} ({i8['size_ratio']:.2f}x smaller); "
          f"logit SQNR >= {target_sqnr:g} dB: "
          f"{'MET' if ok_sqnr else 'NOT MET'} "
          f"({min(i8['fidelity']['sqnr_db'].values()):.1f} dB)")
  print(f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
  if args.output_json:
    with open(args.output_json, "w", encoding="utf-8") as f:
      json.dump({"rows": rows, "load_before": load_before, "load_after": load_after,
                 "runs": args.runs, "questions": report["questions"]}, f, indent=1,
                default=float)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
