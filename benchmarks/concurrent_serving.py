r"""Many threads calling one loaded bundle at once: answers, errors and RSS.

  PYTHONPATH=. python benchmarks/concurrent_serving.py --bundle_dir=out/demo \
      [--classifier_dir=out/xnli_classifier] [--threads=16] [--requests=600] \
      [--warmup_rounds=1] [--rounds=10]

Loads `serving/`, `encoder/` and `preprocessor/` of `--bundle_dir` (a bundle exported
with --with_text_signature; checked by `hub_export.bundle_check.check_bundle`) and, if
given, a fine-tuning classifier SavedModel (`python -m hub_export.finetune
--export_dir`). Builds `--requests` distinct requests per model (batch sizes 1..8, empty
strings, short and over-long texts, padded and unpadded encoder inputs, every named
signature), answers each alone, then sends all of them `--warmup_rounds` times and
`--rounds` times more from `--threads` threads. Prints the requests made, the answers
that differ bit for bit from the sequential ones (mismatches), the calls that raised
(errors) and the process RSS (psutil) after warm-up and at the end. The harness is
`tests/hub_export/concurrency.py` (also used by its test); exits 1 if any mismatch or error.
"""

import argparse
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402  pylint: disable=g-import-not-at-top
import tensorflow_text  # noqa: E402,F401  pylint: disable=g-import-not-at-top,unused-import

from hub_export import bundle_check  # noqa: E402  pylint: disable=g-import-not-at-top
from tests.hub_export import concurrency as harness  # noqa: E402  pylint: disable=g-import-not-at-top


def main(argv) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--bundle_dir", required=True)
  parser.add_argument("--classifier_dir", default=None)
  parser.add_argument("--threads", type=int, default=16)
  parser.add_argument("--requests", type=int, default=600,
                      help="distinct requests per model")
  parser.add_argument("--warmup_rounds", type=int, default=1)
  parser.add_argument("--rounds", type=int, default=10)
  args = parser.parse_args(argv[1:])
  try:
    bundle_check.check_bundle(args.bundle_dir, require=("serving",))
  except bundle_check.BundleError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  models = {name: tf.saved_model.load(os.path.join(args.bundle_dir, name))
            for name in ("serving", "encoder", "preprocessor")}
  if args.classifier_dir:
    models["classifier"] = tf.saved_model.load(args.classifier_dir)
  requests = harness.make_requests(models, args.requests)
  print(f"python {platform.python_version()}, tensorflow {tf.__version__}, "
        f"{os.cpu_count()} CPUs; models {sorted(m for m in models if m != 'preprocessor')}")
  start = time.time()
  tally = harness.serve_and_measure(requests, threads=args.threads,
                                    warmup_rounds=args.warmup_rounds,
                                    measured_rounds=args.rounds)
  seconds = time.time() - start
  print(f"requests={tally['requests']} mismatches={tally['mismatches']} "
        f"errors={tally['errors']} rss_before_mib={tally['rss_before'] / 2**20:.1f} "
        f"rss_after_mib={tally['rss_after'] / 2**20:.1f} seconds={seconds:.0f}")
  if tally["first_error"]:
    print(f"first error: {tally['first_error']}")
  return 0 if tally["mismatches"] == tally["errors"] == 0 else 1


if __name__ == "__main__":
  sys.exit(main(sys.argv))
