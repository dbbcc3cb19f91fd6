"""UTF-8 decoding/encoding in integer ops (`preprocessors/utf8.py`), checked
against Python's codec and TensorFlow's own Unicode ops."""

import hypothesis
from hypothesis import strategies as st
import numpy as np
import pytest
import tensorflow as tf

from preprocessors import utf8

_SETTINGS = hypothesis.settings(derandomize=True, max_examples=150,
                                deadline=None)
# Bytes at every boundary of Unicode Table 3-7 (well-formed UTF-8).
_EDGE_BYTES = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0,
               0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0,
               0xF1, 0xF3, 0xF4, 0xF5, 0xFF]
_RAW = st.lists(st.one_of(st.sampled_from(_EDGE_BYTES), st.integers(0, 255)),
                max_size=14).map(bytes)
_RAW_BATCH = st.lists(st.one_of(_RAW, st.text().map(str.encode)), min_size=1,
                      max_size=8)
_ALL_SCALARS = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
# Traced once (as in the tokenizer graph), not run op by op per example.
_DECODE = tf.function(utf8.decode,
                      input_signature=[tf.TensorSpec([None], tf.string)])
_ENCODE_ROWS = tf.function(utf8.encode_rows, input_signature=[
    tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.int32)])


def _python_decode(raw):
  """(code points, byte offsets) of Python's decode(errors="ignore")."""
  cps, offsets, i = [], [], 0
  while i < len(raw):
    for n in (1, 2, 3, 4):
      try:
        char = raw[i:i + n].decode("utf-8")
      except UnicodeDecodeError:
        continue
      cps.append(ord(char))
      offsets.append(i)
      i += n
      break
    else:
      i += 1
  assert "".join(map(chr, cps)) == raw.decode("utf-8", "ignore")
  return cps, offsets


def _decode(batch):
  cps, starts, rows, num_rows = _DECODE(tf.constant(batch, tf.string))
  assert int(num_rows) == len(batch)
  out = [([], []) for _ in batch]
  for cp, start, row in zip(cps.numpy(), starts.numpy(), rows.numpy()):
    out[row][0].append(int(cp))
    out[row][1].append(int(start))
  return out


def test_decode_every_scalar_value():
  text = "".join(map(chr, _ALL_SCALARS)).encode("utf-8")
  cps, starts, rows, _ = _DECODE(tf.constant([b"x", text]))
  cps, starts, rows = cps.numpy(), starts.numpy(), rows.numpy()
  assert cps[0] == ord("x") and rows[0] == 0
  np.testing.assert_array_equal(cps[1:], _ALL_SCALARS)
  lengths = [len(chr(c).encode("utf-8")) for c in _ALL_SCALARS]
  np.testing.assert_array_equal(starts[1:], np.cumsum([0] + lengths[:-1]))
  assert (rows[1:] == 1).all()


@pytest.mark.parametrize("raw", [
    b"\xff abc", b"ab\xc3", b"a\xe2\x82b", b"\xed\xa0\x80x",
    b"\xf4\x90\x80\x80y", b"\xc0\xafz", b"\xe0\x9f\xbf", b"\xf0\x8f\xbf\xbf",
    b"\xef\xbf\xbf", b"\xf4\x8f\xbf\xbf", b"ok\x80\x80ok", b"\xe2\x82", b""])
def test_decode_ill_formed_like_python_ignore(raw):
  assert _decode([raw]) == [_python_decode(raw)]


@_SETTINGS
@hypothesis.given(_RAW_BATCH)
def test_decode_random_bytes_like_python_and_tf(batch):
  assert _decode(batch) == [_python_decode(r) for r in batch]
  chars, offsets = tf.strings.unicode_decode_with_offsets(
      tf.constant(batch, tf.string), "UTF-8", errors="ignore")
  assert [list(r) for r in zip(chars.to_list(), offsets.to_list())] == [
      list(r) for r in _decode(batch)]


def test_encode_bytes_every_scalar_value():
  values, src = utf8.encode_bytes(tf.constant(_ALL_SCALARS, tf.int32))
  expected = "".join(map(chr, _ALL_SCALARS)).encode("utf-8")
  assert bytes(values.numpy().astype(np.uint8)) == expected
  lengths = [len(chr(c).encode("utf-8")) for c in _ALL_SCALARS]
  np.testing.assert_array_equal(src.numpy(),
                                np.repeat(np.arange(len(lengths)), lengths))


def _encode_rows(texts):
  lengths = [len(t) for t in texts]
  cps = [ord(c) for t in texts for c in t]
  return list(_ENCODE_ROWS(tf.constant(cps, tf.int32, shape=[len(cps)]),
                           tf.constant(lengths, tf.int32,
                                       shape=[len(lengths)])).numpy())


@_SETTINGS
@hypothesis.given(st.lists(st.text(st.characters(blacklist_categories=("Cs",)),
                                   max_size=60), max_size=12))
def test_encode_rows_random_text(texts):
  assert _encode_rows(texts) == [t.encode("utf-8") for t in texts]


def test_encode_rows_lengths_around_the_join_limit():
  limit = utf8.MAX_JOIN_BYTES
  texts = ["", "a", "é" * (limit // 2), "a" * (limit - 1) + "b",
           "\U00020000" * (limit // 4), "a" * 17, "a" * 129, "日" * 200,
           "\U00020000" * 200, ""]
  assert _encode_rows(texts) == [t.encode("utf-8") for t in texts]
  # Longer rows keep their first MAX_JOIN_BYTES bytes (documented).
  assert _encode_rows(["a" * (limit + 5), "z"]) == [b"a" * limit, b"z"]


def test_encode_rows_empty_batch():
  assert _encode_rows([]) == []
