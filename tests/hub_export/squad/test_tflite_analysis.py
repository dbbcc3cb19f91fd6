"""Static checks of a .tflite (`tflite_analysis`): GPU rules, NNAPI allow-list.

Each check must pass the variant written for it and fail the plain conversion.
"""

import pytest
import tensorflow as tf

from hub_export.squad import tflite_analysis
from hub_export.squad import tflite_export
from tests import testutil
from tests.hub_export.squad.conftest import read_file

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow


def test_gpu_check_passes_gpu_variant_and_fails_plain_float(tiny_squad):
  assert tflite_analysis.gpu_findings(read_file(tiny_squad, tflite_export.GPU_FILE)) == []
  plain = tflite_analysis.gpu_findings(read_file(tiny_squad, tflite_export.FLOAT_FILE))
  assert any("BROADCAST_TO" in f for f in plain), plain
  assert any("shrink_axis_mask" in f for f in plain), plain


def test_official_gpu_analyzer_is_a_stub_in_this_tensorflow():
  """Why `gpu_findings` exists: the pip Analyzer passes TOPK_V2, a non-GPU op."""
  fn = tf.function(lambda x: tf.math.top_k(x, 2).values,
                   input_signature=[tf.TensorSpec([4, 8], tf.float32)])
  content = tf.lite.TFLiteConverter.from_concrete_functions(
      [fn.get_concrete_function()], tf.Module()).convert()
  assert tflite_analysis.official_gpu_analyzer(content)["compatible"]  # wrongly
  assert tflite_analysis.gpu_findings(content) == ["Op#0 TOPK_V2: Not supported op TOPK_V2"]


def test_nnapi_check_passes_nnapi_variant_and_fails_plain_int8(tiny_squad):
  assert tflite_analysis.nnapi_findings(read_file(tiny_squad, tflite_export.NNAPI_FILE)) == []
  plain = tflite_analysis.nnapi_findings(read_file(tiny_squad, tflite_export.INT8_FILE))
  # The plain int8 file's BATCH_MATMULs are off the list and its SOFTMAX runs in float.
  assert any("BATCH_MATMUL" in f for f in plain), plain
  assert all("BATCH_MATMUL" in f or ("SOFTMAX" in f and "float tensor" in f)
             for f in plain), plain
  # Float models fail it too (float data).
  assert tflite_analysis.nnapi_findings(read_file(tiny_squad, tflite_export.GPU_FILE))


def test_xnnpack_runs_every_matrix_product_of_the_int8_file(tiny_squad):
  """The profile of where ops run: the MLPerf int8 file is one XNNPACK partition, with
  every FULLY_CONNECTED, BATCH_MATMUL and SOFTMAX inside it; the full-integer NNAPI file
  leaves its int8 SOFTMAX and runtime-weight FULLY_CONNECTED ops outside."""
  placed = tflite_analysis.xnnpack_placement(read_file(tiny_squad, tflite_export.INT8_FILE))
  assert placed["partitions"] == 1, placed
  assert not {"FULLY_CONNECTED", "BATCH_MATMUL", "SOFTMAX"} & set(placed["outside"]), placed
  # Outside: only the int32 input handling (embedding GATHERs, RESHAPEs of the inputs).
  assert set(placed["outside"]) <= {"GATHER", "RESHAPE"}, placed
  nnapi = tflite_analysis.xnnpack_placement(read_file(tiny_squad, tflite_export.NNAPI_FILE))
  c = testutil.tiny_config()  # one int8 SOFTMAX per head and block
  assert nnapi["outside"].get("SOFTMAX") == c["num_attention_heads"] * \
      c["num_hidden_layers"] and nnapi["partitions"] > 1, nnapi
  assert tiny_squad["manifest"]["checks"][tflite_export.INT8_FILE]["xnnpack"] == placed
