"""The declarative, exhaustive map from original TF1 MobileBERT names to our targets.

Source names are those written by google-research `mobilebert/modeling.py` (the encoder,
scope `bert/`), `run_pretraining.py` (`cls/predictions`, `cls/seq_relationship`) and
`run_squad.py` (`cls/squad`). Targets are canonical names of the variables of
tf-models-official's `MobileBERTEncoder` and `MobileBertMaskedLM` (see
`checkpoints.model.target_variables`, which walks those objects, so nothing here depends
on Keras' auto-generated layer names).

Every rule is a full match. `plan_conversion` fails, listing names and shapes, when a
source name matches no rule, when a target is filled twice or never, or when a shape
does not fit. Ignoring a variable is a rule too, with its reason.

Block layout (for F = num_feedforward_networks): the original names its first F-1 FFNs
`ffn_layer_{j}` and the last one plain `intermediate`/`output`; Model Garden numbers all
F of them `ffn_layer_{j}`. The original's `output/bottleneck` is Model Garden's
`bottleneck_output`.
"""

import dataclasses
import re
from typing import Callable, Mapping, Optional

import numpy as np

from checkpoints.config import MobileBertConfig


@dataclasses.dataclass(frozen=True)
class Rule:
  """One full-match rule: a TF1 name pattern -> a target name template + a transform.

  `source` is a regex with named groups (`layer`, `ffn`, `param`, ...); `target` a
  `str.format` template over those groups (plus `last_ffn`). `transform` names an entry
  of `TRANSFORMS`. A rule with `target=None` ignores what it matches, for `reason`.
  """
  source: str
  target: Optional[str]
  transform: str = "identity"
  reason: str = ""


@dataclasses.dataclass(frozen=True)
class Synthesis:
  """A target with no source variable, filled from the config (documented per case)."""
  target: str
  build: str
  reason: str


@dataclasses.dataclass
class ConversionPlan:
  """What `plan_conversion` decided: target -> value, plus what it mapped and ignored."""
  values: dict  # target name -> np.ndarray in the target's shape
  mapped: list  # (source name, target name, transform)
  ignored: list  # (source name, reason)
  synthesized: list  # (target name, reason)


def _split_heads_kernel(x, config, target_shape):
  del config
  return x.reshape(target_shape)  # [in, N*h] -> [in, N, h] (original dense_layer_3d)


def _split_heads_bias(x, config, target_shape):
  del config
  return x.reshape(target_shape)  # [N*h] -> [N, h]


def _merge_heads_out(x, config, target_shape):
  del config
  return x.reshape(target_shape)  # [N*h, out] -> [N, h, out] (dense_layer_3d_proj)


def _trigram_pad(x, config, target_shape):
  """A non-trigram kernel [E, H] placed in the middle block of Model Garden's [3E, H].

  Model Garden always feeds concat([x[t+1], x[t], x[t-1]]) (original trigram order,
  `modeling.py` embedding section); zero rows for the neighbours make that exactly the
  original's `embedding_transformation(x[t])`.
  """
  if config.trigram_input:
    return x
  e = config.embedding_size
  out = np.zeros(target_shape, dtype=x.dtype)
  out[e:2 * e] = x
  return out


def _identity(x, config, target_shape):
  del config, target_shape
  return x


TRANSFORMS: Mapping[str, Callable] = {
    "identity": _identity,
    "split_heads_kernel": _split_heads_kernel,
    "split_heads_bias": _split_heads_bias,
    "merge_heads_out": _merge_heads_out,
    "trigram_pad": _trigram_pad,
}


def _identity_projection(config: MobileBertConfig, target_shapes):
  """Original with trigram_input=false and embedding_size == hidden_size has no
  `embedding_transformation` at all: the embedding goes straight on. Model Garden's
  projection of concat([next, x, prev]) is that exactly with [0; I; 0] and zero bias."""
  e = config.embedding_size
  kernel = np.zeros(target_shapes["embeddings/projection/kernel"], np.float32)
  kernel[e:2 * e] = np.eye(e, dtype=np.float32)
  return {"embeddings/projection/kernel": kernel,
          "embeddings/projection/bias": np.zeros(
              target_shapes["embeddings/projection/bias"], np.float32)}


SYNTHESES: Mapping[str, Callable] = {"identity_projection": _identity_projection}

# Never part of an export: TF1 training state and the next-sentence head.
_ALWAYS_IGNORED = (
    Rule(r"global_step", None, reason="training step counter"),
    Rule(r".+/(adam|lamb)_[mv]", None, reason="optimizer slot (AdamWeightDecay/LAMB)"),
    Rule(r".+/(Adam|Adam_1|Momentum)", None, reason="optimizer slot (tf.train optimizer)"),
    Rule(r"cls/seq_relationship/(output_weights|output_bias)", None,
         reason="next-sentence-prediction head, not part of a TF-Hub encoder"),
)


def rules_for(config: MobileBertConfig, *, with_mlm: bool) -> tuple[list, list]:
  """The rules and syntheses for one config.

  Returns:
    (rules, syntheses): lists of `Rule` and `Synthesis`, in matching order.
  """
  n = config.norm_scope
  lay = r"bert/encoder/layer_(?P<layer>\d+)"
  norm = rf"{n}/(?P<param>gamma|beta)"
  dense = r"dense/(?P<param>kernel|bias)"
  rules = [
      Rule(r"bert/embeddings/word_embeddings", "embeddings/word_embeddings"),
      Rule(r"bert/embeddings/token_type_embeddings", "embeddings/type_embeddings"),
      Rule(r"bert/embeddings/position_embeddings", "embeddings/position_embeddings"),
      Rule(rf"bert/embeddings/{norm}", "embeddings/norm/{param}"),
      Rule(rf"{lay}/bottleneck/input/{dense}", "layer_{layer}/bottleneck_input/dense/{param}"),
      Rule(rf"{lay}/bottleneck/input/{norm}", "layer_{layer}/bottleneck_input/norm/{param}"),
      Rule(rf"{lay}/attention/self/(?P<qkv>query|key|value)/kernel",
           "layer_{layer}/attention/{qkv}/kernel", "split_heads_kernel"),
      Rule(rf"{lay}/attention/self/(?P<qkv>query|key|value)/bias",
           "layer_{layer}/attention/{qkv}/bias", "split_heads_bias"),
      Rule(rf"{lay}/attention/output/dense/kernel", "layer_{layer}/attention/output/kernel",
           "merge_heads_out"),
      Rule(rf"{lay}/attention/output/dense/bias", "layer_{layer}/attention/output/bias"),
      Rule(rf"{lay}/attention/output/{norm}", "layer_{layer}/attention/norm/{param}"),
      Rule(rf"{lay}/ffn_layer_(?P<ffn>\d+)/intermediate/{dense}",
           "layer_{layer}/ffn_{ffn}/intermediate/{param}"),
      Rule(rf"{lay}/ffn_layer_(?P<ffn>\d+)/output/{dense}",
           "layer_{layer}/ffn_{ffn}/output/{param}"),
      Rule(rf"{lay}/ffn_layer_(?P<ffn>\d+)/output/{norm}",
           "layer_{layer}/ffn_{ffn}/norm/{param}"),
      Rule(rf"{lay}/intermediate/{dense}", "layer_{layer}/ffn_{last_ffn}/intermediate/{param}"),
      Rule(rf"{lay}/output/{dense}", "layer_{layer}/ffn_{last_ffn}/output/{param}"),
      Rule(rf"{lay}/output/{norm}", "layer_{layer}/ffn_{last_ffn}/norm/{param}"),
      Rule(rf"{lay}/output/bottleneck/{dense}", "layer_{layer}/bottleneck_output/dense/{param}"),
      Rule(rf"{lay}/output/bottleneck/{norm}", "layer_{layer}/bottleneck_output/norm/{param}"),
      Rule(r"cls/squad/(?P<param>output_weights|output_bias)", "squad/{param}"),
  ]
  syntheses = []
  if config.trigram_input or config.embedding_size != config.hidden_size:
    rules.append(Rule(r"bert/embeddings/embedding_transformation/kernel",
                      "embeddings/projection/kernel", "trigram_pad"))
    rules.append(Rule(r"bert/embeddings/embedding_transformation/bias",
                      "embeddings/projection/bias"))
  else:
    syntheses.append(Synthesis(
        "embeddings/projection", "identity_projection",
        "trigram_input=false and embedding_size == hidden_size: the original has no "
        "embedding_transformation; filled with the exact identity [0; I; 0], zero bias"))
  if config.key_query_shared_bottleneck and not config.use_bottleneck_attention:
    rules.append(Rule(rf"{lay}/bottleneck/attention/{dense}",
                      "layer_{layer}/kq_shared_bottleneck/dense/{param}"))
    rules.append(Rule(rf"{lay}/bottleneck/attention/{norm}",
                      "layer_{layer}/kq_shared_bottleneck/norm/{param}"))
  if config.classifier_activation:
    rules.append(Rule(r"bert/pooler/dense/(?P<param>kernel|bias)", "pooler/{param}"))
  else:
    rules.append(Rule(r"bert/pooler/dense/(kernel|bias)", None,
                      reason="pooler unused: classifier_activation=false takes the [CLS] "
                      "vector as pooled_output (original BertModel)"))
  mlm = r"cls/predictions/(?P<name>transform/dense/kernel|transform/dense/bias|" \
        r"transform/LayerNorm/gamma|transform/LayerNorm/beta|output_bias|extra_output_weights)"
  if with_mlm:
    rules.append(Rule(mlm, "mlm/{name}"))
  else:
    rules.append(Rule(mlm, None, reason="MLM head not exported (with_mlm=False)"))
  rules.extend(_ALWAYS_IGNORED)
  return rules, syntheses


def plan_conversion(source_shapes: Mapping[str, tuple],
                    read: Callable[[str], np.ndarray],
                    target_shapes: Mapping[str, tuple],
                    config: MobileBertConfig,
                    *, with_mlm: bool) -> ConversionPlan:
  """Maps every source variable to its target, strictly.

  Args:
    source_shapes: TF1 variable name -> shape, e.g. from `tf.train.list_variables`.
    read: reads one source variable's value by name (only mapped ones are read).
    target_shapes: canonical target name -> shape (see `checkpoints.model`).
    config: the validated config the targets were built from.
    with_mlm: whether MLM-head targets exist and must be filled.

  Returns:
    A `ConversionPlan` whose `values` has exactly the keys of `target_shapes`.

  Raises:
    ValueError: listing (all at once) source names no rule matches, targets filled
      twice, targets never filled, shape mismatches (source and target shapes), and
      block or FFN indices out of range for the config.
  """
  rules, syntheses = rules_for(config, with_mlm=with_mlm)
  compiled = [(re.compile(r.source), r) for r in rules]
  last_ffn = config.num_feedforward_networks - 1
  values, mapped, ignored, filled_from = {}, [], [], {}
  unmatched, problems = [], []
  for name in sorted(source_shapes):
    hits = [(m, r) for rx, r in compiled if (m := rx.fullmatch(name))]
    if not hits:
      unmatched.append(f"{name} {list(source_shapes[name])}")
      continue
    if len(hits) > 1:  # A defect in the table itself, never the user's fault.
      raise AssertionError(f"rules overlap on {name}: {[r.source for _, r in hits]}")
    match, rule = hits[0]
    if rule.target is None:
      ignored.append((name, rule.reason))
      continue
    groups = match.groupdict()
    if "layer" in groups and int(groups["layer"]) >= config.num_hidden_layers:
      problems.append(f"{name}: block {groups['layer']} but num_hidden_layers="
                      f"{config.num_hidden_layers}")
      continue
    if "ffn" in groups and int(groups["ffn"]) >= last_ffn:
      problems.append(f"{name}: ffn_layer_{groups['ffn']} but num_feedforward_networks="
                      f"{config.num_feedforward_networks} (only ffn_layer_0..{last_ffn - 1} "
                      "plus the final intermediate/output exist)")
      continue
    target = rule.target.format(last_ffn=last_ffn, **{k: int(v) if v.isdigit() else v
                                                      for k, v in groups.items()})
    if target not in target_shapes:
      problems.append(f"{name} {list(source_shapes[name])} -> {target}: no such target in "
                      "the model built from this config")
      continue
    if target in filled_from:
      problems.append(f"{target} filled twice: from {filled_from[target]} and {name}")
      continue
    value = np.asarray(read(name))
    want = tuple(target_shapes[target])
    if tuple(value.shape) != _expected_source_shape(rule.transform, config, want):
      problems.append(f"{name}: shape {list(value.shape)} does not fit target {target} "
                      f"{list(want)} (transform {rule.transform})")
      continue
    converted = TRANSFORMS[rule.transform](value, config, want)
    if tuple(converted.shape) != want:
      problems.append(f"{name}: shape {list(value.shape)} -> {list(converted.shape)} after "
                      f"{rule.transform}, target {target} wants {list(want)}")
      continue
    filled_from[target] = name
    values[target] = converted
    mapped.append((name, target, rule.transform))
  synthesized = []
  for syn in syntheses:
    for target, value in SYNTHESES[syn.build](config, target_shapes).items():
      values[target] = value
      filled_from[target] = f"<{syn.build}>"
      synthesized.append((target, syn.reason))
  unfilled = sorted(set(target_shapes) - set(values))
  messages = []
  if unmatched:
    messages.append(f"{len(unmatched)} checkpoint variable(s) match no rule for this config "
                    f"(normalization_type={config.normalization_type!r}, "
                    f"num_feedforward_networks={config.num_feedforward_networks}, "
                    f"key_query_shared_bottleneck={config.key_query_shared_bottleneck}, "
                    f"use_bottleneck_attention={config.use_bottleneck_attention}, "
                    f"trigram_input={config.trigram_input}): " + "; ".join(unmatched[:20]) +
                    (" ..." if len(unmatched) > 20 else ""))
  if problems:
    messages.append(f"{len(problems)} mapping problem(s): " + "; ".join(problems[:20]) +
                    (" ..." if len(problems) > 20 else ""))
  if unfilled:
    hint = ""
    if any(t.startswith("mlm/") for t in unfilled):
      hint = (" The checkpoint has no complete MLM head (cls/predictions/*), as in a "
              "fine-tuned checkpoint: export without it (--nowith_mlm).")
    elif any(t.startswith("pooler/") for t in unfilled):
      hint = (" classifier_activation=true needs bert/pooler/dense/* in the checkpoint; "
              "check that bert_config.json belongs to this checkpoint.")
    messages.append(f"{len(unfilled)} model variable(s) not filled by the checkpoint: "
                    + ", ".join(unfilled[:20]) + (" ..." if len(unfilled) > 20 else "") + hint)
  if messages:
    raise ValueError("checkpoint does not match bert_config.json: " + " | ".join(messages))
  return ConversionPlan(values=values, mapped=mapped, ignored=ignored,
                        synthesized=synthesized)


def _expected_source_shape(transform: str, config: MobileBertConfig, target_shape) -> tuple:
  """The TF1 shape that `transform` turns into `target_shape` (original layouts)."""
  t = tuple(target_shape)
  if transform == "split_heads_kernel":  # [in, N*h] -> [in, N, h]
    return (t[0], t[1] * t[2])
  if transform == "split_heads_bias":  # [N*h] -> [N, h]
    return (t[0] * t[1],)
  if transform == "merge_heads_out":  # [N*h, out] -> [N, h, out]
    return (t[0] * t[1], t[2])
  if transform == "trigram_pad" and not config.trigram_input:  # [E, H] -> [3E, H]
    return (t[0] // 3, t[1])
  return t
