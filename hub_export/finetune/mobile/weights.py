"""The fine-tuned classifier's weights under the canonical names of `checkpoints.model`.

The fine-tuning run trains the bundle's encoder SavedModel (`hub.KerasLayer`), whose
variables are Model Garden's, with the per-block ones stacked over the blocks
(`hub_export.encoder.BlockStacks`). `load_nli_weights` rebuilds the Model Garden model
of the bundle, sets its variables from the fine-tuning checkpoint through the same
stacking, and reads them out by `checkpoints.model.target_variables`, so the op-by-op
graphs of `forward.py` see exactly the weights the SavedModel classifier serves.
"""

import dataclasses
import json
import os
import re

import numpy as np
import tensorflow as tf

from checkpoints import converter
from checkpoints import model as model_lib
from checkpoints.config import MobileBertConfig
from hub_export import encoder as encoder_lib
from hub_export.finetune.config import FinetuneError
from hub_export.squad import forward as squad_forward


@dataclasses.dataclass
class NliWeights:
  """The encoder (`squad_forward.QaWeights`: config, canonical values, masking mode) and
  the dense head: `kernel` float32 [H, 3], `bias` float32 [3] (columns in the order of
  `hub_export.finetune.data.LABELS`)."""
  encoder: squad_forward.QaWeights
  kernel: np.ndarray
  bias: np.ndarray


def _layer_free(name: str) -> str:
  """A variable name without the `_<n>` Keras appends to a repeated top layer's name."""
  return re.sub(r"^([^/]*?)_\d+/", r"\1/", name)


def bundle_attention_mask(bundle_dir: str) -> str:
  """The bundle's masking of padded keys (manifest.json `attention_mask.mode`).

  Bundles written before the manifest recorded it mask as Model Garden does.
  """
  with open(os.path.join(bundle_dir, "manifest.json"), encoding="utf-8") as f:
    manifest = json.load(f)
  return (manifest.get("attention_mask") or {}).get("mode", "model_garden")


def load_nli_weights(bundle_dir: str, encoder, head_kernel, head_bias) -> NliWeights:
  """The weights of a fine-tuned classifier, as numpy float32 arrays.

  Args:
    bundle_dir: the bundle that was fine-tuned (its checkpoint/ and manifest.json).
    encoder: the bundle's encoder SavedModel as loaded (`tf.saved_model.load`) and
      restored from the fine-tuning checkpoint; its `variables` are
      `encoder.build_encoder_module`'s list (Model Garden's non-block variables, then
      the stacked block variables).
    head_kernel, head_bias: the dense head, [H, 3] and [3].

  Returns:
    `NliWeights` with the bundle's config and masking mode.

  Raises:
    FinetuneError: the encoder's variables do not line up with the bundle's model (a
      different count, name or shape; names the first mismatch).
  """
  config = MobileBertConfig.from_json_file(
      os.path.join(bundle_dir, "checkpoint", "bert_config.json"))
  mode = bundle_attention_mask(bundle_dir)
  model, _ = converter.load_model(
      os.path.join(bundle_dir, "checkpoint", converter.TF2_PREFIX_NAME), config,
      with_mlm=False, attention_mask=mode)
  stacks = encoder_lib.BlockStacks(model.encoder.transformer_layers)
  plain = [v for v in model.encoder.variables if id(v) not in stacks.block_variables]
  want = plain + stacks.stacked
  got = list(encoder.variables)
  if len(got) != len(want):
    raise FinetuneError(f"the fine-tuned encoder has {len(got)} variables, the bundle's "
                        f"model {len(want)}; pass the --bundle_dir that was fine-tuned")
  for g, w in zip(got, want):
    if _layer_free(g.name) != _layer_free(w.name) or tuple(g.shape) != tuple(w.shape):
      raise FinetuneError(f"fine-tuned encoder variable {g.name} {tuple(g.shape)} does not "
                          f"line up with the bundle's {w.name} {tuple(w.shape)}; pass the "
                          "--bundle_dir that was fine-tuned")
  for g, w in zip(got[:len(plain)], plain):
    w.assign(g)
  stacks.assign_blocks([g.numpy() for g in got[len(plain):]])
  values = {k: v.numpy().astype(np.float32)
            for k, v in model_lib.target_variables(model).items()}
  return NliWeights(
      encoder=squad_forward.QaWeights(config=config, values=values, attention_mask=mode),
      kernel=np.asarray(head_kernel, np.float32), bias=np.asarray(head_bias, np.float32))
