"""Verification of every exported artifact against its source, with one tolerance table.

Float errors are reported per output name as max absolute difference and max relative
difference, relative to the largest magnitude of the reference output (elementwise
relative error is meaningless where MobileBERT's NoNorm activations cross zero; HF's
MobileBERT tests bound ratios for the same reason). Quantized outputs are reported as
signal-to-quantization-noise ratio (SQNR, dB) against the float model. Token ids are
compared exactly.

Every bound of the project lives in `TOLERANCES`; the verifiers read it at call time.
"""

import dataclasses
from typing import Optional, Sequence

import numpy as np

# One row per artifact. All float comparisons are max|a - b| / max|reference|.
TOLERANCES = {
    # Reloaded encoder/ (and mlm) vs the in-memory Model Garden model: the same float32
    # ops on the same machine, reordered at most by graph optimization. float32 epsilon
    # is 1.2e-7; 24 blocks of sums over 512 positions stay well within 1e-5 of the
    # output's scale. MLM: the top-k ids must be identical at every masked position.
    "encoder": {"max_rel": 1e-5, "mlm_top_k": 5},
    # preprocessor/ (SavedModel and .tflite) vs the original BERT FullTokenizer.
    "preprocessor": {"token_ids": "identical"},
    # serving/ vs preprocessor/ then encoder/, both reloaded: the same graph composed.
    "serving": {"max_rel": 1e-5},
    # keras_hub/ (Keras 3 MobileBertBackbone / MaskedLM, reloaded with from_preset) vs the
    # reloaded encoder/: the same float32 computation written in Keras 3 ops, on any
    # backend (TensorFlow, JAX and PyTorch measured within 3e-7 on seeded weights).
    "keras_hub": {"max_rel": 1e-5},
    # The fine-tuned serving classifier vs the restored in-memory classifier:
    # max |probability difference| (probabilities are in [0, 1]), labels identical.
    "classifier": {"max_abs_probability": 1e-5},
    # The classifier's float .tflite (tokenizer, packing and network in one graph), each
    # classify_<S> signature vs the serving classifier SavedModel packing to S: the same
    # ids, float32 sums reordered.
    "nli_tflite_float": {"max_abs_probability": 1e-5, "min_label_agreement": 1.0},
    # Its int8 .tflite: the publishing gate is label agreement (a collapsed quantization
    # agrees on about a third). Probability differences are recorded, not gated: near its
    # decision boundary a confident classifier moves most of the probability on a small
    # logit change (the tiny test model: 0.74 on one of 300 pairs, labels still >= 0.9).
    "nli_tflite_int8": {"min_label_agreement": 0.9},
    # squad/ float variants (SavedModel, TFLite float and GPU, ONNX float) vs the
    # converted model + SQuAD head in memory: converters reorder float32 sums.
    "squad_float": {"max_rel": 1e-4},
    # squad/ int8 variants: logit SQNR against the float model. Below `min_sqnr_db` the
    # file is not published (a collapsed quantization is far below); `target_sqnr_db`
    # is recorded per figure as `meets_target`.
    "squad_int8": {"min_sqnr_db": 15.0, "target_sqnr_db": 20.0},
}


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


def sqnr_db(got, ref) -> float:
  """Signal-to-quantization-noise ratio of `got` against `ref`, in dB (inf if equal).

  10 log10(sum ref^2 / sum (got - ref)^2), over all elements.

  Raises:
    ValueError: shapes differ.
  """
  got = np.asarray(got, np.float64)
  ref = np.asarray(ref, np.float64)
  if got.shape != ref.shape:
    raise ValueError(f"shapes differ: {got.shape} vs reference {ref.shape}")
  noise = float(np.sum((got - ref) ** 2))
  if noise == 0.0:
    return float("inf")
  return float(10.0 * np.log10(float(np.sum(ref ** 2)) / noise))


def top_k_agreement(actual_logits, reference_logits, k: int = 5) -> float:
  """Fraction of positions whose top-k ids (in order) are identical. [..., V] inputs."""
  a = np.argsort(-np.asarray(actual_logits), axis=-1)[..., :k]
  r = np.argsort(-np.asarray(reference_logits), axis=-1)[..., :k]
  same = np.all(a == r, axis=-1)
  return float(np.mean(same)) if same.size else 1.0


def compare_encoder_outputs(actual: dict, reference: dict,
                            tolerance: Optional[float] = None) -> tuple:
  """Compares encoder (and MLM) outputs by name.

  Args:
    actual, reference: dicts with `sequence_output`, `pooled_output`, `encoder_outputs`
      (list), optionally `mlm_logits`; arrays as in `../shared/HUB_API.md`.
    tolerance: bound on `max_rel` for every output; default
      `TOLERANCES["encoder"]["max_rel"]`.

  Returns:
    (figures, failures): figures maps output name (encoder_outputs_i per block) to
    `Difference.as_dict()` (+ `top5_agreement` for `mlm_logits`); failures lists
    human-readable violations (empty when everything is within tolerance).
  """
  if tolerance is None:
    tolerance = TOLERANCES["encoder"]["max_rel"]
  top_k = TOLERANCES["encoder"]["mlm_top_k"]
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
    agreement = top_k_agreement(actual["mlm_logits"], reference["mlm_logits"], top_k)
    figures.setdefault("mlm_logits", {})[f"top{top_k}_agreement"] = agreement
    if agreement < 1.0:
      failures.append(f"mlm_logits: top-{top_k} ids differ at "
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


ENCODER_INPUTS = ("input_word_ids", "input_mask", "input_type_ids")


def source_outputs(model, batch) -> dict:
  """The converted (in-memory) model's outputs on one probe batch, as numpy arrays.

  Args:
    model: `checkpoints.model.MobileBertModel`.
    batch: a dict of `probe_batch`.

  Returns:
    `sequence_output` float32 [B, S, H], `pooled_output` [B, H], `encoder_outputs`
    (list of L [B, S, H]) and, with an MLM head, `mlm_logits` [B, P, V].
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  inputs = {k: tf.constant(batch[k]) for k in ENCODER_INPUTS}
  out = model.encoder(inputs, training=False)
  result = {"sequence_output": out["sequence_output"].numpy(),
            "pooled_output": out["pooled_output"].numpy(),
            "encoder_outputs": [t.numpy() for t in out["encoder_outputs"][1:]]}
  if model.masked_lm is not None:
    result["mlm_logits"] = model.masked_lm(
        out["sequence_output"], tf.constant(batch["masked_lm_positions"])).numpy()
  return result


def verify_encoder(path: str, probes: Sequence[dict], reference: Sequence[dict], *,
                   with_mlm: bool) -> dict:
  """Reloads `encoder/` from disk and compares it with the converted model.

  Every probe batch goes through `mlm` (with an MLM head) or `__call__`, and the
  short probe also through the `serving_default` signature.

  Args:
    path: the saved encoder directory.
    probes: `probe_batch` output; reference: `source_outputs` of each probe.
    with_mlm: compare `mlm_logits` too.

  Returns:
    {"tolerance", "relative_to", "probe_shapes", "outputs": {name: worst figures}}.

  Raises:
    ValueError: any output over `TOLERANCES["encoder"]` (names up to 10 violations).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tolerance = TOLERANCES["encoder"]["max_rel"]
  loaded = tf.saved_model.load(path)
  figures_all, failures_all = {}, []
  for batch, ref in zip(probes, reference):
    inputs = {k: batch[k] for k in ENCODER_INPUTS}
    if with_mlm:
      got = loaded.mlm(dict(inputs, masked_lm_positions=batch["masked_lm_positions"]),
                       training=False)
    else:
      got = loaded(inputs, training=False)
    actual = {k: (v.numpy() if k != "encoder_outputs" else [t.numpy() for t in v])
              for k, v in got.items()}
    figures, failures = compare_encoder_outputs(actual, ref, tolerance)
    failures_all += [f"[B={batch['input_word_ids'].shape[0]}, "
                     f"S={batch['input_word_ids'].shape[1]}] {m}" for m in failures]
    for name, fig in figures.items():  # Keep the worst figure per output over probes.
      if name not in figures_all or fig.get("max_rel", 0) > figures_all[name].get("max_rel", 0):
        figures_all[name] = fig
  # The serving signature wraps the same function; check it on the short probe.
  batch, ref = probes[-1], reference[-1]
  signature = loaded.signatures["serving_default"](
      **{k: tf.constant(batch[k]) for k in ENCODER_INPUTS})
  d = difference(signature["pooled_output"].numpy(), ref["pooled_output"])
  if d.max_rel > tolerance:
    failures_all.append(f"serving_default pooled_output: max relative {d.max_rel:.3g}")
  if failures_all:
    raise ValueError("the reloaded encoder does not match the converted model: " +
                     "; ".join(failures_all[:10]))
  shapes = [list(b["input_word_ids"].shape) for b in probes]
  return {"tolerance": tolerance, "relative_to": "max|reference output|",
          "probe_shapes": shapes, "outputs": figures_all}


def verify_preprocessor(path: str, *, vocab_path: str, do_lower_case: bool,
                        seq_length: int, sentences: Sequence) -> dict:
  """Reloads `preprocessor/` and compares its ids with the original `FullTokenizer`.

  The reference is tf-models-official's copy of the original BERT `tokenization.py`
  (`official.nlp.tools.tokenization.FullTokenizer`) with the original's 200-character
  word limit (the copy allows 400); each row must equal [CLS] + ids[:seq_length - 2]
  + [SEP] exactly.

  Args:
    path: the saved preprocessor directory.
    vocab_path, do_lower_case: the tokenizer's vocab and casing.
    seq_length: the preprocessor's default output length.
    sentences: str or bytes probes (bytes are decoded as `FullTokenizer` does:
      UTF-8, invalid bytes ignored).

  Returns:
    {"sentences", "identical", "reference"}.

  Raises:
    ValueError: a wrong output shape or any differing row (names up to 3 sentences).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_text  # noqa: F401  # pylint: disable=g-import-not-at-top,unused-import  (registers the ops)
  from official.nlp.tools import tokenization  # pylint: disable=g-import-not-at-top
  from preprocessors import tokenizer as tokenizer_lib  # pylint: disable=g-import-not-at-top
  loaded = tf.saved_model.load(path)
  truth = tokenization.FullTokenizer(vocab_path, do_lower_case=do_lower_case)
  truth.wordpiece_tokenizer.max_input_chars_per_word = tokenizer_lib.MAX_INPUT_CHARS_PER_WORD
  out = loaded(tf.constant(list(sentences)))
  ids = out["input_word_ids"].numpy()
  if ids.shape != (len(sentences), seq_length):
    raise ValueError(f"the reloaded preprocessor returned shape {ids.shape}, expected "
                     f"{(len(sentences), seq_length)}")
  vocab = truth.vocab
  lengths = out["input_mask"].numpy().sum(axis=1)
  identical, mismatches = 0, []
  for row, sentence in enumerate(sentences):
    tokens = truth.convert_tokens_to_ids(truth.tokenize(sentence))[:seq_length - 2]
    want = [vocab["[CLS]"]] + tokens + [vocab["[SEP]"]]
    if ids[row][:int(lengths[row])].tolist() == want:
      identical += 1
    else:
      mismatches.append(sentence)
  if mismatches:
    raise ValueError(f"the reloaded preprocessor tokenizes {len(mismatches)} probe "
                     f"sentence(s) differently from the original BERT FullTokenizer: "
                     f"{mismatches[:3]}")
  return {"sentences": len(sentences), "identical": identical,
          "reference": "official.nlp.tools.tokenization.FullTokenizer"}


def check_float_outputs(label: str, got: dict, ref: dict, *, bound: str) -> dict:
  """Compares float outputs by name against `TOLERANCES[bound]["max_rel"]`.

  Args:
    label: the artifact, named in the error (e.g. "squad/mobilebert_float_384.tflite").
    got, ref: {output name: float array}, same shapes.
    bound: the `TOLERANCES` row.

  Returns:
    {output: {"max_abs", "max_rel"}}.

  Raises:
    ValueError: an output over the bound (names artifact, output, figure and bound).
  """
  max_rel = TOLERANCES[bound]["max_rel"]
  figures = {}
  for k in sorted(ref):
    d = difference(got[k], ref[k])
    figures[k] = {"max_abs": d.max_abs, "max_rel": d.max_rel}
    if d.max_rel > max_rel:
      raise ValueError(f"{label}: {k} differs from the float model by {d.max_abs:.3g} "
                       f"({d.max_rel:.3g} of max |{k}|), over the {max_rel:g} bound")
  return figures


def check_quantized_outputs(label: str, got: dict, ref: dict, *, bound: str) -> dict:
  """Compares quantized outputs by name: SQNR against `TOLERANCES[bound]`.

  Args:
    label: the artifact, named in the error.
    got, ref: {output name: float array [N, S]} (e.g. logits per window).
    bound: the `TOLERANCES` row, with `min_sqnr_db` and `target_sqnr_db`.

  Returns:
    {output: {"sqnr_db", "argmax_agreement" (over the last axis), "meets_target"}}.

  Raises:
    ValueError: an output under `min_sqnr_db`.
  """
  row = TOLERANCES[bound]
  figures = {}
  for k in sorted(ref):
    g, r = np.asarray(got[k]), np.asarray(ref[k])
    db = sqnr_db(g, r)
    figures[k] = {"sqnr_db": db,
                  "argmax_agreement": float(np.mean(g.argmax(-1) == r.argmax(-1))),
                  "meets_target": bool(db >= row["target_sqnr_db"])}
    if db < row["min_sqnr_db"]:
      raise ValueError(f"{label}: {k} SQNR {db:.1f} dB against the float model, under the "
                       f"{row['min_sqnr_db']:g} dB bound (quantization collapsed?)")
  return figures
