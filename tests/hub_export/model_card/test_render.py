"""`model_card.render`: well-formed Markdown, task sections, snippets as the card shows them."""

import ast
import copy
import glob
import json
import os
import re

import jinja2
import pytest

from hub_export import keras3
from hub_export import model_card
from tests import testutil

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow

FENCE_OPEN = re.compile(r"^```\w+$")


@pytest.fixture(name="tiny_manifest")
def fixture_tiny_manifest(tiny_bundle):
  with open(os.path.join(tiny_bundle["dir"], "manifest.json"), encoding="utf-8") as f:
    return json.load(f)


@pytest.fixture(name="multi_manifest")
def fixture_multi_manifest(multi_bundle):
  with open(os.path.join(multi_bundle["dir"], "manifest.json"), encoding="utf-8") as f:
    return json.load(f)


def _untrained(manifest):
  m = copy.deepcopy(manifest)
  m["trained"] = False
  m["publishing"]["dataset"] = []
  return m


def _markdown_problems(card: str) -> list:
  """Departures from the card's layout: one blank line around each heading and fenced
  block, no double blank lines, no trailing spaces, one final newline, closed fences."""
  lines = card.split("\n")
  problems = []
  if not card.endswith("\n") or card.endswith("\n\n"):
    problems.append("the card must end with exactly one newline")
  in_block = False
  for i, line in enumerate(lines[:-1]):
    before = lines[i - 1] if i else None
    after = lines[i + 1]
    if line != line.rstrip():
      problems.append(f"line {i + 1}: trailing whitespace")
    if in_block:
      if line == "```":
        in_block = False
        if after != "" or lines[i + 2:i + 3] == [""]:
          problems.append(f"line {i + 1}: a closing fence needs one blank line after it")
      continue
    if line == "" and before == "":
      problems.append(f"line {i + 1}: two blank lines")
    if line.startswith("#") and i and before != "":
      problems.append(f"line {i + 1}: heading {line!r} without a blank line before it")
    if FENCE_OPEN.match(line):
      in_block = True
      if before != "":
        problems.append(f"line {i + 1}: fence {line!r} without a blank line before it")
    elif line.startswith("```"):
      problems.append(f"line {i + 1}: unexpected fence {line!r}")
  if in_block:
    problems.append("a fenced block is not closed")
  return problems


def test_card_is_well_formed_markdown(tiny_manifest, multi_manifest):
  variants = {"tiny": tiny_manifest, "multi (serving, archives, tflite)": multi_manifest,
              "untrained": _untrained(tiny_manifest)}
  for label, manifest in variants.items():
    card = model_card.render(manifest, ["## A task\nIts text.\n"])
    assert not _markdown_problems(card), (label, _markdown_problems(card))


def test_the_layout_check_catches_what_it_checks():
  bad = "# T\ntext\n## H\n\n\n```python\nx = 1\n```\nafter \n"
  problems = _markdown_problems(bad)
  assert any("heading '## H'" in p for p in problems)
  assert any("two blank lines" in p for p in problems)
  assert any("closing fence" in p for p in problems)
  assert any("trailing whitespace" in p for p in problems)


def test_task_sections_go_before_limits_without_their_blank_lines(tiny_manifest):
  card = model_card.render(tiny_manifest, ["\n## Task A\nText a.\n\n", "", "## Task B\nb"])
  assert "```\n\n## Task A\nText a.\n\n## Task B\nb\n\n## Limits\n" in card
  assert card.count("## Task A") == 1
  assert model_card.render(tiny_manifest, ["", "\n"]) == model_card.render(tiny_manifest)


@pytest.mark.parametrize("section,message", [
    (b"## bytes", r"task section 0 \(bytes\) is not a str"),
    ("Some text\n## Heading", r"task section 0 starts with 'Some text'.*'## ' heading"),
], ids=["not_str", "no_heading"])
def test_render_rejects_a_bad_task_section(tiny_manifest, section, message):
  with pytest.raises(ValueError, match=message):
    model_card.render(tiny_manifest, [section])


def test_card_shows_each_snippet_as_rendered_for_the_bundle(multi_manifest):
  card = model_card.render(multi_manifest)
  for name in model_card.SNIPPETS:
    shown = model_card.snippet(name, multi_manifest)
    assert "{{" not in shown and "#%" not in shown, name
    if name == "keras3_usage.py":  # After the source of HubEncoder, in one block.
      shown = keras3.keras3_source() + "\n" + shown
    assert f"\n{shown}```\n" in card, name
  hidden = multi_manifest["config"]["hidden_size"]
  assert f"# [batch_size, {hidden}]" in model_card.snippet("tf_keras_usage.py", multi_manifest)
  assert "serving" in model_card.snippet("saved_model_cli.sh", multi_manifest)


def test_without_serving_the_card_leaves_out_the_serving_snippet_and_lines(tiny_manifest):
  card = model_card.render(tiny_manifest)
  assert "path/to/bundle/serving" not in card and 'BUNDLE + "/serving"' not in card
  assert "Re-export with `--with_text_signature`" in card
  assert model_card.snippet("saved_model_cli.sh", tiny_manifest).count("\n") == 2


def test_untrained_and_pooler_variants(tiny_manifest):
  untrained = model_card.render(_untrained(tiny_manifest))
  assert "> **WARNING: UNTRAINED DEMO WEIGHTS.**" in untrained
  assert "Pre-training data: none: untrained demo weights." in untrained
  pooler = copy.deepcopy(tiny_manifest)
  pooler["config"]["classifier_activation"] = True
  assert "`pooled_output` is the tanh pooler: fine-tune\n" in model_card.render(pooler)
  assert "not a trained sentence embedding" in model_card.render(tiny_manifest)


def test_unknown_vocab_without_publishing_metadata(tiny_manifest):
  manifest = copy.deepcopy(tiny_manifest)
  manifest["vocab"]["sha256"] = "0" * 64
  del manifest["publishing"]
  card = model_card.render(manifest)
  assert "Language: unknown (not a released vocab)" in card
  assert "Pre-training data: unknown." in card and "<!-- language:" not in card


def test_missing_manifest_fields_raise(tiny_manifest):
  manifest = copy.deepcopy(tiny_manifest)
  del manifest["config"]["embedding_size"]
  with pytest.raises(jinja2.UndefinedError, match="embedding_size"):
    model_card.render(manifest)
  del manifest["vocab"]
  with pytest.raises(KeyError, match="vocab"):
    model_card.render(manifest)


def test_snippet_rejects_an_unknown_name(tiny_manifest):
  with pytest.raises(ValueError, match=r"snippet 'x.py' is not one of \('tf_keras_usage.py'"):
    model_card.snippet("x.py", tiny_manifest)


def test_the_card_and_the_manifest_import_no_task_package():
  files = [os.path.join(testutil.REPO, "hub_export", "manifest.py")] + glob.glob(
      os.path.join(testutil.REPO, "hub_export", "model_card", "**", "*.py"), recursive=True)
  for path in files:
    with open(path, encoding="utf-8") as f:
      tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
      names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
               [f"{node.module}.{a.name}" for a in node.names]
               if isinstance(node, ast.ImportFrom) else [])
      assert not [n for n in names if n.startswith(("hub_export.squad",
                                                    "hub_export.finetune"))], path
