"""int8 fidelity: the NoNorm shift/scale equalization (`equalization.calibrate_equalization`).

Truths: the reference forward (Model Garden's encoder + SQuAD head), the algebra's own
claim (the carried tensors span [-1, 1] per channel on the calibration windows), and
int8 SQNR on seeded checkpoints deep enough (8 blocks) for the plain int8 conversion to
lose its logits, on real XQuAD English windows that were not calibrated on.
"""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from checkpoints import converter
from checkpoints.config import MobileBertConfig
from hub_export import verify
from hub_export.squad import constants
from hub_export.squad import equalization
from hub_export.squad import features as features_lib
from hub_export.squad import forward
from hub_export.squad import model as qa_model
from hub_export.squad import tflite_analysis
from hub_export.squad import tflite_export
from tests.hub_export.squad.conftest import XQUAD_EN
from tests import testutil

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow

DEEP_LAYERS = 8
DEEP_SEQ = 64


def _windows(seq, first, count, limit=None):
  examples = features_lib.read_squad_json(XQUAD_EN, limit=first + count)[first:]
  feats = features_lib.Featurizer(
      testutil.UNCASED_VOCAB, do_lower_case=True, max_seq_length=seq,
      doc_stride=seq // 3, max_query_length=seq // 4).features(examples)
  return list(features_lib.iter_batches(feats))[:limit]


def _args(batch):
  return [tf.constant(batch[k]) for k in constants.INPUT_NAMES]


def test_equalized_forward_is_exact_and_carries_unit_ranges(tiny_squad):
  model = tiny_squad["model"]
  weights = forward.QaWeights.from_model(model)
  cal = _windows(128, 0, 3, limit=4)
  eq = equalization.calibrate_equalization(weights, cal, seq_length=128, alpha=1.0)
  # Every NoNorm output of the network is re-parametrized: embeddings + 2 blocks x
  # (bottleneck in, kq, attention, 4 ffn, bottleneck out).
  assert len(eq) == 1 + 2 * 8
  fwd = forward.QaForward(weights, seq_length=128, equalization=eq)
  fwd._record = {}  # pylint: disable=protected-access
  for batch in cal + _windows(128, 30, 2, limit=2):
    got = fwd(*_args(batch))
    ref = qa_model.reference_logits(model, *_args(batch))
    for k in constants.OUTPUT_NAMES:
      r = ref[k].numpy()
      assert np.max(np.abs(got[k].numpy() - r)) <= 1e-5 * np.max(np.abs(r)), k
  # alpha 1: on the calibration windows alone each carried channel spans exactly [-1, 1].
  fwd._record = {}  # pylint: disable=protected-access
  for batch in cal:
    fwd(*_args(batch))
  for prefix, (lo, hi) in fwd._record.items():  # pylint: disable=protected-access
    np.testing.assert_allclose(lo, -1.0, atol=1e-4, err_msg=prefix)
    np.testing.assert_allclose(hi, 1.0, atol=1e-4, err_msg=prefix)


def test_equalization_fails_on_layer_norm_bad_alpha_or_no_windows(tiny_squad):
  weights = forward.QaWeights.from_model(tiny_squad["model"])
  ln = forward.QaWeights(config=dataclasses.replace(weights.config,
                                                     normalization_type="layer_norm"),
                          values=weights.values)
  with pytest.raises(ValueError, match="normalization_type='layer_norm'"):
    equalization.calibrate_equalization(ln, _windows(128, 0, 1, limit=1), seq_length=128)
  with pytest.raises(ValueError, match=r"alpha=1.5 must be in \[0, 1\]"):
    equalization.calibrate_equalization(weights, [], seq_length=128, alpha=1.5)
  with pytest.raises(ValueError, match="at least one calibration window"):
    equalization.calibrate_equalization(weights, [], seq_length=128)


@pytest.mark.parametrize("seed", [2, 3])
def test_int8_sqnr_on_deeper_seeded_checkpoints(tmp_path, seed):
  cfg = testutil.tiny_config(num_hidden_layers=DEEP_LAYERS)
  prefix = testutil.write_checkpoint(str(tmp_path / "ckpt"), cfg, seed=seed, with_squad=True)
  model, _ = converter.load_model(prefix, MobileBertConfig.from_dict(cfg), with_mlm=False)
  weights = forward.QaWeights.from_model(model)
  cal = _windows(DEEP_SEQ, 0, 8)
  held_out = _windows(DEEP_SEQ, 40, 4, limit=8)
  ref = qa_model.reference_outputs(model, held_out)
  bound = verify.TOLERANCES["squad_int8"]["target_sqnr_db"]
  got = tflite_analysis.run(tflite_export.convert_int8(weights, cal, seq_length=DEEP_SEQ),
                          held_out)
  for k in constants.OUTPUT_NAMES:
    assert verify.sqnr_db(got[k], ref[k]) >= bound, (seed, k)
  if seed == 2:  # Without the equalization this checkpoint's int8 end logits collapse.
    plain = tflite_analysis.run(tflite_export.convert_int8(
        weights, cal, seq_length=DEEP_SEQ, equalize=False), held_out)
    assert verify.sqnr_db(plain["end_logits"], ref["end_logits"]) < bound
