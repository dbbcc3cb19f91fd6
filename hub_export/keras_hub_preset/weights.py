"""Strict weight transfer from the converted Model Garden model to the Keras 3 classes.

Both sides name their variables canonically (`checkpoints.model.target_variables`,
`MobileBertBackbone.canonical_weights`, `MobileBertMaskedLMHead.canonical_weights`); the
transfer is one to one by name: every source variable lands in exactly one target of
the same shape, every target receives a value, or nothing is assigned and the error
lists what did not match.
"""

from typing import Dict, Optional

import numpy as np


class WeightTransferError(ValueError):
  """The two name sets or the shapes differ; the message lists every mismatch."""


def transfer(source: Dict[str, object], target: Dict[str, object]) -> int:
  """Assigns `source[name]` to `target[name]` for every name; returns the value count.

  Args:
    source: canonical name -> a variable or array (anything `np.asarray` reads).
    target: canonical name -> `keras.Variable`.

  Raises:
    WeightTransferError: names only in one side, or shapes that differ; nothing has
      been assigned then.
  """
  only_source = sorted(set(source) - set(target))
  only_target = sorted(set(target) - set(source))
  values = {name: np.asarray(source[name]) for name in source if name in target}
  shapes = [f"{n}: source {v.shape}, target {tuple(target[n].shape)}"
            for n, v in sorted(values.items()) if v.shape != tuple(target[n].shape)]
  if only_source or only_target or shapes:
    raise WeightTransferError(
        "the converted model and the Keras 3 model do not match one to one: "
        f"only in the converted model {only_source}; only in the Keras 3 model "
        f"{only_target}; shape mismatches {shapes}. Export and keras-hub classes come "
        "from different versions of this tool, or the config differs")
  for name, value in values.items():
    target[name].assign(value.astype(target[name].dtype))
  return sum(int(v.size) for v in values.values())


def split_mlm(variables: Dict[str, object]) -> tuple:
  """(encoder variables, MLM head variables or None): names under "mlm/" are the head."""
  encoder = {k: v for k, v in variables.items() if not k.startswith("mlm/")}
  head: Optional[dict] = {k: v for k, v in variables.items() if k.startswith("mlm/")}
  return encoder, head or None
