"""Verification of exported artifacts against their source, with one tolerance table.

Errors are reported per output name as max absolute difference and max relative
difference, relative to the largest magnitude of the reference output (elementwise
relative error is meaningless where MobileBERT's NoNorm activations cross zero; HF's
MobileBERT tests bound ratios for the same reason).
"""

import dataclasses

import numpy as np

# Reloaded SavedModel vs the in-memory Model Garden model: the same float32 ops on the
# same machine, reordered at most by graph optimization. float32 epsilon is 1.2e-7; 24
# blocks of sums over 512 positions stay well within 1e-5 of the output's scale.
ENCODER_TOLERANCE = 1e-5  # max|a - b| / max|reference|
MLM_TOP_K = 5  # top-k MLM ids must be identical at every masked position


@dataclasses.dataclass(frozen=True)
class Difference:
  """Max absolute and relative (to max|reference|) difference of one output."""
  max_abs: float
  max_rel: float
  reference_max_abs: float

  def as_dict(self) -> dict:
    return dataclasses.asdict(self)


def difference(actual, reference) -> Difference:
  """Compares two float arrays of the same shape.

  Raises:
    ValueError: shapes differ (names both), or `actual` has NaN/inf.
  """
  a = np.asarray(actual, np.float64)
  r = np.asarray(reference, np.float64)
  if a.shape != r.shape:
    raise ValueError(f"shape {a.shape} differs from the reference's {r.shape}")
  if not np.all(np.isfinite(a)):
    raise ValueError("output has NaN or inf values")
  scale = float(np.max(np.abs(r))) if r.size else 0.0
  max_abs = float(np.max(np.abs(a - r))) if r.size else 0.0
  return Difference(max_abs=max_abs, max_rel=max_abs / scale if scale else max_abs,
                    reference_max_abs=scale)


def top_k_agreement(actual_logits, reference_logits, k: int = MLM_TOP_K) -> float:
  """Fraction of positions whose top-k ids (in order) are identical. [..., V] inputs."""
  a = np.argsort(-np.asarray(actual_logits), axis=-1)[..., :k]
  r = np.argsort(-np.asarray(reference_logits), axis=-1)[..., :k]
  same = np.all(a == r, axis=-1)
  return float(np.mean(same)) if same.size else 1.0


def compare_encoder_outputs(actual: dict, reference: dict,
                            tolerance: float = ENCODER_TOLERANCE) -> tuple:
  """Compares encoder (and MLM) outputs by name.

  Args:
    actual, reference: dicts with `sequence_output`, `pooled_output`, `encoder_outputs`
      (list), optionally `mlm_logits`; arrays as in `../shared/HUB_API.md`.
    tolerance: bound on `max_rel` for every output.

  Returns:
    (figures, failures): figures maps output name (encoder_outputs_i per block) to
    `Difference.as_dict()` (+ `top5_agreement` for `mlm_logits`); failures lists
    human-readable violations (empty when everything is within tolerance).
  """
  figures, failures = {}, []

  def check(name, a, r):
    try:
      d = difference(a, r)
    except ValueError as e:
      failures.append(f"{name}: {e}")
      return
    figures[name] = d.as_dict()
    if d.max_rel > tolerance:
      failures.append(f"{name}: max relative difference {d.max_rel:.3g} > {tolerance:g} "
                      f"(max abs {d.max_abs:.3g})")

  for name in ("sequence_output", "pooled_output"):
    check(name, actual[name], reference[name])
  if len(actual["encoder_outputs"]) != len(reference["encoder_outputs"]):
    failures.append(f"encoder_outputs: {len(actual['encoder_outputs'])} blocks, reference "
                    f"has {len(reference['encoder_outputs'])}")
  for i, (a, r) in enumerate(zip(actual["encoder_outputs"], reference["encoder_outputs"])):
    check(f"encoder_outputs_{i}", a, r)
  if "mlm_logits" in reference:
    check("mlm_logits", actual["mlm_logits"], reference["mlm_logits"])
    agreement = top_k_agreement(actual["mlm_logits"], reference["mlm_logits"])
    figures.setdefault("mlm_logits", {})[f"top{MLM_TOP_K}_agreement"] = agreement
    if agreement < 1.0:
      failures.append(f"mlm_logits: top-{MLM_TOP_K} ids differ at "
                      f"{(1 - agreement) * 100:.2f}% of masked positions")
  return figures, failures


def probe_batch(config, vocab_special_ids: dict, *, seed: int = 0) -> list:
  """Seeded probe batches exercising padding, two segments and the longest length.

  Returns:
    A list of dicts of int32 arrays `input_word_ids`, `input_mask`, `input_type_ids`
    [B, S] and `masked_lm_positions` [B, 8]: one batch at S = max_position_embeddings
    (a full two-segment row and a row padded after 40%), one short batch (S = 16) with
    a one-token row.
  """
  rng = np.random.default_rng(seed)
  cls, sep = vocab_special_ids["start_of_sequence_id"], vocab_special_ids["end_of_segment_id"]
  first_regular = max(vocab_special_ids.values()) + 1
  batches = []
  for seq_len, lengths in ((config.max_position_embeddings,
                            (config.max_position_embeddings,
                             max(3, int(config.max_position_embeddings * 0.4)))),
                           (16, (16, 3))):
    ids = np.zeros((len(lengths), seq_len), np.int32)
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    positions = np.zeros((len(lengths), 8), np.int32)
    for row, n in enumerate(lengths):
      ids[row, :n] = rng.integers(first_regular, config.vocab_size, n)
      ids[row, 0] = cls
      half = max(1, n // 2)
      ids[row, half - 1] = sep
      ids[row, n - 1] = sep
      mask[row, :n] = 1
      types[row, half:n] = 1
      positions[row] = rng.integers(0, n, 8)
    batches.append(dict(input_word_ids=ids, input_mask=mask, input_type_ids=types,
                        masked_lm_positions=positions))
  return batches
