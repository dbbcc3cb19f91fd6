"""The CLI end to end, through export_main.run_main (absl flags included)."""

import json
import os
import subprocess
import sys

import pytest

import export_main
from checkpoints.config import MobileBertConfig
from tests import testutil

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow


def test_checkpoint_dir_end_to_end(tmp_path, capsys):
  src = str(tmp_path / "uncased_L-2_tiny")
  testutil.write_checkpoint(src, testutil.tiny_config(), prefix="model.ckpt-1000")
  code = export_main.run_main(["export_main.py", f"--checkpoint_dir={src}",
                               f"--export_dir={tmp_path / 'out'}", "--seq_length=64"])
  out = capsys.readouterr().out
  assert code == 0, out
  assert f"Bundle: {tmp_path / 'out'}" in out and "hub.KerasLayer(" in out
  assert "Converted TF1 checkpoint" in out and "Verified:" in out
  manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
  assert manifest["default_seq_length"] == 64 and manifest["trained"] is True
  assert manifest["source"]["checkpoint"].endswith("model.ckpt-1000")


@pytest.mark.parametrize("args,pattern", [
    (["--demo", "--checkpoint_dir=/nonexistent"], "cannot be combined"),
    (["--checkpoint_dir=/nonexistent/dir"], "is not a directory"),
    (["--demo=xx"], "is not a demo"),
], ids=["demo_and_dir", "missing_dir", "bad_demo"])
def test_bad_input_exits_nonzero_with_one_line(tmp_path, capsys, args, pattern):
  code = export_main.run_main(["export_main.py", f"--export_dir={tmp_path / 'o'}", *args])
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 1
  assert len(err) == 1 and err[0].startswith("export failed:") and pattern in err[0]
  assert not os.path.exists(tmp_path / "o")


@pytest.mark.slow
def test_demo_full_original_config(full_demo_bundle):
  """The README's first command: the full 24-block English demo, untrained."""
  out, demo = full_demo_bundle["stdout"], full_demo_bundle["dir"]
  assert full_demo_bundle["code"] == 0, out
  assert "WARNING: untrained demo weights" in out
  with open(os.path.join(demo, "manifest.json")) as f:
    manifest = json.load(f)
  assert manifest["trained"] is False and "UNTRAINED" in manifest["weights"]
  assert manifest["config"] == MobileBertConfig.from_dict(testutil.original_config()).to_dict()
  assert manifest["config_defaults_applied"] == ["use_bottleneck_attention"]
  assert manifest["conversion"]["mapped"] == 1117
  assert len(manifest["verification"]["encoder"]["outputs"]) == 24 + 3
  with open(os.path.join(demo, "README.md")) as f:
    assert "UNTRAINED DEMO WEIGHTS" in f.read()


@pytest.mark.slow
def test_demo_multi_cased(tmp_path, capsys):
  """--demo=multi_cased: the multilingual cased vocab (119,547) at full size."""
  code = export_main.run_main(["export_main.py", "--demo=multi_cased",
                               f"--export_dir={tmp_path / 'multi'}"])
  out = capsys.readouterr().out
  assert code == 0, out
  manifest = json.loads((tmp_path / "multi" / "manifest.json").read_text())
  assert manifest["config"]["vocab_size"] == manifest["vocab"]["size"] == 119547
  assert manifest["vocab"]["sha256"].startswith("fe0fda7c")
  assert manifest["do_lower_case"] is False and "cased" in manifest["do_lower_case_decided_by"]
  assert manifest["verification"]["preprocessor"]["identical"] == \
      manifest["verification"]["preprocessor"]["sentences"]
  assert manifest["verification"]["encoder"]["outputs"]["mlm_logits"]["top5_agreement"] == 1.0


_MOBILE_RUNTIMES = ("ai_edge_litert", "onnx", "onnxruntime", "tf2onnx", "hub_export.squad",
                    "keras_hub", "hub_export.keras_hub_preset")


def test_encoder_export_imports_no_tflite_or_onnx_code(tmp_path):
  """Without --task=squad and --keras_hub the CLI's process never imports LiteRT, ONNX,
  keras-hub or their task packages."""
  src = str(tmp_path / "src")
  testutil.write_checkpoint(src, testutil.tiny_config())
  script = (
      "import sys, export_main\n"
      f"code = export_main.run_main(['export_main.py', '--checkpoint_dir={src}', "
      f"'--export_dir={tmp_path / 'out'}'])\n"
      f"loaded = sorted(m for m in sys.modules if m.startswith({_MOBILE_RUNTIMES!r}))\n"
      "print('LOADED', loaded)\n"
      "sys.exit(code)\n")
  result = subprocess.run([sys.executable, "-c", script], cwd=testutil.REPO,
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "LOADED []" in result.stdout, result.stdout[-2000:]
