"""Writes the bundle's `keras_hub/` preset and verifies it against the bundle's SavedModels.

The preset holds exactly what keras-hub's `save_to_preset` writes: `config.json` +
`model.weights.h5` + `metadata.json` (the backbone), `tokenizer.json` +
`assets/tokenizer/vocabulary.txt`, `preprocessor.json` (the text-classifier
preprocessor, as keras-hub's BERT presets) and, when the checkpoint has the pre-training
head, `task.json` + `task.weights.h5` (the `MobileBertMaskedLM`, so `MaskedLM.from_preset`
gives the released head, not a fresh one).

Weights come from the bundle's own `checkpoint/` (the converted model the encoder was
saved from), moved by canonical name (`weights.transfer`). Before the directory counts as
written, it is reloaded through keras-hub's `from_preset` and compared on the encoder's
probe batches with the reloaded `encoder/` SavedModel (`sequence_output`,
`pooled_output`, `mlm_logits`: `verify.TOLERANCES["keras_hub"]`), and its preprocessor with
the bundle's `preprocessor/` on the hard probe sentences, single and paired (ids, segment
ids and mask identical).
"""

import json
import os
from typing import Callable

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from hub_export import verify
from hub_export.keras_hub_preset import models
from hub_export.keras_hub_preset import weights
from hub_export.keras_hub_preset.backbone import MobileBertBackbone
from hub_export.keras_hub_preset.tokenizer import MobileBertTokenizer
from preprocessors import probes
from preprocessors import vocab as vocab_lib

_BACKBONE_INPUTS = {"token_ids": "input_word_ids", "segment_ids": "input_type_ids",
                    "padding_mask": "input_mask"}


class KerasHubExportError(ValueError):
  """The preset did not match the bundle; the message names the output and figure."""


def has_mlm_head(checkpoint_prefix: str) -> bool:
  """Whether the bundle's TF2 checkpoint holds the pre-training (masked LM) head."""
  return any(name.startswith("masked_lm/")
             for name, _ in tf.train.list_variables(checkpoint_prefix))


def build_models(model, *, vocab, do_lower_case: bool, sequence_length: int):
  """The keras-hub objects holding the converted model's weights.

  Args:
    model: `checkpoints.model.MobileBertModel` (its `attention_mask` is kept).
    vocab: the bundle's `preprocessors.vocab.Vocab` (`load_vocab` of its vocab.txt).
    do_lower_case: the bundle's tokenizer casing.
    sequence_length: the preprocessors' packed length.

  Returns:
    (backbone, classifier_preprocessor, masked_lm or None).

  Raises:
    weights.WeightTransferError: the two models do not match one to one.
  """
  from checkpoints import model as model_lib  # pylint: disable=g-import-not-at-top
  backbone = MobileBertBackbone.from_bert_config(model.config,
                                                 attention_mask=model.attention_mask)
  encoder_vars, head_vars = weights.split_mlm(model_lib.target_variables(model))
  encoder_vars = {k: v for k, v in encoder_vars.items() if not k.startswith("squad/")}
  weights.transfer(encoder_vars, backbone.canonical_weights())
  tokenizer = MobileBertTokenizer(vocabulary=list(vocab.tokens), do_lower_case=do_lower_case)
  preprocessor = models.MobileBertTextClassifierPreprocessor(
      tokenizer, sequence_length=sequence_length)
  masked_lm = None
  if head_vars is not None:
    masked_lm = models.MobileBertMaskedLM(
        backbone, preprocessor=models.MobileBertMaskedLMPreprocessor(
            tokenizer, sequence_length=sequence_length))
    weights.transfer(head_vars, masked_lm.masked_lm_head.canonical_weights())
  return backbone, preprocessor, masked_lm


def write_preset(dest: str, backbone, preprocessor, masked_lm=None) -> None:
  """keras-hub's own `save_to_preset` calls; `preprocessor.json` is the classifier's."""
  if masked_lm is not None:
    masked_lm.save_to_preset(dest)
  else:
    backbone.save_to_preset(dest)
  preprocessor.save_to_preset(dest)


def _numpy(x):
  return np.asarray(keras.ops.convert_to_numpy(x))


def compare_with_encoder(preset: str, encoder_dir: str, probe_batches, *,
                         with_mlm: bool) -> dict:
  """Reloads `preset` with `from_preset` and compares it with the `encoder/` SavedModel.

  Returns:
    {output name: worst {"max_abs", "max_rel"} over the probe batches}.

  Raises:
    KerasHubExportError: an output over `verify.TOLERANCES["keras_hub"]["max_rel"]`.
  """
  loaded = tf.saved_model.load(encoder_dir)
  if with_mlm:
    task = keras_hub.models.MaskedLM.from_preset(preset)
    backbone = task.backbone
  else:
    backbone, task = keras_hub.models.Backbone.from_preset(preset), None
  worst = {}
  for batch in probe_batches:
    feed = {k: batch[src] for k, src in _BACKBONE_INPUTS.items()}
    ref_in = {k: batch[k] for k in verify.ENCODER_INPUTS}
    if with_mlm:
      ref = loaded.mlm(dict(ref_in, masked_lm_positions=batch["masked_lm_positions"]),
                       training=False)
      got = dict(backbone(feed, training=False))
      got["mlm_logits"] = task(dict(feed, mask_positions=batch["masked_lm_positions"]),
                               training=False)
    else:
      ref, got = loaded(ref_in, training=False), dict(backbone(feed, training=False))
    names = ("sequence_output", "pooled_output") + (("mlm_logits",) if with_mlm else ())
    shape = "x".join(str(d) for d in batch["input_word_ids"].shape)
    try:
      figures = verify.check_float_outputs(
          f"keras_hub/ (probe {shape})", {k: _numpy(got[k]) for k in names},
          {k: ref[k].numpy() for k in names}, bound="keras_hub")
    except ValueError as e:
      raise KerasHubExportError(str(e)) from None
    for name, fig in figures.items():
      if name not in worst or fig["max_rel"] > worst[name]["max_rel"]:
        worst[name] = fig
  return worst


def compare_with_preprocessor(preset: str, preprocessor_dir: str, sentences) -> dict:
  """The preset's classifier preprocessor vs the bundle's `preprocessor/`, ids exactly.

  Singles through `serving_default`'s function (`__call__`) and pairs (sentences with
  the reversed list) through `tokenize` + `bert_pack_inputs`, at the preset's length.

  Returns:
    {"sentences", "pairs", "identical": True, "sequence_length"}.

  Raises:
    KerasHubExportError: any differing id, segment id or mask (names the first row).
  """
  pre = keras_hub.models.TextClassifierPreprocessor.from_preset(preset)
  length = pre.sequence_length
  loaded = tf.saved_model.load(preprocessor_dir)
  text = tf.constant(list(sentences))
  cases = {"single": (pre(text), loaded.bert_pack_inputs([loaded.tokenize(text)],
                                                          seq_length=length)),
           "pair": (pre(x=(text, text[::-1])),
                    loaded.bert_pack_inputs([loaded.tokenize(text),
                                             loaded.tokenize(text[::-1])],
                                            seq_length=length))}
  for case, (got, ref) in cases.items():
    for ours, theirs in _BACKBONE_INPUTS.items():
      a = _numpy(got[ours]).astype(np.int64)
      b = ref[theirs].numpy().astype(np.int64)
      if a.shape != b.shape:
        raise KerasHubExportError(f"keras_hub/ preprocessor ({case}) {ours} has shape "
                                  f"{a.shape}; preprocessor/ gives {b.shape}")
      rows = np.nonzero((a != b).any(axis=1))[0].tolist()
      if rows:
        raise KerasHubExportError(
            f"keras_hub/ preprocessor ({case}) differs from preprocessor/ in {ours} at "
            f"rows {rows[:10]}; first: {list(sentences)[rows[0]]!r}")
  return {"sentences": len(sentences), "pairs": len(sentences), "identical": True,
          "sequence_length": length}


def export_preset(dest: str, *, work: str, model, vocab_file: str, do_lower_case: bool,
                  sequence_length: int, log: Callable[[str], None] = print) -> dict:
  """Writes `dest` (the bundle's `keras_hub/`) and verifies it; returns the manifest entry.

  Args:
    dest: the preset directory to create (inside the bundle's staging directory).
    work: the staging directory, holding the verified `encoder/` and `preprocessor/`.
    model: the converted `checkpoints.model.MobileBertModel` of `work/checkpoint/`.
    vocab_file, do_lower_case: the bundle's tokenizer.
    sequence_length: the preprocessors' packed length (the bundle's `--seq_length`).
    log: one line per step.

  Returns:
    {"files", "classes", "tasks", "figures", "tokenizer", "tolerances", "backend",
    "keras_version", "keras_hub_version", "with_mlm", "sequence_length"}.

  Raises:
    KerasHubExportError: an output or id differs from the bundle's SavedModels.
    weights.WeightTransferError: the converted model and the Keras 3 model differ.
  """
  log(f"Building the keras-hub MobileBertBackbone ({keras.config.backend()} backend) ...")
  vocab = vocab_lib.load_vocab(vocab_file)
  backbone, preprocessor, masked_lm = build_models(
      model, vocab=vocab, do_lower_case=do_lower_case, sequence_length=sequence_length)
  log("Saving keras_hub/ with keras-hub's save_to_preset ...")
  write_preset(dest, backbone, preprocessor, masked_lm)
  with_mlm = masked_lm is not None
  del backbone, preprocessor, masked_lm
  log("Verifying keras_hub/ reloaded with from_preset against encoder/ and "
      "preprocessor/ ...")
  batches = verify.probe_batch(model.config, vocab.special_ids)
  figures = compare_with_encoder(dest, os.path.join(work, "encoder"), batches,
                                 with_mlm=with_mlm)
  tokenizer = compare_with_preprocessor(dest, os.path.join(work, "preprocessor"),
                                        probes.PROBE_SENTENCES)
  with open(os.path.join(dest, "metadata.json")) as f:
    tasks = json.load(f).get("tasks", [])
  files = {os.path.relpath(os.path.join(root, n), dest): os.path.getsize(os.path.join(root, n))
           for root, _, names in os.walk(dest) for n in names}
  return {"files": dict(sorted(files.items())),
          "classes": {"backbone": "mobilebert>MobileBertBackbone",
                      "tokenizer": "mobilebert>MobileBertTokenizer",
                      "preprocessor": "mobilebert>MobileBertTextClassifierPreprocessor",
                      **({"task": "mobilebert>MobileBertMaskedLM"} if with_mlm else {})},
          "tasks": tasks, "figures": figures, "tokenizer": tokenizer,
          "tolerances": {"keras_hub": verify.TOLERANCES["keras_hub"]},
          "backend": keras.config.backend(), "keras_version": keras.__version__,
          "keras_hub_version": keras_hub.__version__, "with_mlm": with_mlm,
          "sequence_length": sequence_length}

