r"""Fine-tunes an exported bundle on NLI: train on English, evaluate XNLI zero-shot, export.

  python -m hub_export.finetune --bundle_dir=out/mobilebert_multi_cased \
      --train_file=MNLI/train.tsv --eval_dir=xtreme/download/xnli --model_dir=out/xnli \
      --export_dir=out/xnli_classifier

An existing checkpoint in --model_dir is resumed (with the same data order). Outputs in
--model_dir: checkpoints, TensorBoard summaries (train/, eval/), run_config.json,
eval/results.json, eval/results.md, eval/accuracy.png; with --export_dir, the serving
classifier SavedModel (premise, hypothesis -> probabilities, label).
"""

import dataclasses
import os
import sys
from typing import Dict, Optional, Sequence

# TensorFlow's C++ INFO lines are noise for a CLI; a user's own setting wins. Set before
# anything imports TensorFlow.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import flags  # pylint: disable=g-import-not-at-top

import publish  # pylint: disable=g-import-not-at-top
from hub_export.finetune import config  # pylint: disable=g-import-not-at-top
from hub_export.finetune import data  # pylint: disable=g-import-not-at-top

# (flag name = FinetuneConfig field, absl kind, help). Defaults come from FinetuneConfig.
_FLAGS = (
    ("bundle_dir", "string", "An exported bundle (encoder/, preprocessor/)."),
    ("model_dir", "string", "Checkpoints, summaries and eval results; an existing "
     "checkpoint here is resumed."),
    ("train_file", "string", "GLUE MNLI train.tsv, an XTREME-format "
     "premise<TAB>hypothesis<TAB>label file, or a prepared TFDS split tfds:multi_nli/train."),
    ("train_format", "enum", "Format of --train_file; auto: detected from line 1."),
    ("max_train_examples", "integer", "Use only the first N training pairs."),
    ("eval_dir", "string", "Directory with XTREME {eval_split}-{lang}.tsv files, or tfds:xnli "
     "(a prepared TFDS xnli)."),
    ("tfds_data_dir", "string", "TFDS data directory for tfds: sources."),
    ("eval_files", "list", "lang=path,... explicit evaluation files (override --eval_dir per "
     "language)."),
    ("eval_languages", "list", "Languages to evaluate, in table order."),
    ("eval_split", "enum", "XTREME file prefix."),
    ("max_eval_examples", "integer", "Evaluate only the first N pairs per language."),
    ("seq_length", "integer", "Packed pair length."),
    ("batch_size", "integer", "Global training batch size."),
    ("eval_batch_size", "integer", "Global eval batch size."),
    ("learning_rate", "float", "Peak learning rate."),
    ("warmup_proportion", "float", "Fraction of steps with linear warm-up."),
    ("num_epochs", "float", "Training epochs (if --num_train_steps is unset)."),
    ("num_train_steps", "integer", "Total training steps (overrides --num_epochs)."),
    ("dropout_rate", "float", "Dropout before the head."),
    ("weight_decay_rate", "float", "AdamW weight decay."),
    ("seed", "integer", "Seed of the data order, head init and dropout."),
    ("distribution_strategy", "enum", "tf.distribute strategy; multi_worker_mirrored reads "
     "TF_CONFIG."),
    ("tpu", "string", "TPU name or address for --distribution_strategy=tpu."),
    ("log_every", "integer", "Progress and summaries every N steps."),
    ("checkpoint_every", "integer", "Checkpoint every N steps."),
    ("export_dir", "string", "Write the serving classifier SavedModel here (with "
     "--engine=keras_hub: the fine-tuned classifier's keras-hub preset)."),
    ("tflite", "boolean", "With --export_dir: also write classifier.tflite (float) and "
     "classifier_int8.tflite beside the SavedModel, tokenizer inside, each verified in "
     "LiteRT against it."),
    ("engine", "enum", "saved_model: train on encoder/ (tf.distribute, resumable); "
     "keras_hub: keras-hub compile + fit of the bundle's keras_hub/ preset on the "
     "KERAS_BACKEND (tensorflow, jax or torch)."),
)
_ENUMS = {"train_format": data.FORMATS, "eval_split": config.EVAL_SPLITS,
          "distribution_strategy": config.STRATEGIES, "engine": config.ENGINES}
_REQUIRED = ("bundle_dir", "model_dir", "train_file")


def _defaults() -> Dict[str, object]:
  return {f.name: f.default for f in dataclasses.fields(config.FinetuneConfig)
          if f.default is not dataclasses.MISSING}


def define_flags() -> flags.FlagValues:
  """The CLI's flags, one per `FinetuneConfig` field, in their own FlagValues.

  Their own FlagValues: importing this module never clashes with another binary's flags
  (export_main defines --export_dir and --seq_length too).
  """
  fv = flags.FlagValues()
  defaults = _defaults()
  for name, kind, help_text in _FLAGS:
    default = defaults.get(name)
    if kind == "enum":
      flags.DEFINE_enum(name, default, list(_ENUMS[name]), help_text, flag_values=fv)
    elif kind == "list":
      flags.DEFINE_list(name, list(default or ()), help_text, flag_values=fv)
    else:
      getattr(flags, f"DEFINE_{kind}")(name, default, help_text, flag_values=fv)
  for name in _REQUIRED:
    flags.mark_flag_as_required(name, flag_values=fv)
  return fv


def _parse_eval_files(items: Sequence[str]) -> Optional[Dict[str, str]]:
  """['lang=path', ...] -> {lang: path}, or None for no items.

  Raises:
    config.FinetuneError: an item that is not lang=path.
  """
  files = {}
  for item in items:
    lang, sep, path = item.partition("=")
    if not sep or not lang or not path:
      raise config.FinetuneError(f"--eval_files entry {item!r} is not lang=path")
    files[lang] = path
  return files or None


def config_from_argv(argv: Sequence[str]) -> config.FinetuneConfig:
  """Parses command-line arguments (argv[0] is the program) into a FinetuneConfig.

  Raises:
    flags.Error: unknown flags, bad values, or a required flag missing.
    config.FinetuneError: a malformed --eval_files entry.
  """
  fv = define_flags()
  fv(list(argv))
  values = {name: fv[name].value for name, _, _ in _FLAGS}
  values["eval_files"] = _parse_eval_files(values["eval_files"])
  values["eval_languages"] = tuple(values["eval_languages"])
  return config.FinetuneConfig(**values)


def run_main(argv: Sequence[str]) -> int:
  """The CLI: returns the process exit code (0 ok, 1 bad input, 2 usage).

  Errors are printed to stderr as `error: <message>`.
  """
  if any(a in ("--help", "-h", "--helpfull") for a in argv[1:]):
    print(__doc__)
    print(define_flags().get_help())
    return 0
  try:
    cfg = config_from_argv(argv)
  except (flags.Error, config.FinetuneError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  try:
    cfg.check()  # trainer.run checks again; here bad settings fail before TensorFlow loads.
    log = lambda line: print(line, flush=True)  # pylint: disable=unnecessary-lambda-assignment
    if cfg.engine == "keras_hub":
      from hub_export.finetune import keras_hub_fit  # pylint: disable=g-import-not-at-top
      keras_hub_fit.run(cfg, log=log)
    else:
      from hub_export.finetune import trainer  # pylint: disable=g-import-not-at-top
      trainer.run(cfg, log=log)
  except (ValueError, FileNotFoundError, FileExistsError, publish.PublishError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  return 0
