"""manifest.json and the model card (README.md) of a bundle.

The manifest's required content is listed in `../shared/HUB_API.md` ("manifest.json");
`build_manifest` writes every field of that list, plus the conversion summary.
"""

import datetime
import json
import platform
from typing import Optional

import tensorflow as tf

TOOL_NAME = "mobilebert-hub-export"
TOOL_VERSION = "0.1.0"
MANIFEST_VERSION = 1


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
                   serving: Optional[dict] = None, archives: Optional[dict] = None) -> dict:
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
  """
  verification = {"encoder": parity, "preprocessor": preprocessor_check}
  signatures = {"encoder": ["serving_default", "encoder", "pooled"] +
                           (["mlm"] if parameter_counts.get("mlm_head") else []),
                "preprocessor": ["serving_default", "bert_pack_pair"]}
  if serving is not None:
    verification["serving"] = serving
    signatures["serving"] = ["serving_default", "text_pair"]
  return {
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


def write_manifest(path: str, manifest: dict) -> None:
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


# Placeholder every snippet of the model card uses for the bundle's directory.
BUNDLE_PLACEHOLDER = "path/to/bundle"

_TF_KERAS_SNIPPET = """\
BUNDLE = "path/to/bundle"  # the directory of this README.md
import tensorflow as tf
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401  (registers the preprocessor's ops)
import tf_keras  # hub.KerasLayer needs tf_keras (Keras 2), not Keras 3

preprocessor = hub.KerasLayer(BUNDLE + "/preprocessor")
encoder = hub.KerasLayer(BUNDLE + "/encoder", trainable=True)
text = tf_keras.layers.Input(shape=(), dtype=tf.string)
pooled_output = encoder(preprocessor(text))["pooled_output"]  # [batch_size, __H__]
logits = tf_keras.layers.Dense(2)(pooled_output)
model = tf_keras.Model(text, logits)
model.compile(optimizer=tf_keras.optimizers.Adam(2e-5),
              loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(tf.constant(["a great movie", "a dull movie"]), tf.constant([1, 0]), epochs=1)
model.save("my_classifier")  # a SavedModel with the encoder inside: BUNDLE is not needed
reloaded = tf_keras.models.load_model("my_classifier")
print(reloaded(tf.constant(["what a film"])))
"""

_MLM_SNIPPET = """\
BUNDLE = "path/to/bundle"
import tensorflow as tf
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401

preprocessor = hub.load(BUNDLE + "/preprocessor")
encoder = hub.load(BUNDLE + "/encoder")
tokens = [preprocessor.tokenize(tf.constant(["the capital of france is paris ."])),
          preprocessor.tokenize(tf.constant(["it is a city ."]))]
inputs = preprocessor.bert_pack_inputs(tokens, seq_length=32)  # sentence pair
mask_id = preprocessor.tokenize.get_special_tokens_dict()["mask_id"]
inputs["input_word_ids"] = tf.tensor_scatter_nd_update(
    inputs["input_word_ids"], [[0, 6]], [mask_id])  # mask "paris"
outputs = encoder.mlm(dict(inputs, masked_lm_positions=tf.constant([[6]])))
print(outputs["mlm_logits"].shape)  # [1, 1, __V__]
"""

_KERAS3_USAGE = """\

import tensorflow_text  # noqa: F401  (registers the preprocessor's ops)

BUNDLE = "path/to/bundle"  # the directory of this README.md
preprocessor = tf.saved_model.load(BUNDLE + "/preprocessor")
dataset = tf.data.Dataset.from_tensor_slices(
    (["a great movie", "a dull movie"], [1, 0])).batch(2)
# Tokenize in tf.data (outside any tf.distribute scope), as TF Hub's text API advises.
dataset = dataset.map(lambda text, label: (preprocessor(text), label))

inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name)
          for name in ("input_word_ids", "input_mask", "input_type_ids")}
encoder = HubEncoder(BUNDLE + "/encoder", name="mobilebert")
logits = keras.layers.Dense(2)(encoder(inputs)["pooled_output"])
model = keras.Model(inputs, logits)
model.compile(optimizer=keras.optimizers.AdamW(2e-5),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(dataset, epochs=1)

# Raw strings inside a Keras 3 model: the preprocessor as a TFSMLayer.
text = keras.Input(shape=(), dtype="string")
embedder = keras.Model(text, encoder(keras.layers.TFSMLayer(
    BUNDLE + "/preprocessor", call_endpoint="__call__")(text))["pooled_output"])
print(embedder(tf.constant(["what a film"])).shape)  # [1, __H__]
"""

_DISTRIBUTE_SNIPPET = """\
BUNDLE = "path/to/bundle"
import tensorflow as tf
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401
import tf_keras

preprocessor = hub.load(BUNDLE + "/preprocessor")  # outside the strategy scope
dataset = tf.data.Dataset.from_tensor_slices(
    (["a great movie", "a dull movie"], [1, 0])).batch(2).map(
        lambda text, label: (preprocessor(text), label))
strategy = tf.distribute.MirroredStrategy()
with strategy.scope():
  inputs = {name: tf_keras.Input(shape=(None,), dtype=tf.int32, name=name)
            for name in ("input_word_ids", "input_mask", "input_type_ids")}
  encoder = hub.KerasLayer(BUNDLE + "/encoder", trainable=True)
  model = tf_keras.Model(inputs, tf_keras.layers.Dense(2)(encoder(inputs)["pooled_output"]))
  model.compile(optimizer=tf_keras.optimizers.Adam(2e-5),
                loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(dataset, epochs=1)
"""

_SAVED_MODEL_CLI_SNIPPET = """\
saved_model_cli show --all --dir path/to/bundle/encoder
saved_model_cli show --all --dir path/to/bundle/preprocessor
"""

_TEXT_SERVING_SNIPPET = """\
BUNDLE = "path/to/bundle"
import json
import tensorflow as tf
import tensorflow_text  # noqa: F401

# The body a client POSTs to TF Serving's REST API, v1/models/mobilebert:predict:
body = json.dumps({"signature_name": "serving_default",
                   "inputs": {"sentences": ["a great movie", "a dull movie"]}})
# What the server computes from it:
serving = tf.saved_model.load(BUNDLE + "/serving")
request = json.loads(body)
outputs = serving.signatures[request["signature_name"]](
    **{name: tf.constant(value) for name, value in request["inputs"].items()})
print(outputs["pooled_output"].shape)  # [2, __H__]
"""

_ENCODER_SERVING_SNIPPET = """\
BUNDLE = "path/to/bundle"
import json
import tensorflow as tf

# The body a client POSTs to TF Serving's REST API, v1/models/mobilebert:predict:
body = json.dumps({"signature_name": "pooled",
                   "inputs": {"input_word_ids": [[__CLS__, 7592, __SEP__, 0]],
                              "input_mask": [[1, 1, 1, 0]],
                              "input_type_ids": [[0, 0, 0, 0]]}})
# What the server computes from it (JSON numbers become the signature's int32):
encoder = tf.saved_model.load(BUNDLE + "/encoder")
request = json.loads(body)
outputs = encoder.signatures[request["signature_name"]](
    **{name: tf.constant(value, tf.int32) for name, value in request["inputs"].items()})
print(outputs["pooled_output"].shape)  # [1, __H__]
"""


def _fill(snippet: str, values: dict) -> str:
  for key, value in values.items():
    snippet = snippet.replace(f"__{key}__", str(value))
  return snippet


def model_card(manifest: dict) -> str:
  """The bundle's README.md: a model card with TF Hub Markdown metadata.

  What it is, intended use, provenance (source checkpoint and sha256 of its files),
  inputs/outputs with shapes, loading in tf_keras and Keras 3, tf.data and
  tf.distribute, serving (TF Serving REST bodies, `saved_model_cli`), limits, license
  and the citation of Sun et al. (2020). Every fenced code block is runnable as is
  after replacing `BUNDLE_PLACEHOLDER` ("path/to/bundle") with the bundle's directory
  (tests/hub_export/test_model_card.py runs them all).
  """
  from hub_export import keras3  # pylint: disable=g-import-not-at-top  (imports keras)
  c = manifest["config"]
  trained = manifest["trained"]
  publishing = manifest.get("publishing") or publishing_metadata(
      vocab_sha256=manifest["vocab"]["sha256"], trained=trained,
      do_lower_case=manifest["do_lower_case"])
  casing = "uncased (lower-cased, accents stripped)" if manifest["do_lower_case"] \
      else "cased"
  language = ", ".join(publishing["language"]) or "unknown (not a released vocab)"
  warning = "" if trained else (
      "\n> **WARNING: UNTRAINED DEMO WEIGHTS.** This bundle was exported from a seeded "
      "random checkpoint written in the layout of Google's released MobileBERT. Its "
      "outputs are meaningless; it exists to show and test the export. Export a real "
      "checkpoint with `--checkpoint_dir`.\n")
  enc = manifest["verification"]["encoder"]
  worst = max((v["max_rel"] for v in enc["outputs"].values()), default=0.0)
  src = manifest["source"]
  shas = "\n".join(f"  - `{k}`: `{v}`" for k, v in src["checkpoint_sha256"].items())
  L, H = c["num_hidden_layers"], c["hidden_size"]
  V = manifest["vocab"]["size"]
  S = manifest["default_seq_length"]
  max_len = c["max_position_embeddings"]
  mlm = manifest["parameter_counts"].get("mlm_head", 0)
  special = manifest["vocab"]["special_ids"]
  values = {"H": H, "V": V, "CLS": special.get("start_of_sequence_id"),
            "SEP": special.get("end_of_segment_id")}
  has_serving = "serving" in manifest.get("signatures", {})
  archives = manifest.get("archives") or {}
  dataset = ", ".join(publishing["dataset"]) or (
      "none: untrained demo weights" if not trained else "unknown")

  def block(lang, code):
    return f"```{lang}\n{code.rstrip()}\n```"

  parts = [f"""# MobileBERT text encoder, {casing.split()[0]} (vocab {V:,}): TF Hub bundle
{markdown_metadata(publishing)}
{warning}
MobileBERT (Sun et al., ACL 2020, "MobileBERT: a Compact Task-Agnostic BERT for
Resource-Limited Devices") converted from a checkpoint in Google's original TF1 layout
into TF2 SavedModels that follow TensorFlow Hub's Reusable SavedModel API and its
common API for text encoders, with a matching preprocessor.

## Overview
- Architecture: {L} blocks, hidden size {H}, embedding size {c['embedding_size']},
  bottleneck {c['intra_bottleneck_size']}, {c['num_attention_heads']} heads,
  {c['num_feedforward_networks']} stacked FFNs of width {c['intermediate_size']},
  normalization `{c['normalization_type']}`, activation `{c['hidden_act']}`,
  trigram input `{c['trigram_input']}`. Parameters: encoder
  {manifest['parameter_counts']['encoder']:,}; MLM head (extra) {mlm:,}.
- Language: {language}; tokenization {casing}. Pre-training data: {dataset}.
- Format: TF2 SavedModel (`saved_model_2`), fine-tunable; license field: {publishing['license']}.
- Intended use: a compact encoder to fine-tune for text classification, sentence-pair
  tasks (NLI, paraphrase) and extractive question answering, on servers or on-device.
  `pooled_output` is {'the tanh pooler' if c['classifier_activation'] else
  'the [CLS] position of sequence_output, not a trained sentence embedding'}: fine-tune
  before using it as a feature. Not for text generation.

| path | what |
|---|---|
| `encoder/` | SavedModel: token ids -> `pooled_output`, `sequence_output`, `encoder_outputs`; `encoder.mlm` |
| `preprocessor/` | SavedModel: strings -> token ids (needs `import tensorflow_text`) |
| `checkpoint/` | TF2 checkpoint + `bert_config.json` (tf-models-official `BertPretrainerV2`) |
{'| `preprocessor.tflite` | the preprocessor for the TFLite interpreter (tensorflow-text TFLite ops, no Flex); same ids |' + chr(10) if 'tflite' in (manifest['verification'].get('preprocessor') or {}) else ''}{'| `serving/` | SavedModel: strings -> `pooled_output` in one call, for TF Serving |' + chr(10) if has_serving else ''}{''.join(f'| `{a["file"]}` | `{name}/` as TF Hub compressed archive, sha256 `{a["sha256"]}` |' + chr(10) for name, a in archives.items())}| `manifest.json` | provenance, hashes, verification figures, publishing metadata |

## Provenance
- Source checkpoint: `{src['checkpoint']}` ({src['format']}), sha256:
{shas}
- Vocab: {V:,} WordPiece tokens, sha256 `{manifest['vocab']['sha256']}`.
- `do_lower_case = {manifest['do_lower_case']}`: {manifest['do_lower_case_decided_by']}.
- Verified before publishing: the SavedModels were reloaded from disk and compared with the
  converted model on a probe batch (padding, two segments, length {max_len}):
  largest relative difference {worst:.2e} (tolerance {enc['tolerance']:g}); figures per
  output in `manifest.json`.
- Written by {manifest['tool']['name']} {manifest['tool']['version']} with TensorFlow
  {manifest['versions']['tensorflow']}, tensorflow-text {manifest['versions']['tensorflow_text']},
  tf-keras {manifest['versions']['tf_keras']}.

## Inputs and outputs
- `encoder(inputs, training=False)`: `inputs` is a dict of int32 `[batch_size, seq_length]`
  tensors `input_word_ids`, `input_mask` (1 real token, 0 padding), `input_type_ids`
  (0 first segment, 1 second); 1 <= seq_length <= {max_len}.
  Returns `pooled_output` and `default` float32 `[batch_size, {H}]`,
  `sequence_output` float32 `[batch_size, seq_length, {H}]`, `encoder_outputs`: list of
  {L} float32 `[batch_size, seq_length, {H}]`, one per block.
- `encoder.mlm(inputs)`: the same plus `masked_lm_positions` int32 `[batch_size, P]`;
  adds `mlm_logits` float32 `[batch_size, P, {V}]`.
- `preprocessor(sentences)`: string `[batch_size]` -> the three encoder inputs, int32
  `[batch_size, {S}]`; `preprocessor.tokenize`, `preprocessor.bert_pack_inputs(segments,
  seq_length=...)` for pairs and other lengths.
- Serving signatures (named inputs and outputs): encoder `serving_default` and `encoder`
  (`pooled_output`, `sequence_output`, `default`, `encoder_outputs_0` ..
  `encoder_outputs_{L - 1}`), `pooled` (`pooled_output`), `mlm` (`mlm_logits`);
  preprocessor `serving_default` (`sentences`) and `bert_pack_pair` (`text_a`, `text_b`)
  -> `input_word_ids`, `input_mask`, `input_type_ids`{'; serving `serving_default` (`sentences`) and `text_pair` (`text_a`, `text_b`) -> `pooled_output`' if has_serving else ''}.

## Fine-tune with tf_keras and `hub.KerasLayer`
In every snippet, `path/to/bundle` is the directory of this README.md.
""", block("python", _fill(_TF_KERAS_SNIPPET, values)), """
The masked-LM head, e.g. for further pre-training:
""", block("python", _fill(_MLM_SNIPPET, values)), """
## Fine-tune with Keras 3 (the default `keras` of TensorFlow >= 2.16)
`hub.KerasLayer` does not work in Keras 3 models, and `keras.layers.TFSMLayer` cannot
fine-tune this encoder (its weight names end in `:0`, which Keras optimizers reject, and it
does not pass `training`). This small layer (`hub_export/keras3.py` of the exporter) can:
""", block("python", keras3.keras3_source() + _fill(_KERAS3_USAGE, values)), """
`model.save("x.keras")` stores the encoder's path, not its weights: keep the bundle, or
use `model.save_weights` / `model.export`.

## tf.data and tf.distribute
Tokenize in `tf.data` outside the strategy scope; build the encoder inside it:
""", block("python", _DISTRIBUTE_SNIPPET), """
## Serve
List every signature with its named inputs and outputs:
""", block("sh", _SAVED_MODEL_CLI_SNIPPET + (
      "saved_model_cli show --all --dir path/to/bundle/serving\n" if has_serving else "")),
      """
TF Serving needs a numbered version directory, e.g.
`mkdir -p models/mobilebert && cp -r path/to/bundle/""" +
      ("serving" if has_serving else "encoder") +
      """ models/mobilebert/1`, then
`docker run -p 8501:8501 -v "$PWD/models/mobilebert:/models/mobilebert" -e MODEL_NAME=mobilebert tensorflow/serving`
(the tokenizer ops of preprocessor/""" + (" and serving/" if has_serving else "") + """ come from
tensorflow-text: use a TF Serving build that links them, or serve `encoder/` and tokenize
on the client).
"""]
  if has_serving:
    parts += ["`serving/` takes raw text, so the server needs no client-side tokenization:\n",
              block("python", _fill(_TEXT_SERVING_SNIPPET, values)), "\n"]
  else:
    parts.append("Re-export with `--with_text_signature` for a `serving/` SavedModel that "
                 "takes raw text. ")
  parts += ["The encoder alone takes token ids:\n",
            block("python", _fill(_ENCODER_SERVING_SNIPPET, values)), f"""
## Limits
- At most {max_len} tokens per input, [CLS] and [SEP] included (longer inputs raise an
  error naming max_position_embeddings); the preprocessor truncates to seq_length ({S} by
  default, `bert_pack_inputs(..., seq_length=...)` up to {min(max_len, 512)}).
- Tokenization is {casing}; use this bundle's preprocessor, not another model's.
- Needs `import tensorflow_text` before loading `preprocessor/`{' or `serving/`' if has_serving else ''}.
- `hub.KerasLayer` needs tf_keras (`import tf_keras`, or `TF_USE_LEGACY_KERAS=1` for
  `tf.keras`); in Keras 3 use the layer above.

## License and citation
License field: `{publishing['license']}`, the license of Google's released MobileBERT
checkpoints and BERT vocabularies (google-research/google-research); check the license
of the checkpoint you exported.
""", block("bibtex", CITATION), "\n"]
  text = "".join(parts)
  if manifest.get("squad"):  # issue #6: the squad/ mobile package, before "## Limits".
    from hub_export.squad import export as squad_export  # pylint: disable=g-import-not-at-top
    text = text.replace("\n## Limits\n", squad_export.model_card_section(
        manifest["squad"]) + "\n## Limits\n", 1)
  return _blank_lines_around_blocks(text)


def _blank_lines_around_blocks(text: str) -> str:
  """One blank line before each heading and fenced block and after each block."""
  out, in_block = [], False
  for line in text.split("\n"):
    opens = line.startswith("```") and not in_block
    if (opens or (line.startswith("## ") and not in_block)) and out and out[-1] != "":
      out.append("")
    if out and not in_block and out[-1].startswith("```") and len(out) > 1 and \
        _closes_block(out) and line != "":
      out.append("")
    out.append(line)
    if line.startswith("```"):
      in_block = not in_block
  return "\n".join(out)


def _closes_block(lines: list) -> bool:
  """Whether the last line of `lines` (a fence) closes a block."""
  return sum(1 for l in lines if l.startswith("```")) % 2 == 0
