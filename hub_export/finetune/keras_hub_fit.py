"""The XNLI recipe with keras-hub's `compile` + `fit`, on any Keras 3 backend.

`python -m hub_export.finetune --engine=keras_hub ...` trains the bundle's `keras_hub/`
preset (`MobileBertTextClassifier` from `TextClassifier.from_preset(..., num_classes=3)`)
with the recipe's data, order, schedule and evaluation, on the backend `KERAS_BACKEND`
names (TensorFlow, JAX or PyTorch):

* the same training pairs and example order as `trainer` (`data.example_order`: epoch
  permutations seeded by `--seed`), in `--batch_size` batches, `fit(shuffle=False)`;
* AdamW (beta 0.9 / 0.999, epsilon 1e-6, decoupled weight decay `--weight_decay_rate`,
  none on biases and norm parameters), global-norm clipping at 1.0, learning rate with
  linear warm-up over `--warmup_proportion` of the steps then linear decay to 0, as the
  original BERT/MobileBERT fine-tuning (`trainer.make_optimizer`);
* the per-language table of `results` (XNLI dev or test, accuracy and macro-F1, JSON,
  Markdown, plot) in `--model_dir/eval/`;
* with `--export_dir`, the fine-tuned classifier as a keras-hub preset
  (`save_to_preset`: reload with `keras_hub.models.TextClassifier.from_preset`).

Not offered with this engine (refused with the reason): resuming a killed run and
`--distribution_strategy` other than one_device (both belong to `trainer`'s custom loop).
"""

import json
import os
from typing import Callable

import numpy as np

import publish
from hub_export.finetune import data
from hub_export.finetune import results
from hub_export.finetune.config import FinetuneConfig, FinetuneError

PRESET_DIR = "keras_hub"  # the bundle's preset, written by export_main.py --keras_hub
NO_WEIGHT_DECAY = ("bias", "gamma", "beta")  # Keras variable names of biases and norms


def check(cfg: FinetuneConfig) -> None:
  """What `--engine=keras_hub` needs beyond `cfg.check()`.

  Raises:
    FinetuneError: no `keras_hub/` preset in the bundle, a distribution strategy other
      than one_device, or a `--model_dir` holding an earlier run.
  """
  problems = []
  preset = os.path.join(cfg.bundle_dir, PRESET_DIR)
  if not os.path.isfile(os.path.join(preset, "config.json")):
    problems.append(f"--engine=keras_hub needs the bundle's keras-hub preset {preset}/ "
                    "(config.json missing); export the bundle with export_main.py "
                    "--keras_hub")
  if cfg.distribution_strategy != "one_device":
    problems.append(f"--distribution_strategy={cfg.distribution_strategy} is offered by "
                    "--engine=saved_model only; --engine=keras_hub trains on one device")
  if os.path.isdir(cfg.model_dir) and os.listdir(cfg.model_dir):
    problems.append(f"--model_dir={cfg.model_dir} is not empty; --engine=keras_hub does "
                    "not resume runs (--engine=saved_model does): pass a new directory")
  if problems:
    raise FinetuneError("; ".join(problems))


def _schedule(keras, *, peak: float, total: int, warmup: int):
  """peak * step / warmup during warm-up, then linear decay to 0 at `total`."""

  class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):

    def __call__(self, step):
      step = keras.ops.cast(step, "float32")
      up = peak * step / max(warmup, 1)
      down = peak * keras.ops.maximum(0.0, (total - step) / max(total - warmup, 1))
      return keras.ops.where(step < warmup, up, down)

    def get_config(self):
      return {"peak": peak, "total": total, "warmup": warmup}

  return WarmupLinearDecay()


def run(cfg: FinetuneConfig, log: Callable[[str], None] = print) -> dict:
  """Fine-tunes, evaluates and (with `export_dir`) saves the keras-hub classifier.

  Returns:
    The evaluation table (`results.evaluate_with`), with "split", "step", "backend".

  Raises:
    FinetuneError: a bad setting (`cfg.check`, `check`).
    data.NliDataError, FileNotFoundError: a bad training or evaluation file.
    FileExistsError, publish.PublishError: `export_dir` exists or cannot be written.
  """
  cfg.check()
  check(cfg)
  # pylint: disable=g-import-not-at-top
  import keras
  import keras_hub
  import hub_export.keras_hub_preset  # noqa: F401  (registers the MobileBERT classes)
  # pylint: enable=g-import-not-at-top
  files = data.eval_files(languages=cfg.eval_languages, eval_dir=cfg.eval_dir,
                          split=cfg.eval_split, files=cfg.eval_files)
  train = data.load_examples(cfg.train_file, cfg.train_format, limit=cfg.max_train_examples,
                             tfds_data_dir=cfg.tfds_data_dir)
  num_steps = cfg.num_train_steps or max(1, int(len(train) * cfg.num_epochs) // cfg.batch_size)
  warmup = int(num_steps * cfg.warmup_proportion)
  order = data.example_order(len(train), seed=cfg.seed,
                             num_positions=num_steps * cfg.batch_size)
  log(f"keras-hub engine on the {keras.config.backend()} backend: {len(train)} pairs, "
      f"{num_steps} steps of {cfg.batch_size}")
  keras.utils.set_random_seed(cfg.seed)
  classifier = keras_hub.models.TextClassifier.from_preset(
      os.path.join(cfg.bundle_dir, PRESET_DIR), num_classes=len(data.LABELS),
      dropout=cfg.dropout_rate)
  classifier.preprocessor.sequence_length = cfg.seq_length
  optimizer = keras.optimizers.AdamW(
      learning_rate=_schedule(keras, peak=cfg.learning_rate, total=num_steps,
                              warmup=warmup),
      weight_decay=cfg.weight_decay_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-6,
      global_clipnorm=1.0)
  optimizer.exclude_from_weight_decay(var_names=list(NO_WEIGHT_DECAY))
  classifier.compile(optimizer=optimizer,
                     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                     metrics=["sparse_categorical_accuracy"])
  premises = [train.premises[i] for i in order]
  hypotheses = [train.hypotheses[i] for i in order]
  history = classifier.fit(x=(premises, hypotheses), y=train.labels[order],
                           batch_size=cfg.batch_size, epochs=1, shuffle=False,
                           verbose=2)
  log(f"Trained {num_steps} steps: loss {history.history['loss'][-1]:.4f}")

  def predict_logits(examples):
    return np.asarray(classifier.predict((list(examples.premises), list(examples.hypotheses)),
                                         batch_size=cfg.eval_batch_size, verbose=0))

  table = results.evaluate_with(predict_logits, files, max_examples=cfg.max_eval_examples,
                                tfds_data_dir=cfg.tfds_data_dir, log=log)
  table.update(split=cfg.eval_split, step=num_steps, backend=keras.config.backend())
  os.makedirs(cfg.model_dir, exist_ok=True)
  results.write_results(os.path.join(cfg.model_dir, "eval"), table)
  with open(os.path.join(cfg.model_dir, "run_config.json"), "w", encoding="utf-8") as f:
    json.dump({"engine": "keras_hub", "backend": keras.config.backend(),
               "num_train_steps": num_steps, "warmup_steps": warmup,
               "order_sha256": data.order_fingerprint(order), "seed": cfg.seed,
               "global_batch_size": cfg.batch_size, "seq_length": cfg.seq_length,
               "learning_rate": cfg.learning_rate,
               "bundle_dir": os.path.abspath(cfg.bundle_dir)}, f, indent=2)
  if cfg.export_dir:
    with publish.atomic_directory(cfg.export_dir) as work:
      classifier.save_to_preset(work)
    log(f"Saved the fine-tuned classifier preset to {cfg.export_dir}")
  return table
