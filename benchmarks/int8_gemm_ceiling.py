"""How much faster int8 can be than float on this CPU, for MobileBERT's matrix shapes.

The SQuAD mobile package aims for an int8 model at least 3x faster than the float
SavedModel (`benchmarks/squad_mobile_benchmark.py`). Almost all of MobileBERT's work is
FULLY_CONNECTED (per block, at seq 384: 15 products, 321 M multiply-adds; attention
products add about 12%), so the speed-up int8 can give on a CPU is bounded by the
speed-up of an int8 matrix product over a float one there. This script measures that
bound, in one run:

  * a `tf.function` with one MobileBERT block's 15 dense layers, shapes from the
    released config (`uncased_L-24_H-128_B-512_A-4_F-4_OPT`: bottleneck 512 -> 128
    twice, query/key/value/output, 4 FFNs 128 -> 512 -> 128, bottleneck out
    128 -> 512), [384, in] activations, ReLU, as TensorFlow runs it (the
    float SavedModel's path);
  * the same function as a float TFLite model and as a full-integer int8 TFLite
    model (per-channel weights, int8 activations; post-training quantization),
    both run by ai-edge-litert with its default XNNPACK delegate at 1 and 2
    threads;

printing milliseconds (median of `--runs`), multiply-adds per second and the
ratios. CPU features matter: int8 GEMM is fast where the CPU has 8-bit dot
products (x86 AVX-VNNI / AVX512-VNNI, ARM dotprod / i8mm); the flags found in
/proc/cpuinfo are printed. Not a test: numbers depend on the machine.

Usage: python benchmarks/int8_gemm_ceiling.py [--runs 30] [--seq_length 384]
           [--tf_threads 1]
"""

import argparse
import os
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402  pylint: disable=g-import-not-at-top
from ai_edge_litert import interpreter as litert  # noqa: E402  pylint: disable=g-import-not-at-top

# (in, out) of one block's dense layers, in execution order, for the released
# config (hidden 512, intra-bottleneck 128, intermediate 512, 4 FFNs).
BLOCK_DENSE_SHAPES = ([(512, 128), (512, 128), (128, 128), (128, 128), (512, 128),
                       (128, 128)] + [(128, 512), (512, 128)] * 4 + [(128, 512)])
DOT_PRODUCT_FLAGS = ("avx_vnni", "avx512_vnni", "avx512vnni", "amx_int8", "asimddp",
                     "i8mm")


def cpu_flags() -> set:
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith(("flags", "Features")):
          return set(line.split(":", 1)[1].split())
  except OSError:
    pass
  return set()


def block_function(seq_length: int, seed: int = 0):
  """The 15 dense layers of one block as a `tf.function` on float32 [S, 512]."""
  rng = np.random.default_rng(seed)
  weights = [(tf.constant(rng.normal(size=s).astype(np.float32) * 0.05),
              tf.constant(rng.normal(size=s[1]).astype(np.float32) * 0.1))
             for s in BLOCK_DENSE_SHAPES]

  @tf.function(input_signature=[tf.TensorSpec([seq_length, 512], tf.float32)])
  def block(x):
    wide, narrow = x, None  # latest [S, 512] and [S, 128] activations
    for kernel, bias in weights:
      src = wide if kernel.shape[0] == 512 else narrow
      y = tf.nn.relu(tf.matmul(src, kernel) + bias)
      if kernel.shape[1] == 512:
        wide = y
      else:
        narrow = y
    return wide

  return block


def convert(fn, int8: bool, seq_length: int) -> bytes:
  conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()],
                                                         fn)
  if int8:
    rng = np.random.default_rng(1)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: (
        [rng.normal(size=(seq_length, 512)).astype(np.float32)] for _ in range(8))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
  return conv.convert()


def invoker(model: bytes, x: np.ndarray, threads: int):
  """A callable that runs `model` once on `x` (quantized first for int8 inputs)."""
  interp = litert.Interpreter(model_content=model, num_threads=threads)
  interp.allocate_tensors()
  detail = interp.get_input_details()[0]
  if detail["dtype"] == np.int8:
    scale, zero = detail["quantization"]
    x = np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)
  interp.set_tensor(detail["index"], x)
  return interp.invoke


def time_tflite(model: bytes, x: np.ndarray, threads: int, runs: int) -> float:
  invoke = invoker(model, x, threads)
  invoke()
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    invoke()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--runs", type=int, default=30)
  parser.add_argument("--seq_length", type=int, default=384)
  parser.add_argument("--tf_threads", type=int, default=1,
                      help="intra-op threads of the TensorFlow row (0: TF's default)")
  args = parser.parse_args()
  tf.config.threading.set_intra_op_parallelism_threads(args.tf_threads)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  s = args.seq_length
  fn = block_function(s)
  x = np.random.default_rng(2).normal(size=(s, 512)).astype(np.float32)
  models = {"float": convert(fn, False, s), "int8": convert(fn, True, s)}
  load_before = os.getloadavg()[0]
  fn(x)
  tf_times = []
  for _ in range(args.runs):
    start = time.perf_counter()
    fn(x).numpy()
    tf_times.append(time.perf_counter() - start)
  tf_ms = float(np.median(tf_times)) * 1e3
  ms = {(name, t): time_tflite(m, x, t, args.runs) * 1e3
        for name, m in models.items() for t in (1, 2)}
  macs = sum(a * b for a, b in BLOCK_DENSE_SHAPES) * s
  flags = sorted(cpu_flags() & set(DOT_PRODUCT_FLAGS))
  print(f"one MobileBERT block's {len(BLOCK_DENSE_SHAPES)} dense layers at seq {s}: "
        f"{macs / 1e6:.0f} M multiply-adds; {os.cpu_count()} CPUs; 8-bit dot-product "
        f"CPU flags: {flags or 'none'}; TF {tf.__version__}; load average "
        f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after; median of "
        f"{args.runs}")
  tf_name = f"TensorFlow float, {args.tf_threads or 'default'} intra-op thread(s)"
  print(f"{tf_name:52s} {tf_ms:8.2f} ms "
        f"{macs / tf_ms / 1e6:6.1f} GMAC/s")
  for (name, threads), v in ms.items():
    print(f"{'TFLite ' + name + ', XNNPACK, ' + str(threads) + ' thread(s)':52s} "
          f"{v:8.2f} ms {macs / v / 1e6:6.1f} GMAC/s")
  print(f"int8 TFLite (1 thread) vs the TensorFlow row: {tf_ms / ms[('int8', 1)]:.2f}x "
        f"faster; vs float TFLite: {ms[('float', 1)] / ms[('int8', 1)]:.2f}x (1 thread), "
        f"{ms[('float', 2)] / ms[('int8', 2)]:.2f}x (2 threads)")


if __name__ == "__main__":
  main()
