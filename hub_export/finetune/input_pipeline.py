"""The input pipeline of fine-tuning: sentence pairs -> encoder inputs via the bundle.

Only the bundle's exported preprocessor is used (`../shared/HUB_API.md`): `tokenize` and
`bert_pack_inputs` on sentence pairs. It runs in `tf.data`, outside any distribution
strategy; the datasets here feed `strategy.distribute_datasets_from_function` (training)
and `Model.predict` (evaluation).
"""

import os

import numpy as np
import tensorflow as tf
# Registers the preprocessor's ops.
import tensorflow_text  # noqa: F401  # pylint: disable=unused-import

from hub_export.finetune import data


def load_preprocessor(bundle_dir: str):
  """The bundle's preprocessor SavedModel (load outside any strategy scope)."""
  return tf.saved_model.load(os.path.join(bundle_dir, "preprocessor"))


def pack_pairs(preprocessor, premises, hypotheses, seq_length: int) -> dict:
  """string [B], string [B] -> the encoder inputs, int32 [B, seq_length] each.

  `[CLS] premise [SEP] hypothesis [SEP]`, round-robin truncation (the preprocessor's
  `bert_pack_inputs`, HUB_API.md). Keys: `input_word_ids`, `input_mask`, `input_type_ids`.
  """
  return preprocessor.bert_pack_inputs(
      [preprocessor.tokenize(premises), preprocessor.tokenize(hypotheses)],
      seq_length=tf.constant(seq_length, tf.int32))


def _pair_features(preprocessor, seq_length):
  def fn(premise, hypothesis):
    return pack_pairs(preprocessor, premise, hypothesis, seq_length)
  return fn


def train_dataset_fn(examples: data.NliExamples, order: np.ndarray, *, preprocessor,
                     seq_length: int, global_batch_size: int, num_replicas: int):
  """A `dataset_fn(input_context)` for `distribute_datasets_from_function`.

  Args:
    examples: the training pairs.
    order: int64 [steps * global_batch_size], the example index of each position of the
      steps to run (`data.example_order`, from the first step to run on); a trailing
      partial step is dropped.
    preprocessor: the bundle's loaded preprocessor (`load_preprocessor`).
    seq_length: S of the packed pairs.
    global_batch_size: B, pairs per step over all replicas.
    num_replicas: the strategy's `num_replicas_in_sync`.

  Returns:
    A function of a `tf.distribute.InputContext` returning a `tf.data.Dataset`. Each
    step's global batch is split in order: input pipeline k takes its contiguous share,
    batched per replica. Elements: dict `features` (encoder inputs, int32 [b, S]),
    `label` int32 [b], `index` int64 [b] (into `examples`), b = B / num_replicas.
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


def eval_dataset(examples: data.NliExamples, *, preprocessor, seq_length: int,
                 batch_size: int) -> tf.data.Dataset:
  """Encoder inputs (int32 [b, S] each) of `examples` in file order.

  Batched by `batch_size`; the last batch may be smaller.
  """
  ds = tf.data.Dataset.from_tensor_slices((list(examples.premises), list(examples.hypotheses)))
  return ds.batch(batch_size).map(_pair_features(preprocessor, seq_length),
                                   num_parallel_calls=tf.data.AUTOTUNE,
                                   deterministic=True).prefetch(tf.data.AUTOTUNE)
