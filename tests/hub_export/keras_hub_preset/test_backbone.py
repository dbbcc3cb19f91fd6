"""MobileBertBackbone and its MLM head vs Model Garden's MobileBERT, in this process (TF).

Every variable of the Model Garden model gets seeded random values (NoNorm gammas and
betas too, so a swapped scale/bias would show), moves by canonical name, and both models
run the same inputs with padding and two segments. Cross-backend runs are in
test_preset.py.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from checkpoints import model as model_lib
from checkpoints.config import MobileBertConfig
from hub_export import verify
from hub_export.keras_hub_preset import layers
from hub_export.keras_hub_preset import weights
from hub_export.keras_hub_preset.backbone import MobileBertBackbone
from tests import testutil

BOUND = verify.TOLERANCES["keras_hub"]["max_rel"]


def _seeded_model(config, attention_mask, seed=0):
  model = model_lib.build_model(config, with_mlm=True, attention_mask=attention_mask)
  rng = np.random.default_rng(seed)
  for name, var in model_lib.target_variables(model).items():
    scale = 0.05 if name.endswith(("kernel", "embeddings", "extra_output_weights")) else 0.3
    value = rng.normal(0.0, scale, var.shape) + (1.0 if name.endswith("gamma") else 0.0)
    var.assign(value.astype(np.float32))
  return model


def _rel(actual, reference):
  a, r = keras.ops.convert_to_numpy(actual), np.asarray(reference)
  assert a.shape == r.shape
  return float(np.abs(a - r).max() / np.abs(r).max())


def _compare(config, attention_mask, seq_length=16):
  model = _seeded_model(config, attention_mask)
  backbone = MobileBertBackbone.from_bert_config(config, attention_mask=attention_mask)
  encoder_vars, head_vars = weights.split_mlm(model_lib.target_variables(model))
  weights.transfer(encoder_vars, backbone.canonical_weights())
  head = layers.MobileBertMaskedLMHead(word_embedding=backbone.token_embedding,
                                       hidden_dim=config.hidden_size,
                                       intermediate_activation=config.hidden_act)
  head.build()
  weights.transfer(head_vars, head.canonical_weights())
  x = testutil.encoder_inputs(config.vocab_size, batch=2, seq_length=seq_length)
  positions = np.array([[1, 3, seq_length - 1], [0, 2, 4]], np.int32)
  ref = model.encoder(x, training=False)
  got = backbone({"token_ids": x["input_word_ids"], "segment_ids": x["input_type_ids"],
                  "padding_mask": x["input_mask"]}, training=False)
  ref_mlm = model.masked_lm(ref["sequence_output"], tf.constant(positions))
  got_mlm = head(got["sequence_output"], positions)
  return {"sequence_output": _rel(got["sequence_output"], ref["sequence_output"]),
          "pooled_output": _rel(got["pooled_output"], ref["pooled_output"]),
          "mlm_logits": _rel(got_mlm, ref_mlm)}


@pytest.mark.parametrize("attention_mask", model_lib.ATTENTION_MASKS)
def test_tiny_backbone_and_mlm_equal_model_garden(attention_mask):
  config = MobileBertConfig.from_dict(testutil.tiny_config())
  figures = _compare(config, attention_mask)
  assert all(v < BOUND for v in figures.values()), figures


@pytest.mark.parametrize("overrides", [
    dict(normalization_type="layer_norm"),
    dict(classifier_activation=True),
    dict(use_bottleneck_attention=True),
    dict(key_query_shared_bottleneck=False),
    dict(hidden_act="gelu", num_feedforward_networks=1),
], ids=["layer_norm", "pooler", "bottleneck_attention", "no_kq_shared", "gelu_one_ffn"])
def test_config_variants_equal_model_garden(overrides):
  config = MobileBertConfig.from_dict(testutil.tiny_config(**overrides))
  figures = _compare(config, "original")
  assert all(v < BOUND for v in figures.values()), figures


def test_the_comparison_sees_a_wrong_masking_mode():
  """A backbone masking padded keys the other way differs, on a row of 2 real tokens
  and 30 padded ones (the export's probe batch has such a row)."""
  config = MobileBertConfig.from_dict(testutil.tiny_config())
  model = _seeded_model(config, "original")
  backbone = MobileBertBackbone.from_bert_config(config, attention_mask="model_garden")
  weights.transfer(weights.split_mlm(model_lib.target_variables(model))[0],
                   backbone.canonical_weights())
  x = testutil.encoder_inputs(config.vocab_size, batch=2, seq_length=32)
  x["input_mask"][1, 2:] = 0
  ref = model.encoder(x, training=False)["sequence_output"]
  got = backbone({"token_ids": x["input_word_ids"], "segment_ids": x["input_type_ids"],
                  "padding_mask": x["input_mask"]})["sequence_output"]
  assert _rel(got, ref) > 5 * BOUND  # the export check would refuse it


def test_transfer_refuses_a_mismatch_and_assigns_nothing():
  config = MobileBertConfig.from_dict(testutil.tiny_config())
  backbone = MobileBertBackbone.from_bert_config(config)
  target = backbone.canonical_weights()
  before = keras.ops.convert_to_numpy(target["embeddings/projection/kernel"]).copy()
  source = {name: np.ones(tuple(v.shape), np.float32) for name, v in target.items()}
  source["layer_0/attention/query/kernel"] = np.ones([3, 3], np.float32)
  del source["layer_1/ffn_0/output/bias"]
  source["cls/unknown"] = np.ones([2], np.float32)
  with pytest.raises(weights.WeightTransferError) as e:
    weights.transfer(source, target)
  message = str(e.value)
  for part in ("cls/unknown", "layer_1/ffn_0/output/bias", "layer_0/attention/query/kernel"):
    assert part in message
  after = keras.ops.convert_to_numpy(target["embeddings/projection/kernel"])
  np.testing.assert_array_equal(before, after)


def test_canonical_names_are_model_gardens():
  """The same name set as `target_variables`, for the default config."""
  config = MobileBertConfig.from_dict(testutil.tiny_config())
  model = model_lib.build_model(config, with_mlm=False)
  backbone = MobileBertBackbone.from_bert_config(config)
  assert set(backbone.canonical_weights()) == set(model_lib.target_variables(model))
  assert len({id(v) for v in backbone.canonical_weights().values()}) == len(backbone.weights)


@pytest.mark.parametrize("kwargs, message", [
    (dict(intermediate_activation="swish"), "intermediate_activation='swish'"),
    (dict(normalization_type="batch_norm"), "normalization_type='batch_norm'"),
    (dict(attention_mask="none"), "attention_mask='none'"),
    (dict(intra_bottleneck_dim=30), "not a multiple of num_heads=4"),
])
def test_bad_backbone_arguments_are_named(kwargs, message):
  args = dict(vocabulary_size=100, num_layers=1, hidden_dim=64, intermediate_dim=48,
              embedding_dim=32, intra_bottleneck_dim=32, max_sequence_length=32)
  args.update(kwargs)
  with pytest.raises(ValueError, match=message.replace("(", r"\(")):
    MobileBertBackbone(**args)


def test_get_config_round_trips():
  config = MobileBertConfig.from_dict(testutil.tiny_config())
  backbone = MobileBertBackbone.from_bert_config(config, attention_mask="model_garden")
  clone = MobileBertBackbone.from_config(backbone.get_config())
  assert clone.get_config() == backbone.get_config()
  assert clone.get_config()["attention_mask"] == "model_garden"
  assert clone.count_params() == backbone.count_params()
