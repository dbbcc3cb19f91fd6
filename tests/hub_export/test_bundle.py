"""The exported bundle on disk, against ../shared/HUB_API.md, cut off from its sources."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401  (registers the preprocessor's ops)
import tf_keras

from checkpoints import converter
from checkpoints.config import MobileBertConfig
from hub_export import pipeline
from tests import testutil

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow

L = 2  # testutil.tiny_config(): num_hidden_layers


def _inputs(seq_length=16):
  return {k: tf.constant(v) for k, v in testutil.encoder_inputs(30522, seq_length=seq_length).items()}


def test_layout_and_manifest(tiny_bundle):
  d = tiny_bundle["dir"]
  assert sorted(os.listdir(d)) == ["README.md", "checkpoint", "encoder", "manifest.json",
                                   "preprocessor"]
  assert {"bert_config.json", "vocab.txt", "mobilebert.index"} <= set(
      os.listdir(os.path.join(d, "checkpoint")))
  with open(os.path.join(d, "manifest.json")) as f:
    m = json.load(f)
  for key in ("tool", "source", "config", "do_lower_case", "do_lower_case_decided_by",
              "vocab", "parameter_counts", "default_seq_length", "verification", "trained",
              "versions", "created_utc"):
    assert key in m, key
  assert m["do_lower_case"] is True and "inferred from the vocab" in m["do_lower_case_decided_by"]
  assert m["vocab"]["size"] == 30522 and m["vocab"]["sha256"].startswith("07eced37")
  assert m["source"]["checkpoint_sha256"] == converter.checkpoint_files_sha256(
      os.path.join(tiny_bundle["source"], "mobilebert_variables.ckpt"))
  outputs = m["verification"]["encoder"]["outputs"]
  assert set(outputs) == {"sequence_output", "pooled_output", "mlm_logits",
                          *(f"encoder_outputs_{i}" for i in range(L))}
  assert all(v["max_rel"] <= m["verification"]["encoder"]["tolerance"] for v in outputs.values())
  assert outputs["mlm_logits"]["top5_agreement"] == 1.0
  assert m["verification"]["encoder"]["probe_shapes"][0] == [2, 128]  # max_position_embeddings
  assert m["parameter_counts"]["encoder"] > 0 and m["parameter_counts"]["mlm_head"] > 0
  for lib in ("tensorflow", "tensorflow_text", "tf_keras"):
    assert m["versions"][lib]
  card = open(os.path.join(d, "README.md")).read()
  assert "MobileBERT" in card and "do_lower_case = True" in card and "sun2020mobilebert" in card


def test_encoder_outputs_and_attributes(tiny_bundle):
  enc = hub.load(os.path.join(tiny_bundle["dir"], "encoder"))
  out = enc(_inputs(), training=False)
  assert set(out) == {"sequence_output", "pooled_output", "default", "encoder_outputs"}
  assert out["sequence_output"].shape == (2, 16, 64) and out["sequence_output"].dtype == tf.float32
  assert len(out["encoder_outputs"]) == L
  np.testing.assert_array_equal(out["encoder_outputs"][-1], out["sequence_output"])
  # classifier_activation=false: pooled_output is the [CLS] position.
  np.testing.assert_array_equal(out["pooled_output"], out["sequence_output"][:, 0])
  np.testing.assert_array_equal(out["default"], out["pooled_output"])
  assert not enc.do_lower_case.trainable and bool(enc.do_lower_case.numpy())
  assert os.path.isfile(enc.vocab_file.asset_path.numpy().decode())
  assert enc.regularization_losses == [] or len(enc.regularization_losses) == 0
  head = {id(v) for v in enc.mlm.variables} - {id(v) for v in enc.variables}
  assert head and not head & {id(v) for v in enc.trainable_variables}


def test_dropout_follows_training(tiny_bundle):
  enc = hub.load(os.path.join(tiny_bundle["dir"], "encoder"))
  inputs = _inputs()
  a = enc(inputs, training=False)["sequence_output"]
  b = enc(inputs, training=False)["sequence_output"]
  c = enc(inputs, training=True)["sequence_output"]
  np.testing.assert_array_equal(a, b)
  assert np.abs(a - c).max() > 1e-4  # attention_probs_dropout_prob = 0.1


def test_mlm(tiny_bundle):
  enc = hub.load(os.path.join(tiny_bundle["dir"], "encoder"))
  positions = tf.constant([[1, 2, 3], [0, 5, 8]], tf.int32)
  out = enc.mlm(dict(_inputs(), masked_lm_positions=positions))
  assert out["mlm_logits"].shape == (2, 3, 30522)
  with pytest.raises(tf.errors.InvalidArgumentError, match="masked_lm_positions must index"):
    enc.mlm(dict(_inputs(), masked_lm_positions=tf.constant([[1], [99]], tf.int32)))


def test_serving_signatures_have_named_outputs(tiny_bundle):
  enc = tf.saved_model.load(os.path.join(tiny_bundle["dir"], "encoder"))
  assert set(enc.signatures) == {"serving_default", "encoder", "pooled", "mlm"}
  inputs = _inputs()
  direct = enc(inputs)
  for name in ("serving_default", "encoder"):
    out = enc.signatures[name](**inputs)
    assert set(out) == {"pooled_output", "sequence_output", "default",
                        *(f"encoder_outputs_{i}" for i in range(L))}
    np.testing.assert_allclose(out["sequence_output"], direct["sequence_output"], atol=1e-6)
  assert set(enc.signatures["pooled"](**inputs)) == {"pooled_output"}
  mlm = enc.signatures["mlm"](**inputs, masked_lm_positions=tf.constant([[1], [2]], tf.int32))
  assert set(mlm) == {"mlm_logits"}


def test_sequence_longer_than_max_positions_fails_clearly(tiny_bundle):
  enc = tf.saved_model.load(os.path.join(tiny_bundle["dir"], "encoder"))
  with pytest.raises(tf.errors.InvalidArgumentError, match="max_position_embeddings=128"):
    enc(_inputs(seq_length=129))


def test_keras_layers_from_raw_strings_train(tiny_bundle):
  """The model card's tf_keras snippet, then one training step."""
  d = tiny_bundle["dir"]
  preprocessor = hub.KerasLayer(os.path.join(d, "preprocessor"))
  encoder = hub.KerasLayer(os.path.join(d, "encoder"), trainable=True)
  text = tf_keras.layers.Input(shape=(), dtype=tf.string)
  pooled_output = encoder(preprocessor(text))["pooled_output"]
  logits = tf_keras.layers.Dense(2)(pooled_output)
  model = tf_keras.Model(text, logits)
  assert len(model.trainable_variables) == len(encoder.trainable_variables) + 2
  before = [v.numpy().copy() for v in encoder.trainable_variables]
  model.compile(optimizer=tf_keras.optimizers.Adam(1e-3),
                loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  model.fit(tf.constant(["a short sentence", "another one here"]), tf.constant([0, 1]),
            epochs=1, verbose=0)
  changed = sum(not np.array_equal(b, v.numpy())
                for b, v in zip(before, encoder.trainable_variables))
  assert changed > len(before) // 2


def test_keras_layer_on_mlm(tiny_bundle):
  loaded = hub.load(os.path.join(tiny_bundle["dir"], "encoder"))
  layer = hub.KerasLayer(loaded.mlm, trainable=True)
  out = layer(dict(_inputs(), masked_lm_positions=tf.constant([[1], [2]], tf.int32)))
  assert out["mlm_logits"].shape == (2, 1, 30522)
  assert len(layer.trainable_variables) == len(loaded.mlm.trainable_variables)


def test_moved_bundle_without_sources_loads_and_leaks_no_path(tiny_bundle, tmp_path):
  moved = tmp_path / "elsewhere" / "bundle"
  shutil.copytree(tiny_bundle["dir"], moved)
  source_copy = tmp_path / "source_kept"
  shutil.copytree(tiny_bundle["source"], source_copy)
  shutil.rmtree(tiny_bundle["source"])
  try:
    for sub in ("encoder", "preprocessor"):
      pb = open(moved / sub / "saved_model.pb", "rb").read()
      for leak in (tiny_bundle["source"], tiny_bundle["dir"], str(tiny_bundle["root"])):
        assert leak.encode() not in pb, (sub, leak)
    enc = hub.load(str(moved / "encoder"))
    pre = hub.load(str(moved / "preprocessor"))
    ids = pre(tf.constant(["hello world"]))
    original = hub.load(os.path.join(tiny_bundle["dir"], "encoder"))
    np.testing.assert_array_equal(enc(ids)["sequence_output"], original(ids)["sequence_output"])
  finally:
    shutil.copytree(source_copy, tiny_bundle["source"])


def test_reexport_from_bundle_checkpoint_is_identical(tiny_bundle, tmp_path):
  ckpt = os.path.join(tiny_bundle["dir"], "checkpoint")
  result = pipeline.run(pipeline.ExportConfig(export_dir=str(tmp_path / "again"),
                                              checkpoint_dir=ckpt), log=lambda _: None)
  assert result.manifest["source"]["format"] == "tf2"
  a = hub.load(os.path.join(tiny_bundle["dir"], "encoder"))
  b = hub.load(os.path.join(result.export_dir, "encoder"))
  inputs = _inputs()
  for k in ("sequence_output", "pooled_output"):
    np.testing.assert_array_equal(a(inputs)[k], b(inputs)[k])
  positions = tf.constant([[1], [2]], tf.int32)
  np.testing.assert_array_equal(a.mlm(dict(inputs, masked_lm_positions=positions))["mlm_logits"],
                                b.mlm(dict(inputs, masked_lm_positions=positions))["mlm_logits"])
  config = MobileBertConfig.from_json_file(os.path.join(ckpt, "bert_config.json"))
  assert config.to_dict() == MobileBertConfig.from_dict(testutil.tiny_config()).to_dict()
