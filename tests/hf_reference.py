"""An independent numerical reference for MobileBERT: Hugging Face's PyTorch model.

`hf_reference_outputs` builds transformers' `MobileBertForPreTraining` from a
`bert_config.json` dict, fills it from an original-layout TF1 checkpoint with
transformers' OWN loader (`load_tf_weights_in_mobilebert`), and runs it in float32, eval
mode, under `torch.no_grad()`. Nothing here imports this project's `checkpoints` package:
the reference shares no code with the converter it checks.

The truth is google-research `mobilebert/modeling.py` as released with the checkpoints
(google-research/google-research commit c3de5da58b30, before the later quantization-aware
revision) and `run_pretraining.py`. Where HF departs from it, the reference is corrected
toward the original, never the other way. Each correction, its evidence in the original,
and what switching it off does to the parity test (measured, RTOL is 1e-5):

(a) Activation. `get_activation("gelu")` returns the original's `gelu`,
    `x * 0.5 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))`; HF's `ACT2FN["gelu"]` is
    the exact erf form. `hidden_act: gelu` is mapped to HF's `gelu_new` (the tanh form);
    relu, relu6, tanh and linear (`None` in the original) are the same functions in both.
    With HF's erf form the gelu variants are off by rel 1e-5..2.5e-4.
(b) LayerNorm epsilon. The original's `layer_norm(..., "layer_norm")` is
    `contrib_layers.layer_norm` (variance epsilon 1e-12), for every encoder norm when
    `normalization_type: layer_norm` and for `cls/predictions/transform/LayerNorm`. HF
    passes `config.layer_norm_eps` to some `nn.LayerNorm`s but builds
    `MobileBertEmbeddings.LayerNorm` and `MobileBertOutput.LayerNorm` with torch's default
    1e-5. Every `nn.LayerNorm` gets eps=1e-12 after construction. Without it the
    layer_norm variants are off by rel 8.5e-5..1.8e-4 (no_norm ones are unaffected: their
    only LayerNorm, the MLM head's, already gets 1e-12 from HF's config).
(c) Query/key width. In `transformer_model`, with `use_bottleneck` and neither
    `use_bottleneck_attention` nor `key_query_shared_bottleneck`,
    `query_tensor = key_tensor = value_tensor = prev_output` [B, S, hidden_size], so
    `attention/self/{query,key}/kernel` are [hidden_size, intra_bottleneck_size]. HF
    sizes query/key as `nn.Linear(true_hidden_size=intra_bottleneck_size, ...)`; its
    loader then fails ("Pointer shape torch.Size([32, 32]) and array shape (32, 64)
    mismatched"). HF's `Bottleneck.forward` does return the hidden-size `hidden_states`
    for query, key and value in that case, so only the two Linear layers are replaced with
    correctly sized ones before loading; no forward patch is needed (a wrong feed would
    fail with a shape error, since hidden_size != intra_bottleneck_size).
(d) Attention-mask adder. `attention_layer` adds `-10000.0 + mask * 10000.0` to the
    scores; HF adds `(1 - mask) * finfo(float32).min`. The instance's
    `get_extended_attention_mask` is replaced (on that model object only, not the class)
    by the original's adder. Measured: no change on rows with at least one visible token
    (exp(-1e4) is 0 in float32); rows with no visible token differ by rel 0.3..0.6
    between -10000, HF's finfo.min and Model Garden's -1e9 (keras Softmax), which is why
    the parity test keeps every row at least one token long.
(e) Original masking (`attention_mask="original"`). The revision of `attention_layer`
    that added quantization-aware training (google-research commit 0c1bbe5fc971)
    masks padded keys as `scores * mask + (1 - mask) * -6` before the softmax ("we
    basically hard-code the to-be-masked-out part have -6"), in every mode, not only
    under QAT; neither HF nor Model Garden implements it. With
    `attention_mask="original"` the reference computes exactly that without touching
    HF's forward: a forward hook on each block's `attention.self.key` Linear zeroes the
    projected keys of padded positions (so their raw scores q.k/sqrt(d) are exactly 0,
    which is `scores * mask`), and the extended mask adds `(1 - mask) * -6`. With
    `attention_mask="model_garden"` correction (d) applies instead (zero weight on
    padded keys, as Model Garden's encoder).

Other departures checked in HF's code, and what is done:
- `key_query_shared_bottleneck` together with `use_bottleneck_attention`: the original
  (and Model Garden) use the bottleneck output and create no `bottleneck/attention`;
  HF would still create an unused `bottleneck.attention` that no checkpoint fills, so
  HF is built with `key_query_shared_bottleneck = kq and not use_bottleneck_attention`
  (the same forward).
- `trigram_input: false`, `embedding_size != hidden_size`: HF applies
  `embedding_transformation` [E -> H] to the embedding alone, as the original; loaded.
- `trigram_input: false`, `embedding_size == hidden_size`: the original has no
  `embedding_transformation` and neither does HF's forward (it skips the Linear under
  the same condition). That Linear is never filled by a checkpoint; it is set
  deliberately to the exact identity (weight I, bias 0), the only parameters set by
  hand, and listed in `deliberately_set`.
- `classifier_activation: false`: the original's pooled output is the [CLS] vector and it
  never reads `bert/pooler/dense/*`; HF builds no pooler dense. HF's loader crashes on
  such a variable (it finds no `pooler.dense`, skips that scope and then fails with
  "'MobileBertPooler' object has no attribute 'shape'"), so it is left out of what the
  loader sees, with the reason recorded.
- Variables the original's inference graph does not read are left out the same way:
  `global_step`, `*/adam_m`, `*/adam_v`, `cls/seq_relationship/*` (NSP head, and HF's
  `seq_relationship` module is removed), `cls/squad/*` (HF's loader maps `squad` to a
  `classifier` attribute and fails: "'MobileBertPreTrainingHeads' object has no
  attribute 'classifier'"). Any other name goes to
  HF's loader, and any variable HF's loader skips is an error.

Completeness of the load: every parameter is filled with NaN before loading; afterwards
no parameter may hold a NaN, every variable handed to the loader must have been used
(no "Skipping" in its log), and the number of float elements handed to the loader must
equal the number of parameter elements (shared parameters counted once) minus the
deliberately set ones, so each parameter was filled exactly once.
"""

import logging
import os
import re
import tempfile
from typing import Optional

import numpy as np
import tensorflow as tf
import torch
import transformers
from torch import nn
from transformers.models.mobilebert import modeling_mobilebert

# Defaults of the original `BertConfig.__init__` (google-research mobilebert/modeling.py);
# `embedding_size` and `intra_bottleneck_size` default to `hidden_size` there.
_ORIGINAL_DEFAULTS = {
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 16,
    "initializer_range": 0.02,
    "trigram_input": False,
    "use_bottleneck": False,
    "use_bottleneck_attention": False,
    "key_query_shared_bottleneck": False,
    "num_feedforward_networks": 1,
    "normalization_type": "layer_norm",
    "classifier_activation": True,
}
# The original's LayerNorm epsilon (tf.contrib.layers.layer_norm default).
ORIGINAL_LAYER_NORM_EPS = 1e-12
# The original's attention-mask adder (modeling.py `attention_layer`).
ORIGINAL_MASK_ADDER = -10000.0
# Correction (e): the masked-key score of modeling.py's quantization-friendly masking.
ORIGINAL_MASKED_SCORE = -6.0
ATTENTION_MASKS = ("original", "model_garden")
# original hidden_act -> HF ACT2FN key (correction (a)).
_HF_ACTIVATION = {"gelu": "gelu_new", "relu": "relu", "relu6": "relu6", "tanh": "tanh",
                  "linear": "linear"}
# Leaf names of model weights in the original layout.
_WEIGHT_LEAVES = ("kernel", "bias", "gamma", "beta", "word_embeddings",
                  "token_type_embeddings", "position_embeddings", "output_bias",
                  "extra_output_weights")


def resolve_original_config(bert_config: dict) -> dict:
  """`bert_config` with the original `BertConfig` defaults filled in.

  Raises:
    ValueError: `hidden_act` or `normalization_type` the reference does not support, or
      `use_bottleneck: false` (not a MobileBERT the checked converter accepts).
  """
  cfg = dict(_ORIGINAL_DEFAULTS)
  cfg.update(bert_config)
  cfg.setdefault("embedding_size", cfg["hidden_size"])
  cfg.setdefault("intra_bottleneck_size", cfg["hidden_size"])
  act = cfg["hidden_act"].lower()
  if act not in _HF_ACTIVATION:
    raise ValueError(f"hidden_act={cfg['hidden_act']!r}; the reference supports "
                     f"{sorted(_HF_ACTIVATION)}")
  if cfg["normalization_type"] not in ("no_norm", "layer_norm"):
    raise ValueError(f"normalization_type={cfg['normalization_type']!r}; the reference "
                     "supports 'no_norm' and 'layer_norm'")
  if not cfg["use_bottleneck"]:
    raise ValueError("use_bottleneck=false is not a MobileBERT config the reference checks")
  cfg["hidden_act"] = act
  return cfg


def _ignore_reason(name: str, cfg: dict) -> Optional[str]:
  """Why the original's inference graph does not read `name`, or None if it does."""
  if name == "global_step":
    return "training step counter"
  if re.fullmatch(r".+/(adam_m|adam_v)", name):
    return "AdamWeightDecay optimizer slot"
  if name.startswith("cls/seq_relationship/"):
    return "next-sentence head (not compared)"
  if name.startswith("cls/squad/"):
    return "run_squad.py head (not compared)"
  if name.startswith("bert/pooler/") and not cfg["classifier_activation"]:
    return "classifier_activation=false: the original never reads the pooler"
  return None


def _hf_config(cfg: dict) -> transformers.MobileBertConfig:
  return transformers.MobileBertConfig(
      vocab_size=cfg["vocab_size"],
      embedding_size=cfg["embedding_size"],
      hidden_size=cfg["hidden_size"],
      num_hidden_layers=cfg["num_hidden_layers"],
      num_attention_heads=cfg["num_attention_heads"],
      intermediate_size=cfg["intermediate_size"],
      hidden_act=_HF_ACTIVATION[cfg["hidden_act"]],  # (a)
      hidden_dropout_prob=cfg["hidden_dropout_prob"],
      attention_probs_dropout_prob=cfg["attention_probs_dropout_prob"],
      max_position_embeddings=cfg["max_position_embeddings"],
      type_vocab_size=cfg["type_vocab_size"],
      initializer_range=cfg["initializer_range"],
      layer_norm_eps=ORIGINAL_LAYER_NORM_EPS,
      pad_token_id=0,
      trigram_input=cfg["trigram_input"],
      use_bottleneck=cfg["use_bottleneck"],
      intra_bottleneck_size=cfg["intra_bottleneck_size"],
      use_bottleneck_attention=cfg["use_bottleneck_attention"],
      key_query_shared_bottleneck=(cfg["key_query_shared_bottleneck"]
                                   and not cfg["use_bottleneck_attention"]),
      num_feedforward_networks=cfg["num_feedforward_networks"],
      normalization_type=cfg["normalization_type"],
      classifier_activation=cfg["classifier_activation"],
  )


def _set_layer_norm_eps(model: nn.Module) -> int:
  """Correction (b): eps=1e-12 on every nn.LayerNorm; returns how many were not."""
  changed = 0
  for module in model.modules():
    if isinstance(module, nn.LayerNorm):
      if module.eps != ORIGINAL_LAYER_NORM_EPS:
        changed += 1
      module.eps = ORIGINAL_LAYER_NORM_EPS
  return changed


def _widen_query_key(model, cfg: dict) -> int:
  """Correction (c): query/key read hidden_size inputs; returns layers changed."""
  if cfg["use_bottleneck_attention"] or cfg["key_query_shared_bottleneck"]:
    return 0
  for layer in model.mobilebert.encoder.layer:
    attn = layer.attention.self
    attn.query = nn.Linear(cfg["hidden_size"], attn.all_head_size)
    attn.key = nn.Linear(cfg["hidden_size"], attn.all_head_size)
  return len(model.mobilebert.encoder.layer)


def _original_mask_adder(attention_mask, input_shape, *args, **kwargs):
  """Correction (d): [B, S] 0/1 -> [B, 1, 1, S] adder, -10000 on invisible keys."""
  del input_shape, args, kwargs
  mask = attention_mask[:, None, None, :].to(torch.float32)
  return (1.0 - mask) * ORIGINAL_MASK_ADDER


class _OriginalMasking:
  """Correction (e) on one HF model: padded keys scored exactly -6 before the softmax."""

  def __init__(self, model):
    self._mask = None
    model.mobilebert.get_extended_attention_mask = self._extended_mask
    for layer in model.mobilebert.encoder.layer:
      layer.attention.self.key.register_forward_hook(self._zero_padded_keys)

  def _extended_mask(self, attention_mask, input_shape, *args, **kwargs):
    del input_shape, args, kwargs
    self._mask = attention_mask.to(torch.float32)
    return (1.0 - self._mask[:, None, None, :]) * ORIGINAL_MASKED_SCORE

  def _zero_padded_keys(self, module, inputs, output):
    del module, inputs
    return output * self._mask[:, :, None]


class _LoaderLog(logging.Handler):
  """Collects the messages of HF's TF loader (it reports skipped names at INFO)."""

  def __init__(self):
    super().__init__(level=logging.INFO)
    self.messages = []

  def emit(self, record):
    self.messages.append(record.getMessage())


def load_hf_reference_model(checkpoint_prefix: str, bert_config: dict, *,
                            attention_mask: str = "model_garden"):
  """Builds the corrected HF model and fills it from the TF1 checkpoint.

  Args:
    checkpoint_prefix: name-based TF1 checkpoint prefix in the original layout.
    bert_config: the `bert_config.json` dict of that checkpoint.
    attention_mask: "original" (correction (e)) or "model_garden" (correction (d)).

  Returns:
    (model, info): the `MobileBertForPreTraining` in eval mode (`model.cls` is None when
    the checkpoint has no `cls/predictions/*`) and a dict with `ignored` (name, reason)
    pairs, `deliberately_set` parameter names, `layer_norms_changed` and
    `query_key_widened` counts.

  Raises:
    AssertionError: HF's loader skipped a variable, left a parameter unfilled (NaN) or
      filled a different number of elements than the checkpoint provides.
  """
  cfg = resolve_original_config(bert_config)
  reader = tf.train.load_checkpoint(checkpoint_prefix)
  shapes = reader.get_variable_to_shape_map()
  used, ignored = {}, []
  for name in sorted(shapes):
    reason = _ignore_reason(name, cfg)
    if reason is not None:
      ignored.append((name, reason))
      continue
    if name.rsplit("/", 1)[-1] not in _WEIGHT_LEAVES:
      raise AssertionError(f"checkpoint variable {name} {shapes[name]} is neither a model "
                           "weight of the original layout nor known training state")
    used[name] = reader.get_tensor(name).astype(np.float32)
  has_mlm = any(n.startswith("cls/predictions/") for n in used)

  torch.manual_seed(0)  # Irrelevant (every parameter is overwritten); for repeatability.
  model = modeling_mobilebert.MobileBertForPreTraining(_hf_config(cfg))
  model.cls.seq_relationship = None
  if not has_mlm:
    model.cls = None
  layer_norms_changed = _set_layer_norm_eps(model)
  query_key_widened = _widen_query_key(model, cfg)
  if attention_mask == "original":
    _OriginalMasking(model)  # (e), this instance
  elif attention_mask == "model_garden":
    model.mobilebert.get_extended_attention_mask = _original_mask_adder  # (d), this instance
  else:
    raise ValueError(f"attention_mask={attention_mask!r}; choose one of {ATTENTION_MASKS}")
  model.float()

  deliberately_set = []
  with torch.no_grad():
    for p in model.parameters():
      p.fill_(float("nan"))
    if not cfg["trigram_input"] and cfg["embedding_size"] == cfg["hidden_size"]:
      proj = model.mobilebert.embeddings.embedding_transformation
      proj.weight.copy_(torch.eye(cfg["hidden_size"]))
      proj.bias.zero_()
      deliberately_set = ["mobilebert.embeddings.embedding_transformation.weight",
                          "mobilebert.embeddings.embedding_transformation.bias"]

  log = _LoaderLog()
  hf_logger = logging.getLogger(modeling_mobilebert.__name__)
  old_level = hf_logger.level
  with tempfile.TemporaryDirectory() as tmp:
    prefix = os.path.join(tmp, "used.ckpt")
    names = sorted(used)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names,
                      shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(used[n]) for n in names])
    old_propagate = hf_logger.propagate
    hf_logger.addHandler(log)
    hf_logger.setLevel(logging.INFO)
    hf_logger.propagate = False  # Keep its per-variable INFO lines off the console.
    try:
      modeling_mobilebert.load_tf_weights_in_mobilebert(model, model.config, prefix)
    finally:
      hf_logger.removeHandler(log)
      hf_logger.setLevel(old_level)
      hf_logger.propagate = old_propagate
  skipped = [m for m in log.messages if m.startswith("Skipping")]
  if skipped:
    raise AssertionError(f"HF's loader skipped {len(skipped)} variable(s): {skipped[:10]}")

  params = dict(model.named_parameters())  # Shared (tied) parameters appear once.
  unfilled = [n for n, p in params.items() if torch.isnan(p).any()]
  if unfilled:
    raise AssertionError(f"{len(unfilled)} HF parameter(s) not filled from the "
                         f"checkpoint: {unfilled[:20]}")
  n_ckpt = sum(v.size for v in used.values())
  n_params = sum(p.numel() for n, p in params.items() if n not in deliberately_set)
  if n_ckpt != n_params:
    raise AssertionError(f"checkpoint provides {n_ckpt} elements but HF has {n_params} "
                         "loaded parameter elements: some parameter was filled twice")
  if has_mlm and (model.cls.predictions.decoder.weight
                  is not model.mobilebert.embeddings.word_embeddings.weight):
    raise AssertionError("HF's MLM decoder is not tied to the word embeddings")
  model.eval()
  info = dict(ignored=ignored, deliberately_set=deliberately_set,
              layer_norms_changed=layer_norms_changed,
              query_key_widened=query_key_widened)
  return model, info


def hf_reference_outputs(checkpoint_prefix: str, bert_config: dict, input_word_ids,
                         input_mask, input_type_ids, masked_lm_positions=None, *,
                         attention_mask: str = "model_garden") -> dict:
  """Runs the corrected HF reference on one batch.

  Args:
    checkpoint_prefix: name-based TF1 checkpoint prefix in the original layout.
    bert_config: the `bert_config.json` dict of that checkpoint.
    input_word_ids: int32 [batch_size, seq_length] token ids.
    input_mask: int32 [batch_size, seq_length], 1 for real tokens, 0 for padding.
    input_type_ids: int32 [batch_size, seq_length] segment ids.
    masked_lm_positions: optional int32 [batch_size, num_predictions] indices into
      seq_length.
    attention_mask: the masking of padded keys, "original" or "model_garden".

  Returns:
    numpy float32 arrays: `sequence_output` [B, S, H], `pooled_output` [B, H],
    `embedding_output` [B, S, H], `encoder_outputs` (list of num_hidden_layers block
    outputs [B, S, H], embedding output excluded), and `mlm_logits` [B, P, vocab_size]
    when positions are given and the checkpoint has `cls/predictions/*`.

  Raises:
    AssertionError: see `load_hf_reference_model`.
  """
  model, _ = load_hf_reference_model(checkpoint_prefix, bert_config,
                                     attention_mask=attention_mask)
  ids = torch.from_numpy(np.asarray(input_word_ids, np.int64))
  mask = torch.from_numpy(np.asarray(input_mask, np.int64))
  types = torch.from_numpy(np.asarray(input_type_ids, np.int64))
  with torch.no_grad():
    out = model.mobilebert(input_ids=ids, attention_mask=mask, token_type_ids=types,
                           output_hidden_states=True, return_dict=True)
    result = {
        "sequence_output": out.last_hidden_state.numpy().astype(np.float32),
        "pooled_output": out.pooler_output.numpy().astype(np.float32),
        "embedding_output": out.hidden_states[0].numpy().astype(np.float32),
        "encoder_outputs": [h.numpy().astype(np.float32) for h in out.hidden_states[1:]],
    }
    if masked_lm_positions is not None and model.cls is not None:
      pos = torch.from_numpy(np.asarray(masked_lm_positions, np.int64))
      gathered = torch.gather(
          out.last_hidden_state, 1,
          pos[:, :, None].expand(-1, -1, out.last_hidden_state.shape[-1]))
      result["mlm_logits"] = model.cls.predictions(gathered).numpy().astype(np.float32)
  return result
