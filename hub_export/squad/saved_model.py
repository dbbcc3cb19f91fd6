"""squad/saved_model/: MLPerf tensor signature plus raw strings in, best answer span out.

Loading: `import tensorflow_text` (registers FastWordpiece), `obj = tf.saved_model.load(p)`.

Serving signatures (named outputs):
* `mlperf` (also `serving_default`): `input_ids`, `input_mask`, `segment_ids` int32
  [1, S] -> `end_logits`, `start_logits` float32 [1, S] (Model Garden encoder + the
  `run_squad.py` head, `model.reference_logits`; S = 384 for MLPerf).
* `answer`: `question`, `context` scalar strings -> `answer` (string, the original-context
  substring), `start_byte`, `limit_byte` (int64 byte offsets into `context`, -1 if no
  span), `score` (float32, start + end logit). Windows, n-best and max-context follow
  `features.py` exactly (defaults `constants.py`: 384 positions, doc stride 128, query
  length 64, n-best 20, max answer length 30); tokens and byte offsets from the
  bundle's FullTokenizer-exact tokenizer. All windows of a question run as one batch.
Attributes: `vocab_file` (asset), `do_lower_case` (bool variable), `seq_length`,
`doc_stride`, `max_query_length`, `n_best_size`, `max_answer_length` (int32 variables).

`export_verified` saves it, reloads it from disk and checks both signatures.
"""

import os
from typing import List, Tuple

import tensorflow as tf
import tensorflow_text  # noqa: F401  # pylint: disable=unused-import  (FastWordpiece)

from checkpoints import model as model_lib
from hub_export import encoder as encoder_lib
from hub_export.squad import checks
from hub_export.squad import constants
from hub_export.squad import features as features_lib
from hub_export.squad import model as qa_model
from preprocessors import tokenizer as tokenizer_lib
from preprocessors import vocab as vocab_lib


class SquadModule(tf.Module):
  """The exported object; see the module docstring."""

  def __init__(self, model: model_lib.MobileBertModel, *, vocab_file: str,
               do_lower_case: bool, seq_length: int = constants.MAX_SEQ_LENGTH,
               doc_stride: int = constants.DOC_STRIDE,
               max_query_length: int = constants.MAX_QUERY_LENGTH,
               n_best_size: int = constants.N_BEST_SIZE,
               max_answer_length: int = constants.MAX_ANSWER_LENGTH):
    super().__init__(name="squad")
    if model.squad is None:
      raise ValueError("the model has no SQuAD head; call model.ensure_squad_head first")
    vocab = vocab_lib.load_vocab(vocab_file)
    self._holder = encoder_lib.ModelHolder(model)
    self.model_variables = list(model.encoder.variables) + list(model.squad.variables)
    self.vocab_file = tf.saved_model.Asset(vocab.path)
    self.do_lower_case = tf.Variable(bool(do_lower_case), trainable=False,
                                     name="do_lower_case")
    self._s, self._stride, self._q = seq_length, doc_stride, max_query_length
    self._nbest, self._maxlen = n_best_size, max_answer_length
    for name, value in (("seq_length", seq_length), ("doc_stride", doc_stride),
                        ("max_query_length", max_query_length),
                        ("n_best_size", n_best_size),
                        ("max_answer_length", max_answer_length)):
      setattr(self, name, tf.Variable(value, dtype=tf.int32, trainable=False, name=name))
    self._cls = vocab.special_ids["start_of_sequence_id"]
    self._sep = vocab.special_ids["end_of_segment_id"]
    self._tokenizer = tokenizer_lib.ParityBertTokenizer(
        vocab.tokens, do_lower_case=do_lower_case, unk_id=vocab.special_ids["unk_id"])
    specs = [tf.TensorSpec([1, seq_length], tf.int32, name=n) for n in constants.INPUT_NAMES]
    self.mlperf = tf.function(self._mlperf, input_signature=specs, autograph=False)
    self.answer = tf.function(self._answer, autograph=False, input_signature=[
        tf.TensorSpec([], tf.string, name="question"),
        tf.TensorSpec([], tf.string, name="context")])

  def _logits(self, ids, mask, seg):
    return qa_model.reference_logits(self._holder.model, ids, mask, seg)

  def _mlperf(self, input_ids, input_mask, segment_ids):
    out = self._logits(input_ids, input_mask, segment_ids)
    return {k: out[k] for k in constants.OUTPUT_NAMES}

  def _pieces(self, text):
    ids, starts, limits = self._tokenizer.tokenize_with_offsets(tf.reshape(text, [1]))
    return (ids.flat_values, starts.flat_values, limits.flat_values)

  def _answer(self, question, context):
    s = self._s
    q_ids, _, _ = self._pieces(question)
    q_ids = q_ids[:self._q]
    d_ids, d_start, d_limit = self._pieces(context)
    nq = tf.shape(q_ids)[0]
    nd = tf.shape(d_ids)[0]
    max_doc = s - nq - 3
    step = tf.minimum(max_doc, self._stride)
    # run_squad.py windows: starts 0, step, 2 step, ... until one reaches the end.
    num_windows = tf.where(
        nd <= max_doc, 1, (nd - max_doc + step - 1) // step + 1)
    w_start = tf.range(num_windows) * step  # [W]
    w_len = tf.minimum(nd - w_start, max_doc)  # [W]
    pos = tf.range(s)[None, :]  # [1, S]
    first = nq + 2  # [CLS] q [SEP]
    doc_index = w_start[:, None] + pos - first  # [W, S]
    in_doc = (pos >= first) & (pos < first + w_len[:, None])
    safe = tf.clip_by_value(doc_index, 0, tf.maximum(nd - 1, 0))
    doc_tok = tf.gather(tf.concat([d_ids, [0]], 0), tf.where(in_doc, safe, nd))
    q_pad = tf.concat([q_ids, tf.zeros([s], tf.int32)], 0)
    q_tok = tf.gather(q_pad, tf.clip_by_value(pos - 1, 0, s - 1))
    is_q = (pos >= 1) & (pos < 1 + nq)
    sep1 = tf.equal(pos, 1 + nq)
    sep2 = tf.equal(pos, first + w_len[:, None])
    ids = tf.where(in_doc, doc_tok, 0)
    ids = tf.where(tf.equal(pos, 0), self._cls, ids)
    ids = tf.where(is_q, q_tok, ids)
    ids = tf.where(sep1 | sep2, self._sep, ids)
    valid = pos < first + w_len[:, None] + 1
    mask = tf.cast(valid, tf.int32)
    seg = tf.cast(valid & (pos >= first), tf.int32)
    ids = tf.cast(ids, tf.int32)
    logits = self._logits(ids, mask, seg)
    start_log, end_log = logits["start_logits"], logits["end_logits"]  # [W, S]
    # Max context (run_squad.py _check_is_max_context): per doc token, the first window
    # with the largest min(left, right) + 0.01 * length.
    tok = tf.range(nd)[None, :]  # [1, D]
    w_end = w_start + w_len - 1
    contains = (tok >= w_start[:, None]) & (tok <= w_end[:, None])
    score = tf.cast(tf.minimum(tok - w_start[:, None], w_end[:, None] - tok), tf.float32) \
        + 0.01 * tf.cast(w_len[:, None], tf.float32)
    score = tf.where(contains, score, -1e9)
    best_w = tf.argmax(score, axis=0, output_type=tf.int32)  # [D]
    max_ctx_tok = tf.equal(best_w[None, :], tf.range(num_windows)[:, None])  # [W, D]
    max_ctx = tf.gather(tf.concat([max_ctx_tok, tf.zeros([num_windows, 1], tf.bool)], 1),
                        tf.where(in_doc, safe, nd), batch_dims=1)  # [W, S]
    max_ctx = max_ctx & in_doc
    k = min(self._nbest, s)
    top_s_val, top_s = tf.math.top_k(start_log, k)  # [W, k], ties: lower index first
    top_e_val, top_e = tf.math.top_k(end_log, k)
    s_ok = tf.gather(max_ctx, top_s, batch_dims=1)
    e_ok = tf.gather(in_doc, top_e, batch_dims=1)
    span = top_e[:, None, :] - top_s[:, :, None]  # [W, k, k]
    ok = s_ok[:, :, None] & e_ok[:, None, :] & (span >= 0) & (span < self._maxlen)
    total = top_s_val[:, :, None] + top_e_val[:, None, :]
    flat = tf.reshape(tf.where(ok, total, -float("inf")), [-1])
    best = tf.argmax(flat, output_type=tf.int32)  # first of equal scores
    found = tf.reduce_any(ok)
    w = best // (k * k)
    si = tf.gather(top_s[w], (best // k) % k)
    ei = tf.gather(top_e[w], best % k)
    d_start_pad = tf.concat([d_start, [-1]], 0)
    d_limit_pad = tf.concat([d_limit, [-1]], 0)
    sb = tf.gather(d_start_pad, tf.gather(tf.where(in_doc, safe, nd)[w], si))
    lb = tf.gather(d_limit_pad, tf.gather(tf.where(in_doc, safe, nd)[w], ei))
    sb = tf.where(found, sb, tf.constant(-1, tf.int64))
    lb = tf.where(found, lb, tf.constant(-1, tf.int64))
    text = tf.where(found, tf.strings.substr(context, sb, lb - sb, unit="BYTE"), "")
    return {"answer": text, "start_byte": sb, "limit_byte": lb,
            "score": tf.where(found, tf.gather(flat, best), -float("inf"))}


def save(module: SquadModule, path: str) -> None:
  """Writes the SavedModel with the `mlperf` (= `serving_default`) and `answer` signatures.

  Raises:
    FileExistsError: `path` exists.
  """
  if os.path.exists(path):
    raise FileExistsError(f"{path} already exists; pass a new directory")
  mlperf = module.mlperf.get_concrete_function()
  tf.saved_model.save(module, path, signatures={
      "serving_default": mlperf, "mlperf": mlperf,
      "answer": module.answer.get_concrete_function()})


def export_verified(path: str, model: model_lib.MobileBertModel, *, vocab_file: str,
                    do_lower_case: bool, seq_length: int, doc_stride: int,
                    max_query_length: int, windows: List[dict], reference: dict,
                    probe: features_lib.Example) -> Tuple[object, dict]:
  """Saves squad/saved_model at `path`, reloads it and checks both signatures.

  Args:
    path: the directory to write (must not exist).
    model: the converted model with its SQuAD head.
    vocab_file, do_lower_case: the bundle's tokenizer.
    seq_length, doc_stride, max_query_length: the windows (see `SquadModule`).
    windows, reference: verification windows and `model.reference_outputs` on them.
    probe: a question whose `answer` must be a substring of its context.

  Returns:
    (the reloaded SavedModel object, its manifest entry: per-output figures and
    `answer_probe` {qid, answer}). Keep the object while using its signatures (they
    read its variables).

  Raises:
    checks.SquadExportError: `mlperf` is off the float model, or `answer` returned a
      string that is not in the context.
  """
  module = SquadModule(model, vocab_file=vocab_file, do_lower_case=do_lower_case,
                       seq_length=seq_length, doc_stride=doc_stride,
                       max_query_length=max_query_length)
  save(module, path)
  loaded = tf.saved_model.load(path)
  mlperf = loaded.signatures["mlperf"]
  got = qa_model.stack_outputs(
      lambda b: mlperf(**{k: tf.constant(b[k]) for k in constants.INPUT_NAMES}), windows)
  entry = checks.check_float("saved_model", got, reference)
  ans = loaded.signatures["answer"](question=tf.constant(probe.question),
                                    context=tf.constant(probe.context))
  text = ans["answer"].numpy().decode("utf-8")
  if text not in probe.context:
    raise checks.SquadExportError(f"squad/saved_model answer signature returned {text!r}, "
                                  "not a substring of the context")
  entry["answer_probe"] = {"qid": probe.qid, "answer": text}
  return loaded, entry
