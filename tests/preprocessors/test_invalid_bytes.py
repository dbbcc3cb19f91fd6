"""Byte strings that are not valid UTF-8: the preprocessor SavedModel
(`tokenize_with_offsets`, `serving_default`, `bert_pack_pair`) and the TFLite
model give the ids of original BERT `FullTokenizer`, which decodes bytes with
`bytes.decode("utf-8", "ignore")` (`tokenization.convert_to_unicode`).

Hypothesis draws random bytes (`st.binary()`), valid UTF-8 pieces and the
ill-formed classes of Unicode Table 3-7 (truncated sequences, lone continuation
bytes, overlongs, UTF-8-encoded surrogates, code points past U+10FFFF, 0xFE and
0xFF), mixed in one string; NUL (dropped by `_clean_text`) is among the pieces.
Offsets must still index the ORIGINAL bytes: every token starts and ends on
the boundary of a well-formed sequence, and its span decodes (ignoring the
ill-formed bytes) to the text the token came from.
"""

import hypothesis
from hypothesis import strategies as st
import numpy as np
import pytest
import tensorflow as tf

from tests.preprocessors import conftest as c

# Hypothesis over hundreds of batches and a TFLite conversion (not in the fast
# run).
pytestmark = pytest.mark.slow

CASINGS = ("uncased", "multi_cased")
_SETTINGS = hypothesis.settings(
    derandomize=True, max_examples=100, deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow])

_CONT = st.integers(0x80, 0xBF).map(lambda b: bytes([b]))


def _seq(*parts):
  """A strategy of the concatenation of byte strategies."""
  return st.tuples(*parts).map(b"".join)


def _byte(lo, hi):
  return st.integers(lo, hi).map(lambda b: bytes([b]))


_LEADS_2 = _byte(0xC2, 0xDF)
_LEADS_3 = _byte(0xE1, 0xEC)
_LEADS_4 = _byte(0xF1, 0xF3)
# Ill-formed classes of Unicode 15.0 Table 3-7.
_TRUNCATED = st.one_of(
    _LEADS_2, _seq(_LEADS_3, _CONT), _LEADS_3, _seq(_LEADS_4, _CONT, _CONT),
    _seq(_LEADS_4, _CONT), _LEADS_4, st.just(b"\xe2\x82"),
    st.just(b"\xf0\x9f\x98"))
_LONE_CONTINUATION = st.lists(_CONT, min_size=1, max_size=3).map(b"".join)
_OVERLONG = st.one_of(
    _seq(_byte(0xC0, 0xC1), _CONT),  # 2-byte overlong (e.g. C0 AF = '/').
    _seq(st.just(b"\xe0"), _byte(0x80, 0x9F), _CONT),
    _seq(st.just(b"\xf0"), _byte(0x80, 0x8F), _CONT, _CONT))
_SURROGATE = _seq(st.just(b"\xed"), _byte(0xA0, 0xBF), _CONT)  # ED A0 80..
_OUT_OF_RANGE = st.one_of(
    _seq(st.just(b"\xf4"), _byte(0x90, 0xBF), _CONT, _CONT),
    _seq(_byte(0xF5, 0xF7), _CONT, _CONT, _CONT))
_INVALID_BYTE = st.sampled_from([b"\xfe", b"\xff", b"\xf8", b"\xfc", b"\xc0",
                                 b"\xc1", b"\xf5"])
_VALID = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=6),
    st.text("abcXYZ .,!-'", min_size=1, max_size=8),
    st.sampled_from(["\x00", "é", "ß", "Σ", "日本", "한", "😀", "İ", " ",
                     "\u00ad", "\ufffd", "a" * 199]),
).map(lambda s: s.encode("utf-8"))
_PIECE = st.one_of(_VALID, _TRUNCATED, _LONE_CONTINUATION, _OVERLONG,
                   _SURROGATE, _OUT_OF_RANGE, _INVALID_BYTE,
                   st.binary(max_size=12))
_MIXED = st.lists(_PIECE, max_size=10).map(b"".join)
_BYTES = st.one_of(_MIXED, st.binary(max_size=40))
_BATCH = st.lists(_BYTES, min_size=1, max_size=6)

# Found by the searches above or chosen by hand; every class once. Kept as
# explicit cases so that they run whatever hypothesis draws.
EXAMPLES = [
    b"\xff abc", b"\xfe\xff", b"ab\xc3", b"a\xe2\x82b caf\xc3\xa9",
    b"\xed\xa0\x80x", b"\xed\xbf\xbf \xed\x9f\xbf", b"\xf4\x90\x80\x80y",
    b"\xf5\x80\x80\x80", b"\xc0\xafz", b"\xc1\xbf", b"\xe0\x80\xaf",
    b"\xf0\x80\x80\xaf", b"ok\x80\x80ok", b"\x80", b"\xbf\xbf\xbf",
    b"a\x00b \x00", b"\x00", b"ab\xffcd", b"ab\xff cd", b"\xf0\x9f\x98",
    b"\xf0\x9f\x98 \xf0\x9f\x98\x80", b"Stra\xc3\x9f\xc3e \xce\xa3\xff",
    b"\xe6\x97\xa5\x80\xe6\x9c\xac", b"a" * 199 + b"\xff" + b"a",
    b"a" * 200 + b"\xff" + b"a", b"caf\xc3\xa9 \xff\xe2\x82 ok \xed\xa0\x80",
    b"\xc3\x89\xcc\x81\xff", b"\xef\xbb\xbf\xef\xbf\xbe\xef\xbf\xbf",
]


def _well_formed_spans(raw):
  """Start and end byte offsets of the characters Python's "ignore" keeps."""
  starts, ends, i = set(), set(), 0
  while i < len(raw):
    for n in (1, 2, 3, 4):
      try:
        raw[i:i + n].decode("utf-8")
      except UnicodeDecodeError:
        continue
      starts.add(i)
      ends.add(i + n)
      i += n
      break
    else:
      i += 1
  return starts, ends


def _fold_sigma(s):
  return s.replace("\u03c2", "\u03c3")


def _check_saved_model(pre, ft, batch):
  """Ids and offsets of `tokenize_with_offsets`, and `serving_default` ids."""
  ids, starts, limits = pre.tokenize_with_offsets(tf.constant(batch))
  ids, starts, limits = ids.to_list(), starts.to_list(), limits.to_list()
  unk = ft.vocab["[UNK]"]
  for raw, t_ids, t_starts, t_limits in zip(batch, ids, starts, limits):
    text = raw.decode("utf-8", "ignore")
    words = ft.basic_tokenizer.tokenize(text)
    assert [i for w in t_ids for i in w] == c.reference_ids(ft, raw), raw
    assert len(t_ids) == len(words), (raw, words)
    char_starts, char_ends = _well_formed_spans(raw)
    for word, w_ids, w_starts, w_limits in zip(words, t_ids, t_starts,
                                               t_limits):
      span = raw[w_starts[0]:w_limits[-1]].decode("utf-8", "ignore")
      assert _fold_sigma("".join(ft.basic_tokenizer.tokenize(span))) == (
          _fold_sigma(word)), (raw, word, span)
      for piece_id, s, l in zip(w_ids, w_starts, w_limits):
        assert s in char_starts and l in char_ends and s < l, (raw, s, l)
        span = raw[s:l].decode("utf-8", "ignore")
        norm = _fold_sigma("".join(ft.basic_tokenizer.tokenize(span)))
        piece = ft.inv_vocab[piece_id]
        if piece_id == unk and piece != word:
          piece = word
        piece = _fold_sigma(piece[2:] if piece.startswith("##") else piece)
        assert piece in norm, (raw, word, piece, span)
  packed = pre(tf.constant(batch))["input_word_ids"].numpy()
  np.testing.assert_array_equal(packed, _packed_single(ft, batch,
                                                       packed.shape[1]))


def _packed_single(ft, batch, seq_length):
  """[CLS] ids [SEP], 0-padded, from FullTokenizer: int32 [B, seq_length]."""
  out = np.zeros((len(batch), seq_length), np.int32)
  for row, raw in enumerate(batch):
    ids = ([ft.vocab["[CLS]"]] + c.reference_ids(ft, raw)[:seq_length - 2] +
           [ft.vocab["[SEP]"]])
    out[row, :len(ids)] = ids
  return out


def _round_robin(len_a, len_b, budget):
  """Tokens kept per segment: one from each segment in turn until `budget`."""
  keep = [0, 0]
  lengths = (len_a, len_b)
  while budget > 0 and (keep[0] < len_a or keep[1] < len_b):
    for k in (0, 1):
      if budget > 0 and keep[k] < lengths[k]:
        keep[k] += 1
        budget -= 1
  return keep


def _packed_pair(ft, batch_a, batch_b):
  """[CLS] a [SEP] b [SEP], round-robin truncated to 128, and type ids."""
  words, types = [], []
  for a, b in zip(batch_a, batch_b):
    ids_a, ids_b = c.reference_ids(ft, a), c.reference_ids(ft, b)
    keep_a, keep_b = _round_robin(len(ids_a), len(ids_b), 128 - 3)
    ids_a, ids_b = ids_a[:keep_a], ids_b[:keep_b]
    ids = ([ft.vocab["[CLS]"]] + ids_a + [ft.vocab["[SEP]"]] + ids_b +
           [ft.vocab["[SEP]"]])
    words.append(ids + [0] * (128 - len(ids)))
    types.append([0] * (len(ids_a) + 2) + [1] * (len(ids_b) + 1) +
                 [0] * (128 - len(ids)))
  return np.array(words, np.int32), np.array(types, np.int32)


@pytest.mark.parametrize("casing", CASINGS)
def test_saved_model_examples_match_full_tokenizer(casing, request):
  pre = request.getfixturevalue(f"{casing}_pre")
  ft = request.getfixturevalue(f"{casing}_ref")
  _check_saved_model(pre, ft, EXAMPLES)
  pair_a, pair_b = EXAMPLES[::2], EXAMPLES[1::2]
  got = pre.signatures["bert_pack_pair"](text_a=tf.constant(pair_a),
                                         text_b=tf.constant(pair_b))
  words, types = _packed_pair(ft, pair_a, pair_b)
  np.testing.assert_array_equal(got["input_word_ids"].numpy(), words)
  np.testing.assert_array_equal(got["input_type_ids"].numpy(), types)


@pytest.mark.parametrize("casing", CASINGS)
def test_saved_model_random_bytes_match_full_tokenizer(casing, request):
  pre = request.getfixturevalue(f"{casing}_pre")
  ft = request.getfixturevalue(f"{casing}_ref")

  @_SETTINGS
  @hypothesis.given(_BATCH)
  def run(batch):
    _check_saved_model(pre, ft, batch)

  run()


@pytest.mark.parametrize("casing", CASINGS)
def test_tflite_random_bytes_match_full_tokenizer(casing, tflite_models,
                                                  request):
  from preprocessors import tflite  # pylint: disable=g-import-not-at-top
  ft = request.getfixturevalue(f"{casing}_ref")
  interp = tflite.make_interpreter(tflite_models[casing])
  single = interp.get_signature_runner("serving_default")
  pair = interp.get_signature_runner("bert_pack_pair")

  def check(batch):
    got = single(sentences=np.array(batch, dtype=object))
    np.testing.assert_array_equal(got["input_word_ids"],
                                  _packed_single(ft, batch, 128))
    a, b = batch, batch[::-1]
    got = pair(text_a=np.array(a, dtype=object),
               text_b=np.array(b, dtype=object))
    words, types = _packed_pair(ft, a, b)
    np.testing.assert_array_equal(got["input_word_ids"], words)
    np.testing.assert_array_equal(got["input_type_ids"], types)

  check(EXAMPLES[:12])
  check(EXAMPLES[12:])

  @_SETTINGS
  @hypothesis.given(_BATCH)
  def run(batch):
    check(batch)

  run()
