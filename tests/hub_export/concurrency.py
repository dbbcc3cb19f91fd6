"""A thread-safety harness for loaded SavedModels: many threads, sequential answers, RSS.

Used by `tests/hub_export/test_concurrent_serving.py` and
`benchmarks/concurrent_serving.py`. A request is (label, concrete function, kwargs of
tensors); `serve_and_measure` answers each request alone first, then sends them all from
many threads and counts the answers that differ bit for bit (mismatches) and the calls
that raise (errors), with the process RSS (psutil, measured after glibc's `malloc_trim`
so that it counts live memory, not the allocator's cache) after a warm-up phase and after
every round.
"""

import concurrent.futures
import ctypes
import ctypes.util
import os
import random
import threading

import numpy as np
import psutil
import tensorflow as tf

_WORDS = ("the", "a", "Straße", "東京", "Москва", "naïve", "café", "😀", "1,000.5", "?",
          "über", "ΟΔΟΣ", "한국어", "quick", "brown", "fox", "jumps", "x" * 30)


def random_text(rng: random.Random) -> str:
  """A sentence of 0..200 words (empty in 1 of 6 cases; >126 tokens sometimes)."""
  if rng.random() < 1 / 6:
    return ""
  return " ".join(rng.choice(_WORDS) for _ in range(rng.choice((1, 3, 8, 20, 60, 200))))


def make_requests(models: dict, count: int, seed: int = 0) -> list:
  """`count` requests per model: (name, function, kwargs of tensors).

  Args:
    models: {"serving": loaded serving/, "encoder": loaded encoder/, "preprocessor":
      loaded preprocessor/ (to build encoder inputs), "classifier": loaded classifier};
      any of serving/encoder/classifier may be missing.
    count: requests per served model.
    seed: seeds the texts, batch sizes and signature choice.

  Returns:
    list of (label, callable, kwargs), shuffled across models.
  """
  rng = random.Random(seed)
  requests = []
  for _ in range(count):
    batch = rng.randint(1, 8)
    texts = [random_text(rng) for _ in range(batch)]
    others = [random_text(rng) for _ in range(batch)]
    if "serving" in models:
      srv = models["serving"]
      if rng.random() < 0.5:
        requests.append(("serving/serving_default", srv.signatures["serving_default"],
                         {"sentences": tf.constant(texts)}))
      else:
        requests.append(("serving/text_pair", srv.signatures["text_pair"],
                         {"text_a": tf.constant(texts), "text_b": tf.constant(others)}))
    if "encoder" in models:
      enc = models["encoder"]
      packed = models["preprocessor"].signatures["bert_pack_pair"](
          text_a=tf.constant(texts), text_b=tf.constant(others))
      length = rng.choice((8, 32, 128))  # unpadded short rows and padded long ones.
      inputs = {k: v[:, :length] for k, v in packed.items()}
      name = rng.choice(("serving_default", "encoder", "pooled", "mlm"))
      if name == "mlm":
        positions = tf.constant([[rng.randrange(length) for _ in range(4)]
                                 for _ in range(batch)], tf.int32)
        inputs = dict(inputs, masked_lm_positions=positions)
      requests.append((f"encoder/{name}", enc.signatures[name], inputs))
    if "classifier" in models:
      requests.append(("classifier/serving_default",
                       models["classifier"].signatures["serving_default"],
                       {"premise": tf.constant(texts), "hypothesis": tf.constant(others)}))
  rng.shuffle(requests)
  return requests


def call(request) -> dict:
  """One request's outputs as numpy arrays."""
  _, fn, kwargs = request
  return {k: v.numpy() for k, v in fn(**kwargs).items()}


def same(a: dict, b: dict) -> bool:
  """Bitwise equality of two output dicts (NaN equal to NaN)."""
  return sorted(a) == sorted(b) and all(
      a[k].shape == b[k].shape and a[k].dtype == b[k].dtype and
      (np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f")) for k in a)


def run_concurrently(requests: list, expected: list, threads: int, rounds: int,
                     seed: int = 0) -> dict:
  """Sends every request `rounds` times from `threads` threads; compares with `expected`.

  Returns:
    {"requests": calls made, "mismatches": answers not equal to `expected`,
     "errors": calls that raised, "first_error": repr of one or None,
     "mismatched": labels of mismatched requests (at most 10)}.
  """
  order = [i for _ in range(rounds) for i in range(len(requests))]
  random.Random(seed).shuffle(order)
  lock = threading.Lock()
  tally = {"requests": 0, "mismatches": 0, "errors": 0, "first_error": None,
           "mismatched": []}

  def work(i):
    try:
      got = call(requests[i])
      ok = same(got, expected[i])
      error = None
    except Exception as e:  # pylint: disable=broad-except  (counted and reported)
      ok, error = False, e
    with lock:
      tally["requests"] += 1
      if error is not None:
        tally["errors"] += 1
        tally["first_error"] = tally["first_error"] or repr(error)
      elif not ok:
        tally["mismatches"] += 1
        if len(tally["mismatched"]) < 10:
          tally["mismatched"].append(requests[i][0])

  with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
    list(pool.map(work, order))
  return tally


def _return_free_heap_to_the_os() -> None:
  """glibc `malloc_trim(0)`: gives the free memory of every malloc arena back to the OS.

  Without it the RSS of a process with 16 request threads also counts what each thread's
  arena keeps of its largest in-flight tensors (several MB per `mlm` answer), which moves
  by a hundred MB from one round to the next. No-op where libc has no `malloc_trim`.
  """
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    trim = libc.malloc_trim
  except (OSError, AttributeError):
    return
  trim(0)


def rss_bytes() -> int:
  """Resident set size of this process (psutil), after returning free heap memory."""
  _return_free_heap_to_the_os()
  return psutil.Process(os.getpid()).memory_info().rss


def serve_and_measure(requests: list, *, threads: int, warmup_rounds: int,
                      measured_rounds: int, log=print) -> dict:
  """Sequential answers, a concurrent warm-up, then the measured concurrent rounds.

  Each round sends every request once, in a shuffled order, from `threads` threads.

  Returns:
    the summed `run_concurrently` tallies of the measured rounds, plus `warmup` (the
    warm-up's tally), `rss_before` (bytes, after warm-up), `rss_after` (bytes, at the
    end) and `rss_rounds` (bytes after each measured round).
  """
  expected = [call(r) for r in requests]  # each request alone, one at a time.
  warmup = run_concurrently(requests, expected, threads, warmup_rounds)
  rss_before = rss_bytes()
  tally = {"requests": 0, "mismatches": 0, "errors": 0, "first_error": None,
           "mismatched": []}
  rss_rounds = []
  for r in range(measured_rounds):
    one = run_concurrently(requests, expected, threads, 1, seed=r)
    for key in ("requests", "mismatches", "errors"):
      tally[key] += one[key]
    tally["first_error"] = tally["first_error"] or one["first_error"]
    tally["mismatched"] = (tally["mismatched"] + one["mismatched"])[:10]
    rss_rounds.append(rss_bytes())
  rss_after = rss_rounds[-1] if rss_rounds else rss_before
  tally.update(warmup=warmup, rss_before=rss_before, rss_after=rss_after,
               rss_rounds=rss_rounds)
  mib = lambda b: f"{b / 2**20:.0f}"  # pylint: disable=unnecessary-lambda-assignment
  log(f"concurrent serving: {threads} threads, {len(requests)} distinct requests, "
      f"warm-up {warmup['requests']} requests ({warmup['mismatches']} mismatches, "
      f"{warmup['errors']} errors), measured {tally['requests']} requests: "
      f"{tally['mismatches']} mismatches, {tally['errors']} errors, RSS "
      f"{mib(rss_before)} MiB -> {mib(rss_after)} MiB "
      f"({(rss_after - rss_before) / 2**20:+.1f} MiB; after each round: "
      f"{' '.join(mib(b) for b in rss_rounds)} MiB)")
  return tally
