"""manifest.json and the model card (README.md) of a bundle.

The manifest's required content is listed in `../shared/HUB_API.md` ("manifest.json");
`build_manifest` writes every field of that list, plus the conversion summary.
"""

import datetime
import json
import platform

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
                   trained: bool, conversion: dict, preprocessor_check: dict) -> dict:
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
  """
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
      "verification": {"encoder": parity, "preprocessor": preprocessor_check},
      "conversion": conversion,
      "versions": library_versions(),
      "signatures": {"encoder": ["serving_default", "encoder", "pooled"] +
                                (["mlm"] if parameter_counts.get("mlm_head") else []),
                     "preprocessor": ["serving_default", "bert_pack_pair"]},
  }


def write_manifest(path: str, manifest: dict) -> None:
  with open(path, "w") as f:
    json.dump(manifest, f, indent=2, sort_keys=False)
    f.write("\n")


def model_card(manifest: dict) -> str:
  """The bundle's README.md: what it is, provenance, how to load, I/O, limits."""
  c = manifest["config"]
  trained = manifest["trained"]
  casing = "uncased (lower-cased, accents stripped)" if manifest["do_lower_case"] \
      else "cased"
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
  mlm = manifest["parameter_counts"].get("mlm_head", 0)
  return f"""# MobileBERT TF-Hub bundle ({casing}, vocab {manifest['vocab']['size']:,})
{warning}
MobileBERT (Sun et al., 2020, "MobileBERT: a Compact Task-Agnostic BERT for
Resource-Limited Devices") converted from an original TF1 checkpoint into TF2 SavedModels
that follow TensorFlow Hub's Reusable SavedModel API and its common API for text encoders.
Architecture: {L} blocks, hidden size {H}, embedding size {c['embedding_size']},
bottleneck {c['intra_bottleneck_size']}, {c['num_attention_heads']} heads,
{c['num_feedforward_networks']} stacked FFNs of width {c['intermediate_size']},
normalization `{c['normalization_type']}`, activation `{c['hidden_act']}`,
trigram input `{c['trigram_input']}`. Encoder parameters:
{manifest['parameter_counts']['encoder']:,}; MLM head (extra): {mlm:,}.

## Provenance
- Source checkpoint: `{src['checkpoint']}` ({src['format']}), sha256:
{shas}
- Vocab: {manifest['vocab']['size']:,} WordPiece tokens, sha256 `{manifest['vocab']['sha256']}`.
- `do_lower_case = {manifest['do_lower_case']}`: {manifest['do_lower_case_decided_by']}.
- Verified before publishing: the SavedModels were reloaded from disk and compared with the
  converted model on a probe batch (padding, two segments, length
  {c['max_position_embeddings']}): largest relative difference {worst:.2e} (tolerance
  {enc['tolerance']:g}); figures per output in `manifest.json`.
- Written by {manifest['tool']['name']} {manifest['tool']['version']} with TensorFlow
  {manifest['versions']['tensorflow']}, tensorflow-text {manifest['versions']['tensorflow_text']},
  tf-keras {manifest['versions']['tf_keras']}.

## Use (tf_keras + tensorflow_hub)
```python
import tensorflow as tf, tensorflow_hub as hub, tensorflow_text, tf_keras  # tf_keras, not Keras 3
preprocessor = hub.KerasLayer("BUNDLE/preprocessor")
encoder = hub.KerasLayer("BUNDLE/encoder", trainable=True)
text = tf_keras.layers.Input(shape=(), dtype=tf.string)
pooled_output = encoder(preprocessor(text))["pooled_output"]  # [batch_size, {H}]
model = tf_keras.Model(text, pooled_output)
```
Sentence pairs: `pre = hub.load("BUNDLE/preprocessor")`, then
`pre.bert_pack_inputs([pre.tokenize(a), pre.tokenize(b)], seq_length=128)`.
MLM: `hub.load("BUNDLE/encoder").mlm(dict(inputs, masked_lm_positions=positions))`.

## Inputs and outputs
- `encoder(inputs, training=False)`: `inputs` is a dict of int32 `[batch_size, seq_length]`
  tensors `input_word_ids`, `input_mask` (1 real token, 0 padding), `input_type_ids`
  (0 first segment, 1 second); 1 <= seq_length <= {c['max_position_embeddings']}.
  Returns `pooled_output` and `default` float32 `[batch_size, {H}]`
  ({'tanh pooler' if c['classifier_activation'] else 'the [CLS] position of sequence_output'}),
  `sequence_output` float32 `[batch_size, seq_length, {H}]`, `encoder_outputs`: list of
  {L} float32 `[batch_size, seq_length, {H}]`, one per block.
- `encoder.mlm(inputs)`: the same plus `masked_lm_positions` int32 `[batch_size, P]`;
  adds `mlm_logits` float32 `[batch_size, P, {manifest['vocab']['size']}]`.
- Serving signatures (`saved_model_cli show --all --dir BUNDLE/encoder`):
  `serving_default`/`encoder` (`pooled_output`, `sequence_output`, `default`,
  `encoder_outputs_0`..`encoder_outputs_{L - 1}`), `pooled`, `mlm`.
- `preprocessor(sentences)`: string `[batch_size]` -> the three encoder inputs, int32
  `[batch_size, {manifest['default_seq_length']}]`; signatures `serving_default`
  (`sentences`) and `bert_pack_pair` (`text_a`, `text_b`).

## Limits
- At most {c['max_position_embeddings']} tokens per input, [CLS] and [SEP] included;
  the preprocessor truncates to its seq_length.
- Tokenization is {casing}; use the preprocessor of this bundle, not another model's.
- Needs `import tensorflow_text` before loading the preprocessor.

## License and citation
Google's MobileBERT checkpoints and BERT vocabularies are released under Apache-2.0;
check the license of the checkpoint you exported.
```
@inproceedings{{sun2020mobilebert,
  title={{MobileBERT: a Compact Task-Agnostic BERT for Resource-Limited Devices}},
  author={{Sun, Zhiqing and Yu, Hongkun and Song, Xiaodan and Liu, Renjie and Yang, Yiming and Zhou, Denny}},
  booktitle={{ACL}},
  year={{2020}}
}}
```
"""
