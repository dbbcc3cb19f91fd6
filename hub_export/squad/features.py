"""SQuAD 1.1 examples -> MLPerf model inputs, and logits -> answer text.

The logic is google-research BERT/MobileBERT `run_squad.py` (`convert_examples_to_features`,
`_check_is_max_context`, `write_predictions`, `_get_best_indexes`), with two documented
departures that make it exact on any text:
* tokens come from this bundle's tokenizer (`preprocessors.tokenizer.ParityBertTokenizer`,
  FullTokenizer-identical ids) with byte offsets into the ORIGINAL context, so an answer
  is the original substring `context[start_byte(first piece):limit_byte(last piece)]`
  instead of `get_final_text`'s re-alignment of whitespace words;
* the query is truncated to `max_query_length` word pieces exactly as there.

Defaults are MLPerf Mobile's / run_squad.py's (`constants.py`): max_seq_length 384,
doc_stride 128, max_query_length 64, n_best_size 20, max_answer_length 30.
"""

import dataclasses
import json
from typing import Iterator, List, Optional

import numpy as np
import tensorflow as tf

from hub_export.squad import constants
from preprocessors import tokenizer as tokenizer_lib
from preprocessors import vocab as vocab_lib


@dataclasses.dataclass(frozen=True)
class Example:
  """One SQuAD question: `qid`, `question`, `context` (str), `answers` (list of str)."""
  qid: str
  question: str
  context: str
  answers: tuple


@dataclasses.dataclass
class Feature:
  """One window of one example (run_squad.py `InputFeatures`).

  Attributes:
    example_index: index of the example in the list given to `Featurizer.features`.
    input_ids, input_mask, segment_ids: int32 [max_seq_length].
    token_start, token_limit: int64 [max_seq_length], byte offsets into the ORIGINAL
      context (UTF-8) of each position's word piece; -1 where the position is not a
      context token ([CLS], question, [SEP], padding).
    max_context: bool [max_seq_length], run_squad.py `token_is_max_context`.
  """
  example_index: int
  input_ids: np.ndarray
  input_mask: np.ndarray
  segment_ids: np.ndarray
  token_start: np.ndarray
  token_limit: np.ndarray
  max_context: np.ndarray


def read_squad_json(path: str, limit: Optional[int] = None) -> List[Example]:
  """Reads a SQuAD v1.1-format JSON (`data/paragraphs/qas`), in file order.

  Args:
    path: the JSON file.
    limit: keep only the first `limit` questions (MLPerf: 100), None for all.

  Raises:
    ValueError: not SQuAD format (names the missing key), or `limit` < 1.
  """
  if limit is not None and limit < 1:
    raise ValueError(f"limit={limit}: pass a positive number of questions or None")
  with open(path, encoding="utf-8") as f:
    data = json.load(f)
  if "data" not in data:
    raise ValueError(f"{path} is not a SQuAD JSON: no top-level 'data' key (keys: "
                     f"{sorted(data)[:5]})")
  out = []
  for article in data["data"]:
    for paragraph in article["paragraphs"]:
      for qa in paragraph["qas"]:
        out.append(Example(qid=qa["id"], question=qa["question"],
                           context=paragraph["context"],
                           answers=tuple(a["text"] for a in qa.get("answers", []))))
        if limit is not None and len(out) >= limit:
          return out
  return out


class Featurizer:
  """Turns examples into windows with the bundle's tokenizer.

  Args (constructor):
    vocab_file: the model's vocab.txt.
    do_lower_case: casing of the tokenizer (as the checkpoint was trained).
    max_seq_length, doc_stride, max_query_length: run_squad.py flags.

  Raises:
    ValueError: max_seq_length < max_query_length + 4 (no room for context).
  """

  def __init__(self, vocab_file: str, *, do_lower_case: bool,
               max_seq_length: int = constants.MAX_SEQ_LENGTH,
               doc_stride: int = constants.DOC_STRIDE,
               max_query_length: int = constants.MAX_QUERY_LENGTH):
    if max_seq_length < max_query_length + 4:
      raise ValueError(f"max_seq_length={max_seq_length} leaves no room for context after "
                       f"a {max_query_length}-piece query and 3 special tokens; raise it")
    self.vocab = vocab_lib.load_vocab(vocab_file)
    self._tok = tokenizer_lib.ParityBertTokenizer(
        self.vocab.tokens, do_lower_case=do_lower_case,
        unk_id=self.vocab.special_ids["unk_id"])
    self.max_seq_length = max_seq_length
    self.doc_stride = doc_stride
    self.max_query_length = max_query_length

  def _pieces(self, texts):
    ids, starts, limits = self._tok.tokenize_with_offsets(tf.constant(texts))
    flat = lambda r: [row.numpy().reshape(-1) for row in r.merge_dims(1, 2)]  # pylint: disable=unnecessary-lambda-assignment
    return flat(ids), flat(starts), flat(limits)

  def features(self, examples: List[Example]) -> List[Feature]:
    """All windows of all `examples`, in order (run_squad.py windows and max-context)."""
    if not examples:
      return []
    q_ids, _, _ = self._pieces([e.question for e in examples])
    c_ids, c_start, c_limit = self._pieces([e.context for e in examples])
    sp = self.vocab.special_ids
    out = []
    for i in range(len(examples)):
      query = q_ids[i][:self.max_query_length]
      doc, doc_start, doc_limit = c_ids[i], c_start[i], c_limit[i]
      max_doc = self.max_seq_length - len(query) - 3
      spans, start = [], 0
      while start < len(doc):
        length = min(len(doc) - start, max_doc)
        spans.append((start, length))
        if start + length == len(doc):
          break
        start += min(length, self.doc_stride)
      if not spans:  # An empty context still gets one window (run_squad.py does too).
        spans.append((0, 0))
      for span_index, (s0, n) in enumerate(spans):
        ids = np.zeros(self.max_seq_length, np.int32)
        seg = np.zeros(self.max_seq_length, np.int32)
        t_start = np.full(self.max_seq_length, -1, np.int64)
        t_limit = np.full(self.max_seq_length, -1, np.int64)
        max_ctx = np.zeros(self.max_seq_length, bool)
        pieces = [sp["start_of_sequence_id"], *query, sp["end_of_segment_id"]]
        first = len(pieces)
        pieces += list(doc[s0:s0 + n]) + [sp["end_of_segment_id"]]
        ids[:len(pieces)] = pieces
        seg[first:len(pieces)] = 1
        t_start[first:first + n] = doc_start[s0:s0 + n]
        t_limit[first:first + n] = doc_limit[s0:s0 + n]
        for j in range(n):
          max_ctx[first + j] = _is_max_context(spans, span_index, s0 + j)
        mask = np.zeros(self.max_seq_length, np.int32)
        mask[:len(pieces)] = 1
        out.append(Feature(example_index=i, input_ids=ids, input_mask=mask,
                           segment_ids=seg, token_start=t_start, token_limit=t_limit,
                           max_context=max_ctx))
    return out


def _is_max_context(spans, cur, position) -> bool:
  """run_squad.py `_check_is_max_context`: score = min(left, right) + 0.01 * length."""
  best_score, best = None, None
  for index, (start, length) in enumerate(spans):
    end = start + length - 1
    if position < start or position > end:
      continue
    score = min(position - start, end - position) + 0.01 * length
    if best_score is None or score > best_score:
      best_score, best = score, index
  return cur == best


def iter_batches(features: List[Feature]) -> Iterator[dict]:
  """Each feature as MLPerf inputs: dict of int32 [1, max_seq_length] arrays."""
  for f in features:
    yield {"input_ids": f.input_ids[None], "input_mask": f.input_mask[None],
           "segment_ids": f.segment_ids[None]}


def best_answers(examples: List[Example], features: List[Feature], start_logits,
                 end_logits, *, n_best_size: int = constants.N_BEST_SIZE,
                 max_answer_length: int = constants.MAX_ANSWER_LENGTH) -> dict:
  """run_squad.py `write_predictions` (SQuAD 1.1, no null answer): qid -> answer text.

  Args:
    examples, features: from `Featurizer.features`.
    start_logits, end_logits: float [num_features, max_seq_length].
    n_best_size: candidates per window: the n best start and n best end positions.
    max_answer_length: longest span in word pieces.

  Returns:
    dict qid -> str, the original-context substring of the best span ("" if a
    window offers no valid span at all).
  """
  start_logits = np.asarray(start_logits)
  end_logits = np.asarray(end_logits)
  best = {}
  for fi, f in enumerate(features):
    s_log, e_log = start_logits[fi], end_logits[fi]
    starts = np.argsort(-s_log, kind="stable")[:n_best_size]
    ends = np.argsort(-e_log, kind="stable")[:n_best_size]
    for s in starts:
      if f.token_start[s] < 0 or not f.max_context[s]:
        continue
      for e in ends:
        if f.token_start[e] < 0 or e < s or e - s + 1 > max_answer_length:
          continue
        score = float(s_log[s]) + float(e_log[e])
        cur = best.get(f.example_index)
        if cur is None or score > cur[0]:
          best[f.example_index] = (score, int(f.token_start[s]), int(f.token_limit[e]))
  out = {}
  for i, ex in enumerate(examples):
    if i in best:
      raw = ex.context.encode("utf-8")
      out[ex.qid] = raw[best[i][1]:best[i][2]].decode("utf-8", errors="ignore")
    else:
      out[ex.qid] = ""
  return out
