"""Every command that reads or replaces a bundle refuses a wrong one with ONE line.

Commands: `python -m hub_export.finetune --bundle_dir`, `python -m
hub_export.squad.evaluate --bundle_dir`, and `export_main.py --overwrite` onto an existing
`--export_dir`. Cases, made from a copy of a real exported bundle: not a directory, a
directory that is not a bundle, a bundle of another tool (foreign manifest.json, not JSON,
another manifest_version), and truncated bundles (variables.index missing, a data shard
empty, saved_model.pb missing, preprocessor/ missing). Each command exits != 0, prints the
value, the expectation and the fix on one stderr line, and leaves the directory as it was.
`python -m hub_export.finetune` checks before it imports TensorFlow and runs as a
subprocess for every case; `python -m hub_export.squad.evaluate` (which imports TensorFlow
first) runs as a subprocess for one case of each kind, `export_main.py` for one case, and
both run in-process (the same `main`/`run_main` the programs call) for every case.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

from tests import testutil

# End-to-end: needs an exported bundle and starts TensorFlow subprocesses.
pytestmark = pytest.mark.slow

EN_DEV = os.path.join(testutil.SHARED_DATA, "xnli", "xtreme_dev", "dev-en.tsv")
XQUAD_EN = os.path.join(testutil.SHARED_DATA, "squad", "xquad", "xquad.en.json")
# TensorFlow's and absl's own log lines on stderr (printed while importing TensorFlow).
_TF_LOG = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] |[IWEF]\d{4} "
                     r"|WARNING: All log messages before absl::InitializeLog|To enable the "
                     r"following instructions)")


def _unlink_and_write(path, content):
  os.remove(path)  # the copy hard-links the files: never write through a link.
  with open(path, "wb") as f:
    f.write(content)


def _manifest(path, content):
  _unlink_and_write(os.path.join(path, "manifest.json"), content)


def _replace_in_manifest(path, old, new):
  with open(os.path.join(path, "manifest.json"), "rb") as f:
    content = f.read()
  assert old in content, old
  _manifest(path, content.replace(old, new, 1))


def _data_shard(path, name):
  var_dir = os.path.join(path, name, "variables")
  [shard] = [e for e in os.listdir(var_dir) if e.startswith("variables.data-")]
  return os.path.join(var_dir, shard)


# case -> (damage(bundle copy), regex of the message after "--flag=PATH ").
CASES = {
    "not_a_bundle": (lambda p: os.remove(os.path.join(p, "manifest.json")),
                     r"is not a bundle \(no manifest\.json; a bundle of this tool has "
                     r"manifest\.json, encoder/ and preprocessor/\)"),
    "other_tool": (lambda p: _replace_in_manifest(p, b'"mobilebert-hub-export"',
                                                  b'"some-other-exporter"'),
                   r"is not a bundle of this tool \(manifest\.json has "
                   r"tool\.name='some-other-exporter', manifest_version=1; expected "
                   r"tool\.name='mobilebert-hub-export', manifest_version=1\)"),
    "manifest_not_json": (lambda p: _manifest(p, b"<html>not a manifest</html>"),
                          r"is not a bundle of this tool \(manifest\.json is not readable "
                          r"JSON: JSONDecodeError"),
    "other_manifest_version": (lambda p: _replace_in_manifest(
        p, b'"manifest_version": 1', b'"manifest_version": 7'),
                               r"is not a bundle of this tool \(manifest\.json has "
                               r"tool\.name='mobilebert-hub-export', manifest_version=7;"),
    "index_missing": (lambda p: os.remove(os.path.join(p, "encoder", "variables",
                                                       "variables.index")),
                      r"is a truncated bundle \(encoder/variables/variables\.index is "
                      r"missing; expected every SavedModel complete"),
    "data_empty": (lambda p: _unlink_and_write(_data_shard(p, "encoder"), b""),
                   r"is a truncated bundle \(encoder/variables/variables\.data-00000-of-"
                   r"00001 is empty \(0 bytes\);"),
    "saved_model_pb_missing": (lambda p: os.remove(os.path.join(p, "encoder",
                                                                "saved_model.pb")),
                               r"is a truncated bundle \(encoder/saved_model\.pb is "
                               r"missing;"),
    "preprocessor_missing": (lambda p: shutil.rmtree(os.path.join(p, "preprocessor")),
                             r"is a truncated bundle \(preprocessor/ is missing;"),
}
_FIX = {"not_a_bundle": r"; pass a bundle directory written by export_main\.py",
        "truncated": r"; export the bundle again with export_main\.py"}
SUBPROCESS_CASES = ("not_a_bundle", "other_tool", "index_missing")


def _fix(case):
  return _FIX["truncated"] if "truncated" in CASES[case][1] else _FIX["not_a_bundle"]


def _listing(path):
  out = []
  for root, dirs, files in os.walk(path):
    dirs.sort()
    for name in sorted(files):
      full = os.path.join(root, name)
      out.append((os.path.relpath(full, path), os.path.getsize(full)))
  return out


@pytest.fixture()
def damaged(tiny_bundle, tmp_path, request):
  """A hard-linked copy of the tiny bundle with the damage of CASES[case]."""
  path = str(tmp_path / "bundle")
  shutil.copytree(tiny_bundle["dir"], path, copy_function=os.link)
  CASES[request.param][0](path)
  return path


def _env():
  return dict(os.environ, PYTHONPATH=testutil.REPO, TF_CPP_MIN_LOG_LEVEL="3")


def _run(*args):
  return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=_env(),
                        cwd=testutil.REPO, timeout=600, check=False)


def _only_line(stderr):
  """The stderr lines that are not TensorFlow's own log lines."""
  return [line for line in stderr.splitlines() if line.strip() and not _TF_LOG.match(line)]


def test_the_undamaged_copy_is_accepted(tiny_bundle, tmp_path):
  from hub_export import bundle_check  # pylint: disable=g-import-not-at-top
  from hub_export.finetune import config  # pylint: disable=g-import-not-at-top
  path = str(tmp_path / "bundle")
  shutil.copytree(tiny_bundle["dir"], path, copy_function=os.link)
  manifest = bundle_check.check_bundle(path)
  assert manifest["tool"]["name"] == "mobilebert-hub-export"
  config.FinetuneConfig(bundle_dir=path, model_dir=str(tmp_path / "m"),
                        train_file=EN_DEV).check()


# --- python -m hub_export.finetune -------------------------------------------------------

@pytest.mark.parametrize("damaged", sorted(CASES), indirect=True)
def test_finetune_module_refuses(damaged, tmp_path, request):
  case = request.node.callspec.params["damaged"]
  before = _listing(damaged)
  proc = _run("-m", "hub_export.finetune", f"--bundle_dir={damaged}",
              f"--model_dir={tmp_path / 'm'}", f"--train_file={EN_DEV}")
  assert proc.returncode == 1, proc.stderr[-3000:]
  assert proc.stdout == ""
  [line] = proc.stderr.strip().splitlines()
  assert re.fullmatch(rf"error: --bundle_dir={re.escape(damaged)} {CASES[case][1]}.*"
                      rf"{_fix(case)}.*", line), line
  assert not os.path.exists(tmp_path / "m")
  assert _listing(damaged) == before


def test_finetune_module_refuses_a_missing_directory(tmp_path):
  missing = str(tmp_path / "nothing_here")
  proc = _run("-m", "hub_export.finetune", f"--bundle_dir={missing}",
              f"--model_dir={tmp_path / 'm'}", f"--train_file={EN_DEV}")
  assert proc.returncode == 1, proc.stderr[-3000:]
  [line] = proc.stderr.strip().splitlines()
  assert re.fullmatch(rf"error: --bundle_dir={re.escape(missing)} does not exist \(expected "
                      r"a bundle directory: manifest\.json, encoder/ and preprocessor/\); "
                      r"pass a bundle directory written by export_main\.py.*", line), line


# --- python -m hub_export.squad.evaluate ---------------------------------------------------

def _evaluate_pattern(path, case):
  return rf"error: --bundle_dir={re.escape(path)} {CASES[case][1]}.*{_fix(case)}.*"


@pytest.mark.parametrize("damaged", SUBPROCESS_CASES, indirect=True)
def test_evaluate_module_refuses(damaged, tmp_path, request):
  case = request.node.callspec.params["damaged"]
  before = _listing(damaged)
  out_json = tmp_path / "eval.json"
  proc = _run("-m", "hub_export.squad.evaluate", f"--bundle_dir={damaged}",
              f"--squad_file={XQUAD_EN}", f"--output_json={out_json}")
  assert proc.returncode == 1, proc.stderr[-3000:]
  [line] = _only_line(proc.stderr)
  assert re.fullmatch(_evaluate_pattern(damaged, case), line), line
  assert not out_json.exists() and _listing(damaged) == before


@pytest.mark.parametrize("damaged", sorted(CASES), indirect=True)
def test_evaluate_main_refuses(damaged, request, capsys):
  from hub_export.squad import evaluate  # pylint: disable=g-import-not-at-top
  case = request.node.callspec.params["damaged"]
  code = evaluate.main(["evaluate", f"--bundle_dir={damaged}", f"--squad_file={XQUAD_EN}"])
  captured = capsys.readouterr()
  assert code == 1
  [line] = captured.err.strip().splitlines()
  assert re.fullmatch(_evaluate_pattern(damaged, case), line), line


def test_evaluate_refuses_a_bundle_without_squad(tiny_bundle, capsys):
  from hub_export.squad import evaluate  # pylint: disable=g-import-not-at-top
  d = tiny_bundle["dir"]
  assert evaluate.main(["evaluate", f"--bundle_dir={d}", f"--squad_file={XQUAD_EN}"]) == 1
  [line] = capsys.readouterr().err.strip().splitlines()
  assert re.fullmatch(rf"error: --bundle_dir={re.escape(d)} has no SQuAD package \(its "
                      r"manifest\.json has no 'squad' entry; expected a bundle exported with "
                      r"--task=squad\); export one with export_main\.py --task=squad", line)


def test_evaluate_refuses_a_bundle_root_as_squad_dir_and_both_flags(tiny_bundle, capsys):
  from hub_export.squad import evaluate  # pylint: disable=g-import-not-at-top
  d = tiny_bundle["dir"]
  assert evaluate.main(["evaluate", f"--squad_dir={d}", f"--squad_file={XQUAD_EN}"]) == 1
  [line] = capsys.readouterr().err.strip().splitlines()
  assert re.fullmatch(rf"error: --squad_dir={re.escape(d)} is a bundle, not its squad/ "
                      rf"directory; pass --bundle_dir={re.escape(d)} or "
                      rf"--squad_dir={re.escape(os.path.join(d, 'squad'))}", line), line
  assert evaluate.main(["evaluate", f"--squad_dir={d}/squad", f"--bundle_dir={d}",
                        f"--squad_file={XQUAD_EN}"]) == 1
  assert "pass exactly one" in capsys.readouterr().err


# --- export_main.py --overwrite ---------------------------------------------------------

def _export_pattern(path, case):
  return (rf"export failed: --export_dir={re.escape(path)} {CASES[case][1]}.*; refusing to "
          r"replace it even with --overwrite: move it away yourself or choose another "
          r"--export_dir")


@pytest.mark.parametrize("damaged", ["other_tool"], indirect=True)
def test_export_main_overwrite_refuses(damaged, request):
  case = request.node.callspec.params["damaged"]
  before = _listing(damaged)
  proc = _run("export_main.py", "--demo", f"--export_dir={damaged}", "--overwrite")
  assert proc.returncode == 1, proc.stderr[-3000:]
  [line] = _only_line(proc.stderr)
  assert re.fullmatch(_export_pattern(damaged, case), line), line
  assert _listing(damaged) == before
  assert sorted(os.listdir(os.path.dirname(damaged))) == ["bundle"]  # no staging left.


@pytest.mark.parametrize("damaged", sorted(CASES), indirect=True)
def test_export_main_overwrite_refuses_in_process(damaged, request, capsys):
  import export_main  # pylint: disable=g-import-not-at-top
  case = request.node.callspec.params["damaged"]
  before = _listing(damaged)
  code = export_main.run_main(["export_main.py", "--demo", f"--export_dir={damaged}",
                               "--overwrite"])
  assert code == 1
  [line] = _only_line(capsys.readouterr().err)
  assert re.fullmatch(_export_pattern(damaged, case), line), line
  assert _listing(damaged) == before


def test_export_main_overwrite_refuses_a_file(tmp_path, capsys):
  import export_main  # pylint: disable=g-import-not-at-top
  path = tmp_path / "notes.txt"
  path.write_text("keep me")
  code = export_main.run_main(["export_main.py", "--demo", f"--export_dir={path}",
                               "--overwrite"])
  assert code == 1
  [line] = _only_line(capsys.readouterr().err)
  assert re.fullmatch(rf"export failed: --export_dir={re.escape(str(path))} is not a "
                      r"directory \(expected a bundle directory: .*\); refusing to replace "
                      r"it even with --overwrite.*", line), line
  assert path.read_text() == "keep me"
