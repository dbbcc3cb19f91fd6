"""Tests for checkpoints.name_map: strict, exhaustive TF1 -> Model Garden mapping."""

import numpy as np
import pytest

from checkpoints import model as model_lib
from checkpoints import name_map
from checkpoints import tf1_writer
from checkpoints.config import MobileBertConfig
from tests import testutil


def _setup(with_mlm=True, **overrides):
  config = MobileBertConfig.from_dict(testutil.tiny_config(vocab_size=50, **overrides))
  model = model_lib.build_model(config, with_mlm=with_mlm)
  targets = {k: tuple(v.shape) for k, v in model_lib.target_variables(model).items()}
  shapes = tf1_writer.original_variable_shapes(config, with_mlm=with_mlm)
  values = tf1_writer.random_values(shapes, config, seed=0)
  return config, targets, shapes, values


def _plan(config, targets, shapes, values, with_mlm=True):
  return name_map.plan_conversion(shapes, values.__getitem__, targets, config,
                                  with_mlm=with_mlm)


def test_every_target_filled_and_every_source_accounted_for():
  config, targets, shapes, values = _setup()
  plan = _plan(config, targets, shapes, values)
  assert set(plan.values) == set(targets)
  accounted = {s for s, _, _ in plan.mapped} | {s for s, _ in plan.ignored}
  assert accounted == set(shapes)
  assert {s for s, _ in plan.ignored} == {"cls/seq_relationship/output_weights",
                                          "cls/seq_relationship/output_bias"}


def test_last_ffn_and_output_bottleneck_layout():
  config, targets, shapes, values = _setup()
  plan = _plan(config, targets, shapes, values)
  by_source = {s: t for s, t, _ in plan.mapped}
  # F=4: original ffn_layer_0..2 + plain intermediate/output = Model Garden ffn_0..3.
  assert by_source["bert/encoder/layer_1/intermediate/dense/kernel"] == \
      "layer_1/ffn_3/intermediate/kernel"
  assert by_source["bert/encoder/layer_1/ffn_layer_2/output/FakeLayerNorm/gamma"] == \
      "layer_1/ffn_2/norm/gamma"
  assert by_source["bert/encoder/layer_0/output/bottleneck/dense/kernel"] == \
      "layer_0/bottleneck_output/dense/kernel"


def test_attention_heads_are_split_exactly():
  config, targets, shapes, values = _setup()
  plan = _plan(config, targets, shapes, values)
  src = values["bert/encoder/layer_0/attention/self/query/kernel"]  # [in, N*h]
  got = plan.values["layer_0/attention/query/kernel"]  # [in, N, h]
  n, h = config.num_attention_heads, config.attention_head_size
  for head in range(n):  # original dense_layer_3d: reshape [in, N, h], head-major
    np.testing.assert_array_equal(got[:, head, :], src[:, head * h:(head + 1) * h])
  out = plan.values["layer_0/attention/output/kernel"]  # [N, h, out]
  np.testing.assert_array_equal(
      out[1], values["bert/encoder/layer_0/attention/output/dense/kernel"][h:2 * h])


def test_non_trigram_kernel_sits_in_the_middle_block():
  config, targets, shapes, values = _setup(trigram_input=False)
  plan = _plan(config, targets, shapes, values)
  e = config.embedding_size
  kernel = plan.values["embeddings/projection/kernel"]
  assert kernel.shape == (3 * e, config.hidden_size)
  np.testing.assert_array_equal(kernel[e:2 * e],
                                values["bert/embeddings/embedding_transformation/kernel"])
  assert not kernel[:e].any() and not kernel[2 * e:].any()


def test_non_trigram_equal_widths_synthesizes_identity():
  config, targets, shapes, values = _setup(trigram_input=False, embedding_size=64)
  assert "bert/embeddings/embedding_transformation/kernel" not in shapes
  plan = _plan(config, targets, shapes, values)
  kernel = plan.values["embeddings/projection/kernel"]
  np.testing.assert_array_equal(kernel[64:128], np.eye(64, dtype=np.float32))
  assert plan.synthesized and "identity" in plan.synthesized[0][1]


def test_pooler_ignored_without_classifier_activation():
  config, targets, shapes, values = _setup()
  shapes["bert/pooler/dense/kernel"] = (64, 64)
  values["bert/pooler/dense/kernel"] = np.zeros((64, 64), np.float32)
  plan = _plan(config, targets, shapes, values)
  assert any("classifier_activation=false" in r for s, r in plan.ignored
             if s == "bert/pooler/dense/kernel")


def test_fails_if_source_unmapped():
  config, targets, shapes, values = _setup()
  shapes["bert/encoder/layer_0/attention/self/rotary/kernel"] = (3,)
  with pytest.raises(ValueError, match=r"1 checkpoint variable\(s\) match no rule.*"
                     r"layer_0/attention/self/rotary/kernel \[3\]"):
    _plan(config, targets, shapes, values)


def test_fails_if_target_unfilled():
  config, targets, shapes, values = _setup()
  del shapes["bert/encoder/layer_1/attention/output/dense/bias"]
  with pytest.raises(ValueError, match=r"not filled by the checkpoint: "
                     r"layer_1/attention/output/bias"):
    _plan(config, targets, shapes, values)


def test_fails_if_shape_mismatch():
  config, targets, shapes, values = _setup()
  name = "bert/encoder/layer_0/bottleneck/input/dense/kernel"
  values[name] = values[name].T.copy()
  with pytest.raises(ValueError, match=r"bottleneck/input/dense/kernel: shape \[32, 64\] "
                     r"does not fit target layer_0/bottleneck_input/dense/kernel \[64, 32\]"):
    _plan(config, targets, shapes, values)


def test_fails_if_more_blocks_than_config():
  config, targets, shapes, values = _setup()
  shapes["bert/encoder/layer_7/output/dense/bias"] = (32,)
  with pytest.raises(ValueError, match=r"block 7 but num_hidden_layers=2"):
    _plan(config, targets, shapes, values)


def test_fails_if_ffn_count_differs():
  config, targets, shapes, values = _setup(num_feedforward_networks=2)
  other = MobileBertConfig.from_dict(testutil.tiny_config(vocab_size=50))  # F=4
  shapes = tf1_writer.original_variable_shapes(other)
  values = tf1_writer.random_values(shapes, other, seed=0)
  with pytest.raises(ValueError, match=r"ffn_layer_1 but num_feedforward_networks=2"):
    _plan(config, targets, shapes, values)


def test_fails_if_normalization_type_differs():
  config, targets, _, _ = _setup(normalization_type="layer_norm")
  other = MobileBertConfig.from_dict(testutil.tiny_config(vocab_size=50))  # no_norm
  shapes = tf1_writer.original_variable_shapes(other)
  values = tf1_writer.random_values(shapes, other, seed=0)
  with pytest.raises(ValueError, match=r"normalization_type='layer_norm'.*FakeLayerNorm"):
    _plan(config, targets, shapes, values)


def test_fails_if_mlm_head_missing_with_hint():
  config, targets, _, _ = _setup()
  shapes = tf1_writer.original_variable_shapes(config, with_mlm=False, with_squad=True)
  values = tf1_writer.random_values(shapes, config, seed=0)
  del shapes["cls/squad/output_weights"], shapes["cls/squad/output_bias"]
  with pytest.raises(ValueError, match=r"mlm/.*--nowith_mlm"):
    _plan(config, targets, shapes, values)


def test_fails_if_pooler_missing_with_classifier_activation():
  config, targets, shapes, values = _setup(classifier_activation=True)
  del shapes["bert/pooler/dense/kernel"]
  with pytest.raises(ValueError, match=r"pooler/kernel.*needs bert/pooler/dense"):
    _plan(config, targets, shapes, values)


def test_without_mlm_the_head_is_ignored_explicitly():
  config, targets, shapes, values = _setup(with_mlm=False)
  shapes_with = tf1_writer.original_variable_shapes(config, with_mlm=True)
  values_with = tf1_writer.random_values(shapes_with, config, seed=0)
  plan = _plan(config, targets, shapes_with, values_with, with_mlm=False)
  assert sum("MLM head not exported" in r for _, r in plan.ignored) == 6
