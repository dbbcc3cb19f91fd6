"""Static checks of a .tflite (`tflite_analysis`): GPU rules, NNAPI allow-list.

Each check must pass the variant written for it and fail the plain conversion.
"""

import pytest
import tensorflow as tf

from hub_export.squad import tflite_analysis
from hub_export.squad import tflite_export
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
  assert plain and all("BATCH_MATMUL" in f for f in plain), plain
  # Float models fail it too (float data).
  assert tflite_analysis.nnapi_findings(read_file(tiny_squad, tflite_export.GPU_FILE))
