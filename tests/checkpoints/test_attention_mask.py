"""The two maskings of padded attention keys, against the independent reference.

"original" is google-research `mobilebert/modeling.py`'s `attention_layer` (masked scores
replaced by -6 before a softmax over every key); "model_garden" gives padded keys zero
weight. The HF reference (`tests/hf_reference.py`, corrections (d) and (e)) implements
both without sharing code with `checkpoints.model`.
"""

import numpy as np
import pytest
import tensorflow as tf

from checkpoints import converter
from checkpoints import model as model_lib
from checkpoints.config import MobileBertConfig
from tests import hf_reference
from tests import testutil

RTOL = 1e-5  # float32 noise through 2 blocks (test_hf_parity.py: the same bound)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
  """A 2-block original-layout checkpoint whose attention is not negligible."""
  d = str(tmp_path_factory.mktemp("mask") / "ckpt")
  config = testutil.tiny_config(initializer_range=0.2)
  testutil.write_checkpoint(d, config, seed=21)
  return dict(prefix=converter.find_checkpoint(d), config_dict=config,
              config=MobileBertConfig.from_dict(config))


def _inputs(vocab_size, lengths, seq_length, seed=3):
  """Rows of `lengths` real tokens padded to `seq_length`; the same tokens whatever the
  padding (row r's first n tokens depend only on r and the seed)."""
  rng = np.random.default_rng(seed)
  tokens = rng.integers(5, vocab_size, (len(lengths), max(lengths))).astype(np.int32)
  ids = np.zeros((len(lengths), seq_length), np.int32)
  mask = np.zeros_like(ids)
  for row, n in enumerate(lengths):
    ids[row, :n] = tokens[row, :n]
    mask[row, :n] = 1
  types = np.zeros_like(ids)
  return dict(input_word_ids=ids, input_mask=mask, input_type_ids=types)


def _ours(source, mode, inputs):
  model, _ = converter.load_model(source["prefix"], source["config"], with_mlm=False,
                                  attention_mask=mode)
  out = model.encoder({k: tf.constant(v) for k, v in inputs.items()}, training=False)
  return out["sequence_output"].numpy()


def _ref(source, mode, inputs):
  return hf_reference.hf_reference_outputs(
      source["prefix"], source["config_dict"], inputs["input_word_ids"],
      inputs["input_mask"], inputs["input_type_ids"],
      attention_mask=mode)["sequence_output"]


def _rel(a, b):
  return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("lengths", [(24, 24), (24, 2), (24, 13, 5, 1)],
                         ids=["no_padding", "heavy_padding", "several_paddings"])
@pytest.mark.parametrize("mode", model_lib.ATTENTION_MASKS)
def test_each_mode_matches_the_reference_in_that_mode(source, mode, lengths):
  inputs = _inputs(source["config"].vocab_size, lengths, 24)
  assert _rel(_ours(source, mode, inputs), _ref(source, mode, inputs)) <= RTOL


def test_modes_agree_without_padding_and_differ_with_it(source):
  vocab = source["config"].vocab_size
  full = _inputs(vocab, (24, 24), 24)
  assert _rel(_ours(source, "original", full), _ours(source, "model_garden", full)) <= RTOL
  padded = _inputs(vocab, (24, 3), 24)
  a, b = _ours(source, "original", padded), _ours(source, "model_garden", padded)
  np.testing.assert_allclose(a[0], b[0], rtol=0, atol=RTOL * np.abs(b).max())
  assert _rel(a[1, :3], b[1, :3]) > 100 * RTOL  # the padded row's real positions differ


def test_original_output_depends_on_the_amount_of_padding_as_the_reference_says(source):
  vocab = source["config"].vocab_size
  short, long = _inputs(vocab, (6,), 8), _inputs(vocab, (6,), 24)
  ours = _ours(source, "original", short)[0, :6], _ours(source, "original", long)[0, :6]
  ref = _ref(source, "original", short)[0, :6], _ref(source, "original", long)[0, :6]
  change = _rel(ours[1], ours[0])
  assert change > 100 * RTOL, change  # more padding, other outputs at the real positions
  np.testing.assert_allclose(ours[1] - ours[0], ref[1] - ref[0], rtol=0,
                             atol=RTOL * np.abs(ref[0]).max())
  mg = _ours(source, "model_garden", short)[0, :6], _ours(source, "model_garden", long)[0, :6]
  assert _rel(mg[1], mg[0]) <= RTOL  # zero weight on padding: no dependence


def test_unknown_mode_is_refused(source):
  with pytest.raises(ValueError, match=r"attention_mask='zero' is not a masking mode; "
                     r"choose one of \['original', 'model_garden'\]"):
    model_lib.build_model(source["config"], attention_mask="zero")
