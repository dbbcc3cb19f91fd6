"""The NLI classifier: the trainable Keras model and its verified serving SavedModel.

The model is BERT's classifier head on the bundle's encoder (google-research/bert
`run_classifier.py` `create_model`): `pooled_output` -> dropout -> dense, 3 logits in
the order of `data.LABELS`, kernel initialized TruncatedNormal(0.02).
"""

import json
import os
from typing import Callable, Optional

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub
import tf_keras

import publish
from hub_export import verify
from hub_export.finetune import data
from hub_export.finetune import input_pipeline
from hub_export.finetune.config import EXPORT_RECORD
from hub_export.finetune.config import FinetuneError

SERVING_OUTPUTS = ("probabilities", "label")
# Training pairs that calibrate the int8 .tflite; the verification pairs follow them.
TFLITE_CALIBRATION_PAIRS = 100
TFLITE_VERIFICATION_PAIRS = 200
PROBE_PAIRS = (
    ("And he said, Mama, I'm home.", "He didn't say a word."),
    ("Der Hund schläft.", "Ein Tier ruht sich aus."),
    ("東京は日本の首都です。", "東京は都市です。"),
    ("Москва — столица России.", "", ),
    ("", "Nothing at all."),
)


class StepSeededDropout(tf_keras.layers.Layer):
  """Dropout whose mask is a function of (seed, step, row of the global batch) only.

  In training, for a global batch of B rows split over R replicas of b = B / R rows
  (replica r holds rows [r*b, (r+1)*b), as `input_pipeline.train_dataset_fn` splits
  them):
    u = tf.random.stateless_uniform([B, H], seed=(seed, step))   # float32 in [0, 1)
    out[i, j] = x[i, j] / (1 - rate) if u[r*b + i, j] >= rate else 0
  (the keep rule and scaling of `tf.nn.dropout`). A run resumed from a checkpoint at step
  s therefore draws the same masks at steps s, s+1, ... as an uninterrupted run, and any
  number of replicas draws the masks of a single device. Outside training (or with
  rate 0) the layer is the identity.
  """

  def __init__(self, rate: float, *, seed: int,
               step: Optional[Callable[[], tf.Tensor]] = None, **kwargs):
    """rate: in [0, 1); seed: int; step: returns the 0-based step, an int scalar."""
    super().__init__(**kwargs)
    self.rate = float(rate)
    self.seed = int(seed)
    self._step = step

  def call(self, inputs, training=None):  # pylint: disable=arguments-differ
    """inputs float32 [b, H] -> float32 [b, H].

    Raises:
      FinetuneError: training with rate > 0 but no `step` source.
    """
    if not training or self.rate == 0.0:
      return inputs
    if self._step is None:
      raise FinetuneError(f"layer {self.name!r} has dropout rate {self.rate} but no step "
                          "source; build the classifier with dropout_step=... to train")
    context = tf.distribute.get_replica_context()
    replica = tf.cast(context.replica_id_in_sync_group if context else 0, tf.int32)
    replicas = context.num_replicas_in_sync if context else 1
    rows = tf.shape(inputs)[0]
    seed = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(self._step(), tf.int64)])
    uniform = tf.random.stateless_uniform(
        tf.stack([rows * replicas, tf.shape(inputs)[1]]), seed=seed, dtype=inputs.dtype)
    keep = uniform[replica * rows:(replica + 1) * rows] >= self.rate
    return tf.where(keep, inputs / (1.0 - self.rate), tf.zeros_like(inputs))

  def get_config(self):
    return dict(super().get_config(), rate=self.rate, seed=self.seed)


def build_classifier(encoder, *, seq_length: int, dropout_rate: float = 0.1,
                     seed: int = 0,
                     dropout_step: Optional[Callable[[], tf.Tensor]] = None) -> tf_keras.Model:
  """The classifier: encoder pooled_output -> dropout -> dense 3 logits.

  Args:
    encoder: the bundle's encoder/ directory or its loaded SavedModel object.
    seq_length: S of the int32 [B, S] inputs.
    dropout_rate: dropout before the head.
    seed: seeds the head initializer (TruncatedNormal stddev 0.02, BERT's
      `initializer_range`) and the dropout.
    dropout_step: returns the 0-based training step (int64 scalar) that seeds the
      dropout masks (`StepSeededDropout`); needed only to call the model with
      `training=True` and `dropout_rate > 0`.

  Returns:
    A tf_keras Model: dict `input_word_ids`, `input_mask`, `input_type_ids` int32 [B, S]
    -> logits float32 [B, 3] in the order of `data.LABELS`. Its layer `encoder` is
    the `hub.KerasLayer(..., trainable=True)`, its layer `classifier` the dense head.
  """
  features = {k: tf_keras.Input(shape=(seq_length,), dtype=tf.int32, name=k)
              for k in ("input_word_ids", "input_mask", "input_type_ids")}
  encoder_layer = hub.KerasLayer(encoder, trainable=True, name="encoder")
  pooled = encoder_layer(features)["pooled_output"]
  pooled = StepSeededDropout(dropout_rate, seed=seed, step=dropout_step,
                             name="dropout")(pooled)
  logits = tf_keras.layers.Dense(
      len(data.LABELS), name="classifier",
      kernel_initializer=tf_keras.initializers.TruncatedNormal(stddev=0.02, seed=seed))(pooled)
  return tf_keras.Model(features, logits, name="nli_classifier")


class _ServingClassifier(tf.Module):
  """Raw premise/hypothesis strings -> label probabilities and names (see export_classifier)."""

  def __init__(self, preprocessor, encoder, kernel, bias, seq_length: int):
    super().__init__(name="nli_classifier")
    self.preprocessor = preprocessor
    self.encoder = encoder
    self.kernel = tf.Variable(kernel, trainable=False, name="classifier/kernel")
    self.bias = tf.Variable(bias, trainable=False, name="classifier/bias")
    self.label_names = tf.Variable(list(data.LABELS), trainable=False,
                                   name="label_names", dtype=tf.string)
    self.seq_length = tf.Variable(seq_length, trainable=False, name="seq_length",
                                  dtype=tf.int32)
    self._seq_length = seq_length

  def _classify(self, premise, hypothesis):
    features = input_pipeline.pack_pairs(self.preprocessor, premise, hypothesis,
                                         self._seq_length)
    pooled = self.encoder(features, training=False)["pooled_output"]
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


def export_classifier(export_dir: str, *, bundle_dir: str, checkpoint: str, seq_length: int,
                      dropout_rate: float = 0.1, tflite_pairs=None,
                      log: Callable[[str], None] = print) -> str:
  """Writes the serving classifier SavedModel from a fine-tuning checkpoint, verified.

  The SavedModel chains the bundle's preprocessor (pair packing at `seq_length`), the
  fine-tuned encoder and the dense head:
    * signature `serving_default`: `premise`, `hypothesis` string [B] ->
      `probabilities` float32 [B, 3] (columns in the order of `label_names`) and `label`
      string [B] (the most probable of 'entailment', 'neutral', 'contradiction');
    * `__call__({"premise": ..., "hypothesis": ...})`: the same dict, for
      `tf.saved_model.load` and `hub.KerasLayer`;
    * attributes `label_names` (string [3]) and `seq_length` (int32), non-trainable;
    * the file `config.EXPORT_RECORD` beside saved_model.pb: the run it came from
      (`config.export_record`);
    * with `tflite_pairs`, beside them the on-device files of `hub_export.finetune.mobile`
      (`classifier.tflite` float, `classifier_int8.tflite`, `tflite_manifest.json`): the
      same strings in, `probabilities` and `label_id` out, one signature per packed
      length (`mobile.convert.seq_lengths`) and a `tokenize` signature, each checked
      in LiteRT's interpreter against this SavedModel (`mobile.export.write_verified`)
      before anything is published.
  Loading needs `import tensorflow_text` (the tokenizer's ops).

  It is written through `publish.atomic_directory(export_dir)`: saved into a staging
  directory beside `export_dir`, reloaded from disk and compared with the restored
  in-memory classifier on `PROBE_PAIRS` (max |difference of probabilities| <=
  `verify.TOLERANCES["classifier"]["max_abs_probability"]`, same labels); only then
  renamed into place. On any failure nothing is left at `export_dir`.

  Args:
    export_dir: the new directory to write.
    bundle_dir: the bundle that was fine-tuned (its preprocessor/ and encoder/).
    checkpoint: a tf.train checkpoint of `build_classifier`'s model (e.g.
      `tf.train.latest_checkpoint(model_dir)`).
    seq_length: S the classifier packs pairs to.
    dropout_rate: as in training (inactive at serving; the model must match the
      checkpoint).
    tflite_pairs: None (no .tflite files), or (premise, hypothesis) str pairs: the first
      `TFLITE_CALIBRATION_PAIRS` calibrate the int8 file; the files are verified on
      `PROBE_PAIRS` plus up to `TFLITE_VERIFICATION_PAIRS` of the pairs after those.
    log: receives the final line with the measured probe difference.

  Returns:
    `export_dir`.

  Raises:
    FileExistsError: `export_dir` exists.
    FinetuneError: no checkpoint, or the reloaded model disagrees (figures named).
    publish.WriteError: writing failed midway (no space, a file-size limit, a
      read-only destination): one line naming the path and the cause; nothing is left
      beside `export_dir`.
    publish.DestinationBusyError: another process is writing `export_dir` (names its
      pid and the lock file `.NAME.lock` beside it).
    publish.PublishError: the directory beside `export_dir` cannot be written.
  """
  if os.path.lexists(export_dir):
    raise FileExistsError(f"{export_dir} already exists; pass a new export directory")
  if not checkpoint:
    raise FinetuneError("no fine-tuning checkpoint to export; train first (--model_dir)")
  preprocessor = input_pipeline.load_preprocessor(bundle_dir)
  encoder = tf.saved_model.load(os.path.join(bundle_dir, "encoder"))
  model = build_classifier(encoder, seq_length=seq_length, dropout_rate=dropout_rate)
  tf.train.Checkpoint(model=model).restore(checkpoint).expect_partial() \
      .assert_existing_objects_matched()
  head = model.get_layer("classifier")
  module = _ServingClassifier(preprocessor, encoder, head.kernel.numpy(), head.bias.numpy(),
                              seq_length)
  premises = tf.constant([p for p, _ in PROBE_PAIRS])
  hypotheses = tf.constant([h for _, h in PROBE_PAIRS])
  features = input_pipeline.pack_pairs(preprocessor, premises, hypotheses, seq_length)
  want = tf.nn.softmax(model(features, training=False)).numpy()
  with publish.atomic_directory(export_dir,
                                fix="free space or choose another --export_dir") as work:
    tf.saved_model.save(module, work, signatures={
        "serving_default": module.serve.get_concrete_function()})
    with open(os.path.join(work, EXPORT_RECORD), "w", encoding="utf-8") as f:
      json.dump({"model_dir": os.path.abspath(os.path.dirname(checkpoint)),
                 "checkpoint": os.path.basename(checkpoint),
                 "bundle_dir": os.path.abspath(bundle_dir), "seq_length": seq_length}, f,
                indent=2)
    reloaded = tf.saved_model.load(work)
    got = reloaded.signatures["serving_default"](premise=premises, hypothesis=hypotheses)
    diff = _check_reloaded(got, want)
    if tflite_pairs is not None:
      _write_tflite(work, reloaded, bundle_dir=bundle_dir, encoder=encoder, head=head,
                    seq_length=seq_length, pairs=list(tflite_pairs), log=log)
  log(f"Serving classifier written to {export_dir} (probe max |probability difference| "
      f"{diff:.2e})")
  return export_dir


def _check_reloaded(got: dict, want: np.ndarray) -> float:
  """Compares the reloaded signature's outputs with the in-memory probabilities.

  Args:
    got: the reloaded `serving_default` outputs (`probabilities` float32 [N, 3],
      `label` string [N]).
    want: the in-memory classifier's probabilities, float32 [N, 3].

  Returns:
    max |probability difference|.

  Raises:
    FinetuneError: other outputs than `SERVING_OUTPUTS`, a difference above
      `verify.TOLERANCES["classifier"]["max_abs_probability"]`, or other labels.
  """
  if sorted(got) != sorted(SERVING_OUTPUTS):
    raise FinetuneError(f"the exported serving signature returns {sorted(got)}, expected "
                        f"{sorted(SERVING_OUTPUTS)}")
  tolerance = verify.TOLERANCES["classifier"]["max_abs_probability"]
  diff = float(np.max(np.abs(got["probabilities"].numpy() - want)))
  want_labels = [data.LABELS[i] for i in np.argmax(want, axis=-1)]
  got_labels = [x.decode() for x in got["label"].numpy()]
  if not diff <= tolerance or got_labels != want_labels:
    raise FinetuneError(f"the reloaded classifier disagrees with the checkpoint: max "
                        f"|probability difference| {diff:.3g} (tolerance "
                        f"{tolerance:g}), labels {got_labels} vs {want_labels}")
  return diff


def _write_tflite(work, reloaded, *, bundle_dir, encoder, head, seq_length, pairs, log):
  """The on-device files in `work`, checked against the reloaded SavedModel `reloaded`."""
  from hub_export.finetune.mobile import export as mobile_export  # pylint: disable=g-import-not-at-top
  from hub_export.finetune.mobile import weights as mobile_weights  # pylint: disable=g-import-not-at-top
  calibration = pairs[:TFLITE_CALIBRATION_PAIRS] or list(PROBE_PAIRS)
  verify_pairs = list(PROBE_PAIRS) + pairs[TFLITE_CALIBRATION_PAIRS:][
      :TFLITE_VERIFICATION_PAIRS]
  premises = tf.constant([p for p, _ in verify_pairs])
  hypotheses = tf.constant([h for _, h in verify_pairs])

  def reference(s):
    """The reloaded SavedModel's probabilities and features at packed length s."""
    features = input_pipeline.pack_pairs(reloaded.preprocessor, premises, hypotheses, s)
    if s == seq_length:  # What the SavedModel serves.
      probabilities = reloaded.signatures["serving_default"](
          premise=premises, hypothesis=hypotheses)["probabilities"]
    else:  # Its parts at another length.
      pooled = reloaded.encoder(features, training=False)["pooled_output"]
      probabilities = tf.nn.softmax(tf.matmul(pooled, reloaded.kernel) + reloaded.bias)
    return probabilities.numpy(), {k: v.numpy() for k, v in features.items()}

  weights = mobile_weights.load_nli_weights(bundle_dir, encoder, head.kernel.numpy(),
                                            head.bias.numpy())
  with open(os.path.join(bundle_dir, "manifest.json"), encoding="utf-8") as f:
    do_lower_case = bool(json.load(f)["do_lower_case"])
  mobile_export.write_verified(
      work, weights=weights, vocab_file=os.path.join(bundle_dir, "checkpoint", "vocab.txt"),
      do_lower_case=do_lower_case, seq_length=seq_length, calibration=calibration,
      pairs=verify_pairs, reference=reference, log=log)
