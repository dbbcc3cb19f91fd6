"""The bundle's README.md: a model card with TF Hub Markdown metadata.

The card is `templates/model_card.md.j2` (Jinja2) filled from manifest.json. Its fenced code
blocks are the files of `snippets/`, included as they are: each file is runnable code as it
stands (`BUNDLE = "path/to/bundle"` at the top; tests/hub_export/model_card/ runs each one
against a real bundle), and the template fills in only what differs between bundles, in ways
that keep the file valid code:
- `{{ hidden_size }}`, `{{ vocab_size }}` inside comments, e.g. `# [batch_size, {{ hidden_size }}]`;
- Jinja line statements, lines starting with `#%` (a comment in Python and sh), e.g.
  `#% if has_serving` ... `#% endif` around the `serving/` line of `saved_model_cli.sh`, and
  `#% if false` ... `#% endif` around the imports of `keras3_usage.py` that the card replaces
  with the source of `hub_export.keras3.HubEncoder`.

Task sections (e.g. the SQuAD package's, from `BundleTask.card_section`) come in as Markdown
and go before "## Limits"; the card never imports a task package.
"""

import functools
import os
from typing import Sequence

import jinja2

from hub_export import manifest as manifest_lib

# The bundle's directory in every snippet; the tests run the snippets where it resolves.
BUNDLE_PLACEHOLDER = "path/to/bundle"
# The files of snippets/, in the order the card shows them.
SNIPPETS = ("tf_keras_usage.py", "mlm.py", "keras3_usage.py", "distribute.py",
            "saved_model_cli.sh", "text_serving.py", "encoder_serving.py")
TEMPLATE = "templates/model_card.md.j2"
_ROOT = os.path.dirname(os.path.abspath(__file__))


@functools.lru_cache(maxsize=None)
def environment(root: str = _ROOT) -> jinja2.Environment:
  """Jinja2 for Markdown templates under `root` (default: this package's): no HTML
  escaping, block tags own their lines, `#%` line statements, undefined raises."""
  env = jinja2.Environment(
      loader=jinja2.FileSystemLoader(root), autoescape=False, trim_blocks=True,
      lstrip_blocks=True, keep_trailing_newline=True, line_statement_prefix="#%",
      undefined=jinja2.StrictUndefined)
  env.filters["fmt"] = format  # `{{ n | fmt(",") }}` is Python's f"{n:,}".
  return env


def _context(manifest: dict, sections: Sequence[str]) -> dict:
  """The template's variables, from a manifest of `manifest.build_manifest`.

  `manifest` itself, `c` (its config), `publishing` (its metadata, or the one
  `manifest.publishing_metadata` derives if absent), sizes (`hidden_size`, `vocab_size`,
  `seq_length`: the preprocessor's default, `max_length`: max_position_embeddings,
  `max_pack_length`: the most `bert_pack_inputs` accepts), the text of casing, language
  and dataset, what the bundle holds (`has_serving`, `has_preprocessor_tflite`,
  `archives`), `worst_encoder_rel` (the largest relative difference of the encoder check),
  `keras3_source`, `citation` and the stripped task `sections`.

  Raises:
    KeyError: the manifest lacks a field the card shows.
    ValueError: a section is not a str or does not start with a "## " heading.
  """
  from hub_export import keras3  # pylint: disable=g-import-not-at-top  (imports keras)
  from preprocessors import packing  # pylint: disable=g-import-not-at-top  (imports tensorflow)
  config = manifest["config"]
  trained = manifest["trained"]
  do_lower_case = manifest["do_lower_case"]
  publishing = manifest.get("publishing") or manifest_lib.publishing_metadata(
      vocab_sha256=manifest["vocab"]["sha256"], trained=trained, do_lower_case=do_lower_case)
  casing = "uncased (lower-cased, accents stripped)" if do_lower_case else "cased"
  encoder_check = manifest["verification"]["encoder"]
  return {
      "manifest": manifest, "c": config, "trained": trained, "publishing": publishing,
      "metadata": manifest_lib.markdown_metadata(publishing),
      "casing": casing, "casing_word": casing.split()[0],
      "language": ", ".join(publishing["language"]) or "unknown (not a released vocab)",
      "dataset": ", ".join(publishing["dataset"]) or (
          "none: untrained demo weights" if not trained else "unknown"),
      "hidden_size": config["hidden_size"], "vocab_size": manifest["vocab"]["size"],
      "seq_length": manifest["default_seq_length"],
      "max_length": config["max_position_embeddings"],
      "max_pack_length": min(config["max_position_embeddings"], packing.MAX_SEQ_LENGTH),
      "counts": manifest["parameter_counts"], "source": manifest["source"],
      "versions": manifest["versions"], "encoder_check": encoder_check,
      "worst_encoder_rel": max((v["max_rel"] for v in encoder_check["outputs"].values()),
                               default=0.0),
      "has_serving": "serving" in manifest.get("signatures", {}),
      "has_preprocessor_tflite": "tflite" in (manifest["verification"].get("preprocessor")
                                              or {}),
      "archives": manifest.get("archives") or {},
      "keras3_source": keras3.keras3_source(), "citation": manifest_lib.CITATION,
      "sections": _task_sections(sections),
  }


def _task_sections(sections: Sequence[str]) -> list:
  """`sections` without surrounding whitespace; empty ones dropped."""
  result = []
  for i, section in enumerate(sections):
    if not isinstance(section, str):
      raise ValueError(f"task section {i} ({type(section).__name__}) is not a str; pass "
                       "the Markdown text that BundleTask.card_section returns")
    section = section.strip()
    if not section:
      continue
    if not section.startswith("## "):
      raise ValueError(f"task section {i} starts with {section.splitlines()[0][:60]!r}; a "
                       "task section must start with its '## ' heading")
    result.append(section)
  return result


def render(manifest: dict, sections: Sequence[str] = ()) -> str:
  """The bundle's README.md for `manifest`, with `sections` before "## Limits".

  What the bundle is, intended use, provenance (source checkpoint and the sha256 of its
  files), inputs/outputs with shapes, loading in tf_keras and Keras 3, tf.data and
  tf.distribute, serving (TF Serving REST bodies, `saved_model_cli`), the task sections,
  limits, license and the citation of Sun et al. (2020). Every fenced code block is a
  snippet of `SNIPPETS` (Keras 3: the source of `keras3.HubEncoder` first) and runs as is
  once `BUNDLE_PLACEHOLDER` is the bundle's directory.

  Args:
    manifest: the bundle's manifest.json as a dict (`manifest.build_manifest`).
    sections: Markdown sections of the bundle's tasks, each starting with its "## "
      heading; whitespace around them is dropped, empty ones skipped.

  Returns:
    The card: Markdown, one blank line around each heading, paragraph and fenced block,
    ending with a newline.

  Raises:
    KeyError, jinja2.UndefinedError: the manifest lacks a field the card shows.
    ValueError: a section is not a str or does not start with a "## " heading.
  """
  return environment().get_template(TEMPLATE).render(_context(manifest, sections))


def snippet(name: str, manifest: dict) -> str:
  """The snippet file `name` (one of `SNIPPETS`) as the card of `manifest` shows it.

  Raises:
    ValueError: `name` is not one of `SNIPPETS`.
  """
  if name not in SNIPPETS:
    raise ValueError(f"snippet {name!r} is not one of {SNIPPETS}")
  return environment().get_template(f"snippets/{name}").render(_context(manifest, ()))
