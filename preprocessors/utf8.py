"""UTF-8 decoding and encoding in integer TensorFlow ops (TFLite builtins).

TensorFlow's `UnicodeDecodeWithOffsets` / `UnicodeEncode` have no TFLite
builtin kernel (they only run as Select TF "Flex" ops). This module does the
same work with ops that convert to TFLite builtins (GATHER, CAST, arithmetic,
comparisons, CUMSUM, WHERE) plus two tensorflow-text ops that have TFLite
kernels in `tensorflow_text.tflite_registrar`: `ByteSplitWithOffsets`
(strings -> bytes) and `NgramsStringJoin` (the only string-joining op that
runs in TFLite without Flex).

  * `decode`: string [B] -> code points with their byte offsets, exactly
    `tf.strings.unicode_decode_with_offsets(s, "UTF-8", errors="ignore")`:
    a code point is emitted at every byte position where a well-formed UTF-8
    sequence starts (Unicode 15.0, Table 3-7 "Well-Formed UTF-8 Byte
    Sequences"); every other byte is dropped. Continuation bytes never start
    a sequence, so this equals the left-to-right decoder that skips maximal
    ill-formed subparts (ICU `U8_NEXT`, Python `decode("utf-8", "ignore")`).
  * `encode_rows`: int32 code points grouped in rows -> one UTF-8 string per
    row, like `tf.strings.unicode_encode(ragged, "UTF-8")` (RFC 3629 byte
    layout), for rows of at most MAX_JOIN_BYTES bytes. TFLite has no op that
    turns integers into strings, so every byte becomes a one-byte string by
    GATHER from a constant 257-entry table (the 256 bytes and ""), and the
    bytes of a row are joined in rounds of NgramsStringJoin: its window
    covers exactly `width` strings per group, short groups padded with "".
"""

import tensorflow as tf
from tensorflow_text.python.ops import byte_splitter
from tensorflow_text.python.ops import ngrams_op

# Widths of the joining rounds of `encode_rows`: a row of n bytes needs
# ceil(n / 16) pieces after round 1, ceil(n / 128) after round 2 and one
# after round 3, so rows up to 16 * 8 * 8 = 1024 bytes are joined.
JOIN_WIDTHS = (16, 8, 8)
MAX_JOIN_BYTES = 16 * 8 * 8
# Index of the empty string in the byte-string table (entries 0..255 are the
# single bytes).
_EMPTY = 256
_BYTE_STRINGS = tuple(bytes([b]) for b in range(256)) + (b"",)


def _between(x, lo, hi):
  return (x >= lo) & (x <= hi)


def decode(sentences):
  """Decodes UTF-8 strings to code points, dropping ill-formed bytes.

  Args:
    sentences: string [batch_size], any bytes.

  Returns:
    (code_points, starts, rows, num_rows):
      code_points: int32 [num_chars], all rows concatenated in order;
      starts: int64 [num_chars], byte offset of each code point's first
        byte in its own string;
      rows: int64 [num_chars], batch index of each code point
        (non-decreasing);
      num_rows: int64 scalar, batch_size.
    Same values as `tf.strings.unicode_decode_with_offsets(sentences,
    "UTF-8", errors="ignore")` (flat_values, flat offsets, value_rowids).
  """
  sentences = tf.convert_to_tensor(sentences, tf.string)
  # pylint: disable=protected-access
  raw, row_splits, _, _ = (
      byte_splitter.gen_byte_splitter.tf_text_byte_split_with_offsets(
          input_values=sentences))
  # pylint: enable=protected-access
  num_rows = tf.shape(sentences, out_type=tf.int64)[0]
  b = tf.cast(raw, tf.int32)
  n = tf.shape(b, out_type=tf.int64)[0]
  lengths = row_splits[1:] - row_splits[:-1]
  rows = tf.repeat(tf.range(num_rows), lengths)
  pos = tf.range(n)
  row_limit = tf.gather(row_splits[1:], rows)
  # Bytes 1, 2 and 3 after each position, or -1 past the end of its string.
  padded = tf.concat([b, tf.constant([-1, -1, -1], tf.int32)], axis=0)
  nxt = []
  for k in (1, 2, 3):
    nxt.append(tf.where(pos + k < row_limit, tf.gather(padded, pos + k), -1))
  b0, b1, b2, b3 = b, nxt[0], nxt[1], nxt[2]
  # Table 3-7: lead byte -> length and the range of the second byte.
  one = b0 < 0x80
  two = _between(b0, 0xC2, 0xDF)
  three = _between(b0, 0xE0, 0xEF)
  four = _between(b0, 0xF0, 0xF4)
  lo2 = tf.where(tf.equal(b0, 0xE0), 0xA0,
                 tf.where(tf.equal(b0, 0xF0), 0x90, 0x80))
  hi2 = tf.where(tf.equal(b0, 0xED), 0x9F,
                 tf.where(tf.equal(b0, 0xF4), 0x8F, 0xBF))
  second_ok = _between(b1, lo2, hi2)
  cont2 = _between(b2, 0x80, 0xBF)
  cont3 = _between(b3, 0x80, 0xBF)
  valid = (one | (two & second_ok) | (three & second_ok & cont2) |
           (four & second_ok & cont2 & cont3))
  # Payload bits (continuation bytes carry 6 bits each); only read where
  # valid, so the out-of-range values elsewhere do not matter.
  c1, c2, c3 = b1 - 0x80, b2 - 0x80, b3 - 0x80
  cp = tf.where(
      one, b0,
      tf.where(
          two, (b0 - 0xC0) * 64 + c1,
          tf.where(three, (b0 - 0xE0) * 4096 + c1 * 64 + c2,
                   (b0 - 0xF0) * 262144 + c1 * 4096 + c2 * 64 + c3)))
  idx = tf.where(valid)[:, 0]
  code_points = tf.gather(cp, idx)
  rows = tf.gather(rows, idx)
  starts = idx - tf.gather(row_splits, rows)
  return code_points, starts, rows, num_rows


def utf8_length(code_points, dtype=tf.int32):
  """Bytes of the UTF-8 encoding of each code point (RFC 3629).

  Args:
    code_points: int32 tensor of Unicode scalar values (0..0x10FFFF).
    dtype: integer dtype of the result (int64 to add to byte offsets).

  Returns:
    tensor of `dtype`, the shape of `code_points`, values in 1..4.
  """
  return (1 + tf.cast(code_points >= 0x80, dtype) +
          tf.cast(code_points >= 0x800, dtype) +
          tf.cast(code_points >= 0x10000, dtype))


def encode_bytes(code_points):
  """UTF-8 bytes of code points, in order.

  Args:
    code_points: int32 [n], Unicode scalar values.

  Returns:
    (byte_values, byte_source): int32 [num_bytes] values 0..255, and int32
    [num_bytes] index of the code point each byte belongs to.
  """
  nbytes = utf8_length(code_points)
  src = tf.repeat(tf.range(tf.shape(code_points)[0]), nbytes)
  first = tf.cumsum(nbytes, exclusive=True)
  k = tf.range(tf.shape(src)[0]) - tf.gather(first, src)  # byte index in cp.
  n = tf.gather(nbytes, src)
  cp = tf.gather(code_points, src)
  # 64 ** (n - 1 - k) as a lookup (no integer pow in TFLite builtins).
  shift = tf.gather(tf.constant([1, 64, 4096, 262144], tf.int32), n - 1 - k)
  payload = tf.math.floordiv(cp, shift)
  lead_prefix = tf.gather(tf.constant([0, 0xC0, 0xE0, 0xF0], tf.int32), n - 1)
  lead = lead_prefix + payload  # payload < 2**(7 - n) bits here.
  cont = 0x80 + tf.math.floormod(payload, 64)
  return tf.where(tf.equal(k, 0), lead, cont), src


def _join_round(source, empty, piece_index, piece_count, width):
  """One joining round: every `width` consecutive pieces of a row -> 1.

  Args:
    source: string [m], the pieces' strings.
    empty: int, index of "" in `source`.
    piece_index: int32 [p], index into `source` of each piece, rows in order.
    piece_count: int32 [r], pieces per row (>= 0), sum = p.
    width: static int.

  Returns:
    (strings, new_index, new_count): `strings` string [1 + q] with
    strings[0] == "", new_index int32 [q] = 1..q, new_count int32 [r] =
    max(ceil(piece_count / width), 1) (an empty row gets one "" piece).
  """
  num_rows = tf.shape(piece_count)[0]
  groups = tf.maximum(tf.math.floordiv(piece_count + (width - 1), width), 1)
  group_row = tf.repeat(tf.range(num_rows), groups)
  num_groups = tf.shape(group_row)[0]
  group_first = tf.cumsum(groups, exclusive=True)
  piece_first = tf.cumsum(piece_count, exclusive=True)
  local = tf.range(num_groups) - tf.gather(group_first, group_row)
  slot = local[:, None] * width + tf.range(width)[None, :]  # [q, width]
  valid = slot < tf.gather(piece_count, group_row)[:, None]
  flat = tf.gather(piece_first, group_row)[:, None] + slot
  # Slots past a row's last piece read the appended "" entry.
  padded = tf.concat([piece_index, tf.fill([1], empty)], axis=0)
  index = tf.gather(padded, tf.where(valid, flat, tf.shape(piece_index)[0]))
  index = tf.concat([tf.fill([width], empty), tf.reshape(index, [-1])],
                    axis=0)
  values = tf.gather(source, index)
  splits = tf.range(0, (tf.cast(num_groups, tf.int64) + 1) * width + 1,
                    width)
  # pylint: disable=protected-access
  strings, _ = ngrams_op.gen_ngrams_op.tf_text_ngrams_string_join(
      input_values=values, input_row_splits=[splits], width=width, axis=-1,
      string_separator="")
  # pylint: enable=protected-access
  return strings, tf.range(1, num_groups + 1), groups


def encode_rows(code_points, row_lengths):
  """One UTF-8 string per row of code points (TFLite-compatible).

  Args:
    code_points: int32 [n], Unicode scalar values, rows concatenated.
    row_lengths: int32 [num_rows], code points per row (>= 0).

  Returns:
    string [num_rows], the same as `tf.strings.unicode_encode(
    tf.RaggedTensor.from_row_lengths(code_points, row_lengths), "UTF-8")`
    for rows of at most MAX_JOIN_BYTES (1024) bytes; a longer row is cut to
    its first MAX_JOIN_BYTES bytes (the tokenizer never passes one: its
    words over 200 code points are [UNK] whatever their text).
  """
  byte_values, byte_src = encode_bytes(code_points)
  num_rows = tf.shape(row_lengths)[0]
  cp_row = tf.repeat(tf.range(num_rows), row_lengths)
  byte_row = tf.gather(cp_row, byte_src)
  count = tf.math.unsorted_segment_sum(tf.ones_like(byte_row), byte_row,
                                       num_rows)
  source = tf.constant(_BYTE_STRINGS)
  index, empty = byte_values, _EMPTY
  for width in JOIN_WIDTHS:
    source, index, count = _join_round(source, empty, index, count, width)
    empty = 0  # each round's output starts with "".
  # After the last round a row within MAX_JOIN_BYTES has one piece; take the
  # first piece of every row.
  return tf.gather(source, tf.gather(index, tf.cumsum(count, exclusive=True)))

