"""`forward.QaForward` (the graph the mobile variants are converted from) vs the reference.

The reference is `model.reference_logits` (Model Garden's encoder with the model's
masking of padded keys + the SQuAD head). The two masking modes are checked on a seeded
checkpoint with initializer_range 0.2, whose attention is far from uniform: with the
released 0.02 the two modes differ by less than float32 noise.
"""

import numpy as np
import pytest
import tensorflow as tf

from checkpoints import converter
from checkpoints import model as model_lib
from checkpoints.config import MobileBertConfig
from hub_export.squad import constants
from hub_export.squad import forward
from hub_export.squad import model as qa_model
from tests import testutil
from tests.hub_export.squad.conftest import SEQ_LENGTH

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow

FORMS = {"float": forward.ForwardOptions(), "nnapi": forward.ForwardOptions(nnapi=True),
         "quantized": forward.ForwardOptions(quantized=True),
         "quantized_nnapi": forward.ForwardOptions(quantized=True, nnapi=True)}


def _rows(seed=5):
  """Row 0 unpadded, row 1 padded after position S/2; int32 [1, S] tensors each."""
  batch = testutil.encoder_inputs(30522, batch=2, seq_length=SEQ_LENGTH, seed=seed)
  return [[tf.constant(batch[k][row:row + 1]) for k in
           ("input_word_ids", "input_mask", "input_type_ids")] for row in range(2)]


def _max_rel(got, ref):
  return max(float(np.max(np.abs(np.asarray(got[k]) - np.asarray(ref[k])))) /
             float(np.max(np.abs(np.asarray(ref[k])))) for k in constants.OUTPUT_NAMES)


@pytest.fixture(scope="module")
def attentive(tmp_path_factory):
  """mode -> a 2-block model (initializer_range 0.2, with a SQuAD head) in that mode."""
  cfg = testutil.tiny_config(initializer_range=0.2)
  prefix = testutil.write_checkpoint(str(tmp_path_factory.mktemp("attentive") / "ckpt"), cfg,
                                     seed=7, with_squad=True)
  config = MobileBertConfig.from_dict(cfg)
  return {mode: converter.load_model(prefix, config, with_mlm=False,
                                     attention_mask=mode)[0]
          for mode in model_lib.ATTENTION_MASKS}


def test_qa_forward_matches_reference_with_padding(tiny_squad):
  model = tiny_squad["model"]
  weights = forward.QaWeights.from_model(model)
  batch = testutil.encoder_inputs(30522, batch=2, seq_length=SEQ_LENGTH, seed=5)
  for row in range(2):
    args = [tf.constant(batch[k][row:row + 1]) for k in
            ("input_word_ids", "input_mask", "input_type_ids")]
    ref = qa_model.reference_logits(model, *args)
    for opts in (forward.ForwardOptions(), forward.ForwardOptions(nnapi=True)):
      got = forward.QaForward(weights, seq_length=SEQ_LENGTH, options=opts)(*args)
      for k in constants.OUTPUT_NAMES:
        r = ref[k].numpy()
        assert np.max(np.abs(got[k].numpy() - r)) <= 1e-5 * np.max(np.abs(r)), (k, opts)


@pytest.mark.parametrize("mode", model_lib.ATTENTION_MASKS)
def test_qa_forward_computes_the_models_masking_mode(attentive, mode):
  model = attentive[mode]
  weights = forward.QaWeights.from_model(model)
  assert weights.attention_mask == mode
  for args in _rows():
    ref = qa_model.reference_logits(model, *args)
    for form, opts in FORMS.items():
      got = forward.QaForward(weights, seq_length=SEQ_LENGTH, options=opts)(*args)
      # The quantized form of "model_garden" adds -64, not -10000: e^-64 is far below
      # float32 resolution relative to the visible keys, so it too is within 1e-5.
      assert _max_rel(got, ref) <= 1e-5, (mode, form)


def test_masking_modes_differ_only_on_padded_windows(attentive):
  unpadded, padded = _rows()
  assert int(tf.reduce_min(unpadded[1])) == 1 and int(tf.reduce_min(padded[1])) == 0
  for run in (lambda mode, args: qa_model.reference_logits(attentive[mode], *args),
              lambda mode, args: forward.QaForward(
                  forward.QaWeights.from_model(attentive[mode]),
                  seq_length=SEQ_LENGTH)(*args)):
    same = _max_rel(run("original", unpadded), run("model_garden", unpadded))
    apart = _max_rel(run("original", padded), run("model_garden", padded))
    assert same <= 1e-5 < 1e-2 <= apart, (same, apart)


def test_mask_values_of_each_mode():
  for quantized in (False, True):
    assert forward.additive_mask_value("original", quantized=quantized) == \
        model_lib.ORIGINAL_MASKED_SCORE == -6.0
  assert forward.additive_mask_value("model_garden", quantized=False) == \
      forward.FIRST_RELEASE_MASK_VALUE == -10000.0
  assert forward.additive_mask_value("model_garden", quantized=True) == \
      constants.QUANT_MASK_VALUE


def test_qa_forward_fails_on_unknown_masking_mode(attentive):
  weights = forward.QaWeights.from_model(attentive["original"])
  bad = forward.QaWeights(config=weights.config, values=weights.values,
                          attention_mask="keras")
  with pytest.raises(ValueError, match=r"attention_mask='keras' is not a masking mode; "
                     r"choose one of \['original', 'model_garden'\]"):
    forward.QaForward(bad, seq_length=SEQ_LENGTH)
