"""Tests for checkpoints.converter: finding, reading, converting, TF2 writing/reading."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from official.modeling import tf_utils
from official.nlp.modeling import layers
from official.nlp.modeling import models
from official.nlp.modeling import networks

from checkpoints import converter
from checkpoints.config import MobileBertConfig
from tests import testutil


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  root = tmp_path_factory.mktemp("ckpt")
  raw = testutil.tiny_config()
  prefix = testutil.write_checkpoint(str(root / "tf1"), raw, seed=3,
                                     with_training_state=True)
  config = MobileBertConfig.from_dict(raw)
  model, report = converter.load_model(prefix, config)
  tf2 = converter.write_tf2_checkpoint(model, str(root / "tf2"))
  return dict(root=root, raw=raw, prefix=prefix, config=config, model=model,
              report=report, tf2=tf2)


def _outputs(encoder, masked_lm, inputs):
  out = encoder({k: tf.constant(v) for k, v in inputs.items()}, training=False)
  logits = masked_lm(out["sequence_output"], tf.constant([[1, 2], [3, 4]], tf.int32))
  return out["sequence_output"].numpy(), out["pooled_output"].numpy(), logits.numpy()


def test_find_checkpoint_accepts_dir_prefix_and_files(tiny):
  prefix = tiny["prefix"]
  for given in (os.path.dirname(prefix), prefix, prefix + ".index",
                prefix + ".data-00000-of-00001"):
    assert converter.find_checkpoint(given) == prefix


def test_find_checkpoint_fails_if_several_checkpoints(tiny, tmp_path):
  d = tmp_path / "two"
  shutil.copytree(os.path.dirname(tiny["prefix"]), d)
  for f in os.listdir(d):
    if f.startswith("mobilebert_variables.ckpt"):
      shutil.copy(d / f, d / f.replace("mobilebert_variables", "model"))
  with pytest.raises(ValueError, match=r"several checkpoints in .*'mobilebert_variables\.ckpt', "
                     r"'model\.ckpt'|several checkpoints in .*'model\.ckpt', "
                     r"'mobilebert_variables\.ckpt'"):
    converter.find_checkpoint(str(d))


def test_find_checkpoint_fails_if_no_index(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"no TF checkpoint \(\*\.index\) in directory"):
    converter.find_checkpoint(str(tmp_path))
  with pytest.raises(FileNotFoundError, match=r"checkpoint index .*nope\.index.* not found"):
    converter.find_checkpoint(str(tmp_path / "nope"))


def test_find_checkpoint_fails_if_data_shard_missing(tiny, tmp_path):
  d = tmp_path / "nodata"
  shutil.copytree(os.path.dirname(tiny["prefix"]), d)
  os.remove(d / "mobilebert_variables.ckpt.data-00000-of-00001")
  with pytest.raises(ValueError, match=r"has an index but no data shard"):
    converter.find_checkpoint(str(d))
  os.rename(d / "mobilebert_variables.ckpt.index", d / "m.ckpt.index")
  with open(d / "m.ckpt.data-00000-of-00002", "wb"):
    pass
  with pytest.raises(ValueError, match=r"incomplete: missing .*m\.ckpt\.data-00001-of-00002"):
    converter.find_checkpoint(str(d))


def test_load_model_fails_if_data_truncated(tiny, tmp_path):
  d = tmp_path / "trunc"
  shutil.copytree(os.path.dirname(tiny["prefix"]), d)
  data = d / "mobilebert_variables.ckpt.data-00000-of-00001"
  size = os.path.getsize(data)
  with open(data, "r+b") as f:
    f.truncate(size // 2)
  prefix = converter.find_checkpoint(str(d))
  with pytest.raises(ValueError, match=r"corrupt or truncated"):
    converter.load_model(prefix, tiny["config"])


def test_tf1_conversion_report(tiny):
  report = tiny["report"]
  assert report.source_format == "tf1"
  reasons = {r for _, r in report.ignored}
  assert "training step counter" in reasons
  assert any("optimizer slot" in r for r in reasons)
  assert any(s == "cls/seq_relationship/output_weights" for s, _ in report.ignored)
  assert len(report.mapped) + len(report.ignored) == report.num_source_variables


def test_values_land_where_the_name_map_says(tiny):
  reader = tf.train.load_checkpoint(tiny["prefix"])
  enc = tiny["model"].encoder
  np.testing.assert_array_equal(enc.get_embedding_table().numpy(),
                                reader.get_tensor("bert/embeddings/word_embeddings"))
  last = enc.transformer_layers[1].block_layers["ffn"][3][2]  # NoNorm of the last FFN
  np.testing.assert_array_equal(
      last.scale.numpy(), reader.get_tensor("bert/encoder/layer_1/output/FakeLayerNorm/gamma"))
  np.testing.assert_array_equal(
      tiny["model"].masked_lm.extra_output_weights.numpy(),
      reader.get_tensor("cls/predictions/extra_output_weights"))


def test_tf2_checkpoint_restores_into_model_garden_pretrainer(tiny):
  """Exactly as tf-models-official's MobileBERT README builds and restores it."""
  c = tiny["config"]
  encoder = networks.MobileBERTEncoder(
      word_vocab_size=c.vocab_size, word_embed_size=c.embedding_size,
      type_vocab_size=c.type_vocab_size, max_sequence_length=c.max_position_embeddings,
      num_blocks=c.num_hidden_layers, hidden_size=c.hidden_size,
      num_attention_heads=c.num_attention_heads, intermediate_size=c.intermediate_size,
      intermediate_act_fn=tf_utils.get_activation(c.hidden_act),
      hidden_dropout_prob=c.hidden_dropout_prob,
      attention_probs_dropout_prob=c.attention_probs_dropout_prob,
      intra_bottleneck_size=c.intra_bottleneck_size, initializer_range=c.initializer_range,
      use_bottleneck_attention=c.use_bottleneck_attention,
      key_query_shared_bottleneck=c.key_query_shared_bottleneck,
      num_feedforward_networks=c.num_feedforward_networks,
      normalization_type=c.normalization_type,
      classifier_activation=c.classifier_activation)
  masked_lm = layers.MobileBertMaskedLM(
      embedding_table=encoder.get_embedding_table(),
      activation=tf_utils.get_activation(c.hidden_act),
      initializer=tf_keras.initializers.TruncatedNormal(stddev=c.initializer_range),
      name="cls/predictions")
  pretrainer = models.BertPretrainerV2(encoder_network=encoder,
                                       customized_masked_lm=masked_lm)
  _ = pretrainer(pretrainer.inputs)
  tf.train.Checkpoint(**pretrainer.checkpoint_items).restore(
      tiny["tf2"]).assert_existing_objects_matched()
  inputs = testutil.encoder_inputs(c.vocab_size)
  # Model Garden's encoder computes the "model_garden" masking of padded keys.
  ours, _ = converter.load_model(tiny["tf2"], c, attention_mask="model_garden")
  for got, want in zip(_outputs(encoder, masked_lm, inputs),
                       _outputs(ours.encoder, ours.masked_lm, inputs)):
    np.testing.assert_array_equal(got, want)


def test_tf2_checkpoint_round_trip_is_exact(tiny):
  assert converter.is_tf2_checkpoint(tiny["tf2"])
  assert not converter.is_tf2_checkpoint(tiny["prefix"])
  model, report = converter.load_model(tiny["tf2"], tiny["config"])
  assert report.source_format == "tf2"
  for a, b in zip(model.encoder.variables + model.masked_lm.variables,
                  tiny["model"].encoder.variables + tiny["model"].masked_lm.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  without, _ = converter.load_model(tiny["tf2"], tiny["config"], with_mlm=False)
  assert without.masked_lm is None


def test_tf2_checkpoint_fails_if_config_differs(tiny):
  other = MobileBertConfig.from_dict(testutil.tiny_config(num_hidden_layers=3))
  with pytest.raises(ValueError, match=r"TF2 checkpoint .* does not match bert_config\.json"):
    converter.load_model(tiny["tf2"], other)


def test_squad_checkpoint_keeps_its_head(tmp_path):
  raw = testutil.tiny_config()
  prefix = testutil.write_checkpoint(str(tmp_path / "squad"), raw, with_mlm=False,
                                     with_nsp=False, with_squad=True)
  config = MobileBertConfig.from_dict(raw)
  with pytest.raises(ValueError, match=r"--nowith_mlm"):
    converter.load_model(prefix, config)
  model, report = converter.load_model(prefix, config, with_mlm=False)
  assert report.has_squad_head
  reader = tf.train.load_checkpoint(prefix)
  np.testing.assert_array_equal(model.squad.output_weights.numpy(),
                                reader.get_tensor("cls/squad/output_weights"))
  tf2 = converter.write_tf2_checkpoint(model, str(tmp_path / "tf2"))
  again, report2 = converter.load_model(tf2, config, with_mlm=False)
  assert report2.has_squad_head
  np.testing.assert_array_equal(again.squad.output_bias.numpy(),
                                reader.get_tensor("cls/squad/output_bias"))
