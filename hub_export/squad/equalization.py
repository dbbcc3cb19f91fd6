"""Per-channel shift and scale of MobileBERT's NoNorm outputs, for int8 conversion.

`calibrate_equalization` measures, on calibration windows, the range of every NoNorm
output of `forward.QaForward`; `QaForward(equalization=...)` then carries each of them as
(x - shift) / scale per channel and folds the inverse into the adjacent weights. The
float function is unchanged; the int8 ranges are no longer spent on NoNorm's
per-channel offsets (see "int8 fidelity" in this package's README.md).
"""

from typing import Dict

import numpy as np
import tensorflow as tf

from hub_export.squad import constants
from hub_export.squad import forward

# Exponent of the per-channel scale: scale = half_range ** EQUALIZATION_ALPHA. 1 gives
# every channel the range [-1, 1]; 0.5 splits the range disparity between activations
# and the (per-output-channel int8) weights they are folded into, as the square-root
# rule of Nagel et al. 2019 and SmoothQuant's alpha = 0.5 do. The int8 SQNR of the
# exponents tried is in benchmarks/README.md.
EQUALIZATION_ALPHA = 0.5


def calibrate_equalization(weights: forward.QaWeights, batches, *,
                           seq_length: int = constants.MAX_SEQ_LENGTH,
                           alpha: float = EQUALIZATION_ALPHA) -> Dict[str, forward.Affine]:
  """Per-channel shift and scale of every NoNorm output for `QaForward(equalization=)`.

  MobileBERT's NoNorm (`x * gamma + beta`, no centering) leaves every hidden state with
  a large position-independent per-channel offset (`beta` and the biases accumulated
  down the residual chain) and channels of very different ranges. A per-tensor int8
  range is then set by the offsets and the widest channels, and the position-dependent
  part that carries the answer falls on a few int8 steps (`README.md` of this package,
  "int8 fidelity"; the measured offsets are in benchmarks/README.md). Carrying each
  NoNorm output as (x - shift) / scale with shift = the channel's calibration mid-range
  and scale = its half-range ** `alpha` (alpha 1: every channel spans [-1, 1]) evens
  out the channels; folding the inverse into the adjacent weights (`forward.QaForward`:
  dense kernels and biases, the next NoNorm's gamma and beta) keeps the float function
  exactly (channel-wise shifting and scaling of Outlier Suppression+, Wei et
  al. 2023, arXiv:2304.09145; the scaling part is the cross-layer equalization of
  Nagel et al. 2019, arXiv:1906.04721).

  Args:
    weights: the network (normalization_type "no_norm").
    batches: calibration inputs, dicts of int32 [1, S] `constants.INPUT_NAMES` arrays.
    seq_length: S.
    alpha: exponent of the scale (`EQUALIZATION_ALPHA`), in [0, 1].

  Returns:
    NoNorm variable prefix (e.g. "layer_3/attention/norm") -> (shift, scale), float64
    [width] each, scale > 0.

  Raises:
    ValueError: no batches, alpha outside [0, 1], or a layer_norm config (LayerNorm is
      not channel-wise affine).
  """
  if not 0.0 <= alpha <= 1.0:
    raise ValueError(f"alpha={alpha} must be in [0, 1]")
  if weights.config.normalization_type != "no_norm":
    raise ValueError(f"normalization_type={weights.config.normalization_type!r}: "
                     "equalization folds into NoNorm only; convert without it")
  fwd = forward.QaForward(weights, seq_length=seq_length)
  fwd._record = {}  # pylint: disable=protected-access
  n = 0
  for batch in batches:
    fwd.encode(*(tf.constant(np.asarray(batch[k], np.int32))
                 for k in constants.INPUT_NAMES))
    n += 1
  if not n:
    raise ValueError("calibrate_equalization needs at least one calibration window")
  out = {}
  for prefix, (lo, hi) in fwd._record.items():  # pylint: disable=protected-access
    half = (hi - lo) / 2.0
    floor = max(float(np.max(half)) * 1e-3, 1e-12)
    out[prefix] = ((hi + lo) / 2.0, np.maximum(half, floor) ** alpha)
  return out

