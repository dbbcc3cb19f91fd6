"""tf-models-official's MobileBERT objects, built from a config, with canonical names.

The conversion target is exactly what Model Garden's own MobileBERT code builds
(`official/projects/mobilebert/model_utils.py::create_mobilebert_pretrainer`, which we
cannot import: it raises NameError on `tf_keras`): a `MobileBERTEncoder` and a
`MobileBertMaskedLM` named "cls/predictions" on its embedding table, checkpointed as
`tf.train.Checkpoint(encoder=..., masked_lm=...)` (= `BertPretrainerV2.checkpoint_items`).
A SQuAD head from `run_squad.py` is kept as `squad` in the original layout.

`target_variables` names each variable by walking the layer objects, never by Keras'
auto-generated names (which change with every model built in a process: the reason
Model Garden's converter needs `clear_session`).
"""

import dataclasses
import types
from typing import Optional

import tensorflow as tf
import tf_keras
from official.nlp.modeling import layers as nlp_layers
from official.nlp.modeling import networks

from checkpoints.attention_mask import (  # pylint: disable=unused-import
    ATTENTION_MASK_MEANINGS, ATTENTION_MASKS, DEFAULT_ATTENTION_MASK, ORIGINAL_MASKED_SCORE)
from checkpoints.config import MobileBertConfig



def _original_masked_softmax(self, attention_scores, attention_mask=None):
  """`MultiHeadAttention._masked_softmax` with the original MobileBERT masking.

  Args:
    attention_scores: float [B, N, T, S], already scaled by 1/sqrt(head size).
    attention_mask: [B, T, S] 1 (visible) / 0 (padded key), or None.

  Returns:
    float [B, N, T, S]: softmax(scores * mask + (1 - mask) * -6) over the last axis.
  """
  if attention_mask is None:
    return tf.nn.softmax(attention_scores, axis=-1)
  mask = tf.cast(attention_mask, attention_scores.dtype)
  axis = -len(self._attention_axes) * 2 - 1  # pylint: disable=protected-access
  for _ in range(len(attention_scores.shape) - len(mask.shape)):
    mask = tf.expand_dims(mask, axis=axis)  # [B, T, S] -> [B, 1, T, S], as Keras does
  scores = attention_scores * mask + (1.0 - mask) * ORIGINAL_MASKED_SCORE
  return tf.nn.softmax(scores, axis=-1)


def set_attention_mask(encoder: networks.MobileBERTEncoder, mode: str) -> None:
  """Makes every self-attention layer of `encoder` mask padded keys as `mode` says.

  Replaces `_masked_softmax` on each block's `MultiHeadAttention` instance (not the
  class) for "original"; "model_garden" restores the class's own method. Every later
  call and trace of `encoder` (eager, `tf.function`, SavedModel signatures, training
  with dropout) computes that mode; variables and checkpoints are unaffected.

  Raises:
    ValueError: `mode` not in `ATTENTION_MASKS`.
  """
  if mode not in ATTENTION_MASKS:
    raise ValueError(f"attention_mask={mode!r} is not a masking mode; choose one of "
                     f"{list(ATTENTION_MASKS)}")
  for block in encoder.transformer_layers:
    mha = block.block_layers["attention"][0]
    if mode == "original":
      object.__setattr__(mha, "_masked_softmax",
                         types.MethodType(_original_masked_softmax, mha))
    elif "_masked_softmax" in vars(mha):
      object.__delattr__(mha, "_masked_softmax")


class SquadHead(tf.Module):
  """The SQuAD span head of google-research `run_squad.py`, original layout.

  Attributes:
    output_weights: float32 [2, hidden_size]; row 0 start, row 1 end logits
      (`cls/squad/output_weights`).
    output_bias: float32 [2] (`cls/squad/output_bias`).
  """

  def __init__(self, hidden_size: int):
    super().__init__(name="squad")
    self.output_weights = tf.Variable(tf.zeros([2, hidden_size]), name="output_weights")
    self.output_bias = tf.Variable(tf.zeros([2]), name="output_bias")


@dataclasses.dataclass
class MobileBertModel:
  """The converted model: Model Garden encoder, optional MLM head and SQuAD head.

  `attention_mask` is the encoder's masking mode (`ATTENTION_MASKS`).
  """
  config: MobileBertConfig
  encoder: networks.MobileBERTEncoder
  masked_lm: Optional[nlp_layers.MobileBertMaskedLM]
  squad: Optional[SquadHead]
  attention_mask: str = DEFAULT_ATTENTION_MASK

  def checkpoint_items(self) -> dict:
    """Items for `tf.train.Checkpoint`, the keys `BertPretrainerV2.checkpoint_items` uses."""
    items = {"encoder": self.encoder}
    if self.masked_lm is not None:
      items["masked_lm"] = self.masked_lm
    if self.squad is not None:
      items["squad"] = self.squad
    return items


def build_model(config: MobileBertConfig, *, with_mlm: bool = True,
                with_squad: bool = False,
                attention_mask: str = DEFAULT_ATTENTION_MASK) -> MobileBertModel:
  """Builds Model Garden's MobileBERT encoder (+ MLM head, + SQuAD head) with variables.

  Args:
    config: validated config.
    with_mlm: build the `MobileBertMaskedLM` pre-training head.
    with_squad: build the `SquadHead`.
    attention_mask: the masking of padded keys, one of `ATTENTION_MASKS`.

  Returns:
    A `MobileBertModel` whose variables exist (built on a [1, 4] dummy batch).

  Raises:
    ValueError: unknown `attention_mask`.
  """
  if attention_mask not in ATTENTION_MASKS:
    raise ValueError(f"attention_mask={attention_mask!r} is not a masking mode; choose one "
                     f"of {list(ATTENTION_MASKS)}")
  encoder = networks.MobileBERTEncoder(**config.to_encoder_kwargs())
  set_attention_mask(encoder, attention_mask)
  dummy = tf.zeros([1, 4], tf.int32)
  outputs = encoder(dict(input_word_ids=dummy, input_mask=tf.ones_like(dummy),
                         input_type_ids=dummy))
  masked_lm = None
  if with_mlm:
    masked_lm = nlp_layers.MobileBertMaskedLM(
        embedding_table=encoder.get_embedding_table(),
        activation=config.activation_fn(),
        initializer=tf_keras.initializers.TruncatedNormal(stddev=config.initializer_range),
        name="cls/predictions")
    masked_lm(outputs["sequence_output"], tf.zeros([1, 1], tf.int32))
  squad = SquadHead(config.hidden_size) if with_squad else None
  return MobileBertModel(config=config, encoder=encoder, masked_lm=masked_lm, squad=squad,
                         attention_mask=attention_mask)


def _norm_vars(prefix: str, layer) -> dict:
  # NoNorm stores gamma as `scale`, beta as `bias`; Keras LayerNormalization as gamma/beta.
  if isinstance(layer, nlp_layers.mobile_bert_layers.NoNorm):
    return {f"{prefix}/gamma": layer.scale, f"{prefix}/beta": layer.bias}
  return {f"{prefix}/gamma": layer.gamma, f"{prefix}/beta": layer.beta}


def _dense_vars(prefix: str, layer) -> dict:
  return {f"{prefix}/kernel": layer.kernel, f"{prefix}/bias": layer.bias}


def target_variables(model: MobileBertModel) -> dict:
  """Canonical target name -> `tf.Variable`, for every variable of `model`.

  Raises:
    RuntimeError: if the walk missed a variable of the Model Garden objects (a changed
      tf-models-official layout), naming the variables it missed.
  """
  enc = model.encoder
  emb = enc.embedding_layer
  out = {
      "embeddings/word_embeddings": emb.word_embedding.embeddings,
      "embeddings/type_embeddings": emb.type_embedding.embeddings,
      "embeddings/position_embeddings": emb.pos_embedding._position_embeddings,  # pylint: disable=protected-access
      **_dense_vars("embeddings/projection", emb.word_embedding_proj),
      **_norm_vars("embeddings/norm", emb.layer_norm),
  }
  for i, block in enumerate(enc.transformer_layers):
    bl = block.block_layers
    p = f"layer_{i}"
    out.update(_dense_vars(f"{p}/bottleneck_input/dense", bl["bottleneck_input"][0]))
    out.update(_norm_vars(f"{p}/bottleneck_input/norm", bl["bottleneck_input"][1]))
    if "kq_shared_bottleneck" in bl and not block.use_bottleneck_attention:
      out.update(_dense_vars(f"{p}/kq_shared_bottleneck/dense", bl["kq_shared_bottleneck"][0]))
      out.update(_norm_vars(f"{p}/kq_shared_bottleneck/norm", bl["kq_shared_bottleneck"][1]))
    mha = bl["attention"][0]
    # pylint: disable=protected-access
    for name, dense in (("query", mha._query_dense), ("key", mha._key_dense),
                        ("value", mha._value_dense), ("output", mha._output_dense)):
      out.update(_dense_vars(f"{p}/attention/{name}", dense))
    # pylint: enable=protected-access
    out.update(_norm_vars(f"{p}/attention/norm", bl["attention"][1]))
    for j, (intermediate, output, norm) in enumerate(bl["ffn"]):
      out.update(_dense_vars(f"{p}/ffn_{j}/intermediate", intermediate))
      out.update(_dense_vars(f"{p}/ffn_{j}/output", output))
      out.update(_norm_vars(f"{p}/ffn_{j}/norm", norm))
    out.update(_dense_vars(f"{p}/bottleneck_output/dense", bl["bottleneck_output"][0]))
    out.update(_norm_vars(f"{p}/bottleneck_output/norm", bl["bottleneck_output"][2]))
  if enc.pooler_layer is not None:
    out.update(_dense_vars("pooler", enc.pooler_layer))
  _check_covers("encoder", enc.variables, out.values())
  if model.masked_lm is not None:
    mlm = model.masked_lm
    head = {"mlm/transform/dense/kernel": mlm.dense.kernel,
            "mlm/transform/dense/bias": mlm.dense.bias,
            "mlm/transform/LayerNorm/gamma": mlm.layer_norm.gamma,
            "mlm/transform/LayerNorm/beta": mlm.layer_norm.beta,
            "mlm/output_bias": mlm.bias}
    if mlm.extra_output_weights is not None:
      head["mlm/extra_output_weights"] = mlm.extra_output_weights
    _check_covers("masked_lm", mlm.variables, list(head.values()) + [emb.word_embedding.embeddings])
    out.update(head)
  if model.squad is not None:
    out["squad/output_weights"] = model.squad.output_weights
    out["squad/output_bias"] = model.squad.output_bias
  return out


def _check_covers(what: str, variables, named) -> None:
  named_ids = {id(v) for v in named}
  missed = [v.name for v in variables if id(v) not in named_ids]
  if missed:
    raise RuntimeError(f"{what}: tf-models-official variables with no canonical name "
                       f"(layout changed?): {missed}")
