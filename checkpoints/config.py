"""The strict, frozen MobileBERT configuration (`bert_config.json`).

Key names, meanings and defaults are those of the original `BertConfig` in
google-research `mobilebert/modeling.py`, the code Google's released checkpoints
(`uncased_L-24_H-128_B-512_A-4_F-4_OPT`, `multi_cased_L-24_H-128_B-512_A-4_F-4_OPT`)
were trained with. Unlike the original (and Model Garden's copy of it), which write any
key of the JSON into the object's `__dict__`, `MobileBertConfig.from_dict` rejects
unknown keys, missing required keys and values the architecture cannot have.
"""

import dataclasses
import json
import os
from typing import Any, Callable, Mapping

# Keys every bert_config.json has; the original has no usable default for them.
REQUIRED_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers",
                 "num_attention_heads", "intermediate_size")

# Defaults of the original `BertConfig.__init__` (google-research mobilebert/modeling.py).
# `embedding_size` and `intra_bottleneck_size` default to `hidden_size` there
# (`BertConfig.from_dict`).
ORIGINAL_DEFAULTS = {
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 16,
    "initializer_range": 0.02,
    "embedding_size": None,
    "trigram_input": False,
    "use_bottleneck": False,
    "intra_bottleneck_size": None,
    "use_bottleneck_attention": False,
    "key_query_shared_bottleneck": False,
    "num_feedforward_networks": 1,
    "normalization_type": "layer_norm",
    "classifier_activation": True,
}

# Activations of the original `get_activation`; "gelu" there is the tanh approximation.
SUPPORTED_ACTIVATIONS = ("relu", "gelu", "relu6", "tanh", "linear")
SUPPORTED_NORMALIZATIONS = ("no_norm", "layer_norm")


@dataclasses.dataclass(frozen=True)
class MobileBertConfig:
  """A validated MobileBERT `bert_config.json`.

  Attributes carry the original key names. Sizes are counts (not bytes):
  `embedding_size` E is the word-embedding width, `hidden_size` H the width between
  blocks, `intra_bottleneck_size` the width inside a block's bottleneck.
  `defaults_applied` lists the optional keys that were absent from the source JSON and
  took the original code's default.
  """
  vocab_size: int
  hidden_size: int
  num_hidden_layers: int
  num_attention_heads: int
  intermediate_size: int
  hidden_act: str
  hidden_dropout_prob: float
  attention_probs_dropout_prob: float
  max_position_embeddings: int
  type_vocab_size: int
  initializer_range: float
  embedding_size: int
  trigram_input: bool
  use_bottleneck: bool
  intra_bottleneck_size: int
  use_bottleneck_attention: bool
  key_query_shared_bottleneck: bool
  num_feedforward_networks: int
  normalization_type: str
  classifier_activation: bool
  defaults_applied: tuple[str, ...] = ()

  @classmethod
  def from_dict(cls, values: Mapping[str, Any], *, source: str = "bert_config.json"
                ) -> "MobileBertConfig":
    """Builds a config from a parsed `bert_config.json`.

    Args:
      values: the JSON object.
      source: where it came from, for error messages.

    Raises:
      ValueError: on unknown keys (all listed), missing required keys, values of the
        wrong type, or sizes the architecture cannot have (e.g. a bottleneck size not
        divisible by the number of heads). The message names the key and value.
    """
    if not isinstance(values, Mapping):
      raise ValueError(f"{source}: expected a JSON object, got {type(values).__name__}")
    known = set(REQUIRED_KEYS) | set(ORIGINAL_DEFAULTS)
    unknown = sorted(set(values) - known)
    if unknown:
      raise ValueError(
          f"{source}: unknown key(s) {unknown}; a MobileBERT bert_config.json has only "
          f"{sorted(known)}. Remove them or pass the config that came with the checkpoint.")
    missing = [k for k in REQUIRED_KEYS if k not in values]
    if missing:
      raise ValueError(f"{source}: missing required key(s) {missing}.")
    merged = dict(ORIGINAL_DEFAULTS)
    merged.update(values)
    defaults_applied = tuple(sorted(k for k in ORIGINAL_DEFAULTS if k not in values))
    if merged["embedding_size"] is None:
      merged["embedding_size"] = merged["hidden_size"]
    if merged["intra_bottleneck_size"] is None:
      merged["intra_bottleneck_size"] = merged["hidden_size"]
    for key, value in merged.items():
      _check_type(source, key, value)
    config = cls(**merged, defaults_applied=defaults_applied)
    config._validate(source)
    return config

  @classmethod
  def from_json_file(cls, path: str) -> "MobileBertConfig":
    """Reads and validates a `bert_config.json`.

    Raises:
      FileNotFoundError: `path` does not exist.
      ValueError: the file is not valid JSON, or `from_dict` rejects it.
    """
    if not os.path.isfile(path):
      raise FileNotFoundError(
          f"bert_config.json not found at {path!r}; pass --bert_config_file=PATH or a "
          "--checkpoint_dir that contains bert_config.json")
    with open(path, "rb") as f:
      raw = f.read()
    try:
      values = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
      raise ValueError(f"{path}: not valid UTF-8 JSON ({e}); pass the bert_config.json "
                       "that came with the checkpoint") from None
    return cls.from_dict(values, source=path)

  def _validate(self, source: str) -> None:
    def bad(key, why):
      raise ValueError(f"{source}: {key}={getattr(self, key)!r} {why}")

    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size", "max_position_embeddings", "type_vocab_size",
                "embedding_size", "intra_bottleneck_size", "num_feedforward_networks"):
      if getattr(self, key) < 1:
        bad(key, "must be a positive integer")
    for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
      if not 0.0 <= getattr(self, key) < 1.0:
        bad(key, "must be a probability in [0, 1)")
    if self.initializer_range <= 0:
      bad("initializer_range", "must be > 0")
    if self.hidden_act.lower() not in SUPPORTED_ACTIVATIONS:
      bad("hidden_act", f"is not one of the original activations {SUPPORTED_ACTIVATIONS}")
    if self.normalization_type not in SUPPORTED_NORMALIZATIONS:
      bad("normalization_type", f"must be one of {SUPPORTED_NORMALIZATIONS} (the original "
          "also has 'manual_layer_norm', which no released checkpoint uses)")
    if not self.use_bottleneck:
      bad("use_bottleneck", "is not supported: tf-models-official's MobileBERTEncoder always "
          "has the bottleneck/inverted-bottleneck structure (BERT-style configs are not "
          "MobileBERT)")
    if self.intra_bottleneck_size % self.num_attention_heads:
      bad("intra_bottleneck_size", f"is not divisible by num_attention_heads="
          f"{self.num_attention_heads} (attention heads split the bottleneck)")
    if self.embedding_size > self.hidden_size:
      bad("embedding_size", f"is larger than hidden_size={self.hidden_size}; the MLM head "
          "of the original pads the embedding table up to hidden_size and cannot shrink it")
    if self.max_position_embeddings < 2:
      bad("max_position_embeddings", "must be >= 2 ([CLS] and [SEP])")

  @property
  def attention_head_size(self) -> int:
    """Width of one attention head: intra_bottleneck_size / num_attention_heads."""
    return self.intra_bottleneck_size // self.num_attention_heads

  @property
  def norm_scope(self) -> str:
    """The TF1 variable scope of every normalization layer in the encoder.

    `FakeLayerNorm` for `no_norm` (NoNorm: `x * gamma + beta`, paper section 4.2),
    `LayerNorm` for `layer_norm` (original `modeling.layer_norm`).
    """
    return "FakeLayerNorm" if self.normalization_type == "no_norm" else "LayerNorm"

  def to_dict(self) -> dict[str, Any]:
    """The normalized config: every original key, defaults filled in (JSON-ready)."""
    out = dataclasses.asdict(self)
    out.pop("defaults_applied")
    return out

  def to_json_string(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

  def activation_fn(self) -> Callable:
    """The block activation as a callable, resolved exactly as the original code does.

    tf-models-official's `tf_utils.get_activation` maps "gelu" to the tanh approximation
    (`official/modeling/activations/gelu.py`), which is the original's `gelu`; a bare
    string "gelu" handed to a Keras layer would give the exact erf form instead.
    """
    from official.modeling import tf_utils  # pylint: disable=g-import-not-at-top
    return tf_utils.get_activation(self.hidden_act.lower())

  def to_encoder_kwargs(self) -> dict[str, Any]:
    """Keyword arguments for `official.nlp.modeling.networks.MobileBERTEncoder`.

    `trigram_input` has no counterpart there (its embedding is always trigram); see
    `checkpoints.name_map` for how a non-trigram checkpoint is mapped exactly.
    """
    return dict(
        word_vocab_size=self.vocab_size,
        word_embed_size=self.embedding_size,
        type_vocab_size=self.type_vocab_size,
        max_sequence_length=self.max_position_embeddings,
        num_blocks=self.num_hidden_layers,
        hidden_size=self.hidden_size,
        num_attention_heads=self.num_attention_heads,
        intermediate_size=self.intermediate_size,
        intermediate_act_fn=self.activation_fn(),
        hidden_dropout_prob=self.hidden_dropout_prob,
        attention_probs_dropout_prob=self.attention_probs_dropout_prob,
        intra_bottleneck_size=self.intra_bottleneck_size,
        initializer_range=self.initializer_range,
        use_bottleneck_attention=self.use_bottleneck_attention,
        key_query_shared_bottleneck=self.key_query_shared_bottleneck,
        num_feedforward_networks=self.num_feedforward_networks,
        normalization_type=self.normalization_type,
        classifier_activation=self.classifier_activation,
    )


_BOOL_KEYS = ("trigram_input", "use_bottleneck", "use_bottleneck_attention",
              "key_query_shared_bottleneck", "classifier_activation")
_FLOAT_KEYS = ("hidden_dropout_prob", "attention_probs_dropout_prob", "initializer_range")
_STR_KEYS = ("hidden_act", "normalization_type")


def _check_type(source: str, key: str, value: Any) -> None:
  if key in _BOOL_KEYS:
    ok = isinstance(value, bool)
    want = "true or false"
  elif key in _FLOAT_KEYS:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    want = "a number"
  elif key in _STR_KEYS:
    ok = isinstance(value, str)
    want = "a string"
  else:
    ok = isinstance(value, int) and not isinstance(value, bool)
    want = "an integer"
  if not ok:
    raise ValueError(f"{source}: {key}={value!r} must be {want}")
