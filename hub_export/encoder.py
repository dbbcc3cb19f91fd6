"""The encoder/ SavedModel: TF Hub's Reusable SavedModel API for text encoders.

Contract: `../shared/HUB_API.md`, section "encoder/" (the "Common SavedModel APIs for
text" of TF Hub plus named serving signatures). The root object is a plain trackable
holding `tf.function`s and variable lists, not a Keras model: saving does not serialize
Keras layer call functions (the slow part of tf-models-official's `export_tfhub`, and
the bulk of its SavedModel), and loading restores a handful of functions only.
"""

import collections.abc
import contextlib
import os
import re

import tensorflow as tf

from checkpoints.model import MobileBertModel

_INT_SPEC = tf.TensorSpec([None, None], tf.int32)
ENCODER_INPUTS = ("input_word_ids", "input_mask", "input_type_ids")


def _input_spec(with_positions: bool = False) -> dict:
  spec = {k: tf.TensorSpec([None, None], tf.int32, name=k) for k in ENCODER_INPUTS}
  if with_positions:
    spec["masked_lm_positions"] = tf.TensorSpec([None, None], tf.int32,
                                                name="masked_lm_positions")
  return spec


class BlockStacks:
  """The encoder's per-block variables, stacked over the L blocks for the SavedModel.

  MobileBERT has 24 identical blocks of 46 variables each. A SavedModel function that
  reads a variable takes its handle as an input, and TensorFlow spends time per captured
  handle, per function, when saving (a placeholder per handle in every signature and
  wrapper, the saver's save/restore functions) and when loading (every function's graph
  is rebuilt in Python). So each block variable is served by one `[L, ...]` variable
  (53 handles instead of 1,111 for the released config), which makes saving and loading
  several times cheaper at the same batch-1 latency (`benchmarks/export_benchmark.py`
  measures it; `benchmarks/README.md` has the figures). Values are identical: while the
  encoder is traced, each block's layers read `tf.unstack(stacked)[i]` instead of their
  own variable; the gradient of `tf.unstack` is one `tf.stack`, so fine-tuning updates
  the stacked variables. The Model Garden model and its `checkpoint/` keep the original
  per-block variables.

  Attributes:
    stacked: list of `tf.Variable`, each `[L] + shape` of one block variable, named
      `transformer/layer_stacked/<Model Garden name within the block>`.
    block_variables: the Model Garden block variables served by `stacked` (ids).
  """

  def __init__(self, blocks):
    blocks = list(blocks)
    per_block = [self._attribute_refs(block) for block in blocks]
    keys = sorted(per_block[0])
    for i, refs in enumerate(per_block):
      if sorted(refs) != keys:
        raise ValueError(f"transformer block {i} has a different variable structure from "
                         "block 0; the encoder cannot be exported with stacked variables")
    self._refs = []  # Per stacked variable: per block, list of (owner, attribute).
    self.stacked = []
    self.block_variables = set()
    for key in keys:
      group = [per_block[i][key] for i in range(len(blocks))]
      first = group[0][0]
      for var, _ in group:
        if var.shape != first.shape or var.dtype != first.dtype or var.trainable != first.trainable:
          raise ValueError(f"block variables {first.name} and {var.name} differ in shape, "
                           "dtype or trainability; they cannot be stacked")
        self.block_variables.add(id(var))
      name = re.sub(r"^[^/]*?\d+/", "transformer/layer_stacked/", first.name.split(":")[0])
      self.stacked.append(tf.Variable(tf.stack([v for v, _ in group]), name=name,
                                      trainable=first.trainable))
      self._refs.append([owners for _, owners in group])

  @staticmethod
  def _attribute_refs(block) -> dict:
    """Canonical attribute path ("a/0/b/kernel") -> (variable, [(owner, attribute), ...])."""
    found = {}
    for path, var in block._flatten(  # pylint: disable=protected-access
        predicate=lambda x: isinstance(x, tf.Variable), with_path=True):
      owner = block
      for key in path[:-1]:
        is_container = isinstance(owner, (collections.abc.Mapping, collections.abc.Sequence))
        owner = owner[key] if is_container else getattr(owner, key)
      attr = path[-1]
      if (not isinstance(attr, str) or
          isinstance(owner, (collections.abc.Mapping, collections.abc.Sequence))):
        continue  # A container's entry (e.g. `_trainable_weights`), not read in `call`.
      found.setdefault(id(var), (var, {}))[1].setdefault((id(owner), attr), (path, owner, attr))
    result = {}
    for var, refs in found.values():  # One entry per (owner, attribute), many paths to it.
      refs = sorted(refs.values(), key=lambda r: "/".join(map(str, r[0])))
      result["/".join(map(str, refs[0][0]))] = (var, [(owner, attr) for _, owner, attr in refs])
    return result

  def assign_blocks(self, values) -> None:
    """Sets the per-block variables from stacked values.

    Args:
      values: one array per `stacked` variable, in its order, each of its shape
        `[L] + block shape` (e.g. a fine-tuned encoder SavedModel's stacked variables);
        block i's variables get `value[i]`.

    Raises:
      ValueError: a different number of values, or a value of another shape (names
        the variable).
    """
    values = list(values)
    if len(values) != len(self.stacked):
      raise ValueError(f"got {len(values)} stacked values for {len(self.stacked)} stacked "
                       "variables")
    for var, value, refs in zip(self.stacked, values, self._refs):
      if tuple(value.shape) != tuple(var.shape):
        raise ValueError(f"stacked value for {var.name} has shape {tuple(value.shape)}, "
                         f"expected {tuple(var.shape)}")
      for block_value, owners in zip(tf.unstack(value), refs):
        owner, attr = owners[0]
        getattr(owner, attr).assign(block_value)

  @contextlib.contextmanager
  def swapped_in(self):
    """Within the block, the layers read slices of the stacked variables."""
    saved = []
    try:
      for var, refs in zip(self.stacked, self._refs):
        for block_slice, owners in zip(tf.unstack(var), refs):
          for owner, attr in owners:
            saved.append((owner, attr, getattr(owner, attr)))
            # Bypass Keras attribute tracking: nothing may change the layer's weights.
            object.__setattr__(owner, attr, block_slice)
      yield
    finally:
      for owner, attr, value in reversed(saved):
        object.__setattr__(owner, attr, value)


class ModelHolder:
  """Keeps the Keras objects out of the SavedModel's object graph (not trackable)."""

  def __init__(self, model: MobileBertModel):
    self.model = model


def _check_inputs(inputs: dict, max_len: int) -> None:
  """Graph-side checks: sequence length in [1, max_position_embeddings], same shapes."""
  ids = inputs["input_word_ids"]
  seq_len = tf.shape(ids)[1]
  tf.debugging.assert_less_equal(
      seq_len, max_len,
      message=f"input_word_ids has more positions than max_position_embeddings={max_len};"
              " truncate to at most that many tokens (e.g. a smaller seq_length in the "
              "preprocessor)")
  tf.debugging.assert_greater_equal(seq_len, 1, message="input_word_ids has 0 positions")
  for key in ("input_mask", "input_type_ids"):
    tf.debugging.assert_equal(tf.shape(inputs[key]), tf.shape(ids),
                              message=f"{key} must have the shape of input_word_ids [B, S]")


def build_encoder_module(model: MobileBertModel, *, vocab_file: str,
                         do_lower_case: bool) -> tuple:
  """Builds the exportable encoder object (not yet saved).

  Args:
    model: converted Model Garden MobileBERT; `model.masked_lm` may be None.
    vocab_file: vocab.txt to attach as the `vocab_file` asset.
    do_lower_case: stored as the non-trainable bool variable `do_lower_case`.

  Returns:
    (obj, signatures): `obj` has `__call__(inputs, training=False)`, `mlm` (if the model
    has an MLM head), `vocab_file`, `do_lower_case`, `variables`, `trainable_variables`,
    `regularization_losses`; `signatures` maps serving signature names to functions
    with named outputs, for `save_encoder`. Inputs: dict of int32 [B, S] `input_word_ids`,
    `input_mask`, `input_type_ids`. Outputs: `sequence_output` float32 [B, S, H],
    `pooled_output` and `default` float32 [B, H], `encoder_outputs` list of L float32
    [B, S, H] (block outputs; the last is `sequence_output`).
  """
  holder = ModelHolder(model)
  max_len = model.config.max_position_embeddings
  num_layers = model.config.num_hidden_layers

  stacks = BlockStacks(model.encoder.transformer_layers)

  def run_encoder(inputs, training):
    _check_inputs(inputs, max_len)
    with stacks.swapped_in():
      out = holder.model.encoder(
          {k: inputs[k] for k in ENCODER_INPUTS}, training=training)
    # Model Garden's encoder_outputs starts with the embedding output; TF Hub's
    # encoder_outputs are the L block outputs.
    blocks = list(out["encoder_outputs"][1:])
    return {"sequence_output": out["sequence_output"],
            "pooled_output": out["pooled_output"],
            "default": out["pooled_output"],
            "encoder_outputs": blocks}

  obj = tf.__internal__.tracking.AutoTrackable()
  training_spec = tf.TensorSpec([], tf.bool, name="training")

  # One trace serves training=True and False: `training` is a bool tensor, so dropout
  # becomes a small tf.cond instead of a second copy of the 24-block graph. A Python
  # bool passed by the caller (as hub.KerasLayer does) is converted to it.
  @tf.function(input_signature=[_input_spec(), training_spec])
  def call(inputs, training=False):
    return run_encoder(inputs, training)

  def call_fn(inputs, training):
    # Looked up when the caller is traced (inside tf.saved_model.save), so the encoder
    # is traced exactly once, in the saving context, and shared by every caller.
    concrete = call.get_concrete_function()
    leaked = [v.name for v in concrete.variables if id(v) in stacks.block_variables]
    if leaked:
      raise RuntimeError(f"the traced encoder reads {len(leaked)} block variable(s) directly "
                         f"instead of their stacked copies (e.g. {leaked[:3]}); a Model Garden "
                         "layer keeps a variable where BlockStacks does not swap it")
    return concrete(inputs, training)

  obj.__call__ = call
  obj.vocab_file = tf.saved_model.Asset(vocab_file)
  obj.do_lower_case = tf.Variable(do_lower_case, trainable=False, name="do_lower_case")
  enc_vars = [v for v in model.encoder.variables
              if id(v) not in stacks.block_variables] + stacks.stacked
  obj.variables = enc_vars
  obj.trainable_variables = [v for v in enc_vars if v.trainable]
  obj.regularization_losses = []

  def encoder_inputs(input_word_ids, input_mask, input_type_ids):
    return dict(input_word_ids=input_word_ids, input_mask=input_mask,
                input_type_ids=input_type_ids)

  # Signatures call the concrete function: calling the tf.function itself from another
  # function would trace the whole encoder again.
  @tf.function(input_signature=[_INT_SPEC] * 3)
  def encoder_signature(input_word_ids, input_mask, input_type_ids):
    out = call_fn(encoder_inputs(input_word_ids, input_mask, input_type_ids),
                  tf.constant(False))
    result = {k: out[k] for k in ("pooled_output", "sequence_output", "default")}
    for i in range(num_layers):
      result[f"encoder_outputs_{i}"] = out["encoder_outputs"][i]
    return result

  @tf.function(input_signature=[_INT_SPEC] * 3)
  def pooled_signature(input_word_ids, input_mask, input_type_ids):
    out = call_fn(encoder_inputs(input_word_ids, input_mask, input_type_ids),
                  tf.constant(False))
    return {"pooled_output": out["pooled_output"]}

  signatures = {"serving_default": encoder_signature, "encoder": encoder_signature,
                "pooled": pooled_signature}

  if model.masked_lm is not None:
    mlm = tf.__internal__.tracking.AutoTrackable()

    @tf.function(input_signature=[_input_spec(with_positions=True), training_spec])
    def mlm_call(inputs, training=False):
      positions = inputs["masked_lm_positions"]
      tf.debugging.assert_equal(tf.shape(positions)[0], tf.shape(inputs["input_word_ids"])[0],
                                message="masked_lm_positions must be int32 [B, P] with the "
                                        "batch size B of input_word_ids")
      tf.debugging.assert_less(
          positions, tf.shape(inputs["input_word_ids"])[1],
          message="masked_lm_positions must index positions < seq_length of input_word_ids")
      tf.debugging.assert_non_negative(positions, message="masked_lm_positions must be >= 0")
      out = dict(call_fn({k: inputs[k] for k in ENCODER_INPUTS}, training))
      out["mlm_logits"] = holder.model.masked_lm(out["sequence_output"], positions,
                                                 training=training)
      return out

    def mlm_fn(inputs, training):
      return mlm_call.get_concrete_function()(inputs, training)

    mlm.__call__ = mlm_call
    head_vars = [v for v in model.masked_lm.variables
                 if all(v is not e for e in enc_vars)]
    mlm.variables = enc_vars + head_vars
    mlm.trainable_variables = (list(obj.trainable_variables) +
                               [v for v in head_vars if v.trainable])
    mlm.regularization_losses = []
    obj.mlm = mlm

    @tf.function(input_signature=[_INT_SPEC] * 4)
    def mlm_signature(input_word_ids, input_mask, input_type_ids, masked_lm_positions):
      inputs = encoder_inputs(input_word_ids, input_mask, input_type_ids)
      inputs["masked_lm_positions"] = masked_lm_positions
      return {"mlm_logits": mlm_fn(inputs, tf.constant(False))["mlm_logits"]}

    signatures["mlm"] = mlm_signature
  return obj, signatures


def save_encoder(obj, signatures: dict, export_path: str) -> None:
  """Saves `build_encoder_module`'s result as a TF2 SavedModel at `export_path`.

  Raises:
    RuntimeError: TensorFlow wrote no saved_model.pb.
  """
  tf.saved_model.save(obj, export_path, signatures=signatures)
  if not os.path.isfile(os.path.join(export_path, "saved_model.pb")):
    raise RuntimeError(f"tf.saved_model.save wrote no saved_model.pb in {export_path}")
