"""keras-hub preprocessors and tasks of MobileBERT: text classification and masked LM.

* `MobileBertTextClassifierPreprocessor`: strings, or (first, second) pairs ->
  `token_ids`, `segment_ids`, `padding_mask` int32 [B, sequence_length], packed as the
  bundle's preprocessor packs them (`tokenizer.MobileBertPacker`).
* `MobileBertMaskedLMPreprocessor`: the same, then keras-hub's `MaskedLMMaskGenerator`
  (`mask_positions`, labels `mask_ids`, weights `mask_weights`).
* `MobileBertTextClassifier`: backbone `pooled_output` -> dropout -> dense `num_classes`
  logits (google-research `run_classifier.py`'s head on MobileBERT's pooled output).
* `MobileBertMaskedLM`: backbone `sequence_output` at `mask_positions` ->
  `layers.MobileBertMaskedLMHead` logits [B, P, vocabulary_size].

Registered under the package "mobilebert", so that `keras_hub.models.TextClassifier.
from_preset(path, num_classes=3)` and `keras_hub.models.MaskedLM.from_preset(path)` find
them once this package is imported.
"""

import keras
import keras_hub

from hub_export.keras_hub_preset import layers
from hub_export.keras_hub_preset.backbone import PACKAGE, MobileBertBackbone
from hub_export.keras_hub_preset.tokenizer import MobileBertPacker, MobileBertTokenizer


class _ExactPacking:
  """The preprocessors' shared part: the bundle's packing, computed in TensorFlow.

  `truncate` must be "round_robin" (the original BERT `_truncate_seq_pair`); the packer
  is `MobileBertPacker`; calls always take keras-hub's TensorFlow path (`_call_tf`),
  since the tokenizer computes in TensorFlow ops only.
  """

  def __init__(self, tokenizer, sequence_length=128, truncate="round_robin", **kwargs):
    if truncate != "round_robin":
      raise ValueError(f"truncate={truncate!r}; MobileBERT packs with 'round_robin' only "
                       "(the original BERT _truncate_seq_pair)")
    super().__init__(tokenizer, sequence_length=sequence_length, truncate=truncate,
                     **kwargs)

  def build(self, input_shape):
    super().build(input_shape)
    self.packer = MobileBertPacker(self.tokenizer, self.sequence_length,
                                   dtype=self.dtype_policy)

  def call(self, x, y=None, sample_weight=None):
    return self._call_tf(x, y, sample_weight)


@keras.saving.register_keras_serializable(package=PACKAGE)
class MobileBertTextClassifierPreprocessor(_ExactPacking,
                                           keras_hub.models.TextClassifierPreprocessor):
  """Text (string [B] or scalar) or pairs `x=(first, second)` -> backbone inputs.

  Args:
    tokenizer: a `MobileBertTokenizer`.
    sequence_length: S, the packed length (2 + tokens of one text, 3 + of a pair <= S).
    truncate: "round_robin" only (the original `_truncate_seq_pair`).

  Raises:
    ValueError: another `truncate` (construction), or a `sequence_length` too short for
      the segments' [CLS]/[SEP] (call).
  """

  backbone_cls = MobileBertBackbone
  tokenizer_cls = MobileBertTokenizer


@keras.saving.register_keras_serializable(package=PACKAGE)
class MobileBertMaskedLMPreprocessor(_ExactPacking, keras_hub.models.MaskedLMPreprocessor):
  """Text -> masked backbone inputs + `mask_positions`, labels and weights (keras-hub's
  `MaskedLMMaskGenerator`); arguments as `MobileBertTextClassifierPreprocessor`'s plus
  keras-hub's masking rates."""

  backbone_cls = MobileBertBackbone
  tokenizer_cls = MobileBertTokenizer


@keras.saving.register_keras_serializable(package=PACKAGE)
class MobileBertTextClassifier(keras_hub.models.TextClassifier):
  """Backbone inputs -> float32 logits [B, num_classes] (or `activation` of them).

  Args:
    backbone: a `MobileBertBackbone`.
    num_classes: number of labels (XNLI: 3, entailment / neutral / contradiction).
    preprocessor: a `MobileBertTextClassifierPreprocessor` or None (inputs are then the
      backbone's dict).
    activation: of the output layer; None gives logits (keras-hub's default).
    dropout: before the output layer (`hidden_dropout_prob` in `run_classifier.py`).
  """

  backbone_cls = MobileBertBackbone
  preprocessor_cls = MobileBertTextClassifierPreprocessor

  def __init__(self, backbone, num_classes, preprocessor=None, activation=None,
               dropout=0.1, **kwargs):
    self.backbone = backbone
    self.preprocessor = preprocessor
    self.output_dropout = keras.layers.Dropout(dropout, dtype=backbone.dtype_policy,
                                               name="classifier_dropout")
    self.output_dense = keras.layers.Dense(
        num_classes, activation=activation,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        dtype=backbone.dtype_policy, name="logits")
    inputs = backbone.input
    pooled = self.output_dropout(backbone(inputs)["pooled_output"])
    super().__init__(inputs=inputs, outputs=self.output_dense(pooled), **kwargs)
    self.num_classes = num_classes
    self.activation = keras.activations.get(activation)
    self.dropout = dropout

  def get_config(self):
    config = super().get_config()
    config.update({"num_classes": self.num_classes,
                   "activation": keras.activations.serialize(self.activation),
                   "dropout": self.dropout})
    return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class MobileBertMaskedLM(keras_hub.models.MaskedLM):
  """Backbone inputs + `mask_positions` int32 [B, P] -> logits float32 [B, P, V].

  The head's output matrix is the backbone's word embedding table (tied) next to its
  own `extra_output_weights`, as the released checkpoints' `cls/predictions`.
  """

  backbone_cls = MobileBertBackbone
  preprocessor_cls = MobileBertMaskedLMPreprocessor

  def __init__(self, backbone, preprocessor=None, **kwargs):
    self.backbone = backbone
    self.preprocessor = preprocessor
    self.masked_lm_head = layers.MobileBertMaskedLMHead(
        word_embedding=backbone.token_embedding, hidden_dim=backbone.hidden_dim,
        intermediate_activation=backbone.intermediate_activation,
        dtype=backbone.dtype_policy, name="mlm_head")
    inputs = {**backbone.input,
              "mask_positions": keras.Input(shape=(None,), dtype="int32",
                                            name="mask_positions")}
    sequence_output = backbone(backbone.input)["sequence_output"]
    outputs = self.masked_lm_head(sequence_output, inputs["mask_positions"])
    super().__init__(inputs=inputs, outputs=outputs, **kwargs)
