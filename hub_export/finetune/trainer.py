"""Fine-tunes an exported bundle on NLI: train on English, evaluate XNLI zero-shot, export.

Only the bundle's exported modules are used (`../shared/HUB_API.md`): the preprocessor
(`tokenize` + `bert_pack_inputs`, sentence pairs) runs in `tf.data` outside the
distribution strategy (`input_pipeline`), the encoder is a `hub.KerasLayer(...,
trainable=True)` under the strategy, with a dropout + dense head on `pooled_output`
(`classifier.build_classifier`). Optimizer: tf-models-official's `AdamWeightDecay`, "Adam
with weight decay that exactly matches the original BERT" (weight decay 0.01, epsilon
1e-6, gradient global-norm clip 1.0), with linear warm-up then linear decay to 0 (BERT
`optimization.py`); MobileBERT's NoNorm scales and offsets (`.../norm/gamma|beta` in the
exported encoder, `FakeLayerNorm` in the original) and biases get no weight decay, as in
google-research `mobilebert/optimization.py`.

Resume: the model directory holds tf.train checkpoints (model, optimizer, step) and
`run_config.json`. Step s reads training positions [s*B, (s+1)*B) of a fixed order
(`data.example_order`: one seeded permutation per epoch), so a resumed run continues at
the checkpointed step with exactly the data that step would have read: nothing is
repeated, nothing skipped. Resuming with settings that change the order (data, seed, batch
size, steps) is an error that names them.

A process killed at any moment (SIGKILL inside a step, while a checkpoint is written,
during evaluation or export) is resumed by rerunning the same command. TF's
`CheckpointManager` names a checkpoint in the `checkpoint` state file (written atomically,
write-then-rename) only after its `.index` and `.data-*` files are complete; a save killed
midway leaves `ckpt-N_temp/` or a partial `ckpt-N.index` that the state file does not
name, and the rerun overwrites them. The state file may still name checkpoints whose
files a later save was deleting, or that storage damaged, so before restoring, every
tensor of the chosen checkpoint is read (which checks its CRC32C); an incomplete one is
skipped for the previous checkpoint of the state file's list with a logged line, never
silently. `run_config.json` is replaced atomically.

Randomness: the head's dropout is `classifier.StepSeededDropout`, its mask a function of
(seed, step, row of the global batch) only, so it is the same after a resume and for any
number of replicas. The encoder's internal dropout (`hidden_dropout_prob`,
`attention_probs_dropout_prob` of the bundle's config; 0.1 each in the released
MobileBERT configs) is active with `training=True` and runs inside the encoder
SavedModel as seeded stateful random ops whose state restarts in every process: a
resumed run then draws other encoder masks than an uninterrupted one (the same
distribution, not the same weights). So a resumed run ends with the weights of an
uninterrupted run (within float noise) exactly when the encoder's two dropout
probabilities are 0, at any head `dropout_rate`.

Multi-worker (`multi_worker_mirrored`, `TF_CONFIG`): the chief (task "chief", else worker
0) writes checkpoints, summaries, results and the export to `model_dir`, every other
worker its checkpoints to `model_dir/.workertemp_<type>_<id>` (removed at the end); every
worker restores from `model_dir`. The strategy is created before anything else touches
TensorFlow. When a worker dies, the strategy's health check aborts the others'
collectives (within about a minute; `COLLECTIVE_TIMEOUT_SECONDS` bounds a hung
collective) and they exit with an error naming the fix: restart every worker with the
same command.

Outputs in `model_dir`: checkpoints, TensorBoard summaries (`train/`, `eval/`),
`run_config.json`, `eval/results.json`, `eval/results.md`, `eval/accuracy.png`; with
`export_dir`, the serving classifier SavedModel (`classifier.export_classifier`) and,
with `tflite`, its on-device `.tflite` files (float and int8), calibrated and verified
on the first training pairs (`hub_export.finetune.mobile`).
"""

import dataclasses
import json
import os
import shutil
import time
from typing import Callable, Optional, Tuple

import numpy as np
import tensorflow as tf
import tf_keras

from hub_export.finetune import classifier
from hub_export.finetune import config as config_lib
from hub_export.finetune import data
from hub_export.finetune import input_pipeline
from hub_export.finetune import results as results_lib
from hub_export.finetune import resume
from hub_export.finetune.config import FinetuneConfig
from hub_export.finetune.config import FinetuneError
from hub_export.finetune.config import STRATEGIES

# Not decayed (regex search in the variable name): google-research mobilebert/optimization.py
# excludes "LayerNorm", "layer_norm", "bias", "FakeLayerNorm"; the exported encoder names
# the NoNorm/LayerNorm parameters `.../norm/gamma|beta` and `embedding_norm/gamma|beta`.
NO_WEIGHT_DECAY = ("LayerNorm", "layer_norm", "bias", r"norm/gamma", r"norm/beta")
_TRAIN_METRICS = ("loss", "accuracy", "learning_rate", "examples_per_second")
# multi_worker_mirrored: a collective that waits longer than this (seconds) fails instead of
# hanging (tf.distribute.experimental.CommunicationOptions.timeout_seconds). It must exceed
# the longest time one worker can be ahead of another, e.g. while a slow worker loads the
# bundle or traces the training step; a dead worker is detected sooner by the strategy's
# health check.
COLLECTIVE_TIMEOUT_SECONDS = 600.0


@dataclasses.dataclass
class FinetuneResult:
  """What `run` produced.

  Attributes:
    step: the optimizer step reached (== the run's num_train_steps).
    results: the results table (`results` module) or None without evaluation files.
    export_dir: the serving classifier's directory, or None without `export_dir`.
    model: the in-memory classifier (encoder inputs int32 [B, S] -> logits float32
      [B, 3]).
    train_log: the records logged this run: {"step", "loss", "accuracy",
      "learning_rate", "examples_per_second"} every `log_every` steps and at the end.
  """
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
  worker without it); create it before other TensorFlow calls (collectives are
  configured at startup); collectives time out after `COLLECTIVE_TIMEOUT_SECONDS`.
  tpu: `TPUClusterResolver(tpu=tpu)`, connected and initialized.

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
    return tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=COLLECTIVE_TIMEOUT_SECONDS))
  if name == "tpu":
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
  raise FinetuneError(f"distribution strategy {name!r} is not one of {list(STRATEGIES)}")


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


def _bundle_facts(bundle_dir: str) -> Tuple[Optional[bool], str]:
  """From manifest.json: `trained` (False for an untrained --demo bundle; None if
  unknown) and the encoder's attention masking mode ("unknown" if not recorded)."""
  try:
    with open(os.path.join(bundle_dir, "manifest.json")) as f:
      manifest = json.load(f)
  except (OSError, ValueError):
    return None, "unknown"
  trained = manifest.get("trained")
  mode = (manifest.get("attention_mask") or {}).get("mode", "unknown")
  return (trained if isinstance(trained, bool) else None), mode


def _train_format(cfg: FinetuneConfig) -> str:
  """The format the training data is read in: 'tfds', or the (detected) file format."""
  if cfg.train_file.startswith(data.TFDS_PREFIX):
    return "tfds"
  if cfg.train_format == "auto":
    return data.detect_format(cfg.train_file)
  return cfg.train_format


def run(cfg: FinetuneConfig, *, log: Callable[[str], None] = print,
        on_step: Optional[Callable[[int, np.ndarray], None]] = None) -> FinetuneResult:
  """Trains (resuming from `cfg.model_dir`), evaluates every language, exports.

  Args:
    cfg: the settings (checked first).
    log: receives the progress lines.
    on_step: called after each step with (step number 1.., the example indices of that
      step's batch, int64 [batch_size]; with multi_worker_mirrored, this worker's share
      [batch_size / workers]); an exception from it stops the run as an interruption
      would (the last saved checkpoint stays).

  Returns:
    `FinetuneResult`.

  Raises:
    FinetuneError: bad settings, a resume with settings that change the data order, or
      (multi_worker_mirrored) a worker lost during training.
    data.NliDataError, FileNotFoundError: bad data files.
  """
  cfg.check()
  # First TensorFlow call: multi_worker_mirrored configures collectives at startup.
  strategy = make_strategy(cfg.distribution_strategy, cfg.tpu)
  eval_paths = None
  if cfg.eval_dir is not None or cfg.eval_files:
    eval_paths = data.eval_files(languages=list(cfg.eval_languages), eval_dir=cfg.eval_dir,
                                 split=cfg.eval_split, files=cfg.eval_files)
  train = data.load_examples(cfg.train_file, cfg.train_format, limit=cfg.max_train_examples,
                             tfds_data_dir=cfg.tfds_data_dir)
  fmt = _train_format(cfg)
  log(f"Training data: {len(train)} pairs from {cfg.train_file} ({fmt})")
  trained, attention_mask = _bundle_facts(cfg.bundle_dir)
  log(f"The bundle's encoder masks padded keys as '{attention_mask}' (manifest.json)")
  if trained is False:
    log("NOTE: the bundle's weights are UNTRAINED (demo): expect accuracy near chance (33%).")

  tf_keras.utils.set_random_seed(cfg.seed)
  replicas = strategy.num_replicas_in_sync
  if cfg.batch_size % replicas:
    raise FinetuneError(f"--batch_size={cfg.batch_size} is not divisible by the "
                        f"{replicas} replicas of --distribution_strategy="
                        f"{cfg.distribution_strategy}; pass a multiple of {replicas}")
  num_steps = cfg.num_train_steps or max(1, int(len(train) * cfg.num_epochs) // cfg.batch_size)
  warmup_steps = int(num_steps * cfg.warmup_proportion)
  order = data.example_order(len(train), seed=cfg.seed,
                             num_positions=num_steps * cfg.batch_size)
  run_config = {
      "train_file": cfg.train_file, "train_data_sha256": data.examples_sha256(train),
      "train_format": fmt,
      "num_train_examples": len(train), "seed": cfg.seed, "global_batch_size": cfg.batch_size,
      "num_train_steps": num_steps, "seq_length": cfg.seq_length,
      "order_sha256": data.order_fingerprint(order), "warmup_steps": warmup_steps,
      "learning_rate": cfg.learning_rate, "bundle_dir": os.path.abspath(cfg.bundle_dir),
      "distribution_strategy": cfg.distribution_strategy, "replicas": replicas,
      "attention_mask": attention_mask}

  preprocessor = input_pipeline.load_preprocessor(cfg.bundle_dir)  # Outside the scope.
  encoder_dir = os.path.join(cfg.bundle_dir, "encoder")
  with strategy.scope():
    optimizer = make_optimizer(learning_rate=cfg.learning_rate, num_train_steps=num_steps,
                               warmup_steps=warmup_steps,
                               weight_decay_rate=cfg.weight_decay_rate)
    # Step s (1-based) draws its dropout masks from (seed, s - 1): `iterations` before
    # the update.
    model = classifier.build_classifier(encoder_dir, seq_length=cfg.seq_length,
                                        dropout_rate=cfg.dropout_rate, seed=cfg.seed,
                                        dropout_step=lambda: optimizer.iterations)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
  os.makedirs(cfg.model_dir, exist_ok=True)
  write_dir = _write_dir(cfg.model_dir, strategy)
  manager = tf.train.CheckpointManager(checkpoint, write_dir, max_to_keep=3)
  config_path = os.path.join(cfg.model_dir, resume.RUN_CONFIG)
  if tf.train.get_checkpoint_state(cfg.model_dir) is not None and os.path.isfile(config_path):
    resume.check_resume(config_path, run_config)
  latest = resume.restore_latest_complete(checkpoint, cfg.model_dir, log)
  if latest:
    log(f"Resumed from {latest} at step {int(optimizer.iterations.numpy())}")
  if _is_chief(strategy):
    resume.write_json_atomically(config_path, run_config)
  start_step = int(optimizer.iterations.numpy())
  if start_step > num_steps:
    raise FinetuneError(f"the checkpoint in {cfg.model_dir} is at step {start_step}, beyond "
                        f"num_train_steps={num_steps}")

  train_log = []
  if start_step < num_steps:
    log(f"Training steps {start_step + 1}..{num_steps} (batch {cfg.batch_size} over {replicas} "
        f"replica(s), {warmup_steps} warm-up steps, peak learning rate {cfg.learning_rate:g})")
    dataset = strategy.distribute_datasets_from_function(input_pipeline.train_dataset_fn(
        train, order[start_step * cfg.batch_size:], preprocessor=preprocessor,
        seq_length=cfg.seq_length, global_batch_size=cfg.batch_size, num_replicas=replicas))
    try:
      train_log = _train_loop(cfg, strategy, model, optimizer, manager, iter(dataset),
                              start_step=start_step, num_steps=num_steps, log=log,
                              on_step=on_step)
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
            tf.errors.CancelledError) as e:
      if cfg.distribution_strategy != "multi_worker_mirrored":
        raise
      raise FinetuneError(
          f"a multi_worker_mirrored collective failed ({type(e).__name__}: "
          f"{str(e).splitlines()[0][:300]}): a worker was lost; stop every worker and "
          f"restart all of them with the same command to resume from {cfg.model_dir}'s "
          "last checkpoint") from e
    latest = manager.latest_checkpoint
  step = int(optimizer.iterations.numpy())

  results = None
  if eval_paths:
    log(f"Evaluating {len(eval_paths)} languages at step {step} ...")
    with strategy.scope():
      results = results_lib.evaluate(model, eval_paths, preprocessor=preprocessor,
                                     seq_length=cfg.seq_length, batch_size=cfg.eval_batch_size,
                                     max_examples=cfg.max_eval_examples,
                                     tfds_data_dir=cfg.tfds_data_dir, log=log)
    results.update(step=step, split=cfg.eval_split, bundle_dir=os.path.abspath(cfg.bundle_dir),
                   bundle_trained=trained, attention_mask=attention_mask, files=eval_paths,
                   max_eval_examples=cfg.max_eval_examples)
    if _is_chief(strategy):
      eval_dir = os.path.join(cfg.model_dir, "eval")
      out = results_lib.write_results(eval_dir, results)
      results_lib.write_summaries(eval_dir, results, step=step)
      log(results_lib.markdown_table(results) +
          f"Results: {out['json']}, {out['markdown']}, {out['plot']}")

  export_dir = None
  if cfg.export_dir and _is_chief(strategy):
    record = config_lib.export_record(cfg.export_dir)
    if (config_lib.exported_by(cfg.export_dir, cfg.model_dir) and latest
        and record.get("checkpoint") == os.path.basename(latest)):
      log(f"Serving classifier already exported to {cfg.export_dir} from {latest} (by an "
          "earlier run of this command); kept")
      export_dir = cfg.export_dir
    else:
      pairs = None
      if cfg.tflite:
        n = classifier.TFLITE_CALIBRATION_PAIRS + classifier.TFLITE_VERIFICATION_PAIRS
        pairs = list(zip(train.premises[:n], train.hypotheses[:n]))
      export_dir = classifier.export_classifier(
          cfg.export_dir, bundle_dir=cfg.bundle_dir,
          checkpoint=latest, seq_length=cfg.seq_length, tflite_pairs=pairs, log=log)
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
        for key in _TRAIN_METRICS:
          tf.summary.scalar(key, record[key], step=step)
        log(f"step {step}/{num_steps}  loss {record['loss']:.4f}  accuracy "
            f"{record['accuracy']:.3f}  lr {record['learning_rate']:.3g}  "
            f"{record['examples_per_second']:.1f} examples/s")
        window_loss, window_correct, window_count, window_start = 0.0, 0.0, 0, time.time()
      if step % cfg.checkpoint_every == 0 or step == num_steps:
        log(f"Saved checkpoint {manager.save(checkpoint_number=step)}")
  writer.flush()
  return records
