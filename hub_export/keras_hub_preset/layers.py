"""MobileBERT's layers in backend-agnostic Keras 3 ops (TensorFlow, JAX, PyTorch).

Each layer computes what its Model Garden counterpart computes (`official/nlp/modeling/
layers/mobile_bert_layers.py`, `networks/mobile_bert_encoder.py`), which is what
google-research `mobilebert/modeling.py` computes (Sun et al., 2020, section 3):

* `NoNorm`: x * gamma + beta (`modeling.py` `NoNorm`); `normalization_type="layer_norm"`
  gives `LayerNormalization(epsilon=1e-12)` instead.
* `MobileBertEmbedding`: word embeddings [V, E] with trigram input (the embeddings of
  token t+1, t and t-1 concatenated, zero beyond the ends) projected to H, plus position
  and segment embeddings, norm, dropout.
* `MobileBertBlock`: the bottleneck transformer block: bottleneck input (H -> B) and, with
  `key_query_shared_bottleneck`, a shared key/query bottleneck; multi-head attention over B
  (value from the block input); `num_feedforward_networks` stacked FFNs (B -> I -> B, each
  with a residual and norm); bottleneck output (B -> H) with a residual to the block input.
* `MobileBertMaskedLMHead`: dense + activation + LayerNorm(1e-12), then logits against
  [word embeddings | extra_output_weights] ([V, E + (H - E)]) plus a bias (`modeling.py`
  `get_masked_lm_output`).

Padded keys are masked as `checkpoints.model.ATTENTION_MASKS` says: "original" (scores *
mask + (1 - mask) * -6, softmax over every key) or "model_garden" (scores - 1e9 on padded
keys: zero weight, as Keras' masked softmax does).

`canonical_weights(prefix)` on each layer names its variables as
`checkpoints.model.target_variables` names the converted model's, so weights move between
the two by name, one to one.
"""

import math

import keras
from keras import ops

from checkpoints.attention_mask import ATTENTION_MASKS, ORIGINAL_MASKED_SCORE

# Keras' masked softmax adds this to masked scores (keras.src.layers.activations.softmax).
MODEL_GARDEN_MASKED_SCORE = -1e9
NORMALIZATION_TYPES = ("no_norm", "layer_norm")
# `hidden_act` of bert_config.json -> activation; "gelu" is the tanh approximation, as
# the original `modeling.gelu` and tf-models-official's `tf_utils.get_activation`.
ACTIVATIONS = {"relu": "relu", "gelu": "gelu_approximate", "tanh": "tanh",
               "linear": "linear"}
LAYER_NORM_EPSILON = 1e-12  # modeling.py / Model Garden LayerNormalization epsilon


def activation(name: str):
  """The Keras activation for a `hidden_act` name.

  Raises:
    ValueError: `name` not in `ACTIVATIONS`.
  """
  if name not in ACTIVATIONS:
    raise ValueError(f"intermediate_activation={name!r} is not supported; choose one of "
                     f"{sorted(ACTIVATIONS)} (bert_config.json hidden_act)")
  if ACTIVATIONS[name] == "gelu_approximate":
    return lambda x: keras.activations.gelu(x, approximate=True)
  return keras.activations.get(ACTIVATIONS[name])


def _dense_weights(prefix, layer):
  return {f"{prefix}/kernel": layer.kernel, f"{prefix}/bias": layer.bias}


class NoNorm(keras.layers.Layer):
  """x * gamma + beta over the last axis; float [..., D] -> float [..., D]."""

  def build(self, input_shape):
    self.gamma = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="gamma")
    self.beta = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="beta")

  def call(self, x):
    return x * self.gamma + self.beta


def norm_layer(normalization_type: str, name: str, dtype=None):
  """`NoNorm` or `LayerNormalization(epsilon=1e-12)`.

  Raises:
    ValueError: `normalization_type` not in `NORMALIZATION_TYPES`.
  """
  if normalization_type == "no_norm":
    return NoNorm(name=name, dtype=dtype)
  if normalization_type == "layer_norm":
    return keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name=name,
                                           dtype=dtype)
  raise ValueError(f"normalization_type={normalization_type!r}; choose one of "
                   f"{list(NORMALIZATION_TYPES)}")


def _norm_weights(prefix, layer):
  return {f"{prefix}/gamma": layer.gamma, f"{prefix}/beta": layer.beta}


class MobileBertEmbedding(keras.layers.Layer):
  """token_ids, segment_ids int [B, S] -> float [B, S, hidden_dim]."""

  def __init__(self, *, vocabulary_size, embedding_dim, hidden_dim, max_sequence_length,
               num_segments, normalization_type, dropout, **kwargs):
    super().__init__(**kwargs)
    self.embedding_dim = embedding_dim
    self.word_embedding = keras.layers.Embedding(
        vocabulary_size, embedding_dim, name="word_embeddings", dtype=self.dtype_policy)
    self.segment_embedding = keras.layers.Embedding(
        num_segments, hidden_dim, name="type_embeddings", dtype=self.dtype_policy)
    self.position_embedding = keras.layers.Embedding(
        max_sequence_length, hidden_dim, name="position_embeddings",
        dtype=self.dtype_policy)
    self.projection = keras.layers.Dense(hidden_dim, name="projection",
                                         dtype=self.dtype_policy)
    self.norm = norm_layer(normalization_type, "norm", dtype=self.dtype_policy)
    self.dropout = keras.layers.Dropout(dropout, name="dropout", dtype=self.dtype_policy)

  def build(self, input_shape):
    self.word_embedding.build((None, None))
    self.segment_embedding.build((None, None))
    self.position_embedding.build((None, None))
    self.projection.build((None, None, 3 * self.embedding_dim))
    self.norm.build((None, None, self.projection.units))

  def call(self, token_ids, segment_ids, training=None):
    words = self.word_embedding(token_ids)
    trigram = ops.concatenate(
        [ops.pad(words[:, 1:], ((0, 0), (0, 1), (0, 0))), words,
         ops.pad(words[:, :-1], ((0, 0), (1, 0), (0, 0)))], axis=2)
    x = self.projection(trigram)
    positions = ops.expand_dims(ops.arange(ops.shape(token_ids)[1], dtype="int32"), 0)
    x = x + self.position_embedding(positions) + self.segment_embedding(segment_ids)
    return self.dropout(self.norm(x), training=training)

  def canonical_weights(self, prefix="embeddings"):
    return {f"{prefix}/word_embeddings": self.word_embedding.embeddings,
            f"{prefix}/type_embeddings": self.segment_embedding.embeddings,
            f"{prefix}/position_embeddings": self.position_embedding.embeddings,
            **_dense_weights(f"{prefix}/projection", self.projection),
            **_norm_weights(f"{prefix}/norm", self.norm)}


class MobileBertBlock(keras.layers.Layer):
  """One bottleneck transformer block: float [B, S, H], padding_mask [B, S] -> [B, S, H]."""

  def __init__(self, *, hidden_dim, num_heads, intermediate_dim, intra_bottleneck_dim,
               num_feedforward_networks, key_query_shared_bottleneck,
               use_bottleneck_attention, normalization_type, intermediate_activation,
               dropout, attention_dropout, attention_mask, **kwargs):
    super().__init__(**kwargs)
    if intra_bottleneck_dim % num_heads:
      raise ValueError(f"intra_bottleneck_dim={intra_bottleneck_dim} is not a multiple of "
                       f"num_heads={num_heads}")
    if attention_mask not in ATTENTION_MASKS:
      raise ValueError(f"attention_mask={attention_mask!r}; choose one of "
                       f"{list(ATTENTION_MASKS)}")
    self.hidden_dim = hidden_dim
    self.num_heads = num_heads
    self.head_dim = intra_bottleneck_dim // num_heads
    self.use_bottleneck_attention = use_bottleneck_attention
    self.key_query_shared = key_query_shared_bottleneck and not use_bottleneck_attention
    self.attention_mask = attention_mask
    d = dict(dtype=self.dtype_policy)
    self.bottleneck_input = keras.layers.Dense(intra_bottleneck_dim, name="bottleneck_input",
                                               **d)
    self.bottleneck_input_norm = norm_layer(normalization_type, "bottleneck_input_norm", **d)
    if self.key_query_shared:
      self.kq_bottleneck = keras.layers.Dense(intra_bottleneck_dim, name="kq_bottleneck", **d)
      self.kq_bottleneck_norm = norm_layer(normalization_type, "kq_bottleneck_norm", **d)
    heads = (None, num_heads, self.head_dim)
    self.query = keras.layers.EinsumDense("btd,dnh->btnh", heads, bias_axes="nh",
                                          name="query", **d)
    self.key = keras.layers.EinsumDense("btd,dnh->btnh", heads, bias_axes="nh",
                                        name="key", **d)
    self.value = keras.layers.EinsumDense("btd,dnh->btnh", heads, bias_axes="nh",
                                          name="value", **d)
    self.attention_output = keras.layers.EinsumDense(
        "btnh,nhd->btd", (None, intra_bottleneck_dim), bias_axes="d",
        name="attention_output", **d)
    self.attention_dropout = keras.layers.Dropout(attention_dropout, **d)
    self.attention_norm = norm_layer(normalization_type, "attention_norm", **d)
    act = activation(intermediate_activation)
    self.ffn = [(keras.layers.Dense(intermediate_dim, activation=act,
                                    name=f"ffn_{j}_intermediate", **d),
                 keras.layers.Dense(intra_bottleneck_dim, name=f"ffn_{j}_output", **d),
                 norm_layer(normalization_type, f"ffn_{j}_norm", **d))
                for j in range(num_feedforward_networks)]
    self.bottleneck_output = keras.layers.Dense(hidden_dim, name="bottleneck_output", **d)
    self.output_dropout = keras.layers.Dropout(dropout, **d)
    self.bottleneck_output_norm = norm_layer(normalization_type, "bottleneck_output_norm",
                                             **d)

  def build(self, input_shape):
    h, b = (None, None, self.hidden_dim), (None, None, self.bottleneck_input.units)
    self.bottleneck_input.build(h)
    self.bottleneck_input_norm.build(b)
    if self.key_query_shared:
      self.kq_bottleneck.build(h)
      self.kq_bottleneck_norm.build(b)
    kq_in = h if not (self.key_query_shared or self.use_bottleneck_attention) else b
    self.query.build(kq_in)
    self.key.build(kq_in)
    self.value.build(b if self.use_bottleneck_attention else h)
    self.attention_output.build((None, None, self.num_heads, self.head_dim))
    self.attention_norm.build(b)
    for intermediate, output, norm in self.ffn:
      intermediate.build(b)
      output.build((None, None, intermediate.units))
      norm.build(b)
    self.bottleneck_output.build(b)
    self.bottleneck_output_norm.build(h)

  def _attend(self, query, key, value, padding_mask, training):
    q = self.query(query) * (1.0 / math.sqrt(float(self.head_dim)))
    scores = ops.einsum("btnh,bsnh->bnts", q, self.key(key))
    mask = ops.cast(padding_mask, scores.dtype)[:, None, None, :]  # keys only
    if self.attention_mask == "original":
      scores = scores * mask + (1.0 - mask) * ORIGINAL_MASKED_SCORE
    else:
      scores = scores + (1.0 - mask) * MODEL_GARDEN_MASKED_SCORE
    probs = self.attention_dropout(ops.softmax(scores, axis=-1), training=training)
    return self.attention_output(ops.einsum("bnts,bsnh->btnh", probs, self.value(value)))

  def call(self, x, padding_mask, training=None):
    layer_input = self.bottleneck_input_norm(self.bottleneck_input(x))
    if self.use_bottleneck_attention:
      query = key = value = layer_input
    elif self.key_query_shared:
      query = key = self.kq_bottleneck_norm(self.kq_bottleneck(x))
      value = x
    else:
      query = key = value = x
    attended = self._attend(query, key, value, padding_mask, training)
    layer_input = self.attention_norm(attended + layer_input)
    for intermediate, output, norm in self.ffn:
      layer_input = norm(output(intermediate(layer_input)) + layer_input)
    out = self.output_dropout(self.bottleneck_output(layer_input), training=training)
    return self.bottleneck_output_norm(out + x)

  def canonical_weights(self, prefix):
    out = {**_dense_weights(f"{prefix}/bottleneck_input/dense", self.bottleneck_input),
           **_norm_weights(f"{prefix}/bottleneck_input/norm", self.bottleneck_input_norm)}
    if self.key_query_shared:
      out.update(_dense_weights(f"{prefix}/kq_shared_bottleneck/dense", self.kq_bottleneck))
      out.update(_norm_weights(f"{prefix}/kq_shared_bottleneck/norm",
                               self.kq_bottleneck_norm))
    for name in ("query", "key", "value"):
      out.update(_dense_weights(f"{prefix}/attention/{name}", getattr(self, name)))
    out.update(_dense_weights(f"{prefix}/attention/output", self.attention_output))
    out.update(_norm_weights(f"{prefix}/attention/norm", self.attention_norm))
    for j, (intermediate, output, norm) in enumerate(self.ffn):
      out.update(_dense_weights(f"{prefix}/ffn_{j}/intermediate", intermediate))
      out.update(_dense_weights(f"{prefix}/ffn_{j}/output", output))
      out.update(_norm_weights(f"{prefix}/ffn_{j}/norm", norm))
    out.update(_dense_weights(f"{prefix}/bottleneck_output/dense", self.bottleneck_output))
    out.update(_norm_weights(f"{prefix}/bottleneck_output/norm",
                             self.bottleneck_output_norm))
    return out


class MobileBertMaskedLMHead(keras.layers.Layer):
  """sequence_output float [B, S, H], mask_positions int [B, P] -> logits [B, P, V].

  The output matrix is the word embedding table [V, E] (tied, not copied) concatenated
  with `extra_output_weights` [V, H - E] along the feature axis.
  """

  def __init__(self, *, word_embedding, hidden_dim, intermediate_activation, **kwargs):
    super().__init__(**kwargs)
    self.word_embedding = word_embedding
    self.hidden_dim = hidden_dim
    self.transform = keras.layers.Dense(hidden_dim,
                                        activation=activation(intermediate_activation),
                                        name="transform", dtype=self.dtype_policy)
    self.transform_norm = keras.layers.LayerNormalization(
        epsilon=LAYER_NORM_EPSILON, name="transform_norm", dtype=self.dtype_policy)

  def build(self, input_shape=None):
    vocabulary_size, embedding_dim = self.word_embedding.embeddings.shape
    self.transform.build((None, self.hidden_dim))
    self.transform_norm.build((None, self.hidden_dim))
    self.extra_output_weights = None
    if self.hidden_dim > embedding_dim:
      self.extra_output_weights = self.add_weight(
          shape=(vocabulary_size, self.hidden_dim - embedding_dim), name="extra_output_weights")
    elif self.hidden_dim < embedding_dim:
      raise ValueError(f"hidden_dim={self.hidden_dim} is smaller than embedding_dim="
                       f"{embedding_dim}; MobileBERT's MLM head needs hidden_dim >= it")
    self.output_bias = self.add_weight(shape=(vocabulary_size,), initializer="zeros",
                                       name="output_bias")

  def call(self, sequence_output, mask_positions):
    gathered = ops.take_along_axis(
        sequence_output, ops.expand_dims(ops.cast(mask_positions, "int32"), -1), axis=1)
    x = self.transform_norm(self.transform(gathered))
    table = self.word_embedding.embeddings
    if self.extra_output_weights is not None:
      table = ops.concatenate([table, self.extra_output_weights], axis=1)
    return ops.matmul(x, ops.transpose(table)) + self.output_bias

  def canonical_weights(self, prefix="mlm"):
    out = {f"{prefix}/transform/dense/kernel": self.transform.kernel,
           f"{prefix}/transform/dense/bias": self.transform.bias,
           f"{prefix}/transform/LayerNorm/gamma": self.transform_norm.gamma,
           f"{prefix}/transform/LayerNorm/beta": self.transform_norm.beta,
           f"{prefix}/output_bias": self.output_bias}
    if self.extra_output_weights is not None:
      out[f"{prefix}/extra_output_weights"] = self.extra_output_weights
    return out
