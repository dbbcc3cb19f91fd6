"""`export.export_squad`: the squad manifest, argument errors, nothing left on failure."""

import json
import os

import pytest

from checkpoints import model as model_lib
from hub_export import errors
from hub_export import verify
from hub_export.squad import checks
from hub_export.squad import constants
from hub_export.squad import export as squad_export
from hub_export.squad import onnx_export
from hub_export.squad import tflite_export
from tests import testutil
from tests.hub_export.squad.conftest import SEQ_LENGTH, XQUAD_EN

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow

TFLITE = (tflite_export.FLOAT_FILE, tflite_export.GPU_FILE, tflite_export.INT8_FILE,
          tflite_export.NNAPI_FILE, tflite_export.DYNAMIC_FILE)


def test_manifest_records_checks(tiny_squad):
  m = tiny_squad["manifest"]
  assert m["squad_head"] == "from the checkpoint"
  assert set(m["files"]) == set(TFLITE) | {onnx_export.FLOAT_FILE, onnx_export.INT8_FILE}
  assert m["checks"][tflite_export.GPU_FILE]["gpu_findings"] == []
  for name in tflite_export.INT8_FILES:
    assert m["checks"][name]["quantization_spec"]["findings"] == 0, name
  assert m["checks"][tflite_export.INT8_FILE]["quantization_spec"]["float_ops"] == [
      "SOFTMAX"]
  assert m["int8_float_ops"] == {tflite_export.INT8_FILE: ["SOFTMAX"]}
  assert tflite_export.INT8_FILE in m["which_file"]
  timed = m["latency"]["median_ms"]
  assert set(timed) == set(TFLITE) | {onnx_export.FLOAT_FILE, onnx_export.INT8_FILE}
  assert all(v > 0 for v in timed.values()) and m["latency"]["threads"] == 1
  assert os.path.isfile(os.path.join(tiny_squad["dir"], constants.MANIFEST))
  assert m["tolerances"] == {"squad_float": verify.TOLERANCES["squad_float"],
                             "squad_int8": verify.TOLERANCES["squad_int8"]}
  # The default masking mode, -6 on padded keys in float and int8 alike.
  assert tiny_squad["model"].attention_mask == model_lib.DEFAULT_ATTENTION_MASK == "original"
  assert (m["attention_mask"], m["float_mask_value"], m["quant_mask_value"]) == (
      "original", model_lib.ORIGINAL_MASKED_SCORE, model_lib.ORIGINAL_MASKED_SCORE)
  with open(os.path.join(tiny_squad["dir"], constants.MANIFEST)) as f:
    assert json.load(f)["attention_mask"] == "original"
  # Published by renaming: no staging directory is left beside squad/.
  assert sorted(os.listdir(os.path.dirname(tiny_squad["dir"]))) == [
      "build_once.json", "ckpt", "squad"]  # No staging or lock entry left.


def test_export_fails_without_calibration_room(tmp_path, tiny_squad):
  with pytest.raises(ValueError, match="calibration_questions=0"):
    squad_export.export_squad(str(tmp_path / "s"), tiny_squad["model"],
                              vocab_file=testutil.UNCASED_VOCAB, do_lower_case=True,
                              squad_file=XQUAD_EN, calibration_questions=0)
  assert not os.path.exists(tmp_path / "s")


def test_export_fails_if_squad_dir_exists(tmp_path, tiny_squad):
  (tmp_path / "s").mkdir()
  with pytest.raises(FileExistsError, match="already exists"):
    squad_export.export_squad(str(tmp_path / "s"), tiny_squad["model"],
                              vocab_file=testutil.UNCASED_VOCAB, do_lower_case=True,
                              squad_file=XQUAD_EN, seq_length=SEQ_LENGTH)
  assert os.listdir(tmp_path / "s") == []


def test_export_fails_on_a_failed_check_and_leaves_nothing(tmp_path, tiny_squad,
                                                           monkeypatch):
  monkeypatch.setitem(verify.TOLERANCES["squad_float"], "max_rel", -1.0)
  with pytest.raises(checks.SquadExportError,
                     match=r"squad/saved_model: end_logits differs .* over the -1 bound"):
    squad_export.export_squad(str(tmp_path / "s"), tiny_squad["model"],
                              vocab_file=testutil.UNCASED_VOCAB, do_lower_case=True,
                              squad_file=XQUAD_EN, calibration_questions=1,
                              verify_questions=1, seq_length=SEQ_LENGTH,
                              log=lambda _: None)
  assert os.listdir(tmp_path) == []  # neither squad/ nor its staging directory
  assert issubclass(checks.SquadExportError, errors.ExportError)
  assert issubclass(checks.SquadExportError, ValueError)


def test_export_refuses_an_int8_file_off_the_quantization_spec(tmp_path, tiny_squad,
                                                               monkeypatch):
  """A conversion that breaks the spec (a weight zero point of 3) stops the export, and
  the message names the file, the tensor and the rule; nothing is published."""
  from tensorflow.lite.python import schema_py_generated as schema  # pylint: disable=g-import-not-at-top
  from tensorflow.lite.tools import flatbuffer_utils  # pylint: disable=g-import-not-at-top
  from hub_export.squad import quant_rewrite  # pylint: disable=g-import-not-at-top
  rewrite = quant_rewrite.zero_point_zero_matmul_rhs
  broken = {}

  def rewrite_and_break(content):
    content, done = rewrite(content)
    m = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    sub = m.subgraphs[0]
    fc = next(i for i, c in enumerate(m.operatorCodes)
              if max(c.builtinCode, c.deprecatedBuiltinCode) ==
              schema.BuiltinOperator.FULLY_CONNECTED)
    op = next(o for o in sub.operators if o.opcodeIndex == fc)
    weights = sub.tensors[op.inputs[1]]
    weights.quantization.zeroPoint[0] = 3
    broken["tensor"] = weights.name.decode()
    return bytes(flatbuffer_utils.convert_object_to_bytearray(m)), done

  monkeypatch.setattr(quant_rewrite, "zero_point_zero_matmul_rhs", rewrite_and_break)
  with pytest.raises(checks.SquadExportError) as info:
    squad_export.export_squad(str(tmp_path / "s"), tiny_squad["model"],
                              vocab_file=testutil.UNCASED_VOCAB, do_lower_case=True,
                              squad_file=XQUAD_EN, calibration_questions=1,
                              verify_questions=1, seq_length=SEQ_LENGTH, with_onnx=False,
                              log=lambda _: None)
  message = str(info.value)
  assert f"squad/{tflite_export.INT8_FILE} does not conform" in message
  assert broken["tensor"] in message and "weights_zero_point" in message
  assert os.listdir(tmp_path) == []
