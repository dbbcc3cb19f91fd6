"""Tests for checkpoints.config: the strict MobileBERT bert_config.json."""

import glob
import json
import os

import pytest

from checkpoints.config import MobileBertConfig
from tests import testutil


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(
    testutil.SHARED_DATA, "configs", "google_research_mobilebert", "*F-*.json"))),
    ids=os.path.basename)
def test_released_configs_load_unchanged(path):
  with open(path) as f:
    raw = json.load(f)
  config = MobileBertConfig.from_json_file(path)
  # The TINY config omits key_query_shared_bottleneck; it takes the original default.
  assert config.defaults_applied == tuple(sorted(set(config.to_dict()) - set(raw)))
  assert {k: config.to_dict()[k] for k in raw} == raw


def test_original_config_values():
  config = MobileBertConfig.from_dict(testutil.original_config())
  assert (config.num_hidden_layers, config.hidden_size, config.embedding_size,
          config.intra_bottleneck_size, config.attention_head_size) == (24, 512, 128, 128, 32)
  assert config.norm_scope == "FakeLayerNorm"
  kwargs = config.to_encoder_kwargs()
  assert kwargs["word_vocab_size"] == 30522 and kwargs["num_blocks"] == 24


def test_missing_optional_keys_take_original_defaults():
  config = MobileBertConfig.from_dict(dict(
      vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
      intermediate_size=64, use_bottleneck=True, intra_bottleneck_size=32))
  # google-research modeling.py BertConfig defaults.
  assert config.hidden_act == "gelu" and config.type_vocab_size == 16
  assert config.normalization_type == "layer_norm" and config.classifier_activation
  assert config.embedding_size == 64  # from_dict: defaults to hidden_size
  assert "embedding_size" in config.defaults_applied


def test_gelu_is_the_tanh_approximation():
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  config = MobileBertConfig.from_dict(testutil.tiny_config(hidden_act="gelu"))
  x = np.linspace(-4, 4, 101).astype(np.float32)
  # google-research modeling.py gelu(): 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3))).
  want = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
  np.testing.assert_allclose(config.activation_fn()(tf.constant(x)).numpy(), want,
                             atol=1e-6)


@pytest.mark.parametrize("overrides,pattern", [
    (dict(foo=1, bar=2), r"unknown key\(s\) \['bar', 'foo'\]"),
    (dict(hidden_size="512"), r"hidden_size='512' must be an integer"),
    (dict(trigram_input=1), r"trigram_input=1 must be true or false"),
    (dict(intra_bottleneck_size=130), r"intra_bottleneck_size=130 is not divisible by "
                                      r"num_attention_heads=4"),
    (dict(hidden_act="swish"), r"hidden_act='swish' is not one of"),
    (dict(normalization_type="batch_norm"), r"normalization_type='batch_norm' must be"),
    (dict(use_bottleneck=False), r"use_bottleneck=False is not supported"),
    (dict(embedding_size=1024), r"embedding_size=1024 is larger than hidden_size=512"),
    (dict(num_hidden_layers=0), r"num_hidden_layers=0 must be a positive integer"),
    (dict(attention_probs_dropout_prob=1.5), r"must be a probability"),
], ids=["unknown", "type_int", "type_bool", "heads", "act", "norm", "no_bottleneck",
        "embedding", "layers", "dropout"])
def test_from_dict_fails_if_invalid(overrides, pattern):
  raw = testutil.original_config()
  raw.update(overrides)
  with pytest.raises(ValueError, match=pattern):
    MobileBertConfig.from_dict(raw)


def test_from_dict_fails_if_required_key_missing():
  raw = testutil.original_config()
  del raw["vocab_size"]
  with pytest.raises(ValueError, match=r"missing required key\(s\) \['vocab_size'\]"):
    MobileBertConfig.from_dict(raw)


def test_from_json_file_fails_if_missing_or_not_json(tmp_path):
  with pytest.raises(FileNotFoundError, match="bert_config.json not found"):
    MobileBertConfig.from_json_file(str(tmp_path / "nope.json"))
  bad = tmp_path / "bert_config.json"
  bad.write_text("{not json")
  with pytest.raises(ValueError, match="not valid UTF-8 JSON"):
    MobileBertConfig.from_json_file(str(bad))


def test_config_is_frozen():
  config = MobileBertConfig.from_dict(testutil.original_config())
  with pytest.raises(AttributeError):
    config.hidden_size = 1  # type: ignore[misc]
