"""`options.SquadOptions`: a light `BundleTask`, its checks, and its glue to the export."""

import os
import subprocess
import sys

import pytest

from checkpoints import converter
from checkpoints import model as model_lib
from checkpoints.config import MobileBertConfig
from hub_export import tasks
from hub_export.squad import export as squad_export
from hub_export.squad import options
from tests import testutil
from tests.hub_export.squad.conftest import XQUAD_EN

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow

HEAVY = ("tensorflow", "tensorflow_text", "onnx", "onnxruntime", "tf2onnx",
         "ai_edge_litert", "tf_keras", "keras")


def _config():
  return MobileBertConfig.from_dict(testutil.tiny_config())  # max_position_embeddings 128


def test_import_loads_no_tensorflow_onnx_or_litert():
  code = ("import sys; import hub_export.squad.options; "
          f"print([m for m in {HEAVY!r} if m in sys.modules])")
  out = subprocess.run([sys.executable, "-c", code], cwd=testutil.REPO, check=True,
                       capture_output=True, text=True).stdout
  assert out.strip() == "[]"


def test_is_a_bundle_task_named_squad():
  opts = options.SquadOptions(squad_file=XQUAD_EN)
  assert isinstance(opts, tasks.BundleTask)
  assert opts.name == "squad"
  options.SquadOptions(squad_file=XQUAD_EN, seq_length=128).check(_config())  # valid


@pytest.mark.parametrize("kwargs, message", [
    (dict(squad_file=None), "--task=squad needs --squad_file=PATH"),
    (dict(squad_file="/nonexistent/squad.json"),
     "--squad_file=/nonexistent/squad.json does not exist"),
    (dict(squad_file=XQUAD_EN, seq_length=384),
     r"squad seq_length=384 must be in \[16, 128\] \(max_position_embeddings\)"),
    (dict(squad_file=XQUAD_EN, seq_length=15), r"seq_length=15 must be in \[16, 128\]"),
    (dict(squad_file=XQUAD_EN, seq_length=128, calibration_questions=0),
     "--squad_calibration_questions=0 must be >= 1"),
])
def test_check_fails_on_bad_option(kwargs, message):
  with pytest.raises(ValueError, match=message):
    options.SquadOptions(**kwargs).check(_config())


@pytest.mark.parametrize("mode", model_lib.ATTENTION_MASKS)
def test_export_reads_the_bundle_checkpoint_and_summarizes(tiny_squad, tmp_path,
                                                           monkeypatch, mode):
  work = tmp_path / "bundle"
  converter.write_tf2_checkpoint(tiny_squad["model"], str(work / "checkpoint"))
  calls = []

  def fake_export_squad(squad_dir, model, **kwargs):
    calls.append((squad_dir, model, kwargs))
    # export_squad records the model's mode (test_export.py checks the real one).
    return dict(tiny_squad["manifest"], attention_mask=model.attention_mask)
  monkeypatch.setattr(squad_export, "export_squad", fake_export_squad)
  opts = options.SquadOptions(squad_file=XQUAD_EN, calibration_questions=5, seq_length=64,
                              with_onnx=False)
  summary = opts.export(str(work), config=tiny_squad["config"],
                        vocab_file=testutil.UNCASED_VOCAB, do_lower_case=True,
                        attention_mask=mode, log=lambda _: None)
  [(squad_dir, model, kwargs)] = calls
  assert squad_dir == os.path.join(str(work), "squad")
  assert model.squad is not None  # the head came back from work/checkpoint/
  assert model.attention_mask == mode  # loaded in the bundle's masking mode
  assert kwargs == dict(vocab_file=testutil.UNCASED_VOCAB, do_lower_case=True,
                        squad_file=XQUAD_EN, calibration_questions=5, seq_length=64,
                        with_onnx=False, log=kwargs["log"])
  m = tiny_squad["manifest"]
  assert summary == {
      "files": m["files"], "squad_head": m["squad_head"],
      "figures": {n: c.get("figures") for n, c in m["checks"].items()},
      "tolerances": m["tolerances"], "details": "squad/squad_manifest.json",
      "seq_length": m["seq_length"], "int8_equalization": m["int8_equalization"],
      "attention_mask": mode, "latency": m["latency"]}
  section = opts.card_section(summary)
  assert section.startswith("\n## SQuAD 1.1 mobile package (`squad/`)")
  assert all(f"`squad/{name}`" in section for name in m["files"])
  assert f"(attention mask `{mode}`" in section


def test_export_fails_on_unknown_masking_mode(tiny_squad, tmp_path):
  work = tmp_path / "bundle"
  converter.write_tf2_checkpoint(tiny_squad["model"], str(work / "checkpoint"))
  opts = options.SquadOptions(squad_file=XQUAD_EN, seq_length=64)
  with pytest.raises(ValueError, match="attention_mask='keras' is not a masking mode"):
    opts.export(str(work), config=tiny_squad["config"], vocab_file=testutil.UNCASED_VOCAB,
                do_lower_case=True, attention_mask="keras", log=lambda _: None)
  assert not os.path.exists(work / "squad")
