"""bundle_check.check_bundle on hand-made directory layouts (no TensorFlow, no export).

The layouts imitate what `tf.saved_model.save` and export_main.py write; the slow
`test_bundle_refusal_cli.py` runs the same checks on a real exported bundle through
every command line that reads one.
"""

import json
import os
import re
import sys

import pytest

from hub_export import bundle_check
from hub_export.errors import ExportError

# What export_main.py writes into manifest.json["tool"] and ["manifest_version"]
# (HUB_API.md: "tool version"); spelled out here, not read from the code under test.
OUR_TOOL = {"name": "mobilebert-hub-export", "version": "0.1.0"}
OUR_VERSION = 1


def _write(path, content=b"x" * 16):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(content)


def _saved_model(d, shards=1):
  _write(os.path.join(d, "saved_model.pb"))
  _write(os.path.join(d, "variables", "variables.index"))
  for i in range(shards):
    _write(os.path.join(d, "variables", f"variables.data-{i:05d}-of-{shards:05d}"))


def _bundle(root, **manifest_fields):
  manifest = {"manifest_version": OUR_VERSION, "tool": dict(OUR_TOOL),
              "signatures": {"encoder": ["serving_default"],
                             "preprocessor": ["serving_default"]}}
  manifest.update(manifest_fields)
  _write(os.path.join(root, "manifest.json"), json.dumps(manifest).encode())
  _saved_model(os.path.join(root, "encoder"), shards=2)
  _saved_model(os.path.join(root, "preprocessor"))
  return str(root)


def _refused(path, kind, pattern, **kwargs):
  with pytest.raises(bundle_check.BundleError) as info:
    bundle_check.check_bundle(path, **kwargs)
  message = str(info.value)
  assert info.value.kind == kind, message
  assert "\n" not in message
  assert re.search(pattern, message), message
  return message


def test_a_complete_bundle_passes_and_returns_its_manifest(tmp_path):
  manifest = bundle_check.check_bundle(_bundle(tmp_path))
  assert manifest["tool"] == OUR_TOOL


def test_the_error_is_an_export_error_and_a_value_error():
  assert issubclass(bundle_check.BundleError, ExportError)
  assert issubclass(bundle_check.BundleError, ValueError)


def test_missing_path_and_file(tmp_path):
  missing = str(tmp_path / "nope")
  _refused(missing, "missing",
           rf"^--bundle_dir={re.escape(missing)} does not exist \(expected a bundle "
           r"directory: manifest\.json, encoder/ and preprocessor/\); pass a bundle "
           r"directory written by export_main\.py")
  _write(str(tmp_path / "file"))
  _refused(str(tmp_path / "file"), "missing", r"is not a directory \(expected")


def test_a_directory_without_manifest_is_not_a_bundle(tmp_path):
  _saved_model(str(tmp_path / "encoder"))
  _refused(str(tmp_path), "not_a_bundle",
           r"is not a bundle \(no manifest\.json; a bundle of this tool has manifest\.json")


@pytest.mark.parametrize("content, found", [
    (b'{"tool": {"name": "other-exporter"}, "manifest_version": 1}',
     r"tool\.name='other-exporter', manifest_version=1"),
    (b'{"manifest_version": 1}', r"tool\.name=None, manifest_version=1"),
    (b'{"tool": {"name": "mobilebert-hub-export"}, "manifest_version": 2}',
     r"tool\.name='mobilebert-hub-export', manifest_version=2"),
    (b'["a", "list"]', r"manifest\.json has a JSON list"),
    (b"not json at all", r"manifest\.json is not readable JSON: JSONDecodeError"),
    (b"\xff\xfe", r"manifest\.json is not readable JSON: UnicodeDecodeError"),
])
def test_a_manifest_of_another_tool_is_refused(tmp_path, content, found):
  root = _bundle(tmp_path)
  _write(os.path.join(root, "manifest.json"), content)
  _refused(root, "foreign", rf"^--bundle_dir=\S+ is not a bundle of this tool \(.*{found}")


@pytest.mark.parametrize("damage, problem", [
    (lambda r: os.remove(os.path.join(r, "encoder", "variables", "variables.index")),
     r"encoder/variables/variables\.index is missing"),
    (lambda r: _write(os.path.join(r, "encoder", "variables", "variables.index"), b""),
     r"encoder/variables/variables\.index is empty \(0 bytes\)"),
    (lambda r: os.remove(os.path.join(r, "encoder", "variables",
                                      "variables.data-00001-of-00002")),
     r"encoder/variables/variables\.data-00001-of-00002 is missing"),
    (lambda r: _write(os.path.join(r, "encoder", "variables",
                                   "variables.data-00000-of-00002"), b""),
     r"encoder/variables/variables\.data-00000-of-00002 is empty \(0 bytes\)"),
    (lambda r: [os.remove(os.path.join(r, "encoder", "variables", f"variables.data-0000{i}"
                                       "-of-00002")) for i in (0, 1)],
     r"encoder/variables/ has no variables\.data-\*-of-\* shard"),
    (lambda r: os.remove(os.path.join(r, "preprocessor", "saved_model.pb")),
     r"preprocessor/saved_model\.pb is missing"),
    (lambda r: __import__("shutil").rmtree(os.path.join(r, "preprocessor")),
     r"preprocessor/ is missing"),
])
def test_a_truncated_bundle_is_refused(tmp_path, damage, problem):
  root = _bundle(tmp_path)
  damage(root)
  _refused(root, "truncated",
           rf"^--bundle_dir=\S+ is a truncated bundle \({problem}; expected every SavedModel "
           r"complete.*\); export the bundle again with export_main\.py$")


def test_serving_is_required_when_the_manifest_lists_it(tmp_path):
  root = _bundle(tmp_path, signatures={"encoder": [], "preprocessor": [],
                                       "serving": ["serving_default"]})
  _refused(root, "truncated", r"\(serving/ is missing;")
  _saved_model(os.path.join(root, "serving"))
  bundle_check.check_bundle(root)


def test_required_directories_of_the_caller(tmp_path):
  root = _bundle(tmp_path)
  _refused(root, "truncated", r"\(squad/saved_model/ is missing;",
           require=("squad/saved_model",))
  _saved_model(os.path.join(root, "squad", "saved_model"))
  bundle_check.check_bundle(root, require=("squad/saved_model",))


def test_archives_are_checked_against_the_recorded_size(tmp_path):
  root = _bundle(tmp_path, archives={"encoder": {"file": "encoder.tar.gz", "bytes": 5,
                                                 "sha256": "0" * 64}})
  _refused(root, "truncated", r"\(encoder\.tar\.gz is missing; manifest\.json records 5 "
           r"bytes\)")
  _write(os.path.join(root, "encoder.tar.gz"), b"abc")
  _refused(root, "truncated", r"\(encoder\.tar\.gz has 3 bytes; manifest\.json records 5")
  _write(os.path.join(root, "encoder.tar.gz"), b"abcde")
  bundle_check.check_bundle(root)


def test_flag_and_fix_appear_in_the_message(tmp_path):
  message = _refused(str(tmp_path), "not_a_bundle", r"^--export_dir=",
                     flag="--export_dir", fix="refusing to replace it")
  assert message.endswith("; refusing to replace it")


def test_importing_the_check_imports_no_tensorflow_and_no_task_package():
  import subprocess  # pylint: disable=g-import-not-at-top
  from tests import testutil  # pylint: disable=g-import-not-at-top
  code = ("import sys; import hub_export.bundle_check, hub_export.finetune.config; "
          "bad = [m for m in sys.modules if m.split('.')[0] == 'tensorflow' or "
          "m.startswith(('hub_export.squad', 'hub_export.finetune.'))"
          " and m != 'hub_export.finetune.config' and m != 'hub_export.finetune.data']; "
          "print(bad)")
  out = subprocess.run([sys.executable, "-c", code], cwd=testutil.REPO, check=True,
                       capture_output=True, text=True).stdout
  assert out.strip() == "[]"
