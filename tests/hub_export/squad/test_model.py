"""The reference model's SQuAD head: a fresh head when the checkpoint has none."""

import warnings

import numpy as np
import pytest

from checkpoints import model as model_lib
from hub_export.squad import forward
from hub_export.squad import model as qa_model

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow


def test_fresh_head_is_seeded_and_warns(tiny_squad):
  model = model_lib.MobileBertModel(config=tiny_squad["config"],
                                    encoder=tiny_squad["model"].encoder, masked_lm=None,
                                    squad=None)
  with pytest.raises(ValueError, match="no SQuAD head"):
    forward.QaWeights.from_model(model)
  lines = []
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    assert qa_model.ensure_squad_head(model, seed=3, log=lines.append)
  assert any("UNTRAINED" in str(w.message) for w in caught)
  assert "FRESH, UNTRAINED head" in lines[0]
  w = model.squad.output_weights.numpy()
  assert 0 < np.std(w) <= 0.02 and np.max(np.abs(w)) <= 0.04
  assert not qa_model.ensure_squad_head(model, seed=3, log=lines.append)
