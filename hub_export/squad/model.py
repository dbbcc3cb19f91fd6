"""The SQuAD 1.1 question-answering model on the converted MobileBERT, MLPerf Mobile I/O.

Two forward passes compute the same function:

* `reference_logits`: Model Garden's `MobileBERTEncoder` as converted (the object every
  other bundle artifact is verified against) plus the `run_squad.py` span head
  (`checkpoints.model.SquadHead`: `logits = sequence_output @ output_weights^T +
  output_bias`, row 0 start, row 1 end; google-research `mobilebert/run_squad.py`
  `create_model`).
* `QaForward`: the same network written out op by op from the same weights, with
  switches for what mobile runtimes need (see `ForwardOptions`): a finite additive
  attention mask, and the TensorFlow Lite GPU rewrites. It is what the `.tflite` and
  ONNX variants are converted from; `tests/hub_export/squad/test_model.py` holds it to
  `reference_logits`.

MLPerf Mobile I/O (mlcommons/mobile_models, `v0_7/tflite/mobilebert_*_384*.tflite`):
inputs `input_ids`, `input_mask`, `segment_ids`, int32 [1, 384], in that order; outputs
`end_logits` then `start_logits`, float32 [1, 384].
"""

import dataclasses
import math
import warnings
from typing import Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from checkpoints import model as model_lib

SEQ_LENGTH = 384
INPUT_NAMES = ("input_ids", "input_mask", "segment_ids")
OUTPUT_NAMES = ("end_logits", "start_logits")
# google-research mobilebert/modeling.py `attention_layer`: adder = (1 - mask) * -10000.
ORIGINAL_MASK_VALUE = -10000.0
# The mask value of the quantized variants. A masked key gets probability
# <= exp(QUANT_MASK_VALUE + max score spread); with -64 that is below 1.6e-28 * e^spread,
# far under int8 softmax's output step (1/256), while the tensor of masked scores keeps
# a range of (scores' range + 64) instead of (scores' range + 1e4 .. 1e9), which would
# leave all real scores on one or two int8 steps (the collapse of quantized BERTs).
QUANT_MASK_VALUE = -64.0


@dataclasses.dataclass(frozen=True)
class ForwardOptions:
  """How `QaForward` writes the network.

  Attributes:
    mask_value: added to the attention scores of padding keys (float, < 0).
    nnapi: write the two attention products per head as FULLY_CONNECTED ops with a
      runtime weight operand instead of BATCH_MATMUL (which NNAPI's int8 path lacks);
      q k^T == FC(q, weights=k) and p v == FC(p, weights=v^T) exactly.
  """
  mask_value: float = ORIGINAL_MASK_VALUE
  nnapi: bool = False


# What `QaForward` writes differently from the plain conversion of Model Garden's graph
# (squad/mobilebert_float_384.tflite), op by op, each an exact identity; together they
# leave no op that TFLite's GPU delegate rules (gpu_compatibility.cc) reject.
# (plain op, replacement, why it is the same function)
GPU_REWRITES = (
    ("BROADCAST_TO of the [B, 1, S] padding mask to [B, S, S] (Model Garden "
     "SelfAttentionMask), then CAST and SUB/MUL on [B, 1, S, S]",
     "GATHER of a [1, 1, S] additive key mask from the constant table [[mask_value], "
     "[0]] by input_mask, broadcast by the ADD onto the [N, S, S] scores",
     "the mask depends on the key position only and input_mask is 0 or 1; "
     "BROADCAST_TO is not a GPU op (and no int32 CAST is left for NNAPI)"),
    ("STRIDED_SLICE with shrink_axis_mask (logits[..., 0] and logits[..., 1] of the "
     "[B, S, 2] span logits)",
     "two FULLY_CONNECTED heads with one output column each (start: row 0 of "
     "cls/squad/output_weights, end: row 1), then RESHAPE to [1, S]",
     "a column of x W^T + b is x w_k + b_k; the GPU delegate rejects shrink_axis_mask"),
    ("3-D EinsumDense + 4-D attention einsums of Keras MultiHeadAttention "
     "(TRANSPOSE [0, 2, 3, 1] etc.)",
     "2-D FULLY_CONNECTED on [S, width] and per-head [N, S, h] BATCH_MATMUL",
     "the same sums of products with batch 1 folded away"),
    ("Keras Softmax adding -1e9 to masked scores", "ADD of mask_value (-10000, the "
     "original google-research modeling.py value, in the float variants)",
     "exp(-10000 + s) and exp(-1e9 + s) both underflow to 0 in float32"),
)


@dataclasses.dataclass
class QaWeights:
  """The network's weights as numpy float32 arrays (canonical names of
  `checkpoints.model.target_variables`), plus the config."""
  config: object
  values: dict

  @classmethod
  def from_model(cls, model: model_lib.MobileBertModel) -> "QaWeights":
    """Reads every encoder and SQuAD-head variable of `model`.

    Raises:
      ValueError: `model.squad` is None (see `ensure_squad_head`).
    """
    if model.squad is None:
      raise ValueError("the model has no SQuAD head (cls/squad/*); call "
                       "ensure_squad_head(model, seed=...) first")
    values = {k: v.numpy().astype(np.float32)
              for k, v in model_lib.target_variables(model).items()
              if not k.startswith("mlm/")}
    return cls(config=model.config, values=values)


def ensure_squad_head(model: model_lib.MobileBertModel, *, seed: int = 0,
                      log=print) -> bool:
  """Gives `model` a SQuAD head if it has none; returns True if one was made.

  The fresh head is seeded like `run_squad.py` initializes it: output_weights
  truncated_normal(stddev=0.02) (drawn as a normal clipped at 2 stddev), output_bias
  zeros. It is UNTRAINED: a loud warning goes to `log` and to `warnings`.
  """
  if model.squad is not None:
    return False
  hidden = model.config.hidden_size
  rng = np.random.default_rng(seed)
  head = model_lib.SquadHead(hidden)
  head.output_weights.assign(
      np.clip(0.02 * rng.standard_normal((2, hidden)), -0.04, 0.04).astype(np.float32))
  model.squad = head
  message = (f"WARNING: the checkpoint has no SQuAD head (cls/squad/*); a FRESH, "
             f"UNTRAINED head (seed {seed}) is used: the squad/ answers are meaningless "
             "until you export a SQuAD-fine-tuned checkpoint (run_squad.py)")
  log("!" * 78 + "\n" + message + "\n" + "!" * 78)
  warnings.warn(message, RuntimeWarning, stacklevel=2)
  return True


def reference_logits(model: model_lib.MobileBertModel, input_ids, input_mask,
                     segment_ids) -> dict:
  """Span logits from Model Garden's encoder and the SQuAD head (the ground truth).

  Args:
    model: converted model with a `squad` head.
    input_ids, input_mask, segment_ids: int32 [B, S], S <= max_position_embeddings.

  Returns:
    dict `end_logits`, `start_logits`: float32 [B, S] tensors.
  """
  out = model.encoder(dict(input_word_ids=input_ids, input_mask=input_mask,
                           input_type_ids=segment_ids), training=False)
  seq = out["sequence_output"]
  logits = tf.einsum("bsh,kh->bsk", seq, model.squad.output_weights) + \
      model.squad.output_bias
  return {"end_logits": logits[:, :, 1], "start_logits": logits[:, :, 0]}


# An affine re-parametrization of one NoNorm output tensor: the graph carries
# (true - shift) / scale instead of the true values; float64 [width] each.
Affine = Tuple[np.ndarray, np.ndarray]


def _fold_dense(kernel, bias, x_dom: Optional[Affine], out_dom: Optional[Affine]):
  """Kernel [in, out] and bias [out] for an input carried in `x_dom`, giving the output
  divided by `out_dom`'s scale (for a residual ADD into a tensor carried in `out_dom`).

  x W + b with x = x' * s + mu is x' (diag(s) W) + (mu W + b); an output added to a
  tensor r = r' s_o + mu_o is summed as (out / s_o) + r' (the shift stays with r').
  """
  k = kernel.astype(np.float64)
  b = bias.astype(np.float64)
  if x_dom is not None:
    mu, s = x_dom
    b = b + mu @ k
    k = k * s[:, None]
  if out_dom is not None:
    k = k / out_dom[1][None, :]
    b = b / out_dom[1]
  return k.astype(np.float32), b.astype(np.float32)


# Exponent of the per-channel scale: scale = half_range ** EQUALIZATION_ALPHA. 1 gives
# every channel the range [-1, 1]; 0.5 splits the range disparity between activations
# and the (per-output-channel int8) weights they are folded into, as the square-root
# rule of Nagel et al. 2019 and SmoothQuant's alpha = 0.5 do. Measured on the seeded
# full-size config, 20 calibration questions, XQuAD English held-out windows, int8
# TFLite start/end logit SQNR: no equalization -0.1/17.7 dB; shift only (alpha 0) and
# 0.3 see README; 0.5: 20.0/26.0 dB; 1.0: 17.7/26.6 dB.
EQUALIZATION_ALPHA = 0.5


def calibrate_equalization(weights: QaWeights, batches, *,
                           seq_length: int = SEQ_LENGTH,
                           alpha: float = EQUALIZATION_ALPHA) -> Dict[str, Affine]:
  """Per-channel shift and scale of every NoNorm output for `QaForward(equalization=)`.

  MobileBERT's NoNorm (`x * gamma + beta`, no centering) leaves every hidden state with
  a large position-independent per-channel offset (`beta` and the biases accumulated
  down the residual chain) and channels of very different ranges. A per-tensor int8
  range is then set by the offsets and the widest channels, and the position-dependent
  part that carries the answer falls on a few int8 steps: on the full-size seeded demo
  the final hidden state's per-channel mean |offset| is 0.53 while its variation over
  positions has a median std of 0.024 (`README.md`, "int8 fidelity"). Carrying each
  NoNorm output as (x - shift) / scale with shift = the channel's calibration mid-range
  and scale = its half-range ** `alpha` (alpha 1: every channel spans [-1, 1]) evens
  out the channels; folding the inverse into
  the adjacent weights (`_fold_dense`, the NoNorm's own gamma/beta) keeps the float
  function exactly (channel-wise shifting and scaling of Outlier Suppression+, Wei et
  al. 2023, arXiv:2304.09145; the scaling part is the cross-layer equalization of
  Nagel et al. 2019, arXiv:1906.04721).

  Args:
    weights: the network (normalization_type "no_norm").
    batches: calibration inputs, dicts of int32 [1, S] `INPUT_NAMES` arrays.
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
  fwd = QaForward(weights, seq_length=seq_length)
  fwd._record = {}  # pylint: disable=protected-access
  n = 0
  for batch in batches:
    fwd(*(tf.constant(np.asarray(batch[k], np.int32)) for k in INPUT_NAMES))
    n += 1
  if not n:
    raise ValueError("calibrate_equalization needs at least one calibration window")
  out = {}
  for prefix, (lo, hi) in fwd._record.items():  # pylint: disable=protected-access
    half = (hi - lo) / 2.0
    floor = max(float(np.max(half)) * 1e-3, 1e-12)
    out[prefix] = ((hi + lo) / 2.0, np.maximum(half, floor) ** alpha)
  return out


class QaForward(tf.Module):
  """The QA network written out op by op (see `ForwardOptions`), fixed batch 1.

  Call: `(input_ids, input_mask, segment_ids)`, int32 [1, S] each ->
  `{"end_logits", "start_logits"}` float32 [1, S]. Weights are constants of the traced
  graph (what the TFLite and ONNX converters need). With `equalization` (from
  `calibrate_equalization`) each NoNorm output is carried shifted and scaled per
  channel with the inverse folded into the weights: the same function in float, with
  int8-friendly activation ranges.
  """

  def __init__(self, weights: QaWeights, *, seq_length: int = SEQ_LENGTH,
               options: Optional[ForwardOptions] = None,
               equalization: Optional[Dict[str, Affine]] = None):
    super().__init__(name="qa_forward")
    c = weights.config
    if not 1 <= seq_length <= c.max_position_embeddings:
      raise ValueError(f"seq_length={seq_length} must be in [1, "
                       f"{c.max_position_embeddings}] (max_position_embeddings)")
    if c.hidden_act.lower() not in ("relu", "gelu"):
      raise ValueError(f"hidden_act={c.hidden_act!r}: only relu (released configs) and "
                       "gelu are supported by the mobile forward pass")
    self._w = weights.values
    self._c = c
    self._s = seq_length
    self._opt = options or ForwardOptions()
    if equalization and c.normalization_type != "no_norm":
      raise ValueError("equalization needs normalization_type 'no_norm'")
    self._eq = dict(equalization or {})
    self._record = None  # prefix -> per-channel (min, max), filled by eager calls

  def __call__(self, input_ids, input_mask, segment_ids):
    c, w, s = self._c, self._w, self._s
    nh = c.num_attention_heads
    hd = c.intra_bottleneck_size // nh
    # Embeddings (Model Garden MobileBertEmbedding.call): trigram concat of the word
    # embeddings of t+1, t, t-1 (zero beyond the ends), projection, + position + type.
    word = tf.gather(tf.constant(w["embeddings/word_embeddings"]),
                     tf.reshape(input_ids, [s]))
    word3 = tf.reshape(word, [1, s, -1])  # slices and pads are 3-D for the GPU rules
    nxt = tf.pad(word3[:, 1:], [[0, 0], [0, 1], [0, 0]])
    prv = tf.pad(word3[:, :-1], [[0, 0], [1, 0], [0, 0]])
    x = tf.reshape(tf.concat([nxt, word3, prv], axis=2), [s, -1])  # [S, 3E]
    x = self._dense(x, "embeddings/projection")
    x = x + tf.constant(w["embeddings/position_embeddings"][:s])
    x = x + tf.gather(tf.constant(w["embeddings/type_embeddings"]),
                      tf.reshape(segment_ids, [s]))
    x, x_dom = self._norm(x, "embeddings/norm")
    # Additive key mask, [1, 1, S]: mask_value where input_mask is 0, 0 where it is 1,
    # looked up from a 2-row table (GATHER), so no int32 -> float CAST is needed.
    table = np.array([[self._opt.mask_value], [0.0]], np.float32)
    adder = tf.reshape(tf.gather(tf.constant(table), tf.reshape(input_mask, [s])),
                       [1, 1, s])
    for i in range(c.num_hidden_layers):
      x, x_dom = self._block(x, x_dom, adder, f"layer_{i}", nh, hd)
    head_w, head_b = w["squad/output_weights"], w["squad/output_bias"]
    ks, bs = _fold_dense(head_w[0:1].T, head_b[0:1], x_dom, None)
    ke, be = _fold_dense(head_w[1:2].T, head_b[1:2], x_dom, None)
    start = tf.matmul(x, tf.constant(ks)) + tf.constant(bs)  # [S, 1]
    end = tf.matmul(x, tf.constant(ke)) + tf.constant(be)
    return {"end_logits": tf.reshape(end, [1, s]),
            "start_logits": tf.reshape(start, [1, s])}

  def _dense(self, x, prefix, activation=None, *, x_dom=None, out_dom=None):
    k, b = _fold_dense(self._w[prefix + "/kernel"], self._w[prefix + "/bias"], x_dom,
                       out_dom)
    y = tf.matmul(x, tf.constant(k)) + tf.constant(b)
    if activation == "relu":
      y = tf.nn.relu(y)
    elif activation == "gelu":  # tanh approximation (original `gelu`).
      y = 0.5 * y * (1.0 + tf.tanh(math.sqrt(2.0 / math.pi) * (y + 0.044715 * y * y * y)))
    return y

  def _norm(self, x, prefix, in_dom=None):
    """NoNorm/LayerNorm of `x` (carried in `in_dom`); returns (output, its domain)."""
    gamma = self._w[prefix + "/gamma"].astype(np.float64)
    beta = self._w[prefix + "/beta"].astype(np.float64)
    if self._c.normalization_type != "no_norm":
      mean, var = tf.nn.moments(x, axes=[-1], keepdims=True)
      return (x - mean) * tf.math.rsqrt(var + 1e-12) * tf.constant(gamma, tf.float32) + \
          tf.constant(beta, tf.float32), None
    out_dom = self._eq.get(prefix)
    if in_dom is not None:  # x = x' s + mu
      beta = beta + in_dom[0] * gamma
      gamma = gamma * in_dom[1]
    if out_dom is not None:  # carry (y - shift) / scale
      gamma = gamma / out_dom[1]
      beta = (beta - out_dom[0]) / out_dom[1]
    y = x * tf.constant(gamma, tf.float32) + tf.constant(beta, tf.float32)
    if self._record is not None:
      v = y.numpy().reshape(-1, y.shape[-1]).astype(np.float64)
      lo, hi = v.min(0), v.max(0)
      if prefix in self._record:
        lo = np.minimum(lo, self._record[prefix][0])
        hi = np.maximum(hi, self._record[prefix][1])
      self._record[prefix] = (lo, hi)
    return y, out_dom

  def _attention(self, q_in, q_dom, v_in, v_dom, out_dom, adder, p, nh, hd):
    s = self._s
    w = self._w
    # Keras MultiHeadAttention: kernels [in, N, h]; query scaled by 1/sqrt(h).
    def proj(x, name, dom):  # -> [S, N*h], head-major columns
      k = w[f"{p}/attention/{name}/kernel"]
      k, b = _fold_dense(k.reshape(k.shape[0], -1),
                         w[f"{p}/attention/{name}/bias"].reshape(-1), dom, None)
      return tf.matmul(x, tf.constant(k)) + tf.constant(b)
    q = proj(q_in, "query", q_dom) * (1.0 / math.sqrt(hd))
    k = proj(q_in, "key", q_dom)
    v = proj(v_in, "value", v_dom)
    if self._opt.nnapi:
      ctxs = []
      for head in range(nh):
        cols = slice(head * hd, (head + 1) * hd)
        qh, kh, vh = q[:, cols], k[:, cols], v[:, cols]  # [S, h]
        scores = tf.matmul(qh, kh, transpose_b=True) + adder[0]  # FC(q, weights=k)
        probs = tf.nn.softmax(scores, axis=-1)  # [S, S]
        # v^T through a 3-D TRANSPOSE: a 2-D transpose would be folded back into a
        # BATCH_MATMUL by the converter.
        vt = tf.reshape(tf.transpose(tf.reshape(vh, [1, s, hd]), [0, 2, 1]), [hd, s])
        ctxs.append(tf.matmul(probs, vt, transpose_b=True))  # FC(p, weights=v^T)
      ctx = tf.concat(ctxs, axis=1)  # [S, N*h]
    else:
      heads = lambda t: tf.transpose(tf.reshape(t, [s, nh, hd]), [1, 0, 2])  # pylint: disable=unnecessary-lambda-assignment
      scores = tf.matmul(heads(q), heads(k), transpose_b=True) + adder  # [N, S, S]
      ctx = tf.matmul(tf.nn.softmax(scores, axis=-1), heads(v))  # [N, S, h]
      ctx = tf.reshape(tf.transpose(ctx, [1, 0, 2]), [s, nh * hd])
    ko = w[f"{p}/attention/output/kernel"]
    ko, bo = _fold_dense(ko.reshape(-1, ko.shape[-1]), w[f"{p}/attention/output/bias"],
                         None, out_dom)
    return tf.matmul(ctx, tf.constant(ko)) + tf.constant(bo)

  def _block(self, x, x_dom, adder, p, nh, hd):
    """One transformer block; `x` is carried in `x_dom`. Returns (output, its domain)."""
    c = self._c
    act = c.hidden_act.lower()
    layer_input, li_dom = self._norm(
        self._dense(x, f"{p}/bottleneck_input/dense", x_dom=x_dom),
        f"{p}/bottleneck_input/norm")
    if c.use_bottleneck_attention:
      q_in, q_dom, v_in, v_dom = layer_input, li_dom, layer_input, li_dom
    elif c.key_query_shared_bottleneck:
      q_in, q_dom = self._norm(
          self._dense(x, f"{p}/kq_shared_bottleneck/dense", x_dom=x_dom),
          f"{p}/kq_shared_bottleneck/norm")
      v_in, v_dom = x, x_dom
    else:
      q_in, q_dom, v_in, v_dom = x, x_dom, x, x_dom
    # Residual sums are formed in the domain of the tensor they add onto.
    att = self._attention(q_in, q_dom, v_in, v_dom, li_dom, adder, p, nh, hd)
    h, h_dom = self._norm(att + layer_input, f"{p}/attention/norm", li_dom)
    for j in range(c.num_feedforward_networks):
      inter = self._dense(h, f"{p}/ffn_{j}/intermediate", activation=act, x_dom=h_dom)
      o = self._dense(inter, f"{p}/ffn_{j}/output", out_dom=h_dom)
      h, h_dom = self._norm(o + h, f"{p}/ffn_{j}/norm", h_dom)
    out = self._dense(h, f"{p}/bottleneck_output/dense", x_dom=h_dom, out_dom=x_dom)
    return self._norm(out + x, f"{p}/bottleneck_output/norm", x_dom)


def mlperf_signature(fn, seq_length: int = SEQ_LENGTH, batch: Optional[int] = 1):
  """A `tf.function` with the MLPerf inputs (int32 [batch, S]) around `fn`."""
  specs = [tf.TensorSpec([batch, seq_length], tf.int32, name=n) for n in INPUT_NAMES]

  @tf.function(input_signature=specs, autograph=False)
  def serve(input_ids, input_mask, segment_ids):
    out = fn(input_ids, input_mask, segment_ids)
    return {"end_logits": tf.identity(out["end_logits"], name="end_logits"),
            "start_logits": tf.identity(out["start_logits"], name="start_logits")}
  return serve
