"""The settings of a fine-tuning run: a frozen, checked `FinetuneConfig`.

This module needs neither TensorFlow nor the bundle's code, so the command line can
parse and check its flags before anything heavy is imported.
"""

import dataclasses
import json
import os
from typing import Dict, Optional, Sequence

from hub_export import bundle_check
from hub_export.finetune import data

STRATEGIES = ("one_device", "mirrored", "multi_worker_mirrored", "tpu")
# Written into the exported classifier: the fine-tuning run it came from (`export_record`).
EXPORT_RECORD = "fine_tuning.json"
EVAL_SPLITS = ("dev", "test")
# How the classifier is trained: `trainer` on encoder/, or `keras_hub_fit` on keras_hub/.
ENGINES = ("saved_model", "keras_hub")


class FinetuneError(ValueError):
  """Bad or contradictory settings; the message names the values and the fix."""


def export_record(export_dir: str) -> Optional[dict]:
  """The record of a finished classifier export at `export_dir`, or None.

  `classifier.export_classifier` writes `EXPORT_RECORD` (JSON: `model_dir`, absolute;
  `checkpoint`, the checkpoint's file prefix, e.g. "ckpt-12"; `bundle_dir`;
  `seq_length`) into the directory it publishes, so a rerun of a run that was killed
  after its export landed can tell its own export from someone else's directory.
  """
  try:
    with open(os.path.join(export_dir, EXPORT_RECORD), encoding="utf-8") as f:
      record = json.load(f)
  except (OSError, ValueError):
    return None
  return record if isinstance(record, dict) else None


def exported_by(export_dir: str, model_dir: str) -> bool:
  """Whether `export_dir` holds a classifier exported from a checkpoint of `model_dir`."""
  record = export_record(export_dir)
  return bool(record) and record.get("model_dir") == os.path.abspath(model_dir)


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
  """Everything a fine-tuning run needs (the CLI flags, typed).

  Attributes:
    bundle_dir: an exported bundle (encoder/ and preprocessor/).
    model_dir: checkpoints, summaries, run_config.json and eval results go here.
    train_file: GLUE MNLI train.tsv, an XTREME-format file, or a prepared TFDS split
      `tfds:multi_nli/train` (see `hub_export.finetune.data`).
    train_format: 'auto', 'glue_mnli' or 'xtreme'.
    max_train_examples: use only the first N training pairs (None: all).
    eval_dir: directory with XTREME `{eval_split}-{lang}.tsv` files, or `tfds:xnli`.
    eval_files: explicit {lang: path}, overriding `eval_dir` per language.
    eval_languages: languages to evaluate, in table order (default the 15 of XNLI).
    eval_split: 'dev' or 'test'.
    max_eval_examples: evaluate the first N pairs per language (None: all).
    seq_length: packed length S of a pair, [CLS] a [SEP] b [SEP] (3..512).
    batch_size: global training batch size (divisible by the number of replicas).
    eval_batch_size: global evaluation batch size.
    learning_rate: peak learning rate, reached after warm-up.
    warmup_proportion: fraction of the training steps with linear warm-up.
    num_epochs: passes over the training data (used when num_train_steps is None).
    num_train_steps: total optimizer steps (overrides num_epochs).
    dropout_rate: dropout on pooled_output before the dense head.
    weight_decay_rate: AdamW decoupled weight decay.
    seed: seeds the data order, the head initializer and dropout.
    distribution_strategy: one of `STRATEGIES`.
    tpu: TPU address/name for 'tpu' ('' = the local or environment TPU).
    log_every: print progress and write train summaries every N steps.
    checkpoint_every: save a checkpoint every N steps (and at the end).
    export_dir: write the serving classifier SavedModel here (must not exist, unless
      it is this `model_dir`'s own export: a rerun after the export landed keeps it).
    tfds_data_dir: TFDS data directory for `tfds:` sources (None: TFDS's default).
    engine: one of `ENGINES`: "saved_model" (`trainer`: the bundle's encoder SavedModel,
      tf.distribute, resumable) or "keras_hub" (`keras_hub_fit`: the bundle's keras-hub
      preset, `compile` + `fit` on the KERAS_BACKEND).
    tflite: with `export_dir` (engine "saved_model"), also write the on-device
      `classifier.tflite` (float) and `classifier_int8.tflite`, tokenizer inside, beside
      the SavedModel (`hub_export.finetune.mobile`).
  """
  bundle_dir: str
  model_dir: str
  train_file: str
  train_format: str = "auto"
  max_train_examples: Optional[int] = None
  eval_dir: Optional[str] = None
  eval_files: Optional[Dict[str, str]] = None
  eval_languages: Sequence[str] = data.XNLI_LANGUAGES
  eval_split: str = "dev"
  max_eval_examples: Optional[int] = None
  seq_length: int = 128
  batch_size: int = 32
  eval_batch_size: int = 64
  learning_rate: float = 5e-5
  warmup_proportion: float = 0.1
  num_epochs: Optional[float] = 2.0
  num_train_steps: Optional[int] = None
  dropout_rate: float = 0.1
  weight_decay_rate: float = 0.01
  seed: int = 0
  distribution_strategy: str = "one_device"
  tpu: str = ""
  log_every: int = 100
  checkpoint_every: int = 1000
  export_dir: Optional[str] = None
  tfds_data_dir: Optional[str] = None
  engine: str = "saved_model"
  tflite: bool = True

  def check(self) -> None:
    """Checks every value, then raises once for all the problems found.

    `bundle_dir` must be a complete bundle of this tool (`bundle_check.check_bundle`: a
    manifest.json of this tool, complete encoder/ and preprocessor/ SavedModels).

    Raises:
      FinetuneError: any bad or contradictory value; the message names each flag, its
        value and the valid range, joined by "; " (one line).
    """
    problems = []
    try:
      bundle_check.check_bundle(self.bundle_dir, flag="--bundle_dir")
    except bundle_check.BundleError as e:
      problems.append(str(e))
    if self.train_format not in data.FORMATS:
      problems.append(f"--train_format={self.train_format} is not one of "
                      f"{list(data.FORMATS)}")
    if not 3 <= self.seq_length <= 512:
      problems.append(f"--seq_length={self.seq_length} must be in [3, 512] (a pair needs "
                      "[CLS] and two [SEP])")
    for name in ("batch_size", "eval_batch_size", "log_every", "checkpoint_every"):
      if getattr(self, name) < 1:
        problems.append(f"--{name}={getattr(self, name)} must be >= 1")
    if not self.learning_rate > 0:
      problems.append(f"--learning_rate={self.learning_rate} must be > 0")
    if not 0 <= self.warmup_proportion < 1:
      problems.append(f"--warmup_proportion={self.warmup_proportion} must be in [0, 1)")
    if not 0 <= self.dropout_rate < 1:
      problems.append(f"--dropout_rate={self.dropout_rate} must be in [0, 1)")
    if self.num_train_steps is None and (self.num_epochs is None or not self.num_epochs > 0):
      problems.append("pass --num_epochs > 0 or --num_train_steps >= 1")
    if self.num_train_steps is not None and self.num_train_steps < 1:
      problems.append(f"--num_train_steps={self.num_train_steps} must be >= 1")
    if self.distribution_strategy not in STRATEGIES:
      problems.append(f"--distribution_strategy={self.distribution_strategy} is not one of "
                      f"{list(STRATEGIES)}")
    if self.engine not in ENGINES:
      problems.append(f"--engine={self.engine} is not one of {list(ENGINES)}")
    if self.eval_split not in EVAL_SPLITS:
      problems.append(f"--eval_split={self.eval_split} must be 'dev' or 'test'")
    for name in ("max_train_examples", "max_eval_examples"):
      value = getattr(self, name)
      if value is not None and value < 1:
        problems.append(f"--{name}={value} must be >= 1 (or unset for all)")
    if (self.export_dir and os.path.lexists(self.export_dir)
        and not exported_by(self.export_dir, self.model_dir)):
      problems.append(f"--export_dir={self.export_dir} already exists (and is not this "
                      f"--model_dir's export); pass a new directory")
    if problems:
      raise FinetuneError("; ".join(problems))
