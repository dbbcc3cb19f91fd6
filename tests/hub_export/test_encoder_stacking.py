"""encoder.BlockStacks: the SavedModel's stacked block variables stand in exactly for
Model Garden's per-block variables, and a variable it fails to swap is caught."""

import os

import numpy as np
import pytest
import tensorflow as tf

from checkpoints import converter
from checkpoints import model as model_lib
from checkpoints.config import MobileBertConfig
from hub_export import encoder as encoder_lib
from tests import testutil


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
  """A 3-block model converted from an original-layout checkpoint (non-trivial values)."""
  root = tmp_path_factory.mktemp("stacking")
  config_dict = testutil.tiny_config(num_hidden_layers=3)
  prefix = testutil.write_checkpoint(str(root / "ckpt"), config_dict, seed=3)
  config = MobileBertConfig.from_dict(config_dict)
  model, _ = converter.load_model(prefix, config, with_mlm=True)
  return dict(model=model, prefix=prefix, config=config, root=root)


def test_stacked_values_are_the_checkpoint_values_per_block(converted):
  model = converted["model"]
  stacks = encoder_lib.BlockStacks(model.encoder.transformer_layers)
  reader = tf.train.load_checkpoint(converted["prefix"])
  # Independent truth: the TF1 checkpoint, read by name. The query kernel of block i is
  # `bert/encoder/layer_i/attention/self/query/kernel` [128-wide input, H], split into
  # heads by the converter; the stacked copy must hold it at index i.
  (query,) = [v for v in stacks.stacked if v.name.startswith(
      "transformer/layer_stacked/attention/query/kernel")]
  heads = converted["config"].num_attention_heads
  for i in range(3):
    original = reader.get_tensor(f"bert/encoder/layer_{i}/attention/self/query/kernel")
    np.testing.assert_array_equal(
        query.numpy()[i], original.reshape(original.shape[0], heads, -1))
  assert len(stacks.stacked) * 3 == len(stacks.block_variables)
  for var in stacks.stacked:
    assert var.shape[0] == 3


def test_model_garden_model_is_untouched_after_tracing(converted):
  model = converted["model"]
  before = [(v, v.numpy().copy()) for v in model.encoder.variables]
  layer = model.encoder.transformer_layers[1]
  attrs_before = {k: v for k, v in vars(layer).items() if isinstance(v, tf.Variable)}
  obj, _ = encoder_lib.build_encoder_module(
      model, vocab_file=testutil.UNCASED_VOCAB, do_lower_case=True)
  inputs = testutil.encoder_inputs(converted["config"].vocab_size)
  got = obj.__call__.get_concrete_function()(
      {k: tf.constant(v) for k, v in inputs.items()}, tf.constant(False))
  assert [v for v, _ in before] == list(model.encoder.variables)
  for v, value in before:
    np.testing.assert_array_equal(v.numpy(), value)
  assert attrs_before == {k: v for k, v in vars(layer).items()
                          if isinstance(v, tf.Variable)}
  want = model.encoder({k: tf.constant(v) for k, v in inputs.items()}, training=False)
  np.testing.assert_allclose(got["sequence_output"].numpy(),
                             want["sequence_output"].numpy(), rtol=0, atol=1e-6)


def test_the_module_exposes_stacked_variables_not_block_variables(converted):
  model = converted["model"]
  obj, _ = encoder_lib.build_encoder_module(
      model, vocab_file=testutil.UNCASED_VOCAB, do_lower_case=True)
  block_ids = {id(v) for block in model.encoder.transformer_layers for v in block.variables}
  exposed = {id(v) for v in obj.variables} | {id(v) for v in obj.mlm.variables}
  assert not exposed & block_ids
  non_block = [v for v in model.encoder.variables if id(v) not in block_ids]
  per_block = len(model.encoder.transformer_layers[0].variables)
  assert len(obj.variables) == len(non_block) + per_block
  # Every parameter is still exposed exactly once.
  assert (sum(int(np.prod(v.shape)) for v in obj.variables) ==
          sum(int(np.prod(v.shape)) for v in model.encoder.variables))


def test_a_variable_left_unswapped_fails_the_export(converted, monkeypatch, tmp_path):
  original = encoder_lib.BlockStacks._attribute_refs  # pylint: disable=protected-access

  def drop_first_ref(block):
    refs = original(block)
    first = min(refs)
    var, owners = refs[first]
    refs[first] = (var, owners[1:])  # The layer keeps reading its own variable.
    return refs

  monkeypatch.setattr(encoder_lib.BlockStacks, "_attribute_refs", staticmethod(drop_first_ref))
  obj, signatures = encoder_lib.build_encoder_module(
      converted["model"], vocab_file=testutil.UNCASED_VOCAB, do_lower_case=True)
  with pytest.raises(RuntimeError, match="reads .* block variable"):
    encoder_lib.save_encoder(obj, signatures, os.path.join(tmp_path, "encoder"))


def test_blocks_with_different_structure_are_rejected():
  config = MobileBertConfig.from_dict(testutil.tiny_config())
  one = model_lib.build_model(config, with_mlm=False)
  other = model_lib.build_model(
      MobileBertConfig.from_dict(testutil.tiny_config(num_feedforward_networks=2)),
      with_mlm=False)
  with pytest.raises(ValueError, match="different variable structure"):
    encoder_lib.BlockStacks([one.encoder.transformer_layers[0],
                             other.encoder.transformer_layers[0]])
