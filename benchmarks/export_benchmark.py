r"""End-to-end export benchmark: this repo's export_main.py vs Model Garden's own path.

Usage (from the repo root):
  PYTHONPATH=. python benchmarks/export_benchmark.py [--config=full|tiny] [--work_dir=DIR]
      [--loads=3]

Both tools start from the SAME original-layout TF1 checkpoint directory (bert_config.json,
vocab.txt, mobilebert_variables.ckpt.*) with seeded random weights, written by
`checkpoints.tf1_writer`: `--config=full` is the released 24-block
`uncased_L-24_H-128_B-512_A-4_F-4_OPT` config (`write_demo_checkpoint_dir`), `--config=tiny`
the same config with num_hidden_layers=2 (for quick checks of this script only).

Measured in one run, every step in its own subprocess (TF_CPP_MIN_LOG_LEVEL=2); wall
time from the parent, peak RSS from `os.wait4` (the rusage of that one child):
  1. Ours: `python export_main.py --checkpoint_dir=CKPT --export_dir=OUT` (the whole job:
     conversion, encoder + preprocessor SavedModels, reload verification, manifest).
  2. Model Garden (tf-models-official): `official/projects/mobilebert/
     tf2_model_checkpoint_converter.py` (TF1 -> TF2 checkpoint), then
     `official/projects/mobilebert/export_tfhub.py` (TF2 checkpoint -> TF-Hub SavedModel),
     each run unchanged through its own `main` by a small driver script
     (WORK_DIR/mg_driver.py) that applies only these patches:
       * PATCH 1 (always): `official/projects/mobilebert/model_utils.py` uses `tf_keras`
         without importing it (NameError in `create_mobilebert_pretrainer`); the driver
         injects the module: `model_utils.tf_keras = tf_keras`.
       * PATCH 2 (only if the unpatched converter fails): wrap
         `model_utils.create_mobilebert_pretrainer` to call
         `tf_keras.backend.clear_session()` first, then retry the converter once. Whether
         it was needed is printed and recorded.
     Its Python flags are the scripts' own (use_model_prefix=False, do_lower_case=True).
  3. For each encoder SavedModel: size on disk (total and saved_model.pb alone) and the
     time of `tf.saved_model.load(path)` in N fresh processes (median; the
     `import tensorflow` time is reported separately).
     Per-phase seconds of our export and of Model Garden's exporter come from the arrival
     times of their step/log lines (child run unbuffered); they are indicative only.
  4. Ratios (ours / theirs, and "x times faster") next to the targets: ours at least 4x
     faster end to end, our encoder loads in under 5 s.

Caveat printed with the figures: ours does more work (preprocessor SavedModel, reload
verification of both SavedModels, manifest) than Model Garden's two scripts.

Prints a Markdown table at the end and writes all figures as JSON to WORK_DIR.json (next
to the work dir). Not a test: nothing is asserted; figures depend on the machine and on
whatever else runs on it (the load average is printed at start and end).
"""

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_SPEEDUP = 4.0
TARGET_LOAD_S = 5.0

DRIVER = r'''"""Runs Model Garden's MobileBERT converter or TF-Hub exporter, minimally patched.

Written by benchmarks/export_benchmark.py. Usage:
  python mg_driver.py convert|export [--clear_session] -- FLAGS-OF-THE-SCRIPT...
"""
import sys

import tf_keras
from absl import app
from official.projects.mobilebert import model_utils

# PATCH 1: model_utils.py uses `tf_keras` without importing it (NameError).
model_utils.tf_keras = tf_keras

mode = sys.argv[1]
sep = sys.argv.index("--")
options, flags = sys.argv[2:sep], sys.argv[sep + 1:]
if "--clear_session" in options:
  # PATCH 2: fresh Keras session before each model is built.
  _create = model_utils.create_mobilebert_pretrainer

  def _create_after_clear_session(bert_config):
    tf_keras.backend.clear_session()
    return _create(bert_config)

  model_utils.create_mobilebert_pretrainer = _create_after_clear_session
if mode == "convert":
  from official.projects.mobilebert import tf2_model_checkpoint_converter as module
elif mode == "export":
  from official.projects.mobilebert import export_tfhub as module
else:
  raise SystemExit(f"unknown mode {mode!r}")
sys.argv = [module.__file__] + flags
app.run(module.main)
'''

LOADER = r'''import json, sys, time
t0 = time.perf_counter()
import tensorflow as tf
t1 = time.perf_counter()
obj = tf.saved_model.load(sys.argv[1])
t2 = time.perf_counter()
print("LOAD_RESULT " + json.dumps({"import_s": t1 - t0, "load_s": t2 - t1}))
'''


def child_env():
  env = dict(os.environ)
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
  return env


def run_measured(cmd, log_path, cwd=REPO, timestamps=False):
  """Runs cmd; returns dict(rc, wall_s, peak_rss_mb, log[, lines]).

  Output goes to log_path. With `timestamps`, output is read line by line (unbuffered
  child) and "lines" holds (seconds since start, line) for a per-step breakdown.
  """
  env = child_env()
  lines = []
  with open(log_path, "w") as log:
    start = time.perf_counter()
    if timestamps:
      env["PYTHONUNBUFFERED"] = "1"
      proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, errors="replace")
      for line in proc.stdout:
        t = time.perf_counter() - start
        lines.append((t, line.rstrip("\n")))
        log.write(f"[{t:7.1f}s] {line}")
      proc.stdout.close()
    else:
      proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
  proc.returncode = os.waitstatus_to_exitcode(status)
  # CPU seconds of the child and of the descendants it waited for (our preprocessor
  # worker): less sensitive than wall time to other processes on a shared machine.
  result = {"rc": proc.returncode, "wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024.0,
            "cpu_s": usage.ru_utime + usage.ru_stime, "log": log_path}
  if timestamps:
    result["lines"] = lines
  return result


# Step lines printed by hub_export.pipeline, in order; each phase runs up to the next one.
# The preprocessor is saved and checked by a worker process during the conversion.
OUR_PHASES = (("process start, imports, flags", None),
              ("input checks + conversion + TF2 checkpoint", " blocks, hidden "),
              ("reference outputs", "Computing reference outputs"),
              ("encoder SavedModel", "Saving encoder/"),
              ("encoder reload verification", "Verifying encoder/ reloaded"),
              ("preprocessor wait + manifest + model card", "Waiting for preprocessor/"),
              ("summary + process exit", "Bundle written to"))
# Model Garden's export_tfhub.py absl INFO lines.
MG_EXPORT_PHASES = (("process start, imports, model build", None),
                    ("checkpoint restore", "Begin to load model"),
                    ("SavedModel save (tf_keras Model.save)", "Begin to save files for tfhub"),
                    ("process exit", "tfhub files exported!"))


def record_export(side, result, phases, encoder_dir, *, loads, logs, label, breakdown_key,
                  error_key):
  """Records one export run in `side` (a dict of the JSON report) and prints it.

  Stores the run under "export" and its per-phase seconds under `breakdown_key`; on success
  also the encoder SavedModel's "sizes" and its fresh-process "load" times, on failure the
  error line under `error_key`.
  """
  breakdown = breakdown_of(result, phases)
  result.pop("lines", None)
  side["export"] = result
  side[breakdown_key] = dict(breakdown) if breakdown else None
  if result["rc"] != 0:
    side[error_key] = error_line(result)
    print(f"  FAILED: {failure_text(result)}")
    return
  print(f"  wall {result['wall_s']:.1f} s, peak RSS {result['peak_rss_mb']:.0f} MB")
  for name, secs in breakdown or []:
    print(f"    {secs:6.1f} s  {name}")
  side["sizes"] = dir_sizes(encoder_dir)
  print(f"  encoder SavedModel {side['sizes']['total_mb']:.1f} MB "
        f"(saved_model.pb {side['sizes']['graph_mb']:.2f} MB)")
  side["load"] = measure_loads(encoder_dir, loads, logs, label)


def breakdown_of(result, phases):
  """Seconds per phase of a run, from the timestamps of its step lines."""
  starts = []
  for name, prefix in phases:
    if prefix is None:
      starts.append((name, 0.0))
      continue
    hit = next((t for t, l in result.get("lines", []) if prefix in l), None)
    if hit is None:
      return None
    starts.append((name, hit))
  ends = [t for _, t in starts[1:]] + [result["wall_s"]]
  return [(name, end - t) for (name, t), end in zip(starts, ends)]


def failure_text(result, lines=12):
  """The last lines of a failed step's log (the traceback's end names the error)."""
  with open(result["log"], errors="replace") as f:
    tail = [l.rstrip() for l in f.readlines() if l.strip()][-lines:]
  return f"exit code {result['rc']}; log {result['log']}; last lines:\n    " + \
      "\n    ".join(tail)


def error_line(result):
  with open(result["log"], errors="replace") as f:
    lines = [l.strip() for l in f if l.strip()]
  errors = [l for l in lines if "Error" in l.split(":")[0] or l.startswith("raise")]
  return errors[-1] if errors else (lines[-1] if lines else f"exit code {result['rc']}")


def dir_sizes(path):
  total = 0
  for root, _, files in os.walk(path):
    total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
  pb = os.path.join(path, "saved_model.pb")
  return {"total_mb": total / 1e6,
          "graph_mb": os.path.getsize(pb) / 1e6 if os.path.exists(pb) else None}


def measure_loads(path, n, logs, tag):
  """Median over n fresh processes of the tf.saved_model.load(path) time."""
  loads, imports, rss, errors = [], [], [], []
  for i in range(n):
    r = run_measured([sys.executable, "-c", LOADER, path],
                     os.path.join(logs, f"load_{tag}_{i}.log"))
    with open(r["log"], errors="replace") as f:
      found = [l for l in f if l.startswith("LOAD_RESULT ")]
    if r["rc"] != 0 or not found:
      errors.append(error_line(r))
      print(f"  load {i + 1}/{n} of {tag} FAILED: {failure_text(r)}")
      continue
    d = json.loads(found[-1][len("LOAD_RESULT "):])
    loads.append(d["load_s"])
    imports.append(d["import_s"])
    rss.append(r["peak_rss_mb"])
    print(f"  load {i + 1}/{n} of {tag}: tf.saved_model.load {d['load_s']:.2f} s "
          f"(import tensorflow {d['import_s']:.2f} s, process peak RSS "
          f"{r['peak_rss_mb']:.0f} MB)")
  return {"load_s_median": statistics.median(loads) if loads else None,
          "load_s_all": loads,
          "import_s_median": statistics.median(imports) if imports else None,
          "load_process_peak_rss_mb_median": statistics.median(rss) if rss else None,
          "errors": errors}


def write_checkpoint(config_name, ckpt_dir, logs):
  code = (
      "import json, os, sys\n"
      "from checkpoints import tf1_writer\n"
      "d, name = sys.argv[1], sys.argv[2]\n"
      "if name == 'full':\n"
      "  print(tf1_writer.write_demo_checkpoint_dir(d, 'en_uncased', seed=0))\n"
      "else:\n"
      "  src = tf1_writer.DEMO_VARIANTS['en_uncased']\n"
      "  with open(os.path.join(src, 'bert_config.json')) as f:\n"
      "    c = json.load(f)\n"
      "  c['num_hidden_layers'] = 2\n"
      "  print(tf1_writer.write_checkpoint_dir(d, c, os.path.join(src, 'vocab.txt'), "
      "seed=0))\n")
  r = run_measured([sys.executable, "-c", code, ckpt_dir, config_name],
                   os.path.join(logs, "write_checkpoint.log"))
  if r["rc"] != 0:
    raise SystemExit("could not write the benchmark checkpoint: " + failure_text(r))
  with open(os.path.join(ckpt_dir, "bert_config.json")) as f:
    blocks = json.load(f)["num_hidden_layers"]
  prefix = glob.glob(os.path.join(ckpt_dir, "*.index"))[0][:-len(".index")]
  return prefix, blocks


def fmt(x, unit="", digits=1):
  if x is None:
    return "n/a"
  return f"{x:.{digits}f}{unit}"


def ratio(a, b):
  return a / b if a is not None and b else None


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--config", choices=("full", "tiny"), default="full")
  parser.add_argument("--work_dir", default=None,
                      help="default: $TMPDIR/mobilebert_export_benchmark_<config>")
  parser.add_argument("--loads", type=int, default=3, help="fresh-process loads per model")
  args = parser.parse_args()
  work = os.path.abspath(args.work_dir or os.path.join(
      tempfile.gettempdir(), f"mobilebert_export_benchmark_{args.config}"))
  logs = os.path.join(work, "logs")
  ckpt_dir = os.path.join(work, "tf1_checkpoint")
  ours_dir = os.path.join(work, "ours_bundle")
  mg_ckpt_dir = os.path.join(work, "mg_tf2_checkpoint")
  mg_hub = os.path.join(work, "mg_hub")
  for d in (ckpt_dir, ours_dir, mg_ckpt_dir, mg_hub, logs):  # Only what this script makes.
    shutil.rmtree(d, ignore_errors=True)
  os.makedirs(logs)
  driver = os.path.join(work, "mg_driver.py")
  with open(driver, "w") as f:
    f.write(DRIVER)

  load_start = os.getloadavg()
  print(f"Machine: {os.cpu_count()} CPUs; load average (1/5/15 min) at start: "
        f"{load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}")
  print(f"Work dir: {work} (step logs in {logs})")
  prefix, blocks = write_checkpoint(args.config, ckpt_dir, logs)
  print(f"Config: {args.config} ({blocks} blocks); TF1 checkpoint: {prefix}\n")
  res = {"config": args.config, "num_hidden_layers": blocks, "work_dir": work,
         "cpus": os.cpu_count(), "loadavg_start": load_start, "ours": {}, "model_garden": {},
         "patches": ["PATCH 1: model_utils.tf_keras = tf_keras (model_utils.py uses "
                     "tf_keras without importing it: NameError)"]}

  # 1. Ours.
  print("[ours] python export_main.py --checkpoint_dir=... --export_dir=...")
  r = run_measured([sys.executable, os.path.join(REPO, "export_main.py"),
                    f"--checkpoint_dir={ckpt_dir}", f"--export_dir={ours_dir}"],
                   os.path.join(logs, "ours_export.log"), timestamps=True)
  ours = res["ours"]
  record_export(ours, r, OUR_PHASES, os.path.join(ours_dir, "encoder"),
                loads=args.loads, logs=logs, label="ours", breakdown_key="breakdown_s",
                error_key="error")

  # 2. Model Garden: converter, then exporter.
  mg = res["model_garden"]
  print("\n[model garden] tf2_model_checkpoint_converter.py (via mg_driver.py, PATCH 1)")
  convert_flags = ["--", f"--bert_config_file={os.path.join(ckpt_dir, 'bert_config.json')}",
                   f"--tf1_checkpoint_path={prefix}",
                   f"--tf2_checkpoint_path={os.path.join(mg_ckpt_dir, 'ckpt')}"]
  r = run_measured([sys.executable, driver, "convert"] + convert_flags,
                   os.path.join(logs, "mg_convert.log"))
  mg["convert_patch2_needed"] = False
  if r["rc"] != 0:
    first_error = error_line(r)
    print(f"  unpatched converter FAILED: {failure_text(r)}")
    print("  retrying with PATCH 2 (tf_keras.backend.clear_session() before building "
          "the model)")
    mg["convert_unpatched_error"] = first_error
    mg["convert_patch2_needed"] = True
    res["patches"].append("PATCH 2: tf_keras.backend.clear_session() before "
                          "model_utils.create_mobilebert_pretrainer (unpatched converter "
                          f"failed: {first_error})")
    shutil.rmtree(mg_ckpt_dir, ignore_errors=True)
    r = run_measured([sys.executable, driver, "convert", "--clear_session"] + convert_flags,
                     os.path.join(logs, "mg_convert_patch2.log"))
  mg["convert"] = r
  tf2_prefix = None
  if r["rc"] == 0:
    found = sorted(glob.glob(os.path.join(mg_ckpt_dir, "ckpt-*.index")))
    tf2_prefix = found[-1][:-len(".index")] if found else None
    print(f"  wall {r['wall_s']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB; "
          f"TF2 checkpoint {tf2_prefix}")
    if tf2_prefix is None:
      mg["convert_error"] = f"exit 0 but no ckpt-*.index in {mg_ckpt_dir}"
      print("  FAILED: " + mg["convert_error"])
  else:
    mg["convert_error"] = error_line(r)
    print(f"  FAILED: {failure_text(r)}")

  print("\n[model garden] export_tfhub.py (via mg_driver.py, PATCH 1)")
  if tf2_prefix is None:
    mg["export_error"] = "skipped: the converter did not produce a TF2 checkpoint"
    print("  " + mg["export_error"])
  else:
    r = run_measured(
        [sys.executable, driver, "export"] +
        (["--clear_session"] if mg["convert_patch2_needed"] else []) +
        ["--", f"--bert_config_file={os.path.join(ckpt_dir, 'bert_config.json')}",
         f"--model_checkpoint_path={tf2_prefix}", f"--export_path={mg_hub}",
         f"--vocab_file={os.path.join(ckpt_dir, 'vocab.txt')}"],
        os.path.join(logs, "mg_export.log"), timestamps=True)
    record_export(mg, r, MG_EXPORT_PHASES, mg_hub, loads=args.loads, logs=logs,
                  label="model_garden", breakdown_key="export_breakdown_s",
                  error_key="export_error")

  # 3. Figures and ratios.
  def ok(step):
    return step is not None and step.get("rc") == 0

  o_wall = ours["export"]["wall_s"] if ok(ours.get("export")) else None
  o_rss = ours["export"]["peak_rss_mb"] if ok(ours.get("export")) else None
  c, e = mg.get("convert"), mg.get("export")
  c_wall = c["wall_s"] if ok(c) else None
  e_wall = e["wall_s"] if ok(e) else None
  t_wall = c_wall + e_wall if c_wall is not None and e_wall is not None else None
  t_rss = max(c["peak_rss_mb"], e["peak_rss_mb"]) if ok(c) and ok(e) else None
  o_size, t_size = ours.get("sizes", {}), mg.get("sizes", {})
  o_load = ours.get("load", {}).get("load_s_median")
  t_load = mg.get("load", {}).get("load_s_median")
  speedup = ratio(t_wall, o_wall)
  o_cpu = ours["export"]["cpu_s"] if ok(ours.get("export")) else None
  t_cpu = c["cpu_s"] + e["cpu_s"] if ok(c) and ok(e) else None
  res["summary"] = {
      "ours_total_wall_s": o_wall, "mg_convert_wall_s": c_wall, "mg_export_wall_s": e_wall,
      "mg_total_wall_s": t_wall, "wall_ratio_ours_over_mg": ratio(o_wall, t_wall),
      "speedup_x": speedup, "target_speedup_x": TARGET_SPEEDUP,
      "speedup_target_met": None if speedup is None else speedup >= TARGET_SPEEDUP,
      "ours_cpu_s": o_cpu, "mg_cpu_s": t_cpu, "cpu_ratio_ours_over_mg": ratio(o_cpu, t_cpu),
      "ours_peak_rss_mb": o_rss,
      "mg_convert_peak_rss_mb": c["peak_rss_mb"] if ok(c) else None,
      "mg_export_peak_rss_mb": e["peak_rss_mb"] if ok(e) else None,
      "mg_peak_rss_mb": t_rss, "peak_rss_ratio_ours_over_mg": ratio(o_rss, t_rss),
      "ours_savedmodel_mb": o_size.get("total_mb"), "mg_savedmodel_mb": t_size.get("total_mb"),
      "savedmodel_ratio": ratio(o_size.get("total_mb"), t_size.get("total_mb")),
      "ours_graph_mb": o_size.get("graph_mb"), "mg_graph_mb": t_size.get("graph_mb"),
      "graph_ratio": ratio(o_size.get("graph_mb"), t_size.get("graph_mb")),
      "ours_load_s_median": o_load, "mg_load_s_median": t_load,
      "load_ratio_ours_over_mg": ratio(o_load, t_load),
      "target_load_s": TARGET_LOAD_S,
      "load_target_met": None if o_load is None else o_load < TARGET_LOAD_S,
      "ours_import_s_median": ours.get("load", {}).get("import_s_median"),
      "mg_import_s_median": mg.get("load", {}).get("import_s_median"),
  }
  load_end = os.getloadavg()
  res["loadavg_end"] = load_end
  s = res["summary"]

  def x(v):
    return "n/a" if v is None else f"{v:.2f}x"

  def all_loads(side):
    v = side.get("load", {}).get("load_s_all") or []
    return "/".join(f"{t:.1f}" for t in v)

  met = {True: "met", False: "NOT met", None: "n/a"}
  rows = [
      ("Wall time, whole job (s)", fmt(o_wall), fmt(t_wall) + " (convert " + fmt(c_wall) +
       " + export " + fmt(e_wall) + ")", x(s["wall_ratio_ours_over_mg"]),
       f"ours {x(speedup)} faster (theirs / ours); target >= {TARGET_SPEEDUP:g}x: "
       f"{met[s['speedup_target_met']]}"),
      ("CPU time, user + sys (s)", fmt(o_cpu), fmt(t_cpu), x(s["cpu_ratio_ours_over_mg"]),
       "ours includes the preprocessor worker process, which runs beside the main one"),
      ("Peak RSS (MB)", fmt(o_rss, digits=0),
       fmt(t_rss, digits=0) + " (convert " + fmt(s["mg_convert_peak_rss_mb"], digits=0) +
       ", export " + fmt(s["mg_export_peak_rss_mb"], digits=0) + ")",
       x(s["peak_rss_ratio_ours_over_mg"]), "max over their two processes"),
      ("Encoder SavedModel, total (MB)", fmt(o_size.get("total_mb")),
       fmt(t_size.get("total_mb")), x(s["savedmodel_ratio"]), ""),
      ("Encoder saved_model.pb (MB)", fmt(o_size.get("graph_mb"), digits=2),
       fmt(t_size.get("graph_mb"), digits=2), x(s["graph_ratio"]), ""),
      (f"tf.saved_model.load, median of {args.loads} fresh processes (s)",
       fmt(o_load, digits=2) + f" [{all_loads(ours)}]",
       fmt(t_load, digits=2) + f" [{all_loads(mg)}]", x(s["load_ratio_ours_over_mg"]),
       f"ours target < {TARGET_LOAD_S:g} s: {met[s['load_target_met']]}"),
      ("import tensorflow in the load process, median (s)",
       fmt(s["ours_import_s_median"], digits=2), fmt(s["mg_import_s_median"], digits=2),
       "", "not included in the load time"),
  ]
  table = ["| Metric | Ours (export_main.py) | Model Garden (converter + export_tfhub) "
           "| Ours / theirs | Target / note |", "|---|---|---|---|---|"]
  table += ["| " + " | ".join(r) + " |" for r in rows]
  res["table_markdown"] = "\n".join(table)

  print(f"\n## Export benchmark: config {args.config} ({blocks} blocks), "
        f"{os.cpu_count()} CPUs, load average {load_start[0]:.2f} at start, "
        f"{load_end[0]:.2f} at end\n")
  print(res["table_markdown"])
  print("\nModel Garden patches applied (nothing else changed):")
  for p in res["patches"]:
    print("  * " + p)
  failures = [(k, v) for side in ("ours", "model_garden") for k, v in res[side].items()
              if k.endswith("error")]
  for side in ("ours", "model_garden"):
    for err in res[side].get("load", {}).get("errors", []):
      failures.append((f"{side} load", err))
  if failures:
    print("\nFailures:")
    for k, v in failures:
      print(f"  * {k}: {v}")
  print("\nNotes: ours also writes and verifies the preprocessor SavedModel, reloads and "
        "checks both SavedModels, and writes the manifest; Model Garden's two scripts do "
        "none of that. Wall-clock figures are noisy when other processes run (see the "
        "load average above).")
  json_path = work.rstrip(os.sep) + ".json"
  with open(json_path, "w") as f:
    json.dump(res, f, indent=2)
  print(f"JSON: {json_path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
