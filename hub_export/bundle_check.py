"""Recognises a bundle written by this tool, cheaply and without TensorFlow.

`check_bundle` is the one check every command that reads or replaces a bundle runs first
(`python -m hub_export.finetune --bundle_dir`, `python -m hub_export.squad.evaluate
--bundle_dir`, `export_main.py --overwrite` onto an existing `--export_dir`). It refuses,
with one line naming the value, the expectation and the fix:

  * a path that does not exist or is not a directory;
  * a directory that is not a bundle (no manifest.json);
  * a bundle of another tool: manifest.json is not a JSON object, or its `tool.name` is
    not `TOOL_NAME`, or its `manifest_version` is not `MANIFEST_VERSION`;
  * a truncated bundle: a SavedModel it must hold (`encoder/`, `preprocessor/`, plus
    `serving/` when the manifest lists its signatures, and any directory the caller
    requires) lacks a non-empty `saved_model.pb`, `variables/variables.index` or one of
    the `variables.data-?????-of-N` shards its file names announce; or an archive the
    manifest records (`archives`: file and bytes) is missing or has another size.

The manifest records no sizes or hashes of the SavedModel files (only of the source
checkpoint and of the archives), so truncation inside a SavedModel is judged by presence
and non-zero size; nothing is hashed or loaded. The module imports no task package
(`hub_export.finetune`, `hub_export.squad`) and no TensorFlow.
"""

import json
import os
import re
from typing import Optional, Sequence

from hub_export.errors import ExportError

# The identity of this tool's manifest.json (`hub_export.manifest` writes them).
TOOL_NAME = "mobilebert-hub-export"
MANIFEST_VERSION = 1
# SavedModels every bundle has.
REQUIRED_SAVED_MODELS = ("encoder", "preprocessor")
_LAYOUT = "manifest.json, encoder/ and preprocessor/"
_DEFAULT_FIX = "pass a bundle directory written by export_main.py (its --export_dir)"
_TRUNCATED_FIX = "export the bundle again with export_main.py"
_SHARD = re.compile(r"^variables\.data-(\d{5})-of-(\d{5})$")


class BundleError(ExportError):
  """The path is not a complete bundle of this tool; the message is one line.

  Attributes:
    kind: "missing" (no such directory), "not_a_bundle" (no manifest.json), "foreign"
      (a manifest.json that is not this tool's) or "truncated".
  """

  def __init__(self, message: str, kind: str):
    super().__init__(message)
    self.kind = kind


def saved_model_problem(saved_model_dir: str) -> Optional[str]:
  """The first missing or empty file of a SavedModel directory, or None if complete.

  Args:
    saved_model_dir: a directory written by `tf.saved_model.save`.

  Returns:
    None, or a phrase such as "encoder/variables/variables.index is missing" (the path
    relative to the directory's parent).
  """
  name = os.path.basename(os.path.normpath(saved_model_dir))
  if not os.path.isdir(saved_model_dir):
    return f"{name}/ is missing"

  def nonempty(rel):
    path = os.path.join(saved_model_dir, rel)
    if not os.path.isfile(path):
      return f"{name}/{rel} is missing"
    if os.path.getsize(path) == 0:
      return f"{name}/{rel} is empty (0 bytes)"
    return None

  problem = (nonempty("saved_model.pb") or
             nonempty(os.path.join("variables", "variables.index")))
  if problem:
    return problem
  var_dir = os.path.join(saved_model_dir, "variables")
  shards = {}
  for entry in os.listdir(var_dir):
    match = _SHARD.match(entry)
    if match:
      shards[int(match.group(1))] = (int(match.group(2)), entry)
  if not shards:
    return f"{name}/variables/ has no variables.data-*-of-* shard"
  total = next(iter(shards.values()))[0]
  for index in range(total):
    if index not in shards:
      return (f"{name}/variables/variables.data-{index:05d}-of-{total:05d} is missing")
  for _, entry in sorted(shards.values(), key=lambda v: v[1]):
    problem = nonempty(os.path.join("variables", entry))
    if problem:
      return problem
  return None


def check_bundle(path: str, *, flag: str = "--bundle_dir", require: Sequence[str] = (),
                 fix: Optional[str] = None) -> dict:
  """Checks that `path` is a complete bundle of this tool and returns its manifest.

  Args:
    path: the directory given on the command line.
    flag: the flag that named it, for the message (e.g. "--bundle_dir").
    require: further SavedModel directories the caller reads (e.g. ("squad/saved_model",)),
      relative to `path`.
    fix: the fix the message ends with; default: pass a bundle written by export_main.py
      (for a truncated bundle: export it again).

  Returns:
    the parsed manifest.json (a dict).

  Raises:
    BundleError: (an `ExportError`, hence a ValueError) one line
      "{flag}={path} <what is wrong> (<what was expected>); <fix>".
  """

  def fail(kind, what):
    default = _TRUNCATED_FIX if kind == "truncated" else _DEFAULT_FIX
    message = f"{flag}={path} {what}; {fix or default}"
    raise BundleError(" ".join(message.splitlines()), kind)

  if not os.path.exists(path):
    fail("missing", f"does not exist (expected a bundle directory: {_LAYOUT})")
  if not os.path.isdir(path):
    fail("missing", f"is not a directory (expected a bundle directory: {_LAYOUT})")
  manifest_path = os.path.join(path, "manifest.json")
  if not os.path.isfile(manifest_path):
    fail("not_a_bundle", f"is not a bundle (no manifest.json; a bundle of this tool has "
         f"{_LAYOUT})")
  try:
    with open(manifest_path, encoding="utf-8") as f:
      manifest = json.load(f)
  except (OSError, UnicodeDecodeError, ValueError) as e:
    fail("foreign", f"is not a bundle of this tool (manifest.json is not readable JSON: "
         f"{type(e).__name__}: {e}; expected the JSON object export_main.py writes)")
  tool = manifest.get("tool") if isinstance(manifest, dict) else None
  tool_name = tool.get("name") if isinstance(tool, dict) else None
  version = manifest.get("manifest_version") if isinstance(manifest, dict) else None
  if tool_name != TOOL_NAME or version != MANIFEST_VERSION:
    found = (f"tool.name={tool_name!r}, manifest_version={version!r}"
             if isinstance(manifest, dict) else f"a JSON {type(manifest).__name__}")
    fail("foreign", f"is not a bundle of this tool (manifest.json has {found}; expected "
         f"tool.name={TOOL_NAME!r}, manifest_version={MANIFEST_VERSION})")
  saved_models = list(REQUIRED_SAVED_MODELS)
  if "serving" in (manifest.get("signatures") or {}):
    saved_models.append("serving")
  saved_models += [r for r in require if r not in saved_models]
  for rel in saved_models:
    problem = saved_model_problem(os.path.join(path, rel))
    if problem:
      if "/" in rel.strip("/"):
        problem = f"{os.path.dirname(rel.strip('/'))}/{problem}"
      fail("truncated", f"is a truncated bundle ({problem}; expected every SavedModel "
           "complete: a non-empty saved_model.pb, variables/variables.index and every "
           "variables.data-* shard)")
  archives = manifest.get("archives") or {}
  for entry in (archives.values() if isinstance(archives, dict) else ()):
    if not isinstance(entry, dict) or "file" not in entry or "bytes" not in entry:
      continue
    archive = os.path.join(path, entry["file"])
    size = os.path.getsize(archive) if os.path.isfile(archive) else None
    if size != entry["bytes"]:
      got = "is missing" if size is None else f"has {size} bytes"
      fail("truncated", f"is a truncated bundle ({entry['file']} {got}; manifest.json "
           f"records {entry['bytes']} bytes)")
  return manifest
