r"""Exports a MobileBERT checkpoint as a verified TF-Hub bundle.

  python export_main.py --checkpoint_dir=uncased_L-24_H-128_B-512_A-4_F-4_OPT \
      --export_dir=out/mobilebert_en_uncased
  python export_main.py --demo --export_dir=out/demo   # built-in untrained demo

The bundle layout and API are those of ../shared/HUB_API.md: encoder/, preprocessor/,
checkpoint/, manifest.json, README.md. This binary only parses flags into a
`hub_export.pipeline.ExportConfig`; the work is done by `hub_export.pipeline.run`.
TFLite and ONNX code is imported only with --task=squad.
"""

import os
import sys

# TensorFlow's C++ INFO lines are noise for a CLI; a user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top
from absl import logging  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS
flags.DEFINE_string("export_dir", None, "Where to write the bundle (must not exist "
                    "unless --overwrite).")
flags.DEFINE_string("checkpoint_dir", None, "A directory as Google ships MobileBERT: "
                    "bert_config.json, vocab.txt and one checkpoint (*.index + *.data-*).")
flags.DEFINE_string("bert_config_file", None, "Overrides CHECKPOINT_DIR/bert_config.json.")
flags.DEFINE_string("checkpoint", None, "Checkpoint prefix (TF1 name-based, or this tool's "
                    "TF2 bundle checkpoint/); overrides the one found in --checkpoint_dir.")
flags.DEFINE_string("vocab_file", None, "Overrides CHECKPOINT_DIR/vocab.txt.")
flags.DEFINE_string("demo", None, "Export a seeded, UNTRAINED demo checkpoint in the "
                    "released layout: en_uncased (the default of a bare --demo) or "
                    "multi_cased.")
flags.DEFINE_integer("demo_seed", 0, "Seed of the demo weights.")
flags.DEFINE_boolean("do_lower_case", None, "Tokenizer casing; default: decided from the "
                     "vocab. A value contradicting the vocab is an error unless "
                     "--force_do_lower_case.")
flags.DEFINE_boolean("force_do_lower_case", False, "Accept --do_lower_case against the "
                     "vocab's evidence.")
flags.DEFINE_integer("seq_length", 128, "The preprocessor's default output length.")
flags.DEFINE_boolean("overwrite", False, "Replace an existing bundle at --export_dir, "
                     "only after the new one verified.")
flags.DEFINE_boolean("with_mlm", True, "Export the MLM head (encoder.mlm and the mlm "
                     "signature); --nowith_mlm for fine-tuned checkpoints without one.")
flags.DEFINE_boolean("with_text_signature", False, "Also write serving/: one SavedModel "
                     "from raw text to pooled_output (preprocessor + encoder), for TF "
                     "Serving without client-side tokenization.")
flags.DEFINE_boolean("archive", False, "Also write a .tar.gz of each SavedModel beside it "
                     "(encoder.tar.gz, ...), the layout TF Hub's compressed hosting serves.")
flags.DEFINE_boolean("preprocessor_tflite", False, "Also write preprocessor.tflite: the "
                     "preprocessor for the TFLite interpreter (builtins + tensorflow-text's "
                     "TFLite ops, no Flex), checked against the preprocessor SavedModel.")
flags.DEFINE_enum("attention_mask", "original", ["original", "model_garden"],
                  "How the encoder masks padded keys. original: as google-research "
                  "mobilebert/modeling.py (masked scores set to -6, softmax over every key; "
                  "outputs depend on the amount of padding). model_garden: zero weight on "
                  "padded keys, as Model Garden's MobileBERTEncoder and the published TF-Hub "
                  "modules.")
flags.DEFINE_enum("task", "encoder", ["encoder", "squad"], "squad: also write squad/, "
                  "the SQuAD 1.1 mobile package (SavedModel, TFLite float/GPU/int8/NNAPI, "
                  "ONNX float/int8), each verified against the float model.")
flags.DEFINE_string("squad_file", None, "--task=squad: a SQuAD v1.1 JSON; its first "
                    "--squad_calibration_questions questions calibrate the int8 models.")
flags.DEFINE_integer("squad_calibration_questions", 100, "--task=squad: int8 calibration "
                     "set size (MLPerf Mobile: the first 100 questions).")
flags.DEFINE_integer("squad_seq_length", 384, "--task=squad: model length (MLPerf: 384).")
flags.DEFINE_boolean("keras_hub", False, "Also write keras_hub/: a keras-hub preset "
                     "(MobileBertBackbone, exact tokenizer, preprocessor, masked LM) for Keras "
                     "3 on the TensorFlow, JAX and PyTorch backends, checked against encoder/.")
flags.mark_flag_as_required("export_dir")


def _config():
  from hub_export import pipeline  # pylint: disable=g-import-not-at-top
  options = pipeline.BundleOptions(
      do_lower_case=FLAGS.do_lower_case, force_do_lower_case=FLAGS.force_do_lower_case,
      seq_length=FLAGS.seq_length, overwrite=FLAGS.overwrite, with_mlm=FLAGS.with_mlm,
      with_text_signature=FLAGS.with_text_signature, archive=FLAGS.archive,
      preprocessor_tflite=FLAGS.preprocessor_tflite, attention_mask=FLAGS.attention_mask,
      tasks=_tasks())
  return pipeline.ExportConfig(
      export_dir=FLAGS.export_dir, checkpoint_dir=FLAGS.checkpoint_dir,
      bert_config_file=FLAGS.bert_config_file, checkpoint=FLAGS.checkpoint,
      vocab_file=FLAGS.vocab_file, demo=FLAGS.demo, demo_seed=FLAGS.demo_seed,
      options=options)


def _tasks() -> tuple:
  """The downstream tasks of --task and --keras_hub; their options modules are light."""
  tasks = []
  if FLAGS.task == "squad":
    from hub_export.squad import options as squad_options  # pylint: disable=g-import-not-at-top
    tasks.append(squad_options.SquadOptions(
        squad_file=FLAGS.squad_file, calibration_questions=FLAGS.squad_calibration_questions,
        seq_length=FLAGS.squad_seq_length))
  if FLAGS.keras_hub:
    from hub_export.keras_hub_preset import options as keras_hub_options  # pylint: disable=g-import-not-at-top
    tasks.append(keras_hub_options.KerasHubOptions(sequence_length=FLAGS.seq_length))
  return tuple(tasks)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  if not FLAGS["verbosity"].present:  # absl's default INFO floods with TF save details.
    logging.set_verbosity(logging.WARNING)
  from hub_export import pipeline  # pylint: disable=g-import-not-at-top
  try:
    result = pipeline.run(_config())
  except (pipeline.ExportError, ValueError, FileNotFoundError, FileExistsError,
          OSError) as e:
    pipeline.print_error(e)
    return 1
  enc = result.manifest["verification"]["encoder"]
  worst = max(enc["outputs"].items(), key=lambda kv: kv[1]["max_rel"])
  print(f"\nBundle: {result.export_dir}")
  print(f"Parity (reloaded SavedModel vs converted model): {len(enc['outputs'])} outputs, "
        f"worst {worst[0]} max abs {worst[1]['max_abs']:.2e}, max rel "
        f"{worst[1]['max_rel']:.2e} (tolerance {enc['tolerance']:g})")
  if not result.manifest["trained"]:
    print("WARNING: untrained demo weights; the outputs are meaningless.")
  print("Load it with:\n" + pipeline.loading_snippet(result.export_dir))
  return 0


def expand_bare_demo(argv):
  """`--demo` alone means `--demo=en_uncased` (absl string flags need a value)."""
  return [("--demo=en_uncased" if a == "--demo" else a) for a in argv]


def run_main(argv=None):
  """Entry point (also for tests): absl parsing, then `main`; returns the exit code."""
  argv = expand_bare_demo(list(sys.argv if argv is None else argv))
  FLAGS.unparse_flags()  # A second run in one process must not inherit the first's flags.
  try:
    app.run(lambda a: sys.exit(main(a)), argv=argv)
  except SystemExit as e:
    return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
  return 0


if __name__ == "__main__":
  sys.exit(run_main())
