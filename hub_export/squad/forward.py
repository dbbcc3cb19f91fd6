"""The SQuAD network written out op by op for the mobile converters (`QaForward`).

`QaForward` computes the same function as `model.reference_logits` (Model Garden's
`MobileBERTEncoder` as converted, with the model's masking of padded attention keys, plus
the `run_squad.py` span head) from the same weights, one TensorFlow op at a time, with
switches for what mobile runtimes need (`ForwardOptions`): the finite attention mask of
the quantized graphs and an NNAPI-friendly form of the attention products; its graph
always has the TensorFlow Lite GPU rewrites (`GPU_REWRITES`). With `equalization`
(`equalization.calibrate_equalization`) every NoNorm output is carried shifted and scaled
per channel. It is what the GPU and int8 `.tflite` variants and the int8 ONNX model are
converted from; `tests/hub_export/squad/test_forward.py` holds it to
`model.reference_logits` in both masking modes.
"""

import dataclasses
import math
from typing import Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from checkpoints import model as model_lib
from hub_export.squad import constants

# The first release of google-research mobilebert/modeling.py (commit c3de5da58b30),
# `attention_layer`: adder = (1 - mask) * -10000. For a softmax row with a visible key it
# gives the padded keys zero weight in float32, as Keras' masked softmax (-1e9) does;
# the later revision with quantization-aware training masks with -6 instead
# (`checkpoints.model.ORIGINAL_MASKED_SCORE`, the "original" mode).
FIRST_RELEASE_MASK_VALUE = -10000.0


def additive_mask_value(attention_mask: str, *, quantized: bool) -> float:
  """The value `QaForward` adds to the attention scores of padded keys.

  Args:
    attention_mask: the masking mode, one of `checkpoints.model.ATTENTION_MASKS`.
      "original": scores * mask + (1 - mask) * -6 (`ORIGINAL_MASKED_SCORE`, the same in
      float and int8: the value was chosen for quantization-aware training);
      "model_garden": zero weight on padded keys, -10000 in float
      (`FIRST_RELEASE_MASK_VALUE`) and `constants.QUANT_MASK_VALUE` (-64) in the
      quantized graphs.
    quantized: the graph is converted to int8.

  Returns:
    The additive mask value (float, < 0).

  Raises:
    ValueError: unknown `attention_mask`.
  """
  if attention_mask == "original":
    return model_lib.ORIGINAL_MASKED_SCORE
  if attention_mask == "model_garden":
    return constants.QUANT_MASK_VALUE if quantized else FIRST_RELEASE_MASK_VALUE
  raise ValueError(f"attention_mask={attention_mask!r} is not a masking mode; choose one "
                   f"of {list(model_lib.ATTENTION_MASKS)}")


@dataclasses.dataclass(frozen=True)
class ForwardOptions:
  """How `QaForward` writes the network.

  Attributes:
    quantized: the graph is converted to int8: in the "model_garden" masking mode the
      padded keys get `constants.QUANT_MASK_VALUE` instead of -10000
      (`additive_mask_value`); the "original" mode is the same either way.
    nnapi: write the two attention products per head as FULLY_CONNECTED ops with a
      runtime weight operand instead of BATCH_MATMUL (which NNAPI's int8 path lacks);
      q k^T == FC(q, weights=k) and p v == FC(p, weights=v^T) exactly.
  """
  quantized: bool = False
  nnapi: bool = False


# What `QaForward` writes differently from the plain conversion of Model Garden's graph
# (squad/mobilebert_float_384.tflite), op by op, each an exact identity; together they
# leave no op that TFLite's GPU delegate rules (gpu_compatibility.cc) reject.
# (plain op, replacement, why it is the same function)
GPU_REWRITES = (
    ("BROADCAST_TO of the [B, 1, S] padding mask to [B, S, S] (Model Garden "
     "SelfAttentionMask), then CAST and SUB/MUL/ADD on [B, 1, S, S]",
     "GATHER of a [1, 1, S] additive key mask from the constant table [[v], [0]] by "
     "input_mask (v = additive_mask_value), broadcast by the ADD onto the [N, S, S] "
     "scores; in the 'original' mode also a [S, 1] key mask GATHERed from [[0], [1]] by "
     "input_mask, multiplying the projected keys [S, N*h]",
     "the mask depends on the key position only and input_mask is 0 or 1; "
     "q.(k m)/sqrt(h) == (q.k/sqrt(h)) m for a key mask m, so scores * mask + "
     "(1 - mask) * -6 is that MUL and ADD; BROADCAST_TO is not a GPU op (and no int32 "
     "CAST is left for NNAPI)"),
    ("STRIDED_SLICE with shrink_axis_mask (logits[..., 0] and logits[..., 1] of the "
     "[B, S, 2] span logits)",
     "two FULLY_CONNECTED heads with one output column each (start: row 0 of "
     "cls/squad/output_weights, end: row 1), then RESHAPE to [1, S]",
     "a column of x W^T + b is x w_k + b_k; the GPU delegate rejects shrink_axis_mask"),
    ("3-D EinsumDense + 4-D attention einsums of Keras MultiHeadAttention "
     "(TRANSPOSE [0, 2, 3, 1] etc.)",
     "2-D FULLY_CONNECTED on [S, width] and per-head [N, S, h] BATCH_MATMUL",
     "the same sums of products with batch 1 folded away"),
    ("Keras Softmax adding -1e9 to masked scores (the 'model_garden' mode)",
     "ADD of -10000 in the float variants (FIRST_RELEASE_MASK_VALUE, the first release "
     "of google-research modeling.py)",
     "in a row with a visible key, exp(-10000 + s) and exp(-1e9 + s) both underflow to "
     "0 relative to it in float32"),
)


@dataclasses.dataclass
class QaWeights:
  """The network's weights as numpy float32 arrays (canonical names of
  `checkpoints.model.target_variables`), plus the config and the masking mode of padded
  attention keys (`checkpoints.model.ATTENTION_MASKS`)."""
  config: object
  values: dict
  attention_mask: str = model_lib.DEFAULT_ATTENTION_MASK

  @classmethod
  def from_model(cls, model: model_lib.MobileBertModel) -> "QaWeights":
    """Reads every encoder and SQuAD-head variable of `model`, and its `attention_mask`.

    Raises:
      ValueError: `model.squad` is None (see `model.ensure_squad_head`).
    """
    if model.squad is None:
      raise ValueError("the model has no SQuAD head (cls/squad/*); call "
                       "hub_export.squad.model.ensure_squad_head(model, seed=...) first")
    values = {k: v.numpy().astype(np.float32)
              for k, v in model_lib.target_variables(model).items()
              if not k.startswith("mlm/")}
    return cls(config=model.config, values=values, attention_mask=model.attention_mask)


# An affine re-parametrization of one NoNorm output tensor: the graph carries
# (true - shift) / scale instead of the true values; float64 [width] each.
Affine = Tuple[np.ndarray, np.ndarray]


def fold_dense(kernel, bias, x_dom: Optional[Affine], out_dom: Optional[Affine]):
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


class QaForward(tf.Module):
  """The QA network written out op by op (see `ForwardOptions`), fixed batch 1.

  Call: `(input_ids, input_mask, segment_ids)`, int32 [1, S] each ->
  `{"end_logits", "start_logits"}` float32 [1, S]. Weights are constants of the traced
  graph (what the TFLite and ONNX converters need). Padded keys are masked as
  `weights.attention_mask` says, adding `additive_mask_value(mode, quantized=...)`.
  With `equalization` (from `equalization.calibrate_equalization`) each NoNorm output
  is carried shifted and scaled per channel with the inverse folded into the weights:
  the same function in float, with int8-friendly activation ranges. While `_record` is
  a dict (set by `equalization.calibrate_equalization`), eager calls add each NoNorm
  output's per-channel (min, max) to it, keyed by the NoNorm's variable prefix.

  Raises (constructor):
    ValueError: `seq_length` outside [1, max_position_embeddings], an unsupported
      `hidden_act`, an unknown `weights.attention_mask`, or `equalization` with a
      layer_norm config.
  """

  def __init__(self, weights: QaWeights, *, seq_length: int = constants.MAX_SEQ_LENGTH,
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
    self._mode = weights.attention_mask
    self._mask_value = additive_mask_value(self._mode, quantized=self._opt.quantized)
    if equalization and c.normalization_type != "no_norm":
      raise ValueError("equalization needs normalization_type 'no_norm'")
    self._eq = dict(equalization or {})
    self._record = None  # prefix -> per-channel (min, max), filled by eager calls

  def __call__(self, input_ids, input_mask, segment_ids):
    x, x_dom = self.encode(input_ids, input_mask, segment_ids)
    w, s = self._w, self._s
    head_w, head_b = w["squad/output_weights"], w["squad/output_bias"]
    ks, bs = fold_dense(head_w[0:1].T, head_b[0:1], x_dom, None)
    ke, be = fold_dense(head_w[1:2].T, head_b[1:2], x_dom, None)
    start = tf.matmul(x, tf.constant(ks)) + tf.constant(bs)  # [S, 1]
    end = tf.matmul(x, tf.constant(ke)) + tf.constant(be)
    return {"end_logits": tf.reshape(end, [1, s]),
            "start_logits": tf.reshape(start, [1, s])}

  def encode(self, input_ids, input_mask, segment_ids):
    """The encoder: int32 [1, S] each -> (x, x_dom).

    x: float32 [S, H], the last block's output (`sequence_output` of the one row)
    carried in `x_dom` (None, or the (shift, scale) of its equalization: the true
    values are x * scale + shift); heads fold `x_dom` into their weights
    (`fold_dense`).
    """
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
    # Key masks looked up from 2-row tables by input_mask (GATHER), so no int32 -> float
    # CAST is needed: the additive [1, 1, S] mask (the mask value where input_mask is 0,
    # 0 where it is 1) and, in the "original" mode, the [S, 1] 0/1 mask that multiplies
    # the keys (see `GPU_REWRITES`).
    ids = tf.reshape(input_mask, [s])
    table = np.array([[self._mask_value], [0.0]], np.float32)
    masks = (tf.reshape(tf.gather(tf.constant(table), ids), [1, 1, s]),
             tf.gather(tf.constant([[0.0], [1.0]]), ids)
             if self._mode == "original" else None)
    for i in range(c.num_hidden_layers):
      x, x_dom = self._block(x, x_dom, masks, f"layer_{i}", nh, hd)
    return x, x_dom

  def _dense(self, x, prefix, activation=None, *, x_dom=None, out_dom=None):
    k, b = fold_dense(self._w[prefix + "/kernel"], self._w[prefix + "/bias"], x_dom,
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

  def _attention(self, q_in, q_dom, v_in, v_dom, out_dom, masks, p, nh, hd):
    """Self-attention; `masks` = (additive [1, 1, S], key multiplier [S, 1] or None)."""
    s = self._s
    w = self._w
    adder, key_mask = masks
    # Keras MultiHeadAttention: kernels [in, N, h]; query scaled by 1/sqrt(h).
    def proj(x, name, dom):  # -> [S, N*h], head-major columns
      k = w[f"{p}/attention/{name}/kernel"]
      k, b = fold_dense(k.reshape(k.shape[0], -1),
                         w[f"{p}/attention/{name}/bias"].reshape(-1), dom, None)
      return tf.matmul(x, tf.constant(k)) + tf.constant(b)
    q = proj(q_in, "query", q_dom) * (1.0 / math.sqrt(hd))
    k = proj(q_in, "key", q_dom)
    if key_mask is not None:  # q.(k m)/sqrt(h) == (q.k/sqrt(h)) m: scores * mask
      k = k * key_mask
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
    ko, bo = fold_dense(ko.reshape(-1, ko.shape[-1]), w[f"{p}/attention/output/bias"],
                         None, out_dom)
    return tf.matmul(ctx, tf.constant(ko)) + tf.constant(bo)

  def _block(self, x, x_dom, masks, p, nh, hd):
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
    att = self._attention(q_in, q_dom, v_in, v_dom, li_dom, masks, p, nh, hd)
    h, h_dom = self._norm(att + layer_input, f"{p}/attention/norm", li_dom)
    for j in range(c.num_feedforward_networks):
      inter = self._dense(h, f"{p}/ffn_{j}/intermediate", activation=act, x_dom=h_dom)
      o = self._dense(inter, f"{p}/ffn_{j}/output", out_dom=h_dom)
      h, h_dom = self._norm(o + h, f"{p}/ffn_{j}/norm", h_dom)
    out = self._dense(h, f"{p}/bottleneck_output/dense", x_dom=h_dom, out_dom=x_dom)
    return self._norm(out + x, f"{p}/bottleneck_output/norm", x_dom)



def mlperf_signature(fn, seq_length: int = constants.MAX_SEQ_LENGTH,
                     batch: Optional[int] = 1):
  """A `tf.function` with the MLPerf inputs around `fn`.

  Args:
    fn: called with `input_ids`, `input_mask`, `segment_ids` by keyword (int32
      [batch, S] each), returns a dict with `end_logits` and `start_logits`.
    seq_length: S.
    batch: the fixed batch size of the signature (None: any).

  Returns:
    The `tf.function`, input signature `constants.INPUT_NAMES`, outputs
    `constants.OUTPUT_NAMES` (tensors named after them, in that order).
  """
  specs = [tf.TensorSpec([batch, seq_length], tf.int32, name=n)
           for n in constants.INPUT_NAMES]

  @tf.function(input_signature=specs, autograph=False)
  def serve(input_ids, input_mask, segment_ids):
    out = fn(input_ids=input_ids, input_mask=input_mask, segment_ids=segment_ids)
    return {k: tf.identity(out[k], name=k) for k in constants.OUTPUT_NAMES}
  return serve
