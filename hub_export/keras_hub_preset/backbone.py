"""`MobileBertBackbone`: MobileBERT as a keras-hub `Backbone`, on every Keras 3 backend."""

import keras
import keras_hub

from checkpoints.attention_mask import DEFAULT_ATTENTION_MASK
from hub_export.keras_hub_preset import layers

PACKAGE = "mobilebert"  # registered names: "mobilebert>MobileBertBackbone", ...


@keras.saving.register_keras_serializable(package=PACKAGE)
class MobileBertBackbone(keras_hub.models.Backbone):
  """MobileBERT (Sun et al., 2020): embeddings with trigram input, 24 bottleneck blocks.

  Inputs (dict, int32 [batch_size, seq_length]): `token_ids`, `segment_ids`,
  `padding_mask` (1 real token, 0 padding). Outputs (dict): `sequence_output` float32
  [batch_size, seq_length, hidden_dim] (the last block's output) and `pooled_output`
  float32 [batch_size, hidden_dim] (the first token's vector, through a tanh dense layer
  when `pooler` is true: `classifier_activation` of bert_config.json).

  The computation is the converted Model Garden `MobileBERTEncoder` (see `layers`); its
  config keys are keras-hub's where one exists (`vocabulary_size`, `num_layers`,
  `num_heads`, `hidden_dim`, `intermediate_dim`, `dropout`, `max_sequence_length`,
  `num_segments`) and MobileBERT's otherwise; `from_bert_config` maps bert_config.json.

  Args:
    vocabulary_size: V, rows of the word embedding table.
    num_layers: number of blocks (24).
    num_heads: attention heads (4).
    hidden_dim: H, the inter-block width (512).
    intermediate_dim: I, the FFN inner width (512).
    embedding_dim: E, word embedding width before the trigram projection (128).
    intra_bottleneck_dim: B, the width inside a block (128).
    num_feedforward_networks: stacked FFNs per block (4).
    key_query_shared_bottleneck: keys and queries from one shared bottleneck (true).
    use_bottleneck_attention: keys, queries and values from the bottleneck input.
    normalization_type: "no_norm" (NoNorm) or "layer_norm".
    intermediate_activation: `hidden_act` of bert_config.json ("relu").
    pooler: a tanh dense layer on the first token (`classifier_activation`).
    dropout: hidden dropout rate (`hidden_dropout_prob`).
    attention_dropout: attention probability dropout (`attention_probs_dropout_prob`).
    max_sequence_length: rows of the position embedding table (512).
    num_segments: rows of the segment embedding table (`type_vocab_size`, 2).
    attention_mask: how padded keys are masked, `checkpoints.attention_mask.
      ATTENTION_MASKS` ("original" or "model_garden").
    dtype: Keras dtype policy.

  Raises:
    ValueError: an unknown `normalization_type`, `intermediate_activation` or
      `attention_mask`, or `intra_bottleneck_dim` not a multiple of `num_heads`.
  """

  def __init__(self, vocabulary_size, num_layers=24, num_heads=4, hidden_dim=512,
               intermediate_dim=512, embedding_dim=128, intra_bottleneck_dim=128,
               num_feedforward_networks=4, key_query_shared_bottleneck=True,
               use_bottleneck_attention=False, normalization_type="no_norm",
               intermediate_activation="relu", pooler=False, dropout=0.1,
               attention_dropout=0.1, max_sequence_length=512, num_segments=2,
               attention_mask=DEFAULT_ATTENTION_MASK, dtype=None, **kwargs):
    self.embeddings = layers.MobileBertEmbedding(
        vocabulary_size=vocabulary_size, embedding_dim=embedding_dim,
        hidden_dim=hidden_dim, max_sequence_length=max_sequence_length,
        num_segments=num_segments, normalization_type=normalization_type,
        dropout=dropout, dtype=dtype, name="embeddings")
    self.token_embedding = self.embeddings.word_embedding
    self.transformer_layers = [
        layers.MobileBertBlock(
            hidden_dim=hidden_dim, num_heads=num_heads, intermediate_dim=intermediate_dim,
            intra_bottleneck_dim=intra_bottleneck_dim,
            num_feedforward_networks=num_feedforward_networks,
            key_query_shared_bottleneck=key_query_shared_bottleneck,
            use_bottleneck_attention=use_bottleneck_attention,
            normalization_type=normalization_type,
            intermediate_activation=intermediate_activation, dropout=dropout,
            attention_dropout=attention_dropout, attention_mask=attention_mask, dtype=dtype,
            name=f"transformer_layer_{i}")
        for i in range(num_layers)]
    self.pooler_dense = (keras.layers.Dense(hidden_dim, activation="tanh", dtype=dtype,
                                            name="pooler") if pooler else None)

    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    segment_ids = keras.Input(shape=(None,), dtype="int32", name="segment_ids")
    padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
    x = self.embeddings(token_ids, segment_ids)
    for block in self.transformer_layers:
      x = block(x, padding_mask)
    first = x[:, 0, :]
    pooled = self.pooler_dense(first) if self.pooler_dense is not None else first
    super().__init__(
        inputs={"token_ids": token_ids, "segment_ids": segment_ids,
                "padding_mask": padding_mask},
        outputs={"sequence_output": x, "pooled_output": pooled}, dtype=dtype, **kwargs)
    self.vocabulary_size = vocabulary_size
    self.num_layers = num_layers
    self.num_heads = num_heads
    self.hidden_dim = hidden_dim
    self.intermediate_dim = intermediate_dim
    self.embedding_dim = embedding_dim
    self.intra_bottleneck_dim = intra_bottleneck_dim
    self.num_feedforward_networks = num_feedforward_networks
    self.key_query_shared_bottleneck = key_query_shared_bottleneck
    self.use_bottleneck_attention = use_bottleneck_attention
    self.normalization_type = normalization_type
    self.intermediate_activation = intermediate_activation
    self.pooler = pooler
    self.dropout = dropout
    self.attention_dropout = attention_dropout
    self.max_sequence_length = max_sequence_length
    self.num_segments = num_segments
    self.attention_mask = attention_mask

  _CONFIG_KEYS = ("vocabulary_size", "num_layers", "num_heads", "hidden_dim",
                  "intermediate_dim", "embedding_dim", "intra_bottleneck_dim",
                  "num_feedforward_networks", "key_query_shared_bottleneck",
                  "use_bottleneck_attention", "normalization_type",
                  "intermediate_activation", "pooler", "dropout", "attention_dropout",
                  "max_sequence_length", "num_segments", "attention_mask")

  def get_config(self):
    config = super().get_config()
    config.update({k: getattr(self, k) for k in self._CONFIG_KEYS})
    return config

  @classmethod
  def from_bert_config(cls, config, *, attention_mask=DEFAULT_ATTENTION_MASK, **kwargs):
    """The backbone for a `checkpoints.config.MobileBertConfig` (bert_config.json)."""
    return cls(
        vocabulary_size=config.vocab_size, num_layers=config.num_hidden_layers,
        num_heads=config.num_attention_heads, hidden_dim=config.hidden_size,
        intermediate_dim=config.intermediate_size, embedding_dim=config.embedding_size,
        intra_bottleneck_dim=config.intra_bottleneck_size,
        num_feedforward_networks=config.num_feedforward_networks,
        key_query_shared_bottleneck=config.key_query_shared_bottleneck,
        use_bottleneck_attention=config.use_bottleneck_attention,
        normalization_type=config.normalization_type,
        intermediate_activation=config.hidden_act.lower(),
        pooler=config.classifier_activation, dropout=config.hidden_dropout_prob,
        attention_dropout=config.attention_probs_dropout_prob,
        max_sequence_length=config.max_position_embeddings,
        num_segments=config.type_vocab_size, attention_mask=attention_mask, **kwargs)

  def canonical_weights(self) -> dict:
    """Canonical name (as `checkpoints.model.target_variables`) -> `keras.Variable`."""
    out = dict(self.embeddings.canonical_weights())
    for i, block in enumerate(self.transformer_layers):
      out.update(block.canonical_weights(f"layer_{i}"))
    if self.pooler_dense is not None:
      out["pooler/kernel"] = self.pooler_dense.kernel
      out["pooler/bias"] = self.pooler_dense.bias
    return out

