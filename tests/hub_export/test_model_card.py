"""The bundle's README.md model card: content, TF Hub metadata, and every snippet run."""

import contextlib
import hashlib
import io
import json
import os
import re
import subprocess

import pytest

from hub_export import manifest as manifest_lib
from hub_export import model_card

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow

# tensorflow/tfhub.dev tools/validator.py: METADATA_LINE_PATTERN and the tags a model page
# may carry (asset-path is added on publishing).
METADATA_LINE = re.compile(r"^<!--(?P<key>(\w|\s|-)+):(?P<value>.+)-->$")
TFHUB_MODEL_TAGS = {"asset-path", "colab", "dataset", "demo", "fine-tunable", "format",
                    "interactive-visualizer", "language", "license", "network-architecture",
                    "parent-model", "task"}
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.M | re.S)
UNCASED_SHA = "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
MULTI_SHA = "fe0fda7c425b48c516fc8f160d594c8022a0808447475c1a7c6d6479763f310c"


def _card(bundle):
  with open(os.path.join(bundle["dir"], "README.md"), encoding="utf-8") as f:
    return f.read()


def _metadata(card: str) -> dict:
  """tfhub.dev's reading: comment lines after the first line, key -> list of values."""
  tags = {}
  for line in card.splitlines()[1:]:
    match = METADATA_LINE.match(line)
    if match:
      tags.setdefault(match["key"].strip(), []).append(match["value"].strip())
  return tags


def _sha256(path):
  return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _check_common_content(card, bundle_dir, *, trained):
  manifest = json.load(open(os.path.join(bundle_dir, "manifest.json")))
  source = manifest["source"]["checkpoint"]
  folder = os.path.dirname(source)
  if os.path.isdir(folder):  # The checkpoint's own files, hashed here, are in the card.
    hashes = {n: _sha256(os.path.join(folder, n)) for n in os.listdir(folder)
              if n.startswith(os.path.basename(source) + ".")}
  else:  # --demo writes its checkpoint to a scratch directory it removes.
    hashes = manifest["source"]["checkpoint_sha256"]
  assert len(hashes) >= 2
  for name, sha in hashes.items():
    assert f"`{name}`: `{sha}`" in card, name
  vocab_sha = _sha256(os.path.join(bundle_dir, "checkpoint", "vocab.txt"))
  assert vocab_sha in card
  tags = _metadata(card)
  assert set(tags) <= TFHUB_MODEL_TAGS, set(tags) - TFHUB_MODEL_TAGS
  assert tags["format"] == ["saved_model_2"] and tags["fine-tunable"] == ["true"]
  assert tags["task"] == ["text-embedding"] and tags["license"] == ["apache-2.0"]
  assert tags["network-architecture"] == ["transformer"]
  publishing = manifest["publishing"]
  assert publishing["language"] == tags["language"]
  assert publishing["dataset"] == tags.get("dataset", [])
  assert publishing["fine_tunable"] is True and publishing["format"] == "saved_model_2"
  assert ("UNTRAINED DEMO WEIGHTS" in card) is (not trained)
  config = manifest["config"]
  for text in ("## Overview", "Intended use", "## Provenance", "## Inputs and outputs",
               "tf_keras", "Keras 3", "## Serve", "## Limits", "## License and citation",
               f"At most {config['max_position_embeddings']} tokens",
               f"`[batch_size, {config['hidden_size']}]`",
               "MobileBERT: a Compact Task-Agnostic BERT for\nResource-Limited Devices",
               "@inproceedings{sun2020mobilebert", "Sun, Zhiqing", "year={2020}"):
    assert text in card, text
  return tags


def test_card_content_english_uncased(tiny_bundle):
  card = _card(tiny_bundle)
  tags = _check_common_content(card, tiny_bundle["dir"], trained=True)
  assert _sha256(os.path.join(tiny_bundle["dir"], "checkpoint", "vocab.txt")) == UNCASED_SHA
  assert tags["language"] == ["en"] and tags["dataset"] == ["wikipedia-and-bookscorpus"]
  assert "Tokenization is uncased" in card
  assert "bundle/serving" not in card and "--with_text_signature" in card


def test_card_content_multilingual_cased(multi_bundle):
  card = _card(multi_bundle)
  tags = _check_common_content(card, multi_bundle["dir"], trained=True)
  assert _sha256(os.path.join(multi_bundle["dir"], "checkpoint", "vocab.txt")) == MULTI_SHA
  assert tags["language"] == ["multilingual"] and tags["dataset"] == ["multilingual-wikipedia"]
  assert "Tokenization is cased" in card
  for name in ("encoder", "preprocessor", "serving"):
    assert _sha256(os.path.join(multi_bundle["dir"], f"{name}.tar.gz")) in card


@pytest.mark.slow
def test_card_of_untrained_demo_has_no_dataset(full_demo_bundle):
  card = _card(full_demo_bundle)
  tags = _check_common_content(card, full_demo_bundle["dir"], trained=False)
  assert tags["language"] == ["en"] and "dataset" not in tags
  assert "At most 512 tokens" in card and "[batch_size, 512]" in card


@pytest.mark.parametrize("bundle", ["tiny_bundle", "multi_bundle"])
def test_readme_is_the_card_rendered_from_the_manifest(bundle, request):
  """The bundle's README.md is `model_card.render` of its manifest.json (no task sections)."""
  bundle_dir = request.getfixturevalue(bundle)["dir"]
  with open(os.path.join(bundle_dir, "manifest.json"), encoding="utf-8") as f:
    manifest = json.load(f)
  assert model_card.render(manifest) == _card({"dir": bundle_dir})


def test_metadata_of_an_unknown_vocab_is_empty():
  meta = manifest_lib.publishing_metadata(vocab_sha256="0" * 64, trained=True,
                                          do_lower_case=True)
  assert meta["language"] == [] and meta["dataset"] == [] and "unknown" in meta["decided_by"]
  lines = manifest_lib.markdown_metadata(meta).splitlines()
  assert all(METADATA_LINE.match(line) for line in lines)
  assert not any("language" in line or "dataset" in line for line in lines)


def _signature_defs(cli_output: str) -> dict:
  """signature name -> (input names, output names) from `saved_model_cli show --all`."""
  result = {}
  for chunk in re.split(r"\nsignature_def\['", cli_output)[1:]:
    name = chunk.split("'", 1)[0]
    ins, outs = chunk.split("contains the following output(s):")
    result[name] = (set(re.findall(r"inputs\['([^']+)'\]", ins)),
                    set(re.findall(r"outputs\['([^']+)'\]", outs)))
  return result


def test_every_snippet_of_the_card_runs(multi_bundle, tmp_path, monkeypatch):
  """Runs each fenced block of the multilingual card (the one with serving/ and archives,
  so every snippet template is there) against the bundle: Python in a fresh namespace
  each, the shell block in bash; `saved_model_cli` output is checked signature by
  signature against HUB_API.md."""
  card = _card(multi_bundle)
  blocks = FENCE.findall(card)
  langs = [lang for lang, _ in blocks]
  assert langs.count("python") == 6 and langs.count("sh") == 1, langs
  monkeypatch.chdir(tmp_path)
  for lang, code in blocks:
    code = code.replace(model_card.BUNDLE_PLACEHOLDER, multi_bundle["dir"])
    if lang == "python":
      stdout = io.StringIO()
      with contextlib.redirect_stdout(stdout):
        exec(compile(code, "<model card snippet>", "exec"), {"__name__": "__card__"})  # pylint: disable=exec-used
      assert "Traceback" not in stdout.getvalue()
    elif lang == "sh":
      proc = subprocess.run(["bash", "-euo", "pipefail", "-c", code], capture_output=True,
                            text=True, timeout=600, check=False)
      assert proc.returncode == 0, proc.stderr[-3000:]
      shows = proc.stdout.split("MetaGraphDef with tag-set: 'serve'")[1:]
      assert len(shows) == 3
      encoder, preprocessor, serving = (_signature_defs(s) for s in shows)
      ids = {"input_word_ids", "input_mask", "input_type_ids"}
      outputs = {"pooled_output", "sequence_output", "default", "encoder_outputs_0",
                 "encoder_outputs_1"}
      for defs in (encoder, preprocessor, serving):
        defs.pop("__saved_model_init_op")
      assert encoder == {"serving_default": (ids, outputs), "encoder": (ids, outputs),
                         "pooled": (ids, {"pooled_output"}),
                         "mlm": (ids | {"masked_lm_positions"}, {"mlm_logits"})}
      assert preprocessor == {"serving_default": ({"sentences"}, ids),
                              "bert_pack_pair": ({"text_a", "text_b"}, ids)}
      assert serving == {"serving_default": ({"sentences"}, {"pooled_output"}),
                         "text_pair": ({"text_a", "text_b"}, {"pooled_output"})}
    else:
      assert lang == "bibtex", lang
  assert os.path.isdir(tmp_path / "my_classifier")  # the tf_keras snippet saved its model
