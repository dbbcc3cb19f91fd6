"""The two ONNX models of the tiny squad/ export: MLPerf I/O, parity, QDQ structure."""

import pytest
import os

import numpy as np
import onnx

from hub_export import verify
from hub_export.squad import constants
from hub_export.squad import onnx_export

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow


def test_onnx_float_and_int8(tiny_squad, fresh_windows):
  for name in (onnx_export.FLOAT_FILE, onnx_export.INT8_FILE):
    path = os.path.join(tiny_squad["dir"], name)
    m = onnx.load(path)
    assert [i.name for i in m.graph.input] == list(constants.INPUT_NAMES)
    assert [o.name for o in m.graph.output] == list(constants.OUTPUT_NAMES)
    got = onnx_export.run(onnx_export.session(path), fresh_windows["batches"])
    for k, ref in fresh_windows["ref"].items():
      if name == onnx_export.FLOAT_FILE:
        assert np.max(np.abs(got[k] - ref)) <= 1e-4 * np.max(np.abs(ref)), k
      else:
        assert verify.sqnr_db(got[k], ref) >= 20.0, k
  qdq = onnx_export.qdq_summary(os.path.join(tiny_squad["dir"], onnx_export.INT8_FILE))
  assert qdq["QuantizeLinear"] > 0 and qdq["per_channel_weights"] > 0
