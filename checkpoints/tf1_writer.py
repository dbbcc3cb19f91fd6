"""Writes checkpoints in the exact layout of Google's released TF1 MobileBERT checkpoints.

Names and shapes follow google-research `mobilebert/modeling.py` (scope `bert/`),
`run_pretraining.py::get_logits` (`cls/predictions/*`, `cls/seq_relationship/*`) and
`run_squad.py` (`cls/squad/*`). Values are seeded random numbers: this is what tests and
`export_main.py --demo` use, since no pretrained weights can be downloaded here. The
checkpoint is name-based (TF1 `Saver` format, `.index` + `.data-00000-of-00001`).
"""

import json
import os
import shutil
from typing import Optional

import numpy as np
import tensorflow as tf

from checkpoints.config import MobileBertConfig

# Prefix of the released archives' checkpoint files.
RELEASED_PREFIX = "mobilebert_variables.ckpt"
_DEMO_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo")
# The built-in demo variants: the original English config with the real BERT uncased
# vocab, and the same architecture with the real BERT multilingual cased vocab.
DEMO_VARIANTS = {
    "en_uncased": os.path.join(_DEMO_ROOT, "en_uncased"),
    "multi_cased": os.path.join(_DEMO_ROOT, "multi_cased"),
}


def original_variable_shapes(config: MobileBertConfig, *, with_mlm: bool = True,
                             with_nsp: bool = True, with_pooler: Optional[bool] = None,
                             with_squad: bool = False) -> dict:
  """TF1 variable name -> shape, as the original code creates them for `config`.

  Args:
    config: the model config.
    with_mlm: include `cls/predictions/*` (pre-training MLM head).
    with_nsp: include `cls/seq_relationship/*` (next-sentence head).
    with_pooler: include `bert/pooler/dense/*`; default: iff classifier_activation.
    with_squad: include `cls/squad/*` (`run_squad.py` head).
  """
  c = config
  n = c.norm_scope
  shapes = {
      "bert/embeddings/word_embeddings": (c.vocab_size, c.embedding_size),
      "bert/embeddings/token_type_embeddings": (c.type_vocab_size, c.hidden_size),
      "bert/embeddings/position_embeddings": (c.max_position_embeddings, c.hidden_size),
      f"bert/embeddings/{n}/gamma": (c.hidden_size,),
      f"bert/embeddings/{n}/beta": (c.hidden_size,),
  }
  if c.trigram_input or c.embedding_size != c.hidden_size:
    width = 3 * c.embedding_size if c.trigram_input else c.embedding_size
    shapes["bert/embeddings/embedding_transformation/kernel"] = (width, c.hidden_size)
    shapes["bert/embeddings/embedding_transformation/bias"] = (c.hidden_size,)

  def dense(prefix, d_in, d_out):
    shapes[f"{prefix}/kernel"] = (d_in, d_out)
    shapes[f"{prefix}/bias"] = (d_out,)

  def norm(prefix, width):
    shapes[f"{prefix}/{n}/gamma"] = (width,)
    shapes[f"{prefix}/{n}/beta"] = (width,)

  b, h = c.intra_bottleneck_size, c.hidden_size
  for i in range(c.num_hidden_layers):
    p = f"bert/encoder/layer_{i}"
    dense(f"{p}/bottleneck/input/dense", h, b)
    norm(f"{p}/bottleneck/input", b)
    if c.use_bottleneck_attention:
      qk_in, v_in = b, b
    elif c.key_query_shared_bottleneck:
      dense(f"{p}/bottleneck/attention/dense", h, b)
      norm(f"{p}/bottleneck/attention", b)
      qk_in, v_in = b, h
    else:
      qk_in, v_in = h, h
    dense(f"{p}/attention/self/query", qk_in, b)
    dense(f"{p}/attention/self/key", qk_in, b)
    dense(f"{p}/attention/self/value", v_in, b)
    dense(f"{p}/attention/output/dense", b, b)
    norm(f"{p}/attention/output", b)
    for j in range(c.num_feedforward_networks - 1):
      dense(f"{p}/ffn_layer_{j}/intermediate/dense", b, c.intermediate_size)
      dense(f"{p}/ffn_layer_{j}/output/dense", c.intermediate_size, b)
      norm(f"{p}/ffn_layer_{j}/output", b)
    dense(f"{p}/intermediate/dense", b, c.intermediate_size)
    dense(f"{p}/output/dense", c.intermediate_size, b)
    norm(f"{p}/output", b)
    dense(f"{p}/output/bottleneck/dense", b, h)
    norm(f"{p}/output/bottleneck", h)
  if c.classifier_activation if with_pooler is None else with_pooler:
    dense("bert/pooler/dense", h, h)
  if with_mlm:
    dense("cls/predictions/transform/dense", h, h)
    shapes["cls/predictions/transform/LayerNorm/gamma"] = (h,)
    shapes["cls/predictions/transform/LayerNorm/beta"] = (h,)
    shapes["cls/predictions/output_bias"] = (c.vocab_size,)
    if h != c.embedding_size:
      shapes["cls/predictions/extra_output_weights"] = (c.vocab_size, h - c.embedding_size)
  if with_nsp:
    shapes["cls/seq_relationship/output_weights"] = (2, h)
    shapes["cls/seq_relationship/output_bias"] = (2,)
  if with_squad:
    shapes["cls/squad/output_weights"] = (2, h)
    shapes["cls/squad/output_bias"] = (2,)
  return shapes


def random_values(shapes: dict, config: MobileBertConfig, seed: int) -> dict:
  """Seeded values with the original initializer's scale, and non-trivial norms.

  Kernels and embeddings: normal(0, initializer_range) clipped at 2 stddev (the
  original's truncated_normal_initializer); biases: normal(0, 0.02); normalization
  gamma: 1 + normal(0, 0.1), beta: normal(0, 0.1), so that a converter that swaps or
  drops them is caught.
  """
  rng = np.random.default_rng(seed)
  std = config.initializer_range
  values = {}
  for name in sorted(shapes):
    shape = shapes[name]
    leaf = name.rsplit("/", 1)[-1]
    if leaf == "gamma":
      v = 1.0 + 0.1 * rng.standard_normal(shape, dtype=np.float32)
    elif leaf == "beta":
      v = 0.1 * rng.standard_normal(shape, dtype=np.float32)
    elif leaf in ("bias", "output_bias"):
      v = 0.02 * rng.standard_normal(shape, dtype=np.float32)
    else:
      v = np.clip(std * rng.standard_normal(shape, dtype=np.float32), -2 * std, 2 * std)
    values[name] = v.astype(np.float32)
  return values


def write_tf1_checkpoint(prefix: str, values: dict) -> str:
  """Writes a name-based TF1 checkpoint (`prefix.index`, `prefix.data-00000-of-00001`).

  Args:
    prefix: checkpoint path prefix; its directory must exist.
    values: TF1 variable name -> numpy array (float32 weights, int64 `global_step`).

  Returns:
    `prefix`.
  """
  names = sorted(values)
  tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                    tensors=[tf.constant(values[k]) for k in names])
  return prefix


def write_checkpoint_dir(directory: str, config_dict: dict, vocab_file: str, *,
                         seed: int = 0, with_mlm: bool = True, with_nsp: bool = True,
                         with_pooler: Optional[bool] = None, with_squad: bool = False,
                         with_training_state: bool = False,
                         prefix: str = RELEASED_PREFIX) -> str:
  """Writes a directory as Google ships MobileBERT: bert_config.json, vocab.txt, ckpt.

  Args:
    directory: created if missing.
    config_dict: the bert_config.json content (written as given).
    vocab_file: copied to `directory/vocab.txt`.
    seed: seed of the random values.
    with_mlm, with_nsp, with_pooler, with_squad: heads to include (see
      `original_variable_shapes`).
    with_training_state: add `global_step` and AdamWeightDecay slots (`*/adam_m`,
      `*/adam_v`) for a few variables, as a training checkpoint has.
    prefix: checkpoint file prefix inside `directory`.

  Returns:
    The checkpoint prefix path.
  """
  config = MobileBertConfig.from_dict(config_dict)
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, "bert_config.json"), "w") as f:
    json.dump(config_dict, f, indent=2)
  shutil.copyfile(vocab_file, os.path.join(directory, "vocab.txt"))
  shapes = original_variable_shapes(config, with_mlm=with_mlm, with_nsp=with_nsp,
                                    with_pooler=with_pooler, with_squad=with_squad)
  values = random_values(shapes, config, seed)
  if with_training_state:
    values["global_step"] = np.array(1000, np.int64)
    for name in sorted(shapes)[:3]:
      values[f"{name}/adam_m"] = np.zeros(shapes[name], np.float32)
      values[f"{name}/adam_v"] = np.zeros(shapes[name], np.float32)
  return write_tf1_checkpoint(os.path.join(directory, prefix), values)


def write_demo_checkpoint_dir(directory: str, variant: str = "en_uncased", *,
                              seed: int = 0) -> str:
  """Writes the built-in demo: a seeded, UNTRAINED MobileBERT in the released layout.

  `en_uncased`: the original `uncased_L-24_H-128_B-512_A-4_F-4_OPT` config and the real
  BERT uncased vocab (30,522). `multi_cased`: the same architecture with the real BERT
  multilingual cased vocab (119,547), `vocab_size` set to match. Both ship in the repo
  under `checkpoints/demo/`.

  Raises:
    ValueError: unknown `variant`.
  """
  if variant not in DEMO_VARIANTS:
    raise ValueError(f"--demo={variant!r} is not a demo; choose one of "
                     f"{sorted(DEMO_VARIANTS)}")
  src = DEMO_VARIANTS[variant]
  with open(os.path.join(src, "bert_config.json")) as f:
    config_dict = json.load(f)
  return write_checkpoint_dir(directory, config_dict, os.path.join(src, "vocab.txt"),
                              seed=seed)
