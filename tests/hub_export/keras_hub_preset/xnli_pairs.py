"""XNLI dev pairs and the original BERT tokenization and packing, as test truth.

`truth` is tf-models-official's copy of google-research `tokenization.FullTokenizer` with
the original's 200-character word limit; `original_pack` is `run_classifier.py`'s
`convert_single_example` for a pair (`_truncate_seq_pair`), written out here.
"""

import os

import keras
import tensorflow as tf
from official.nlp.tools import tokenization

from preprocessors import tokenizer as tokenizer_lib
from tests import testutil


def xnli(lang, n):
  """(premises, hypotheses): the first `n` pairs of XNLI dev in `lang` (XTREME's copy)."""
  path = os.path.join(testutil.SHARED_DATA, "xnli", "xtreme_dev", f"dev-{lang}.tsv")
  with open(path, encoding="utf-8", newline="") as f:
    rows = [line.rstrip("\r\n").split("\t") for line in f][:n]
  return [r[0] for r in rows], [r[1] for r in rows]


def ids_of(x):
  """Token ids as nested lists (keras-hub returns ragged outputs as lists outside tf.data)."""
  if isinstance(x, list):
    return x
  if isinstance(x, tf.RaggedTensor):
    return x.to_list()
  return keras.ops.convert_to_numpy(x).tolist()


def truth(vocab, do_lower_case):
  """The original FullTokenizer for `vocab`."""
  t = tokenization.FullTokenizer(vocab, do_lower_case=do_lower_case)
  t.wordpiece_tokenizer.max_input_chars_per_word = tokenizer_lib.MAX_INPUT_CHARS_PER_WORD
  return t


def original_pack(full_tokenizer, a, b, seq_length):
  """run_classifier.py `convert_single_example` for a pair: ids, segment ids, mask."""
  ta, tb = full_tokenizer.tokenize(a), full_tokenizer.tokenize(b)
  while len(ta) + len(tb) > seq_length - 3:  # _truncate_seq_pair
    (ta if len(ta) > len(tb) else tb).pop()
  tokens = ["[CLS]"] + ta + ["[SEP]"] + tb + ["[SEP]"]
  segments = [0] * (len(ta) + 2) + [1] * (len(tb) + 1)
  ids = full_tokenizer.convert_tokens_to_ids(tokens)
  pad = seq_length - len(ids)
  return ids + [0] * pad, segments + [0] * pad, [1] * len(ids) + [0] * pad
