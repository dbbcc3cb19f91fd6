r"""int8 fidelity of the SQuAD models on full-size checkpoints of seeds nobody tuned on.

Usage (from the repo root):
  PYTHONPATH=. python benchmarks/int8_seed_validation.py --seeds 101 102 103 104 105 \
      [--squad_file=../shared/data/squad/xquad/xquad.en.json] \
      [--calibration_questions=100] [--verify_questions=8] \
      [--variants=int8,dynamic,onnx] [--attention_mask=original] [--output_json=FILE]

For each seed, as a new user would meet it: the released config
(`checkpoints/demo/en_uncased`, full size) with seeded random values in the released
layout and no `cls/squad/*`, so a fresh seeded head (`model.ensure_squad_head`, same
seed); the export's own steps on the first `--calibration_questions` XQuAD questions
(NoNorm equalization, then the int8 conversions of `tflite_export` / `onnx_export`), and
the fidelity gate of the export (`checks.check_int8` bounds) on the windows of the next
`--verify_questions` questions: logit SQNR per output against Model Garden's encoder +
head, start/end argmax agreement. Prints one Markdown row per seed and variant and
whether each holds the gate (`verify.TOLERANCES["squad_int8"]`). Not a test: minutes
per seed (the int8 conversions calibrate on every window).
"""

import argparse
import json
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SQUAD = os.path.join(os.path.dirname(REPO), "shared", "data", "squad", "xquad",
                             "xquad.en.json")
VARIANTS = ("int8", "nnapi", "dynamic", "onnx")


def _convert(variant, weights, cal, eq, tmp):
  """The variant's runner(batches) -> logits, converted as the export converts it."""
  from hub_export.squad import onnx_export  # pylint: disable=g-import-not-at-top
  from hub_export.squad import tflite_analysis  # pylint: disable=g-import-not-at-top
  from hub_export.squad import tflite_export  # pylint: disable=g-import-not-at-top
  if variant == "onnx":
    src, out = os.path.join(tmp, "src.onnx"), os.path.join(tmp, "int8.onnx")
    onnx_export.quantizable_source(weights, method=onnx_export.INT8_METHOD,
                                   equalization=eq, seq_length=384, path=src)
    onnx_export.quantize(src, out, method=onnx_export.INT8_METHOD, calibration=cal)
    sess = onnx_export.session(out)
    return lambda batches: onnx_export.run(sess, batches)
  if variant == "dynamic":
    content = tflite_export.convert_dynamic(weights)
  else:
    content = tflite_export.convert_int8(weights, cal, nnapi=variant == "nnapi",
                                         equalization=eq)
  return lambda batches: tflite_analysis.run(content, batches)


def main(argv) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--seeds", type=int, nargs="+", required=True)
  parser.add_argument("--squad_file", default=DEFAULT_SQUAD)
  parser.add_argument("--calibration_questions", type=int, default=100)
  parser.add_argument("--verify_questions", type=int, default=8)
  parser.add_argument("--variants", default="int8,dynamic,onnx",
                      help=f"comma-separated, of {','.join(VARIANTS)}")
  parser.add_argument("--attention_mask", default="original")
  parser.add_argument("--output_json", default=None)
  args = parser.parse_args(argv[1:])
  variants = args.variants.split(",")
  unknown = sorted(set(variants) - set(VARIANTS))
  if unknown:
    print(f"error: --variants has {unknown}; choose from {list(VARIANTS)}", file=sys.stderr)
    return 1
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  sys.path.insert(0, REPO)
  # pylint: disable=g-import-not-at-top
  import numpy as np
  from checkpoints import converter
  from checkpoints import tf1_writer
  from checkpoints.config import MobileBertConfig
  from hub_export import verify
  from hub_export.squad import equalization as equalization_lib
  from hub_export.squad import features as features_lib
  from hub_export.squad import forward
  from hub_export.squad import model as qa_model
  # pylint: enable=g-import-not-at-top
  bound = verify.TOLERANCES["squad_int8"]
  demo = tf1_writer.DEMO_VARIANTS["en_uncased"]
  with open(os.path.join(demo, "bert_config.json")) as f:
    config_dict = json.load(f)
  vocab = os.path.join(demo, "vocab.txt")
  examples = features_lib.read_squad_json(
      args.squad_file, limit=args.calibration_questions + args.verify_questions)
  featurizer = features_lib.Featurizer(vocab, do_lower_case=True, max_seq_length=384,
                                       doc_stride=128, max_query_length=64)
  cal = list(features_lib.iter_batches(featurizer.features(
      examples[:args.calibration_questions])))
  ver = list(features_lib.iter_batches(featurizer.features(
      examples[args.calibration_questions:])))
  print(f"full-size en_uncased config, attention mask {args.attention_mask}; "
        f"{len(cal)} calibration windows, {len(ver)} verification windows; gate: logit "
        f"SQNR >= {bound['min_sqnr_db']:g} dB (target {bound['target_sqnr_db']:g} dB)\n")
  print("| seed | variant | SQNR start dB | SQNR end dB | argmax agree start/end | gate |")
  print("|---|---|---|---|---|---|")
  results = []
  for seed in args.seeds:
    with tempfile.TemporaryDirectory() as tmp:
      start = time.time()
      prefix = tf1_writer.write_checkpoint_dir(os.path.join(tmp, "ckpt"), config_dict,
                                               vocab, seed=seed)
      model, _ = converter.load_model(prefix, MobileBertConfig.from_dict(config_dict),
                                      with_mlm=False, attention_mask=args.attention_mask)
      qa_model.ensure_squad_head(model, seed=seed, log=lambda _: None)
      ref = qa_model.reference_outputs(model, ver)
      weights = forward.QaWeights.from_model(model)
      eq = equalization_lib.calibrate_equalization(weights, cal)
      for variant in variants:
        got = _convert(variant, weights, cal, eq, tmp)(ver)
        sq = {k: verify.sqnr_db(got[k], ref[k]) for k in ref}
        agree = {k: float(np.mean(np.argmax(got[k], 1) == np.argmax(ref[k], 1)))
                 for k in ref}
        ok = min(sq.values()) >= bound["min_sqnr_db"]
        results.append({"seed": seed, "variant": variant, "sqnr_db": sq,
                        "argmax_agreement": agree, "gate": ok})
        print(f"| {seed} | {variant} | {sq['start_logits']:.1f} | {sq['end_logits']:.1f} | "
              f"{agree['start_logits']:.2f}/{agree['end_logits']:.2f} | "
              f"{'holds' if ok else 'FAILS'} |", flush=True)
      print(f"<!-- seed {seed}: {time.time() - start:.0f} s -->", flush=True)
  held = sum(r["gate"] for r in results)
  print(f"\n{held} of {len(results)} (seed, variant) pairs hold the gate")
  if args.output_json:
    with open(args.output_json, "w", encoding="utf-8") as f:
      json.dump(results, f, indent=1, default=float)
  return 0 if held == len(results) else 2


if __name__ == "__main__":
  sys.exit(main(sys.argv))
