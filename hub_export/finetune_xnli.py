r"""Fine-tunes an exported bundle on NLI: train on English, evaluate XNLI zero-shot, export.

  python -m hub_export.finetune_xnli --bundle_dir=out/mobilebert_multi_cased \
      --train_file=MNLI/train.tsv --eval_dir=xtreme/download/xnli --model_dir=out/xnli \
      --export_dir=out/xnli_classifier

Only the bundle's exported modules are used (`../shared/HUB_API.md`): the preprocessor
(`tokenize` + `bert_pack_inputs`, sentence pairs) runs in `tf.data` outside the
distribution strategy, the encoder is a `hub.KerasLayer(..., trainable=True)` under the
strategy, with a dropout + dense head on `pooled_output` (BERT's classifier head:
google-research/bert `run_classifier.py` `create_model`, dropout 0.1, TruncatedNormal(0.02)
kernel). Optimizer: tf-models-official's `AdamWeightDecay`, "Adam with weight decay that
exactly matches the original BERT" (weight decay 0.01, epsilon 1e-6, gradient global-norm
clip 1.0), with linear warm-up then linear decay to 0 (BERT `optimization.py`); MobileBERT's
NoNorm scales and offsets (`.../norm/gamma|beta` in the exported encoder, `FakeLayerNorm`
in the original) and biases get no weight decay, as in google-research `mobilebert/
optimization.py`.

Resume: the model directory holds tf.train checkpoints (model, optimizer, step) and
`run_config.json`. Step s reads training positions [s*B, (s+1)*B) of a fixed order
(`nli_data.example_order`: one seeded permutation per epoch), so a resumed run continues at
the checkpointed step with exactly the data that step would have read: nothing is
repeated, nothing skipped. Resuming with settings that change the order (data, seed, batch
size, steps) is an error that names them.

Outputs in --model_dir: checkpoints, TensorBoard summaries (`train/`, `eval/`),
`run_config.json`, `eval/results.json`, `eval/results.md`, `eval/accuracy.png`; with
--export_dir, the serving classifier SavedModel (`export_classifier`).
"""

import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Callable, Dict, Optional, Sequence

# TensorFlow's C++ INFO lines are noise for a CLI; a user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top
import tensorflow_hub as hub  # pylint: disable=g-import-not-at-top
# Registers the preprocessor's ops.
import tensorflow_text  # noqa: F401  # pylint: disable=unused-import,g-import-not-at-top
import tf_keras  # pylint: disable=g-import-not-at-top

from hub_export import nli_data  # pylint: disable=g-import-not-at-top

STRATEGIES = ("one_device", "mirrored", "multi_worker_mirrored", "tpu")
# Not decayed (regex search in the variable name): google-research mobilebert/optimization.py
# excludes "LayerNorm", "layer_norm", "bias", "FakeLayerNorm"; the exported encoder names
# the NoNorm/LayerNorm parameters `.../norm/gamma|beta` and `embedding_norm/gamma|beta`.
NO_WEIGHT_DECAY = ("LayerNorm", "layer_norm", "bias", r"norm/gamma", r"norm/beta")
SERVING_OUTPUTS = ("probabilities", "label")
EXPORT_TOLERANCE = 1e-5  # max |exported - in-memory| probability.
_RUN_CONFIG = "run_config.json"
_RESUME_KEYS = ("train_data_sha256", "train_format", "num_train_examples", "seed",
                "global_batch_size", "num_train_steps", "seq_length", "order_sha256")


class FinetuneError(ValueError):
  """Bad or contradictory settings; the message names the values and the fix."""


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
  """Everything a fine-tuning run needs (the CLI flags, typed).

  Attributes:
    bundle_dir: an exported bundle (encoder/ and preprocessor/).
    model_dir: checkpoints, summaries, run_config.json and eval results go here.
    train_file: GLUE MNLI train.tsv, an XTREME-format file, or a prepared TFDS split
      `tfds:multi_nli/train` (see `nli_data`).
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
    export_dir: write the serving classifier SavedModel here (must not exist).
    tfds_data_dir: TFDS data directory for `tfds:` sources (None: TFDS's default).
  """
  bundle_dir: str
  model_dir: str
  train_file: str
  train_format: str = "auto"
  max_train_examples: Optional[int] = None
  eval_dir: Optional[str] = None
  eval_files: Optional[Dict[str, str]] = None
  eval_languages: Sequence[str] = nli_data.XNLI_LANGUAGES
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

  def check(self) -> None:
    """Raises FinetuneError naming any bad or contradictory value."""
    problems = []
    for name in ("encoder", "preprocessor"):
      if not os.path.isfile(os.path.join(self.bundle_dir, name, "saved_model.pb")):
        problems.append(f"--bundle_dir={self.bundle_dir} has no {name}/saved_model.pb; pass "
                        "a bundle written by export_main.py")
    if self.train_format not in nli_data.FORMATS:
      problems.append(f"--train_format={self.train_format} is not one of "
                      f"{list(nli_data.FORMATS)}")
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
    if self.eval_split not in ("dev", "test"):
      problems.append(f"--eval_split={self.eval_split} must be 'dev' or 'test'")
    for name in ("max_train_examples", "max_eval_examples"):
      value = getattr(self, name)
      if value is not None and value < 1:
        problems.append(f"--{name}={value} must be >= 1 (or unset for all)")
    if self.export_dir and os.path.lexists(self.export_dir):
      problems.append(f"--export_dir={self.export_dir} already exists; pass a new directory")
    if problems:
      raise FinetuneError("; ".join(problems))


@dataclasses.dataclass
class FinetuneResult:
  """What `run` produced. `model` is the in-memory classifier (logits float32 [B, 3])."""
  step: int
  results: Optional[dict]
  export_dir: Optional[str]
  model: tf_keras.Model
  train_log: list


def make_strategy(name: str, tpu: str = "") -> tf.distribute.Strategy:
  """A `tf.distribute` strategy by name.

  one_device: the first GPU, else the CPU. mirrored: all GPUs, or, without GPUs, all
  logical CPU devices (configure them with `tf.config.set_logical_device_configuration`
  before TensorFlow initializes). multi_worker_mirrored: the workers of `TF_CONFIG` (one
  worker without it). tpu: `TPUClusterResolver(tpu=tpu)`, connected and initialized.

  Raises:
    FinetuneError: unknown name.
  """
  if name == "one_device":
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
  if name == "mirrored":
    if tf.config.list_logical_devices("GPU"):
      return tf.distribute.MirroredStrategy()
    return tf.distribute.MirroredStrategy(
        [d.name for d in tf.config.list_logical_devices("CPU")])
  if name == "multi_worker_mirrored":
    return tf.distribute.MultiWorkerMirroredStrategy()
  if name == "tpu":
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
  raise FinetuneError(f"distribution strategy {name!r} is not one of {list(STRATEGIES)}")


def load_preprocessor(bundle_dir: str):
  """The bundle's preprocessor SavedModel (load outside any strategy scope)."""
  return tf.saved_model.load(os.path.join(bundle_dir, "preprocessor"))


def pack_pairs(preprocessor, premises, hypotheses, seq_length: int) -> dict:
  """string [B], string [B] -> the encoder inputs, int32 [B, seq_length] each.

  `[CLS] premise [SEP] hypothesis [SEP]`, round-robin truncation (the preprocessor's
  `bert_pack_inputs`, HUB_API.md).
  """
  return preprocessor.bert_pack_inputs(
      [preprocessor.tokenize(premises), preprocessor.tokenize(hypotheses)],
      seq_length=tf.constant(seq_length, tf.int32))


def build_classifier(encoder, *, seq_length: int, dropout_rate: float = 0.1,
                     seed: int = 0) -> tf_keras.Model:
  """The classifier: encoder pooled_output -> dropout -> dense 3 logits.

  Args:
    encoder: the bundle's encoder/ directory or its loaded SavedModel object.
    seq_length: S of the int32 [B, S] inputs.
    dropout_rate: dropout before the head.
    seed: seeds the head initializer (TruncatedNormal stddev 0.02, BERT's
      `initializer_range`).

  Returns:
    A tf_keras Model: dict `input_word_ids`, `input_mask`, `input_type_ids` int32 [B, S]
    -> logits float32 [B, 3] in the order of `nli_data.LABELS`. Its layer `encoder` is
    the `hub.KerasLayer(..., trainable=True)`.
  """
  inputs = {k: tf_keras.Input(shape=(seq_length,), dtype=tf.int32, name=k)
            for k in ("input_word_ids", "input_mask", "input_type_ids")}
  encoder_layer = hub.KerasLayer(encoder, trainable=True, name="encoder")
  pooled = encoder_layer(inputs)["pooled_output"]
  pooled = tf_keras.layers.Dropout(dropout_rate, seed=seed, name="dropout")(pooled)
  logits = tf_keras.layers.Dense(
      len(nli_data.LABELS), name="classifier",
      kernel_initializer=tf_keras.initializers.TruncatedNormal(stddev=0.02, seed=seed))(pooled)
  return tf_keras.Model(inputs, logits, name="nli_classifier")


def make_optimizer(*, learning_rate: float, num_train_steps: int, warmup_steps: int,
                   weight_decay_rate: float = 0.01):
  """AdamW as the original BERT/MobileBERT fine-tuning (see the module docstring).

  Learning rate: `learning_rate * step / warmup_steps` for step < warmup_steps, then
  linear decay to 0 at `num_train_steps` (tf_keras `PolynomialDecay(power=1)` wrapped in
  Model Garden's `WarmUp`).
  """
  from official.modeling.optimization import legacy_adamw  # pylint: disable=g-import-not-at-top
  from official.nlp import optimization  # pylint: disable=g-import-not-at-top
  schedule = tf_keras.optimizers.schedules.PolynomialDecay(
      initial_learning_rate=learning_rate, decay_steps=num_train_steps,
      end_learning_rate=0.0, power=1.0)
  if warmup_steps:
    schedule = optimization.WarmUp(initial_learning_rate=learning_rate,
                                   decay_schedule_fn=schedule, warmup_steps=warmup_steps)
  return legacy_adamw.AdamWeightDecay(
      learning_rate=schedule, weight_decay_rate=weight_decay_rate, beta_1=0.9, beta_2=0.999,
      epsilon=1e-6, exclude_from_weight_decay=list(NO_WEIGHT_DECAY), gradient_clip_norm=1.0)


def _pair_features(preprocessor, seq_length):
  def fn(premise, hypothesis):
    return pack_pairs(preprocessor, premise, hypothesis, seq_length)
  return fn


def train_dataset_fn(examples: nli_data.NliExamples, order: np.ndarray, *, preprocessor,
                     seq_length: int, global_batch_size: int, num_replicas: int):
  """A `dataset_fn(input_context)` for `distribute_datasets_from_function`.

  `order` is int64 [steps * global_batch_size], the example index of each position of the
  steps to run. Each step's global batch is split in order: input pipeline k takes its
  contiguous share, batched per replica. Elements: dict `features` (encoder inputs,
  int32 [b, S]), `label` int32 [b], `index` int64 [b] (into `examples`).
  """
  premises = tf.constant(examples.premises, tf.string)
  hypotheses = tf.constant(examples.hypotheses, tf.string)
  labels = tf.constant(examples.labels, tf.int32)
  steps = len(order) // global_batch_size
  by_step = order[:steps * global_batch_size].reshape(steps, global_batch_size)
  features = _pair_features(preprocessor, seq_length)

  def dataset_fn(input_context: tf.distribute.InputContext):
    per_replica = input_context.get_per_replica_batch_size(global_batch_size)
    local = per_replica * (num_replicas // input_context.num_input_pipelines)
    start = input_context.input_pipeline_id * local
    mine = by_step[:, start:start + local].reshape(-1)
    ds = tf.data.Dataset.from_tensor_slices(mine).batch(per_replica, drop_remainder=True)

    def gather(index):
      return {"features": features(tf.gather(premises, index), tf.gather(hypotheses, index)),
              "label": tf.gather(labels, index), "index": index}

    return ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE,
                  deterministic=True).prefetch(tf.data.AUTOTUNE)

  return dataset_fn


def eval_dataset(examples: nli_data.NliExamples, *, preprocessor, seq_length: int,
                 batch_size: int) -> tf.data.Dataset:
  """Encoder inputs of `examples` in file order, batched (last batch may be smaller)."""
  ds = tf.data.Dataset.from_tensor_slices((list(examples.premises), list(examples.hypotheses)))
  return ds.batch(batch_size).map(_pair_features(preprocessor, seq_length),
                                   num_parallel_calls=tf.data.AUTOTUNE,
                                   deterministic=True).prefetch(tf.data.AUTOTUNE)


def classification_scores(labels: np.ndarray, predictions: np.ndarray) -> dict:
  """Accuracy and macro-F1 over the classes of `nli_data.LABELS`.

  Macro-F1: the unweighted mean over the 3 classes of F1 = 2PR/(P+R), with F1 = 0 for a
  class whose precision and recall are both 0 or undefined (scikit-learn's
  `f1_score(average='macro', labels=[0, 1, 2], zero_division=0)`).
  """
  labels = np.asarray(labels)
  predictions = np.asarray(predictions)
  f1s = []
  for c in range(len(nli_data.LABELS)):
    tp = np.sum((predictions == c) & (labels == c))
    fp = np.sum((predictions == c) & (labels != c))
    fn = np.sum((predictions != c) & (labels == c))
    f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
  return {"examples": int(labels.size), "accuracy": float(np.mean(labels == predictions)),
          "macro_f1": float(np.mean(f1s))}


def write_results(out_dir: str, table: dict) -> Dict[str, str]:
  """Writes `results.json`, `results.md` and `accuracy.png` (matplotlib) into `out_dir`.

  Args:
    table: {"languages": [{"language", "examples", "accuracy", "macro_f1"}, ...],
      "average": {"accuracy", "macro_f1"}, ...}; accuracy and F1 in [0, 1].

  Returns:
    {"json": path, "markdown": path, "plot": path}.
  """
  os.makedirs(out_dir, exist_ok=True)
  paths = {"json": os.path.join(out_dir, "results.json"),
           "markdown": os.path.join(out_dir, "results.md"),
           "plot": os.path.join(out_dir, "accuracy.png")}
  with open(paths["json"], "w") as f:
    json.dump(table, f, indent=2)
    f.write("\n")
  with open(paths["markdown"], "w") as f:
    f.write(markdown_table(table))
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  langs = [row["language"] for row in table["languages"]]
  accs = [100 * row["accuracy"] for row in table["languages"]]
  fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(langs) + 2), 3.5))
  ax.bar(langs, accs, color="#4878a8")
  ax.axhline(100 * table["average"]["accuracy"], color="black", linewidth=1,
             label=f"average {100 * table['average']['accuracy']:.1f}")
  ax.axhline(100 / len(nli_data.LABELS), color="gray", linestyle=":", linewidth=1,
             label="chance 33.3")
  ax.set_ylim(0, 100)
  ax.set_ylabel("accuracy (%)")
  ax.set_title(f"XNLI {table.get('split', '')} accuracy, step {table.get('step', '?')}")
  ax.legend(loc="upper right", fontsize=8)
  fig.tight_layout()
  fig.savefig(paths["plot"], dpi=100)
  plt.close(fig)
  return paths


def markdown_table(table: dict) -> str:
  """The results table in Markdown: language, examples, accuracy and macro-F1 in %."""
  lines = ["| language | examples | accuracy (%) | macro-F1 (%) |", "|---|---:|---:|---:|"]
  for row in table["languages"]:
    lines.append(f"| {row['language']} | {row['examples']} | {100 * row['accuracy']:.2f} | "
                 f"{100 * row['macro_f1']:.2f} |")
  avg = table["average"]
  lines.append(f"| **average** | {avg['examples']} | {100 * avg['accuracy']:.2f} | "
               f"{100 * avg['macro_f1']:.2f} |")
  return "\n".join(lines) + "\n"


def evaluate(model: tf_keras.Model, files: Dict[str, str], *, preprocessor, seq_length: int,
             batch_size: int, max_examples: Optional[int] = None,
             tfds_data_dir: Optional[str] = None,
             log: Callable[[str], None] = print) -> dict:
  """Accuracy and macro-F1 per language and their unweighted average (XNLI's figure).

  Returns:
    {"languages": [{"language", "examples", "accuracy", "macro_f1"}], "average": {...}}.
  """
  rows = []
  for lang, path in files.items():
    examples = nli_data.load_examples(path, limit=max_examples, tfds_data_dir=tfds_data_dir)
    logits = model.predict(eval_dataset(examples, preprocessor=preprocessor,
                                        seq_length=seq_length, batch_size=batch_size),
                           verbose=0)
    if logits.shape != (len(examples), len(nli_data.LABELS)):
      raise RuntimeError(f"predicted logits of shape {logits.shape} for {len(examples)} "
                         f"pairs of {path}")
    row = {"language": lang, **classification_scores(examples.labels,
                                                     np.argmax(logits, axis=-1))}
    rows.append(row)
    log(f"  {lang}: {row['examples']} pairs, accuracy {100 * row['accuracy']:.2f}%, "
        f"macro-F1 {100 * row['macro_f1']:.2f}%")
  average = {"examples": int(sum(r["examples"] for r in rows)),
             "accuracy": float(np.mean([r["accuracy"] for r in rows])),
             "macro_f1": float(np.mean([r["macro_f1"] for r in rows]))}
  return {"languages": rows, "average": average}


def _is_chief(strategy) -> bool:
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.cluster_spec().as_dict():
    return True
  return resolver.task_type in ("chief", None) or (
      resolver.task_type == "worker" and resolver.task_id == 0 and
      "chief" not in resolver.cluster_spec().as_dict())


def _write_dir(model_dir: str, strategy) -> str:
  """Non-chief multi-worker replicas write checkpoints to a scratch copy (TF's pattern)."""
  if _is_chief(strategy):
    return model_dir
  resolver = strategy.cluster_resolver
  return os.path.join(model_dir, f".workertemp_{resolver.task_type}_{resolver.task_id}")


def _bundle_trained(bundle_dir: str) -> Optional[bool]:
  """manifest.json's `trained` (False for an untrained --demo bundle); None if unknown."""
  try:
    with open(os.path.join(bundle_dir, "manifest.json")) as f:
      trained = json.load(f).get("trained")
  except (OSError, ValueError):
    return None
  return trained if isinstance(trained, bool) else None


def _check_resume(path: str, run_config: dict) -> None:
  with open(path) as f:
    saved = json.load(f)
  clashes = [f"{k}: saved {saved.get(k)!r}, now {run_config[k]!r}"
             for k in _RESUME_KEYS if saved.get(k) != run_config[k]]
  if clashes:
    raise FinetuneError(
        f"cannot resume from {os.path.dirname(path)}: settings that decide the data order "
        f"changed ({'; '.join(clashes)}); resume with the original settings or pass a new "
        "--model_dir")


def run(cfg: FinetuneConfig, *, log: Callable[[str], None] = print,
        on_step: Optional[Callable[[int, np.ndarray], None]] = None) -> FinetuneResult:
  """Trains (resuming from --model_dir), evaluates every language, exports.

  Args:
    cfg: the settings (checked first).
    log: receives the progress lines.
    on_step: called after each step with (step number 1.., the example indices of that
      step's global batch, int64 [batch_size]); an exception from it stops the run as an
      interruption would (the last saved checkpoint stays).

  Returns:
    `FinetuneResult`.

  Raises:
    FinetuneError: bad settings, or a resume with settings that change the data order.
    nli_data.NliDataError, FileNotFoundError: bad data files.
  """
  cfg.check()
  eval_paths = None
  if cfg.eval_dir is not None or cfg.eval_files:
    eval_paths = nli_data.eval_files(languages=list(cfg.eval_languages), eval_dir=cfg.eval_dir,
                                     split=cfg.eval_split, files=cfg.eval_files)
  train = nli_data.load_examples(cfg.train_file, cfg.train_format, limit=cfg.max_train_examples,
                                 tfds_data_dir=cfg.tfds_data_dir)
  if cfg.train_file.startswith(nli_data.TFDS_PREFIX):
    fmt = "tfds"
  elif cfg.train_format == "auto":
    fmt = nli_data.detect_format(cfg.train_file)
  else:
    fmt = cfg.train_format
  log(f"Training data: {len(train)} pairs from {cfg.train_file} ({fmt})")
  trained = _bundle_trained(cfg.bundle_dir)
  if trained is False:
    log("NOTE: the bundle's weights are UNTRAINED (demo): expect accuracy near chance (33%).")

  tf_keras.utils.set_random_seed(cfg.seed)
  strategy = make_strategy(cfg.distribution_strategy, cfg.tpu)
  replicas = strategy.num_replicas_in_sync
  if cfg.batch_size % replicas:
    raise FinetuneError(f"--batch_size={cfg.batch_size} is not divisible by the "
                        f"{replicas} replicas of --distribution_strategy="
                        f"{cfg.distribution_strategy}; pass a multiple of {replicas}")
  num_steps = cfg.num_train_steps or max(1, int(len(train) * cfg.num_epochs) // cfg.batch_size)
  warmup_steps = int(num_steps * cfg.warmup_proportion)
  order = nli_data.example_order(len(train), seed=cfg.seed,
                                 num_positions=num_steps * cfg.batch_size)
  run_config = {
      "train_file": cfg.train_file, "train_data_sha256": nli_data.examples_sha256(train),
      "train_format": fmt,
      "num_train_examples": len(train), "seed": cfg.seed, "global_batch_size": cfg.batch_size,
      "num_train_steps": num_steps, "seq_length": cfg.seq_length,
      "order_sha256": nli_data.order_fingerprint(order), "warmup_steps": warmup_steps,
      "learning_rate": cfg.learning_rate, "bundle_dir": os.path.abspath(cfg.bundle_dir),
      "distribution_strategy": cfg.distribution_strategy, "replicas": replicas}

  preprocessor = load_preprocessor(cfg.bundle_dir)  # Outside the strategy scope.
  encoder_dir = os.path.join(cfg.bundle_dir, "encoder")
  with strategy.scope():
    model = build_classifier(encoder_dir, seq_length=cfg.seq_length,
                             dropout_rate=cfg.dropout_rate, seed=cfg.seed)
    optimizer = make_optimizer(learning_rate=cfg.learning_rate, num_train_steps=num_steps,
                               warmup_steps=warmup_steps,
                               weight_decay_rate=cfg.weight_decay_rate)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
  os.makedirs(cfg.model_dir, exist_ok=True)
  write_dir = _write_dir(cfg.model_dir, strategy)
  manager = tf.train.CheckpointManager(checkpoint, write_dir, max_to_keep=3)
  config_path = os.path.join(cfg.model_dir, _RUN_CONFIG)
  latest = tf.train.latest_checkpoint(cfg.model_dir)
  if latest:
    if os.path.isfile(config_path):
      _check_resume(config_path, run_config)
    checkpoint.restore(latest).assert_existing_objects_matched()
    log(f"Resumed from {latest} at step {int(optimizer.iterations.numpy())}")
  if _is_chief(strategy):
    with open(config_path, "w") as f:
      json.dump(run_config, f, indent=2)
  start_step = int(optimizer.iterations.numpy())
  if start_step > num_steps:
    raise FinetuneError(f"the checkpoint in {cfg.model_dir} is at step {start_step}, beyond "
                        f"num_train_steps={num_steps}")

  train_log = []
  if start_step < num_steps:
    log(f"Training steps {start_step + 1}..{num_steps} (batch {cfg.batch_size} over {replicas} "
        f"replica(s), {warmup_steps} warm-up steps, peak learning rate {cfg.learning_rate:g})")
    dataset = strategy.distribute_datasets_from_function(train_dataset_fn(
        train, order[start_step * cfg.batch_size:], preprocessor=preprocessor,
        seq_length=cfg.seq_length, global_batch_size=cfg.batch_size, num_replicas=replicas))
    train_log = _train_loop(cfg, strategy, model, optimizer, manager, iter(dataset),
                            start_step=start_step, num_steps=num_steps, log=log,
                            on_step=on_step)
  step = int(optimizer.iterations.numpy())

  results = None
  if eval_paths:
    log(f"Evaluating {len(eval_paths)} languages at step {step} ...")
    with strategy.scope():
      results = evaluate(model, eval_paths, preprocessor=preprocessor,
                         seq_length=cfg.seq_length, batch_size=cfg.eval_batch_size,
                         max_examples=cfg.max_eval_examples,
                         tfds_data_dir=cfg.tfds_data_dir, log=log)
    results.update(step=step, split=cfg.eval_split, bundle_dir=os.path.abspath(cfg.bundle_dir),
                   bundle_trained=trained, files=eval_paths,
                   max_eval_examples=cfg.max_eval_examples)
    if _is_chief(strategy):
      out = write_results(os.path.join(cfg.model_dir, "eval"), results)
      with tf.summary.create_file_writer(os.path.join(cfg.model_dir, "eval")).as_default():
        for row in results["languages"]:
          tf.summary.scalar(f"accuracy/{row['language']}", row["accuracy"], step=step)
          tf.summary.scalar(f"macro_f1/{row['language']}", row["macro_f1"], step=step)
        tf.summary.scalar("accuracy/average", results["average"]["accuracy"], step=step)
      log(markdown_table(results) + f"Results: {out['json']}, {out['markdown']}, {out['plot']}")

  export_dir = None
  if cfg.export_dir and _is_chief(strategy):
    export_dir = export_classifier(
        cfg.export_dir, bundle_dir=cfg.bundle_dir,
        checkpoint=tf.train.latest_checkpoint(cfg.model_dir), seq_length=cfg.seq_length,
        log=log)
  if write_dir != cfg.model_dir:
    shutil.rmtree(write_dir, ignore_errors=True)
  return FinetuneResult(step=step, results=results, export_dir=export_dir, model=model,
                        train_log=train_log)


def _train_loop(cfg, strategy, model, optimizer, manager, iterator, *, start_step, num_steps,
                log, on_step):
  """Runs steps start_step+1..num_steps; saves checkpoints; returns the logged records."""
  global_batch = cfg.batch_size

  @tf.function
  def train_step(batch):
    def step_fn(features, labels):
      with tf.GradientTape() as tape:
        logits = model(features, training=True)
        per_example = tf_keras.losses.sparse_categorical_crossentropy(
            labels, logits, from_logits=True)
        loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
      grads = tape.gradient(loss, model.trainable_variables)
      optimizer.apply_gradients(zip(grads, model.trainable_variables))
      correct = tf.reduce_sum(tf.cast(
          tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels), tf.float32))
      return loss, correct

    loss, correct = strategy.run(step_fn, args=(batch["features"], batch["label"]))
    return (strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None),
            strategy.reduce(tf.distribute.ReduceOp.SUM, correct, axis=None))

  writer = tf.summary.create_file_writer(
      os.path.join(cfg.model_dir, "train") if _is_chief(strategy)
      else os.path.join(manager.directory, "train"))
  records = []
  window_loss, window_correct, window_count, window_start = 0.0, 0.0, 0, time.time()
  step = start_step
  with writer.as_default():
    while step < num_steps:
      batch = next(iterator)
      loss, correct = train_step(batch)
      step += 1
      if on_step is not None:
        index = np.concatenate([np.asarray(x) for x in
                                strategy.experimental_local_results(batch["index"])])
        on_step(step, index)
      window_loss += float(loss)
      window_correct += float(correct)
      window_count += 1
      if step % cfg.log_every == 0 or step == num_steps:
        seconds = max(time.time() - window_start, 1e-9)
        record = {"step": step, "loss": window_loss / window_count,
                  "accuracy": window_correct / (window_count * global_batch),
                  "learning_rate": float(optimizer.learning_rate(step - 1)),
                  "examples_per_second": window_count * global_batch / seconds}
        records.append(record)
        for key in ("loss", "accuracy", "learning_rate", "examples_per_second"):
          tf.summary.scalar(key, record[key], step=step)
        log(f"step {step}/{num_steps}  loss {record['loss']:.4f}  accuracy "
            f"{record['accuracy']:.3f}  lr {record['learning_rate']:.3g}  "
            f"{record['examples_per_second']:.1f} examples/s")
        window_loss, window_correct, window_count, window_start = 0.0, 0.0, 0, time.time()
      if step % cfg.checkpoint_every == 0 or step == num_steps:
        log(f"Saved checkpoint {manager.save(checkpoint_number=step)}")
  writer.flush()
  return records


class _ServingClassifier(tf.Module):
  """Raw premise/hypothesis strings -> label probabilities and names (see export_classifier)."""

  def __init__(self, preprocessor, encoder, kernel, bias, seq_length: int):
    super().__init__(name="nli_classifier")
    self.preprocessor = preprocessor
    self.encoder = encoder
    self.kernel = tf.Variable(kernel, trainable=False, name="classifier/kernel")
    self.bias = tf.Variable(bias, trainable=False, name="classifier/bias")
    self.label_names = tf.Variable(list(nli_data.LABELS), trainable=False,
                                   name="label_names", dtype=tf.string)
    self.seq_length = tf.Variable(seq_length, trainable=False, name="seq_length",
                                  dtype=tf.int32)
    self._seq_length = seq_length

  def _classify(self, premise, hypothesis):
    inputs = pack_pairs(self.preprocessor, premise, hypothesis, self._seq_length)
    pooled = self.encoder(inputs, training=False)["pooled_output"]
    probabilities = tf.nn.softmax(tf.matmul(pooled, self.kernel) + self.bias, axis=-1)
    label = tf.gather(self.label_names, tf.argmax(probabilities, axis=-1, output_type=tf.int32))
    return {"probabilities": probabilities, "label": label}

  @tf.function(input_signature=[{
      "premise": tf.TensorSpec([None], tf.string, name="premise"),
      "hypothesis": tf.TensorSpec([None], tf.string, name="hypothesis")}], autograph=False)
  def __call__(self, inputs):
    return self._classify(inputs["premise"], inputs["hypothesis"])

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="premise"),
                                tf.TensorSpec([None], tf.string, name="hypothesis")],
               autograph=False)
  def serve(self, premise, hypothesis):
    return self._classify(premise, hypothesis)


PROBE_PAIRS = (
    ("And he said, Mama, I'm home.", "He didn't say a word."),
    ("Der Hund schläft.", "Ein Tier ruht sich aus."),
    ("東京は日本の首都です。", "東京は都市です。"),
    ("Москва — столица России.", "", ),
    ("", "Nothing at all."),
)


def export_classifier(export_dir: str, *, bundle_dir: str, checkpoint: str, seq_length: int,
                      dropout_rate: float = 0.1,
                      log: Callable[[str], None] = print) -> str:
  """Writes the serving classifier SavedModel from a fine-tuning checkpoint, verified.

  The SavedModel chains the bundle's preprocessor (pair packing at `seq_length`), the
  fine-tuned encoder and the dense head:
    * signature `serving_default`: `premise`, `hypothesis` string [B] ->
      `probabilities` float32 [B, 3] (columns in the order of `label_names`) and `label`
      string [B] (the most probable of 'entailment', 'neutral', 'contradiction');
    * `__call__({"premise": ..., "hypothesis": ...})`: the same dict, for
      `tf.saved_model.load` and `hub.KerasLayer`;
    * attributes `label_names` (string [3]) and `seq_length` (int32), non-trainable.
  Loading needs `import tensorflow_text` (the tokenizer's ops).

  It is written to a temporary directory beside `export_dir`, reloaded from disk and
  compared with the restored in-memory classifier on probe pairs (max |difference of
  probabilities| <= `EXPORT_TOLERANCE`, same labels); only then renamed into place.

  Raises:
    FileExistsError: `export_dir` exists.
    FinetuneError: no checkpoint, or the reloaded model disagrees (figures named).
  """
  if os.path.lexists(export_dir):
    raise FileExistsError(f"{export_dir} already exists; pass a new export directory")
  if not checkpoint:
    raise FinetuneError("no fine-tuning checkpoint to export; train first (--model_dir)")
  preprocessor = load_preprocessor(bundle_dir)
  encoder = tf.saved_model.load(os.path.join(bundle_dir, "encoder"))
  model = build_classifier(encoder, seq_length=seq_length, dropout_rate=dropout_rate)
  tf.train.Checkpoint(model=model).restore(checkpoint).expect_partial() \
      .assert_existing_objects_matched()
  head = model.get_layer("classifier")
  module = _ServingClassifier(preprocessor, encoder, head.kernel.numpy(), head.bias.numpy(),
                              seq_length)
  premises = tf.constant([p for p, _ in PROBE_PAIRS])
  hypotheses = tf.constant([h for _, h in PROBE_PAIRS])
  want = tf.nn.softmax(model(pack_pairs(preprocessor, premises, hypotheses, seq_length),
                             training=False)).numpy()
  parent = os.path.dirname(os.path.abspath(export_dir))
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=".classifier_tmp_", dir=parent)
  try:
    target = os.path.join(tmp, "saved_model")
    tf.saved_model.save(module, target, signatures={
        "serving_default": module.serve.get_concrete_function()})
    reloaded = tf.saved_model.load(target)
    got = reloaded.signatures["serving_default"](premise=premises, hypothesis=hypotheses)
    if sorted(got) != sorted(SERVING_OUTPUTS):
      raise FinetuneError(f"the exported serving signature returns {sorted(got)}, expected "
                          f"{sorted(SERVING_OUTPUTS)}")
    diff = float(np.max(np.abs(got["probabilities"].numpy() - want)))
    want_labels = [nli_data.LABELS[i] for i in np.argmax(want, axis=-1)]
    got_labels = [x.decode() for x in got["label"].numpy()]
    if not diff <= EXPORT_TOLERANCE or got_labels != want_labels:
      raise FinetuneError(f"the reloaded classifier disagrees with the checkpoint: max "
                          f"|probability difference| {diff:.3g} (tolerance "
                          f"{EXPORT_TOLERANCE:g}), labels {got_labels} vs {want_labels}")
    os.rename(target, export_dir)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  log(f"Serving classifier written to {export_dir} (probe max |probability difference| "
      f"{diff:.2e})")
  return export_dir


# ---------------------------------------------------------------------------------------
# Command line. Flags live in their own FlagValues, so importing this module never clashes
# with another binary's flags (export_main defines --export_dir and --seq_length too).

def _define_flags():
  from absl import flags  # pylint: disable=g-import-not-at-top
  fv = flags.FlagValues()
  d = FinetuneConfig
  flags.DEFINE_string("bundle_dir", None, "An exported bundle (encoder/, preprocessor/).",
                      flag_values=fv)
  flags.DEFINE_string("model_dir", None, "Checkpoints, summaries and eval results; an "
                      "existing checkpoint here is resumed.", flag_values=fv)
  flags.DEFINE_string("train_file", None, "GLUE MNLI train.tsv, an XTREME-format "
                      "premise<TAB>hypothesis<TAB>label file, or a prepared TFDS split "
                      "tfds:multi_nli/train.", flag_values=fv)
  flags.DEFINE_enum("train_format", d.train_format, list(nli_data.FORMATS),
                    "Format of --train_file; auto: detected from line 1.", flag_values=fv)
  flags.DEFINE_integer("max_train_examples", None, "Use only the first N training pairs.",
                       flag_values=fv)
  flags.DEFINE_string("eval_dir", None, "Directory with XTREME {eval_split}-{lang}.tsv "
                      "files, or tfds:xnli (a prepared TFDS xnli).", flag_values=fv)
  flags.DEFINE_string("tfds_data_dir", None, "TFDS data directory for tfds: sources.",
                      flag_values=fv)
  flags.DEFINE_list("eval_files", [], "lang=path,... explicit evaluation files (override "
                    "--eval_dir per language).", flag_values=fv)
  flags.DEFINE_list("eval_languages", list(nli_data.XNLI_LANGUAGES), "Languages to "
                    "evaluate, in table order.", flag_values=fv)
  flags.DEFINE_enum("eval_split", d.eval_split, ["dev", "test"], "XTREME file prefix.",
                    flag_values=fv)
  flags.DEFINE_integer("max_eval_examples", None, "Evaluate only the first N pairs per "
                       "language.", flag_values=fv)
  flags.DEFINE_integer("seq_length", d.seq_length, "Packed pair length.", flag_values=fv)
  flags.DEFINE_integer("batch_size", d.batch_size, "Global training batch size.",
                       flag_values=fv)
  flags.DEFINE_integer("eval_batch_size", d.eval_batch_size, "Global eval batch size.",
                       flag_values=fv)
  flags.DEFINE_float("learning_rate", d.learning_rate, "Peak learning rate.", flag_values=fv)
  flags.DEFINE_float("warmup_proportion", d.warmup_proportion, "Fraction of steps with "
                     "linear warm-up.", flag_values=fv)
  flags.DEFINE_float("num_epochs", d.num_epochs, "Training epochs (if --num_train_steps "
                     "is unset).", flag_values=fv)
  flags.DEFINE_integer("num_train_steps", None, "Total training steps (overrides "
                       "--num_epochs).", flag_values=fv)
  flags.DEFINE_float("dropout_rate", d.dropout_rate, "Dropout before the head.",
                     flag_values=fv)
  flags.DEFINE_float("weight_decay_rate", d.weight_decay_rate, "AdamW weight decay.",
                     flag_values=fv)
  flags.DEFINE_integer("seed", d.seed, "Seed of the data order, head init and dropout.",
                       flag_values=fv)
  flags.DEFINE_enum("distribution_strategy", d.distribution_strategy, list(STRATEGIES),
                    "tf.distribute strategy; multi_worker_mirrored reads TF_CONFIG.",
                    flag_values=fv)
  flags.DEFINE_string("tpu", d.tpu, "TPU name or address for --distribution_strategy=tpu.",
                      flag_values=fv)
  flags.DEFINE_integer("log_every", d.log_every, "Progress and summaries every N steps.",
                       flag_values=fv)
  flags.DEFINE_integer("checkpoint_every", d.checkpoint_every, "Checkpoint every N steps.",
                       flag_values=fv)
  flags.DEFINE_string("export_dir", None, "Write the serving classifier SavedModel here.",
                      flag_values=fv)
  for name in ("bundle_dir", "model_dir", "train_file"):
    flags.mark_flag_as_required(name, flag_values=fv)
  return fv


def _parse_eval_files(items) -> Optional[Dict[str, str]]:
  files = {}
  for item in items:
    lang, sep, path = item.partition("=")
    if not sep or not lang or not path:
      raise FinetuneError(f"--eval_files entry {item!r} is not lang=path")
    files[lang] = path
  return files or None


def config_from_argv(argv) -> FinetuneConfig:
  """Parses command-line arguments (argv[0] is the program) into a FinetuneConfig."""
  fv = _define_flags()
  fv(list(argv))
  return FinetuneConfig(
      bundle_dir=fv.bundle_dir, model_dir=fv.model_dir, train_file=fv.train_file,
      train_format=fv.train_format, max_train_examples=fv.max_train_examples,
      eval_dir=fv.eval_dir, eval_files=_parse_eval_files(fv.eval_files),
      eval_languages=tuple(fv.eval_languages), eval_split=fv.eval_split,
      max_eval_examples=fv.max_eval_examples, seq_length=fv.seq_length,
      batch_size=fv.batch_size, eval_batch_size=fv.eval_batch_size,
      learning_rate=fv.learning_rate, warmup_proportion=fv.warmup_proportion,
      num_epochs=fv.num_epochs, num_train_steps=fv.num_train_steps,
      dropout_rate=fv.dropout_rate, weight_decay_rate=fv.weight_decay_rate, seed=fv.seed,
      distribution_strategy=fv.distribution_strategy, tpu=fv.tpu, log_every=fv.log_every,
      checkpoint_every=fv.checkpoint_every, export_dir=fv.export_dir,
      tfds_data_dir=fv.tfds_data_dir)


def run_main(argv) -> int:
  """The CLI: returns the process exit code (0 ok, 1 bad input, 2 usage)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  if any(a in ("--help", "-h", "--helpfull") for a in argv[1:]):
    print(__doc__)
    print(_define_flags().get_help())
    return 0
  try:
    cfg = config_from_argv(argv)
  except (flags.Error, FinetuneError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  try:
    run(cfg, log=lambda line: print(line, flush=True))
  except (ValueError, FileNotFoundError, FileExistsError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  # Run the package's copy of this module, not `__main__`: the classes saved into the
  # serving SavedModel (and traced by AutoGraph) must live in `hub_export.finetune_xnli`.
  from hub_export import finetune_xnli as _library  # pylint: disable=g-import-not-at-top,import-self
  sys.exit(_library.run_main(sys.argv))
