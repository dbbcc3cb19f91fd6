"""manifest.json of a bundle, and the publishing metadata TF Hub and Kaggle pages show.

The manifest's required content is listed in `../shared/HUB_API.md` ("manifest.json");
`build_manifest` writes every field of that list, plus the conversion summary and one entry
per task directory (e.g. "squad"). The model card (README.md) is `hub_export.model_card`,
rendered from this manifest.
"""

import datetime
import json
import platform
from typing import Optional

import tensorflow as tf

from checkpoints import model as model_lib
from hub_export import bundle_check

# The manifest's identity; `bundle_check.check_bundle` recognises a bundle by them.
TOOL_NAME = bundle_check.TOOL_NAME
TOOL_VERSION = "0.1.0"
MANIFEST_VERSION = bundle_check.MANIFEST_VERSION


def library_versions() -> dict:
  """Versions of the libraries that wrote (and must read) the bundle."""
  import tensorflow_text  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  return {"tensorflow": tf.__version__, "tensorflow_text": tensorflow_text.__version__,
          "tf_keras": tf_keras.__version__,
          "tf_models_official": metadata.version("tf-models-official"),
          "python": platform.python_version()}


def build_manifest(*, source: dict, config, do_lower_case: bool, casing_reason: str,
                   vocab, parameter_counts: dict, seq_length: int, parity: dict,
                   trained: bool, conversion: dict, preprocessor_check: dict,
                   serving: Optional[dict] = None, archives: Optional[dict] = None,
                   tasks: Optional[dict] = None,
                   attention_mask: Optional[str] = None) -> dict:
  """The manifest dict (JSON-ready).

  Args:
    source: {"checkpoint": prefix, "checkpoint_sha256": {file: sha}, "bert_config_file",
      "vocab_file", "format": "tf1"|"tf2", "demo": variant or None}.
    config: `MobileBertConfig`.
    do_lower_case, casing_reason: the casing and how it was decided.
    vocab: `preprocessors.vocab.Vocab`.
    parameter_counts: {"encoder": int, "mlm_head": int or 0}.
    seq_length: the preprocessor's default seq_length.
    parity: per-output figures from `verify.compare_encoder_outputs` and the tolerance.
    trained: False for the seeded demo.
    conversion: counts and lists from the `ConversionReport`.
    preprocessor_check: token-parity figures of the reloaded preprocessor.
    serving: figures of `serving.verify_text_serving`, if the bundle has serving/.
    archives: {SavedModel name: `archive.write_archive` result}, if archives were written.
    tasks: {task name: the JSON-ready summary its `tasks.BundleTask.export` returned}; each
      summary becomes the manifest's entry of that name (e.g. manifest["squad"]).
    attention_mask: the encoder's masking of padded keys
      (`checkpoints.model.ATTENTION_MASKS`), recorded with its meaning as
      manifest["attention_mask"] = {"mode", "padded_inputs"}.

  Raises:
    ValueError: a task name is not a str or is already a key of the manifest; an
      unknown `attention_mask`.
  """
  verification = {"encoder": parity, "preprocessor": preprocessor_check}
  signatures = {"encoder": ["serving_default", "encoder", "pooled"] +
                           (["mlm"] if parameter_counts.get("mlm_head") else []),
                "preprocessor": ["serving_default", "bert_pack_pair"]}
  if serving is not None:
    verification["serving"] = serving
    signatures["serving"] = ["serving_default", "text_pair"]
  manifest = {
      "manifest_version": MANIFEST_VERSION,
      "tool": {"name": TOOL_NAME, "version": TOOL_VERSION},
      "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec="seconds"),
      "weights": "trained (source checkpoint)" if trained else
                 "UNTRAINED: seeded random demo weights, NOT a usable model",
      "trained": trained,
      "source": source,
      "config": config.to_dict(),
      "config_defaults_applied": list(config.defaults_applied),
      "do_lower_case": do_lower_case,
      "do_lower_case_decided_by": casing_reason,
      "vocab": {"size": vocab.size, "sha256": vocab.sha256,
                "special_ids": dict(vocab.special_ids)},
      "parameter_counts": parameter_counts,
      "default_seq_length": seq_length,
      "verification": verification,
      "conversion": conversion,
      "versions": library_versions(),
      "signatures": signatures,
      "archives": archives or {},
      "publishing": publishing_metadata(vocab_sha256=vocab.sha256, trained=trained,
                                        do_lower_case=do_lower_case),
  }
  if attention_mask is not None:
    if attention_mask not in model_lib.ATTENTION_MASK_MEANINGS:
      raise ValueError(f"attention_mask={attention_mask!r}; choose one of "
                       f"{list(model_lib.ATTENTION_MASKS)}")
    manifest["attention_mask"] = {
        "mode": attention_mask,
        "padded_inputs": model_lib.ATTENTION_MASK_MEANINGS[attention_mask]}
  for name, summary in (tasks or {}).items():
    if not isinstance(name, str):
      raise ValueError(f"task name {name!r} ({type(name).__name__}) is not a str; "
                       "manifest.json keys are the tasks' directory names, such as 'squad'")
    if name in manifest:
      raise ValueError(f"task name {name!r} is already a manifest.json field (fields: "
                       f"{sorted(manifest)}); give the task another directory name")
    manifest[name] = summary
  return manifest


def write_manifest(path: str, manifest: dict) -> None:
  """Writes `manifest` to `path` as JSON (2-space indent, key order kept, final newline)."""
  with open(path, "w") as f:
    json.dump(manifest, f, indent=2, sort_keys=False)
    f.write("\n")


# Vocabularies of Google's released MobileBERT checkpoints (sha256 of vocab.txt; the
# canonical BERT files, see ../shared/data/README.md), and what the TF Hub pages of those
# releases declare (tensorflow/mobilebert_{en_uncased,multi_cased}_L-24_H-128_B-512_A-4_F-4_OPT:
# dataset, language, task, network-architecture).
KNOWN_VOCABS = {
    "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3": {
        "name": "BERT uncased English (uncased_L-24_H-128_B-512_A-4_F-4_OPT)",
        "language": ["en"], "dataset": ["wikipedia-and-bookscorpus"]},
    "fe0fda7c425b48c516fc8f160d594c8022a0808447475c1a7c6d6479763f310c": {
        "name": "BERT multilingual cased (multi_cased_L-24_H-128_B-512_A-4_F-4_OPT)",
        "language": ["multilingual"], "dataset": ["multilingual-wikipedia"]},
}
LICENSE = "apache-2.0"
# Sun et al. (2020), ACL Anthology 2020.acl-main.195; the model card cites it.
CITATION = """@inproceedings{sun2020mobilebert,
  title={MobileBERT: a Compact Task-Agnostic BERT for Resource-Limited Devices},
  author={Sun, Zhiqing and Yu, Hongkun and Song, Xiaodan and Liu, Renjie and Yang, Yiming and Zhou, Denny},
  booktitle={Proceedings of the 58th Annual Meeting of the Association for Computational Linguistics (ACL)},
  pages={2158--2170},
  year={2020}
}"""


def publishing_metadata(*, vocab_sha256: str, trained: bool, do_lower_case: bool) -> dict:
  """The metadata TF Hub / Kaggle Models pages show, as manifest.json["publishing"].

  Keys follow tfhub.dev's model Markdown tags (`<!-- key: value -->`, validated by
  tensorflow/tfhub.dev `tools/validator.py`: format, fine-tunable, task (formerly
  module-type), network-architecture, language, dataset, license) and Kaggle's
  `model-instance-metadata.json` (framework, fineTunable, trainingData, licenseName).
  Language and dataset are those Google declared for the released checkpoint with the
  same vocab (`KNOWN_VOCABS`); unknown vocab -> empty lists; untrained demo weights ->
  no dataset. `decided_by` says which.
  """
  known = KNOWN_VOCABS.get(vocab_sha256)
  language = list(known["language"]) if known else []
  dataset = list(known["dataset"]) if known and trained else []
  if not known:
    decided_by = "vocab not one of Google's released MobileBERT vocabs: language/dataset unknown"
  elif not trained:
    decided_by = (f"vocab is {known['name']}: language as released; untrained demo weights, "
                  "so no training dataset")
  else:
    decided_by = (f"vocab is {known['name']}: language and dataset as Google declared for "
                  "that release (check them if you exported another checkpoint)")
  return {"format": "saved_model_2", "fine_tunable": True, "task": "text-embedding",
          "module_type": "text-embedding", "network_architecture": "transformer",
          "model_family": "MobileBERT", "language": language, "dataset": dataset,
          "casing": "uncased" if do_lower_case else "cased", "license": LICENSE,
          "decided_by": decided_by,
          "kaggle": {"framework": "tensorFlow2", "fineTunable": True,
                     "trainingData": dataset, "licenseName": "Apache 2.0"}}


def markdown_metadata(publishing: dict) -> str:
  """TF Hub Markdown metadata lines (`<!-- key: value -->`), one per value."""
  lines = [f"<!-- format: {publishing['format']} -->",
           f"<!-- fine-tunable: {str(publishing['fine_tunable']).lower()} -->",
           f"<!-- task: {publishing['task']} -->",
           f"<!-- network-architecture: {publishing['network_architecture']} -->"]
  lines += [f"<!-- language: {v} -->" for v in publishing["language"]]
  lines += [f"<!-- dataset: {v} -->" for v in publishing["dataset"]]
  lines.append(f"<!-- license: {publishing['license']} -->")
  return "\n".join(lines)
