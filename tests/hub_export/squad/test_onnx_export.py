"""The two ONNX models of the tiny squad/ export: MLPerf I/O, parity, int8 structure;
every int8 method that `benchmarks/onnx_int8_methods.py` compares."""

import pytest
import os

import numpy as np
import onnx

from hub_export import verify
from hub_export.squad import constants
from hub_export.squad import onnx_export
from tests import testutil

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
  ops = onnx_export.int8_summary(os.path.join(tiny_squad["dir"], onnx_export.INT8_FILE))
  # Dynamic quantization, per-channel: every dense layer is a MatMulInteger (per block:
  # bottleneck in and out, the shared key/query bottleneck, q, k, v, attention output,
  # 2 per FFN), plus the embedding projection and the two span heads; the attention
  # products stay float.
  c = testutil.tiny_config()
  per_block = 2 + int(c["key_query_shared_bottleneck"]) + 4 + 2 * c["num_feedforward_networks"]
  dense = c["num_hidden_layers"] * per_block + 1 + 2
  assert ops["MatMulInteger"] == dense and ops["DynamicQuantizeLinear"] > 0
  assert ops["per_channel_matmul_integer"] >= dense - 2  # 1-column heads: one scale
  assert tiny_squad["manifest"]["checks"][onnx_export.INT8_FILE]["method"] == \
      onnx_export.INT8_METHOD


@pytest.mark.parametrize("method", sorted(onnx_export.INT8_METHODS))
def test_every_int8_method_holds_the_gate(tiny_squad, fresh_windows, tmp_path, method):
  from hub_export.squad import equalization as equalization_lib  # pylint: disable=g-import-not-at-top
  from hub_export.squad import forward  # pylint: disable=g-import-not-at-top
  weights = forward.QaWeights.from_model(tiny_squad["model"])
  calibration = fresh_windows["batches"][:4]
  eq = equalization_lib.calibrate_equalization(weights, calibration, seq_length=128)
  src, out = str(tmp_path / "src.onnx"), str(tmp_path / "int8.onnx")
  onnx_export.quantizable_source(weights, method=method, equalization=eq, seq_length=128,
                                 path=src)
  onnx_export.quantize(src, out, method=method, calibration=calibration)
  got = onnx_export.run(onnx_export.session(out), fresh_windows["batches"])
  for k, ref in fresh_windows["ref"].items():
    assert verify.sqnr_db(got[k], ref) >= verify.TOLERANCES["squad_int8"]["min_sqnr_db"], k
  ops = onnx_export.int8_summary(out)
  if onnx_export.INT8_METHODS[method]["static"]:
    assert ops["MatMulInteger"] == 0 and ops["DynamicQuantizeLinear"] == 0
  else:
    assert ops["MatMulInteger"] > 0


def test_static_method_needs_calibration(tmp_path):
  with pytest.raises(ValueError, match="calibrat"):
    onnx_export.quantize(str(tmp_path / "missing.onnx"), str(tmp_path / "out.onnx"),
                         method="static_qdq_u8s8_per_tensor", calibration=[])
  with pytest.raises(ValueError, match="not one of"):
    onnx_export.quantize("a.onnx", "b.onnx", method="fp4")
