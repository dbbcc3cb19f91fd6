r"""Fine-tuning throughput: one worker vs two multi_worker_mirrored workers, same global batch.

Usage (from the repo root):
  PYTHONPATH=. python benchmarks/finetune_scaling.py [--config=tiny|full] [--bundle_dir=DIR]
      [--rounds=3] [--steps=12] [--batch_size=16] [--seq_length=128] [--work_dir=DIR]

The bundle: `--bundle_dir`, else one built into WORK_DIR: `--config=tiny` (default) the
2-block hidden-64 config of the tests with the multilingual cased vocab, `--config=full`
the released 24-block MobileBERT (`export_main.py --demo`, untrained weights).

Each round runs, in an order that alternates between rounds (interleaved, so drifts of the
machine's load hit both alike):
  * 1 worker: `python -m hub_export.finetune --distribution_strategy=one_device`;
  * 2 workers: two such processes with `--distribution_strategy=multi_worker_mirrored` and
    TF_CONFIG naming two 127.0.0.1 ports (global batch the same, so each worker computes
    half of it);
on the first `steps * batch_size` English XNLI dev pairs, a fresh model_dir each time.
Throughput of a run: the median over steps 3.. of the CLI's per-step `examples/s`
(`--log_every=1`; steps 1-2 include tracing), the chief's for two workers. Printed per run,
then the medians over rounds and the ratio 2 workers / 1 worker. Not a test: nothing is
asserted; on a 2-core machine two workers compete for the same cores, so expect no
speed-up.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tests import testutil  # pylint: disable=g-import-not-at-top,wrong-import-position

EN_DEV = os.path.join(testutil.SHARED_DATA, "xnli", "xtreme_dev", "dev-en.tsv")


def _env(**extra):
  return dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", **extra)


def build_bundle(config: str, work_dir: str) -> str:
  """Exports the benchmark's bundle into work_dir (once) and returns its directory."""
  bundle = os.path.join(work_dir, f"bundle_{config}")
  if os.path.isdir(bundle):
    return bundle
  if config == "full":
    subprocess.run([sys.executable, os.path.join(REPO, "export_main.py"), "--demo",
                    f"--export_dir={bundle}"], env=_env(), cwd=REPO, check=True)
    return bundle
  from hub_export import pipeline  # pylint: disable=g-import-not-at-top
  source = os.path.join(work_dir, "tiny_source")
  shutil.rmtree(source, ignore_errors=True)
  testutil.write_checkpoint(source, testutil.tiny_config(vocab_size=119547),
                            vocab_file=testutil.MULTI_CASED_VOCAB, seed=11)
  pipeline.export_bundle(bundle, checkpoint=source,
                         bert_config_file=os.path.join(source, "bert_config.json"),
                         vocab_file=os.path.join(source, "vocab.txt"), log=lambda _: None)
  return bundle


def _throughput(stdout: str) -> float:
  rates = [float(m.group(2)) for m in re.finditer(
      r"^step (\d+)/\d+ .* ([0-9.]+) examples/s$", stdout, re.MULTILINE)
           if int(m.group(1)) >= 3]
  if not rates:
    raise RuntimeError(f"no step lines from step 3 on in:\n{stdout[-3000:]}")
  return statistics.median(rates)


def run_once(workers: int, *, bundle: str, model_dir: str, args) -> float:
  """One training run with 1 or 2 worker processes; returns the chief's examples/s."""
  argv = [sys.executable, "-m", "hub_export.finetune", f"--bundle_dir={bundle}",
          f"--model_dir={model_dir}", f"--train_file={EN_DEV}",
          f"--max_train_examples={args.steps * args.batch_size}",
          f"--seq_length={args.seq_length}", f"--batch_size={args.batch_size}",
          f"--num_train_steps={args.steps}", "--log_every=1",
          f"--checkpoint_every={args.steps}"]
  if workers == 1:
    proc = subprocess.run(argv + ["--distribution_strategy=one_device"], env=_env(),
                          cwd=REPO, capture_output=True, text=True, check=False)
    if proc.returncode:
      raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-3000:])
    return _throughput(proc.stdout)
  cluster = [f"127.0.0.1:{p}" for p in testutil.free_ports(workers)]
  procs = []
  for i in range(workers):
    tf_config = json.dumps({"cluster": {"worker": cluster},
                            "task": {"type": "worker", "index": i}})
    procs.append(subprocess.Popen(argv + ["--distribution_strategy=multi_worker_mirrored"],
                                  env=_env(TF_CONFIG=tf_config), cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  outs = [p.communicate() for p in procs]
  if any(p.returncode for p in procs):
    raise RuntimeError("\n".join(o[0][-2000:] + o[1][-3000:] for o in outs))
  return _throughput(outs[0][0])


def _cpu_flags() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      text = f.read()
  except OSError:
    return "unknown"
  return " ".join(sorted(set(re.findall(r"\b(avx2|avx512f|avx512_vnni|avx_vnni)\b", text))))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", choices=("tiny", "full"), default="tiny")
  parser.add_argument("--bundle_dir", default=None)
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--steps", type=int, default=12)
  parser.add_argument("--batch_size", type=int, default=16)
  parser.add_argument("--seq_length", type=int, default=128)
  parser.add_argument("--work_dir", default=os.path.join(tempfile.gettempdir(),
                                                         "finetune_scaling"))
  args = parser.parse_args()
  if args.batch_size % 2:
    parser.error(f"--batch_size={args.batch_size} must be even (split over 2 workers)")
  os.makedirs(args.work_dir, exist_ok=True)
  bundle = args.bundle_dir or build_bundle(args.config, args.work_dir)
  print(f"date {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; cpus {os.cpu_count()}; cpu flags "
        f"{_cpu_flags()}; load average {os.getloadavg()[0]:.2f}")
  print(f"bundle {bundle}; global batch {args.batch_size}, seq_length {args.seq_length}, "
        f"{args.steps} steps per run, {args.rounds} rounds")
  rates = {1: [], 2: []}
  for r in range(args.rounds):
    for workers in ((1, 2) if r % 2 == 0 else (2, 1)):
      model_dir = os.path.join(args.work_dir, f"model_{r}_{workers}")
      shutil.rmtree(model_dir, ignore_errors=True)
      rate = run_once(workers, bundle=bundle, model_dir=model_dir, args=args)
      rates[workers].append(rate)
      print(f"round {r + 1}: {workers} worker(s): {rate:.1f} examples/s", flush=True)
      shutil.rmtree(model_dir, ignore_errors=True)
  one, two = statistics.median(rates[1]), statistics.median(rates[2])
  print(f"median over {args.rounds} rounds: 1 worker {one:.1f} examples/s, 2 workers "
        f"{two:.1f} examples/s; ratio 2 workers / 1 worker {two / one:.2f}; load average "
        f"{os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
  main()
