"""finetune.cli: `python -m hub_export.finetune` as a user runs it, and run_main in-process."""

import pytest
import os
import subprocess
import sys

from hub_export.finetune import cli
from hub_export.finetune import config
from tests import testutil
from tests.hub_export.finetune.conftest import EN_DEV

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow


def _run_module(*args):
  env = dict(os.environ, PYTHONPATH=testutil.REPO, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, "-m", "hub_export.finetune", *args],
                        capture_output=True, text=True, env=env, cwd=testutil.REPO,
                        timeout=600, check=False)


def _error_lines(stderr):
  return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_module_without_a_required_flag_fails_with_a_one_line_usage_error(tmp_path):
  proc = _run_module(f"--bundle_dir={tmp_path}", f"--train_file={EN_DEV}")
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert proc.stdout == ""
  assert proc.stderr.strip().splitlines() == _error_lines(proc.stderr)
  assert len(_error_lines(proc.stderr)) == 1 and "--model_dir" in proc.stderr


def test_module_with_a_bad_bundle_dir_fails_naming_it(tmp_path):
  bundle_dir = tmp_path / "not_a_bundle"
  proc = _run_module(f"--bundle_dir={bundle_dir}", f"--model_dir={tmp_path / 'm'}",
                     f"--train_file={EN_DEV}")
  assert proc.returncode == 1, proc.stderr[-3000:]
  assert proc.stderr.strip().splitlines() == _error_lines(proc.stderr)
  [line] = _error_lines(proc.stderr)
  assert f"--bundle_dir={bundle_dir} does not exist (expected a bundle directory" in line
  assert "pass a bundle directory written by export_main.py" in line
  assert not os.path.exists(tmp_path / "m")


def test_module_help_lists_the_flags():
  proc = _run_module("--help")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "python -m hub_export.finetune --bundle_dir=" in proc.stdout
  for flag in ("--bundle_dir", "--train_file", "--eval_dir", "--distribution_strategy",
               "--export_dir"):
    assert flag in proc.stdout


def test_cli_reports_bad_data_and_bad_flags(bundle, tmp_path, capsys):
  bad = tmp_path / "train.tsv"
  bad.write_bytes(b"a\tb\tneutral\r\na\tb\tunsure\r\n")
  code = cli.run_main(["finetune", f"--bundle_dir={bundle}",
                       f"--model_dir={tmp_path / 'm'}", f"--train_file={bad}"])
  assert code == 1
  assert f"{bad}: line 2 has the unknown label 'unsure'" in capsys.readouterr().err
  assert not os.path.exists(tmp_path / "m")

  assert cli.run_main(["finetune", f"--bundle_dir={bundle}"]) == 2
  assert "--model_dir" in capsys.readouterr().err
  assert cli.run_main(["finetune", f"--bundle_dir={bundle}", "--model_dir=m",
                       f"--train_file={EN_DEV}", "--eval_files=en"]) == 2
  assert "is not lang=path" in capsys.readouterr().err


def test_flags_default_to_the_config_defaults():
  cfg = cli.config_from_argv(["finetune", "--bundle_dir=b", "--model_dir=m",
                              "--train_file=t"])
  assert cfg == config.FinetuneConfig(bundle_dir="b", model_dir="m", train_file="t")
