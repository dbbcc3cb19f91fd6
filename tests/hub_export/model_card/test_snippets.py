"""The files of hub_export/model_card/snippets/: valid code, and each runs as it stands.

Each file runs in a fresh interpreter (or bash) whose working directory holds
`path/to/bundle`, a link to a real tiny bundle, so the file's `BUNDLE = "path/to/bundle"`
resolves without editing it. Rendering them into the card is tested in test_render.py.
"""

import ast
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from hub_export import model_card
from tests import testutil

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow

SNIPPET_DIR = os.path.join(testutil.REPO, "hub_export", "model_card", "snippets")
# Snippets that need serving/ run against `multi_bundle` (exported with it); the others
# against `tiny_bundle`.
NEEDS_SERVING = ("saved_model_cli.sh", "text_serving.py")


def _source(name):
  with open(os.path.join(SNIPPET_DIR, name), encoding="utf-8") as f:
    return f.read()


def test_snippets_lists_every_file_of_the_folder():
  assert sorted(model_card.SNIPPETS) == sorted(n for n in os.listdir(SNIPPET_DIR)
                                               if n != "__pycache__")


@pytest.mark.parametrize("name", model_card.SNIPPETS)
def test_snippet_is_valid_code_with_the_bundle_placeholder(name):
  source = _source(name)
  assert model_card.BUNDLE_PLACEHOLDER in source
  if name.endswith(".py"):
    # `python snippets/<name>` puts snippets/ first on sys.path: a file named like a
    # module (tf_keras.py) would shadow it for every import of it, tensorflow_hub's too.
    assert importlib.util.find_spec(name[:-3]) is None, f"{name} shadows a module"
    tree = ast.parse(source, name)
    bundle = [n for n in tree.body if isinstance(n, ast.Assign) and
              [t.id for t in n.targets if isinstance(t, ast.Name)] == ["BUNDLE"]]
    assert len(bundle) == 1, "one top-level BUNDLE = ... assignment"
    assert ast.literal_eval(bundle[0].value) == model_card.BUNDLE_PLACEHOLDER
  else:
    proc = subprocess.run(["bash", "-n", os.path.join(SNIPPET_DIR, name)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("name", model_card.SNIPPETS)
def test_snippet_runs_as_it_stands_against_a_bundle(name, request, tmp_path):
  bundle = request.getfixturevalue("multi_bundle" if name in NEEDS_SERVING
                                   else "tiny_bundle")["dir"]
  with open(os.path.join(bundle, "manifest.json"), encoding="utf-8") as f:
    manifest = json.load(f)
  link = tmp_path / model_card.BUNDLE_PLACEHOLDER
  link.parent.mkdir(parents=True)
  link.symlink_to(bundle, target_is_directory=True)
  command = ([sys.executable] if name.endswith(".py") else ["bash", "-euo", "pipefail"])
  env = dict(os.environ, PYTHONPATH=testutil.REPO, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run(command + [os.path.join(SNIPPET_DIR, name)], cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=900, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  hidden, vocab = manifest["config"]["hidden_size"], manifest["vocab"]["size"]
  printed = {"mlm.py": f"(1, 1, {vocab})", "keras3_usage.py": f"(1, {hidden})",
             "text_serving.py": f"(2, {hidden})", "encoder_serving.py": f"(1, {hidden})",
             "tf_keras_usage.py": "shape=(1, 2)",
             "saved_model_cli.sh": "signature_def['text_pair']"}
  if name in printed:
    assert printed[name] in proc.stdout, proc.stdout[-3000:]
  if name == "tf_keras_usage.py":
    assert (tmp_path / "my_classifier" / "saved_model.pb").is_file()
  if name == "saved_model_cli.sh":
    assert proc.stdout.count("MetaGraphDef with tag-set: 'serve'") == 3
