r"""Forward latency of the keras-hub MobileBertBackbone on each Keras backend vs encoder/.

    PYTHONPATH=. python benchmarks/keras_hub_backbone.py --bundle_dir=out/demo_keras_hub \
        [--batch_size=8 --seq_length=128 --rounds=10 --calls=5]

The bundle must hold `keras_hub/` (`export_main.py --demo --keras_hub`). One worker
process per runner stays alive for the whole run: `saved_model` (the bundle's encoder/
SavedModel called through its `__call__` function, the reference) and the backbone loaded
with `Backbone.from_preset` under KERAS_BACKEND=tensorflow (the call in a
`tf.function`), jax (`stateless_call` under `jax.jit`) and torch (eager, `no_grad`). After a warm-up,
the parent runs `--rounds` interleaved rounds (each worker in turn, rotating the order
every round) of `--calls` timed forwards on the same inputs, one worker busy at a time.
It prints each runner's median milliseconds per forward and its ratio to the SavedModel
measured in the same rounds, with the CPU's model name and vector flags. Asserts nothing.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

RUNNERS = ("saved_model", "tensorflow", "jax", "torch")


def _inputs(batch_size, seq_length, vocab_size):
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  ids = rng.integers(1000, vocab_size, (batch_size, seq_length)).astype("int32")
  mask = np.ones_like(ids)
  mask[batch_size // 2:, seq_length // 2:] = 0
  types = np.zeros_like(ids)
  types[:, seq_length // 3:] = 1
  return ids, mask, types


def worker(runner, bundle_dir, batch_size, seq_length):
  """Loads one runner, then answers each stdin line "K" with the ms of K forwards."""
  with open(os.path.join(bundle_dir, "manifest.json"), encoding="utf-8") as f:
    vocab_size = json.load(f)["config"]["vocab_size"]
  ids, mask, types = _inputs(batch_size, seq_length, vocab_size)
  if runner == "saved_model":
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    encoder = tf.saved_model.load(os.path.join(bundle_dir, "encoder"))
    feed = dict(input_word_ids=tf.constant(ids), input_mask=tf.constant(mask),
                input_type_ids=tf.constant(types))
    forward = lambda: encoder(feed, training=False)["pooled_output"].numpy()  # pylint: disable=unnecessary-lambda-assignment
  else:
    import keras_hub  # pylint: disable=g-import-not-at-top
    import hub_export.keras_hub_preset  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    backbone = keras_hub.models.Backbone.from_preset(os.path.join(bundle_dir, "keras_hub"))
    feed = {"token_ids": ids, "segment_ids": types, "padding_mask": mask}
    if runner == "jax":
      import jax  # pylint: disable=g-import-not-at-top
      state = [v.value for v in backbone.trainable_variables], [
          v.value for v in backbone.non_trainable_variables]
      fn = jax.jit(lambda t, n, x: backbone.stateless_call(t, n, x, training=False)[0])
      forward = lambda: jax.block_until_ready(fn(*state, feed)["pooled_output"])  # pylint: disable=unnecessary-lambda-assignment
    elif runner == "torch":
      import torch  # pylint: disable=g-import-not-at-top

      def forward():
        with torch.no_grad():
          return backbone(feed, training=False)["pooled_output"].cpu().numpy()
    else:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      fn = tf.function(lambda x: backbone(x, training=False)["pooled_output"])
      tensors = {k: tf.constant(v) for k, v in feed.items()}
      forward = lambda: fn(tensors).numpy()  # pylint: disable=unnecessary-lambda-assignment
  forward()
  forward()
  print("READY", flush=True)
  for line in sys.stdin:
    calls = int(line)
    times = []
    for _ in range(calls):
      start = time.perf_counter()
      forward()
      times.append(time.perf_counter() - start)
    print(json.dumps(times), flush=True)


def cpu_description():
  model, flags = "unknown", set()
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("model name") and model == "unknown":
          model = line.split(":", 1)[1].strip()
        if line.startswith("flags") and not flags:
          flags = set(line.split(":", 1)[1].split())
  except OSError:
    pass
  vector = sorted(f for f in flags if re.fullmatch(r"avx2|fma|avx512f|avx512_vnni|avx_vnni|"
                                                    r"amx_int8|avx512_bf16", f))
  return f"{model}, {os.cpu_count()} cores, flags: {' '.join(vector) or 'none of avx2/avx512'}"


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--bundle_dir", required=True)
  parser.add_argument("--batch_size", type=int, default=8)
  parser.add_argument("--seq_length", type=int, default=128)
  parser.add_argument("--rounds", type=int, default=10)
  parser.add_argument("--calls", type=int, default=5)
  parser.add_argument("--runners", nargs="+", default=list(RUNNERS), choices=RUNNERS)
  parser.add_argument("--worker", choices=RUNNERS, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    worker(args.worker, args.bundle_dir, args.batch_size, args.seq_length)
    return
  if not os.path.isfile(os.path.join(args.bundle_dir, "keras_hub", "config.json")):
    sys.exit(f"--bundle_dir={args.bundle_dir} has no keras_hub/; export it with "
             "export_main.py --keras_hub")
  procs = {}
  for runner in args.runners:
    backend = "tensorflow" if runner == "saved_model" else runner
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    procs[runner] = subprocess.Popen(
        [sys.executable, __file__, f"--worker={runner}", f"--bundle_dir={args.bundle_dir}",
         f"--batch_size={args.batch_size}", f"--seq_length={args.seq_length}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    for line in procs[runner].stdout:  # Load one at a time: each compiles on every core.
      if line.strip() == "READY":
        break
    else:
      sys.exit(f"runner {runner} died while loading")
  times = {r: [] for r in args.runners}
  order = list(args.runners)
  for _ in range(args.rounds):
    for runner in order:
      procs[runner].stdin.write(f"{args.calls}\n")
      procs[runner].stdin.flush()
      times[runner] += json.loads(procs[runner].stdout.readline())
    order = order[1:] + order[:1]
  for p in procs.values():
    p.stdin.close()
    p.wait()
  print(f"MobileBertBackbone forward, batch {args.batch_size}, seq_length {args.seq_length}; "
        f"{args.rounds} interleaved rounds x {args.calls} calls; CPU: {cpu_description()}")
  reference = statistics.median(times["saved_model"]) if "saved_model" in times else None
  for runner in args.runners:
    ms = 1000 * statistics.median(times[runner])
    ratio = f"{ms / (1000 * reference):.2f}x the SavedModel's time" if reference else ""
    print(f"  {runner:12s} median {ms:8.1f} ms  {ratio}")


if __name__ == "__main__":
  main()
