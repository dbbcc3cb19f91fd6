r"""Latency of the on-device NLI classifier files, float against int8, per pair.

  PYTHONPATH=. python benchmarks/nli_tflite_benchmark.py \
      --files FLOAT.tflite INT8.tflite [--rounds=15] [--threads 1 2]

Each file is loaded once per thread count (LiteRT, XNNPACK, tensorflow-text ops
registered). Pairs: a short one (about 20 tokens), a medium one (about 60) and one that
fills any seq_length (truncated). Each file classifies each pair two ways: at its trained
length (`classify_<S>` for the longest S) and `fit` (the `tokenize` signature, then the
shortest `classify_<S>` the pair fits in: `runner.FIT`). In every round every variant
classifies each pair once, in turn (interleaved rounds, so a slow spell hits every
variant alike); the figure is the median over rounds in ms per pair; `x first` is the
first file's time over this file's in the same mode and `x trained` this file's trained
length time over this mode's, medians of the within-round ratios. Prints the CPU's 8-bit
dot-product flags, the file sizes, one Markdown table and one JSON line. No test
depends on these times.
"""

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import int8_gemm_ceiling  # pylint: disable=g-import-not-at-top,wrong-import-position

PAIRS = {
    "short": ("A man is playing a guitar.", "Someone makes music."),
    "medium": ("The new rights are nice enough, but the union says that its members will "
               "not accept the changes unless the company agrees to discuss the pay scale "
               "before the end of the year.",
               "The union is ready to accept everything the company has offered so far."),
    "long": (" ".join(["Der Hund schläft im Garten, während die Katze auf dem Dach sitzt."]
                      * 30), "Ein Tier ruht sich aus."),
}


def main(argv) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--files", nargs="+", required=True)
  parser.add_argument("--rounds", type=int, default=15)
  parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
  parser.add_argument("--gap_s", type=float, default=0.1)
  args = parser.parse_args(argv)
  from hub_export.finetune.mobile import runner  # pylint: disable=g-import-not-at-top
  flags = sorted(int8_gemm_ceiling.cpu_flags() & set(int8_gemm_ceiling.DOT_PRODUCT_FLAGS))
  print(f"CPU 8-bit dot-product flags: {' '.join(flags) or 'none'}")
  names = [os.path.basename(f) for f in args.files]
  for f in args.files:
    print(f"{os.path.basename(f)}: {os.path.getsize(f) / 1e6:.1f} MB")
  results = []
  for threads in args.threads:
    models = []
    for f in args.files:
      with open(f, "rb") as fh:
        models.append(runner.NliTfliteClassifier(fh.read(), num_threads=threads))
    trained = max(models[0].seq_lengths)
    modes = [runner.FIT, trained]
    times = {(n, mode, k): [] for n in names for mode in modes for k in PAIRS}
    chosen = {}
    for r in range(args.rounds + 1):  # round 0 warms up
      for k, (p, h) in PAIRS.items():
        for n, m in zip(names, models):
          for mode in modes:
            start = time.perf_counter()
            out = m.classify([p], [h], seq_length=mode)
            if r:
              times[(n, mode, k)].append((time.perf_counter() - start) * 1e3)
            chosen[(mode, k)] = int(out["seq_length"][0])
            time.sleep(args.gap_s)
    for k in PAIRS:
      for n in names:
        for mode in modes:
          mine = times[(n, mode, k)]
          first = times[(names[0], mode, k)]
          full = times[(n, trained, k)]
          results.append(dict(
              threads=threads, pair=k, file=n, mode=str(mode),
              seq_length=chosen[(mode, k)], ms=round(statistics.median(mine), 2),
              x_first=round(statistics.median(b / t for b, t in zip(first, mine)), 2),
              x_trained=round(statistics.median(b / t for b, t in zip(full, mine)), 2)))
  print(f"| threads | pair | file | mode | S | ms per pair | x {names[0]} | x trained S |")
  print("|---|---|---|---|---:|---:|---:|---:|")
  for row in results:
    print(f"| {row['threads']} | {row['pair']} | {row['file']} | {row['mode']} | "
          f"{row['seq_length']} | {row['ms']} | {row['x_first']} | {row['x_trained']} |")
  print(json.dumps({"cpu_dot_product_flags": flags, "rounds": args.rounds,
                    "results": results}))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
