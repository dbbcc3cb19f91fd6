"""A TensorFlow-graph tokenizer with the exact output of original BERT FullTokenizer.

`ParityBertTokenizer` reproduces `FullTokenizer(vocab, do_lower_case)` of
original BERT tokenization.py (copied in tf-models-official
`official/nlp/tools/tokenization.py`) id for id, and reports byte offsets into
the ORIGINAL input strings.

How (all vectorized over the flattened batch, no Python per string):
  1. `tf.strings.unicode_decode_with_offsets` gives code points and their byte
     offsets in the original string.
  2. A per-code-point class table (`unicode_tables`, computed from Python's
     `unicodedata`) drops what `_clean_text` drops, marks whitespace, CJK
     characters (`_tokenize_chinese_chars`) and, in lower-casing mode, expands
     each character to `_run_strip_accents(char.lower())`. Capital sigma gets
     Python's context-dependent Final_Sigma lowering, decided on the cleaned
     text of its row (cumsum/gather, no loop).
  3. Words = maximal runs of normalized code points that are neither
     whitespace, punctuation (`_run_split_on_punc`, on the normalized text)
     nor CJK; each punctuation/CJK code point is a word of its own. Every
     normalized code point remembers the original character it came from, so
     words and word pieces map back to original byte spans.
  4. Words go through `tensorflow_text.FastWordpieceTokenizer`
     (greedy longest-match-first, whole word -> [UNK] if any piece is
     missing, like `WordpieceTokenizer.tokenize`); words longer than 200
     code points after normalization are then reduced to one [UNK]
     (`WordpieceTokenizer.max_input_chars_per_word` = 200 in original BERT;
     note that the tf-models copy uses 400).

Known, documented limit: `unicodedata.normalize("NFD")` reorders runs of
combining marks by canonical combining class. Marks of category Mn are
removed afterwards, so this only matters if two of the 25 spacing marks (Mc)
with a non-zero combining class (e.g. U+1D16D, U+1D165) follow each other out
of order; those are copied in input order here.
"""

import tensorflow as tf
import tensorflow_text as tf_text

from preprocessors import unicode_tables as ut

MAX_INPUT_CHARS_PER_WORD = 200
_UNK_TOKEN = "[UNK]"
# Bytes per word for FastWordpieceTokenizer: 200 code points * 4 bytes fit;
# longer words give [UNK] there, and `_unk_long_words` handles 201+ chars.
_MAX_BYTES_PER_WORD = 4 * MAX_INPUT_CHARS_PER_WORD + 8


def _utf8_len(cp):
  """Bytes of the UTF-8 encoding of int32 code points (same shape, int64)."""
  one = tf.ones_like(cp, dtype=tf.int64)
  return (one + tf.cast(cp >= 0x80, tf.int64) + tf.cast(cp >= 0x800, tf.int64)
          + tf.cast(cp >= 0x10000, tf.int64))


def _has(flags, bit):
  """flags & bit != 0 for a single bit (arithmetic: TFLite builtins only)."""
  return tf.not_equal(tf.math.floormod(tf.math.floordiv(flags, bit), 2), 0)


def _ragged_from_sorted_rowids(values, rowids, nrows):
  """RaggedTensor.from_value_rowids without the DenseBincount op."""
  lengths = tf.math.unsorted_segment_sum(
      tf.ones_like(rowids, dtype=tf.int32), tf.cast(rowids, tf.int32),
      tf.cast(nrows, tf.int32))
  lengths = tf.cast(lengths, tf.int64)
  return tf.RaggedTensor.from_row_lengths(values, lengths, validate=False)


class ParityBertTokenizer(tf.Module):
  """Tokenizes like original BERT `FullTokenizer`, in TensorFlow ops.

  Args (constructor):
    vocab_tokens: sequence of str, token i has id i (see `vocab.load_vocab`).
    do_lower_case: bool, as `FullTokenizer(do_lower_case=...)`.
    unk_id: int, id of [UNK].

  Raises:
    ValueError: [UNK] is not in `vocab_tokens`.
  """

  def __init__(self, vocab_tokens, *, do_lower_case: bool, unk_id: int,
               name=None):
    super().__init__(name=name)
    vocab_tokens = list(vocab_tokens)
    if _UNK_TOKEN not in vocab_tokens:
      raise ValueError("vocab_tokens lacks '[UNK]'; pass a BERT vocab.")
    self._do_lower_case = bool(do_lower_case)
    self._unk_id = int(unk_id)
    tables = ut.build_char_tables(self._do_lower_case)
    self._width = tables.width
    self._final_sigma_class = tables.final_sigma_class
    self._stage1 = tf.constant(tables.stage1)
    self._stage2 = tf.constant(tables.stage2)
    self._class_flags = tf.constant(tables.class_flags)
    self._class_len = tf.constant(tables.class_len)
    self._class_exp = tf.constant(tables.class_exp)
    self._class_elem_flags = tf.constant(tables.class_elem_flags)
    self._wordpiece = tf_text.FastWordpieceTokenizer(
        vocab=vocab_tokens,
        suffix_indicator="##",
        max_bytes_per_word=_MAX_BYTES_PER_WORD,
        token_out_type=tf.int32,
        unknown_token=_UNK_TOKEN,
        no_pretokenization=True,
        support_detokenization=False)

  def _classify(self, cp):
    block = tf.gather(self._stage1, tf.math.floordiv(cp, ut.BLOCK_SIZE))
    return tf.gather(self._stage2, block * ut.BLOCK_SIZE +
                     tf.math.floormod(cp, ut.BLOCK_SIZE))

  def _final_sigma(self, cp, cls, flags, row):
    """Python str.lower() Final_Sigma: returns updated (cp, cls)."""
    sig_pos = tf.where(tf.equal(cp, ut.CAPITAL_SIGMA))[:, 0]
    nonign = tf.logical_not(_has(flags, ut.FLAG_CASE_IGNORABLE))
    nonign_pos = tf.where(nonign)[:, 0]
    count = tf.cumsum(tf.cast(nonign, tf.int64))
    num_nonign = tf.shape(nonign_pos, out_type=tf.int64)[0]
    k = tf.gather(count, sig_pos) - 1  # index of each sigma in nonign_pos.
    sig_row = tf.gather(row, sig_pos)
    prev_idx = tf.gather(nonign_pos, tf.maximum(k - 1, 0))
    prev_ok = ((k >= 1) & tf.equal(tf.gather(row, prev_idx), sig_row) &
               _has(tf.gather(flags, prev_idx), ut.FLAG_CASED))
    next_idx = tf.gather(nonign_pos, tf.minimum(k + 1, num_nonign - 1))
    next_cased = ((k + 1 < num_nonign) &
                  tf.equal(tf.gather(row, next_idx), sig_row) &
                  _has(tf.gather(flags, next_idx), ut.FLAG_CASED))
    final = prev_ok & tf.logical_not(next_cased)
    upd = tf.boolean_mask(sig_pos, final)[:, None]
    n = tf.shape(upd)[0]
    cp = tf.tensor_scatter_nd_update(
        cp, upd, tf.fill([n], tf.constant(ut.FINAL_SIGMA, tf.int32)))
    cls = tf.tensor_scatter_nd_update(
        cls, upd, tf.fill([n], tf.constant(self._final_sigma_class, tf.int32)))
    return cp, cls

  def tokenize(self, sentences):
    """Token ids only (no offset bookkeeping, faster).

    Args:
      sentences: string [batch_size].

    Returns:
      token_ids: int32 RaggedTensor [batch_size, (words), (wordpieces)].
    """
    w = self._words(sentences)
    ids = self._unk_long_words(self._wordpiece.tokenize(w["word_str"]),
                               w["too_long"])
    return _ragged_from_sorted_rowids(ids, w["word_row"], w["num_rows"])

  def _unk_long_words(self, pieces, too_long, *extra):
    """Words over MAX_INPUT_CHARS_PER_WORD become one [UNK] piece.

    `WordpieceTokenizer.tokenize` of original BERT: `len(chars) >
    max_input_chars_per_word` -> unk_token. Keeps the first piece of such a
    word (and of each ragged tensor in `extra`) and sets its id to [UNK].
    """
    piece_word = pieces.value_rowids()
    pos = tf.range(tf.shape(pieces.flat_values, out_type=tf.int64)[0]) - (
        tf.gather(pieces.row_starts(), piece_word))
    long_piece = tf.gather(too_long, piece_word)
    keep = tf.logical_not(long_piece) | tf.equal(pos, 0)
    lengths = tf.where(too_long, tf.minimum(pieces.row_lengths(), 1),
                       pieces.row_lengths())
    values = tf.where(long_piece, tf.constant(self._unk_id, tf.int32),
                      pieces.flat_values)
    out = [tf.RaggedTensor.from_row_lengths(tf.boolean_mask(values, keep),
                                            lengths, validate=False)]
    for r in extra:
      out.append(tf.RaggedTensor.from_row_lengths(
          tf.boolean_mask(r.flat_values, keep), lengths, validate=False))
    return out[0] if not extra else out

  def tokenize_with_offsets(self, sentences):
    """Tokenizes a batch of strings.

    Args:
      sentences: string [batch_size], UTF-8 (invalid bytes are ignored, like
        `convert_to_unicode`).

    Returns:
      (token_ids, start_offsets, limit_offsets):
        token_ids: int32 RaggedTensor [batch_size, (words), (wordpieces)];
        start_offsets, limit_offsets: int64 RaggedTensors of the same shape,
          byte offsets into the ORIGINAL input string of the span the word
          piece came from (a piece that starts or ends inside the expansion
          of one character, e.g. a jamo of a Hangul syllable, covers that
          whole character).
    """
    w = self._words(sentences)
    ncp, src, start, limit = w["ncp"], w["src"], w["start"], w["limit"]
    word_first, too_long = w["word_first"], w["too_long"]
    word_start_byte = w["word_start_byte"]
    word_limit_byte = w["word_limit_byte"]
    word_row, num_rows = w["word_row"], w["num_rows"]
    pieces, starts, limits = self._wordpiece.tokenize_with_offsets(
        w["word_str"])
    ids, piece_start, piece_limit = self._unk_long_words(
        pieces, too_long, starts, limits)
    # Map piece byte offsets in the normalized word to the original string.
    nbytes = _utf8_len(ncp)
    gpos = tf.cumsum(nbytes, exclusive=True)  # strictly increasing.
    piece_word = ids.value_rowids()
    base = tf.gather(tf.gather(gpos, word_first), piece_word)
    first_cp = tf.searchsorted(gpos, base + piece_start.flat_values,
                               side="right") - 1
    last_cp = tf.searchsorted(gpos, base + piece_limit.flat_values,
                              side="left") - 1
    p_start = tf.gather(start, tf.gather(src, first_cp))
    p_limit = tf.gather(limit, tf.gather(src, last_cp))
    long_piece = tf.gather(too_long, piece_word)
    p_start = tf.where(long_piece, tf.gather(word_start_byte, piece_word),
                       p_start)
    p_limit = tf.where(long_piece, tf.gather(word_limit_byte, piece_word),
                       p_limit)

    def nest(values):
      inner = ids.with_flat_values(values)
      return _ragged_from_sorted_rowids(inner, word_row, num_rows)

    return nest(ids.flat_values), nest(p_start), nest(p_limit)

  def _words(self, sentences):
    """Basic tokenization: words as UTF-8 strings plus bookkeeping tensors."""
    sentences = tf.convert_to_tensor(sentences)
    chars, char_starts = tf.strings.unicode_decode_with_offsets(
        sentences, "UTF-8", errors="ignore")
    num_rows = tf.shape(sentences, out_type=tf.int64)[0]
    cp = chars.flat_values
    start = char_starts.flat_values
    limit = start + _utf8_len(cp)
    row = chars.value_rowids()
    cls = self._classify(cp)
    flags = tf.gather(self._class_flags, cls)
    # _clean_text: drop characters.
    keep = tf.logical_not(_has(flags, ut.FLAG_DROP))
    if self._do_lower_case:
      cp = tf.boolean_mask(cp, keep)
      start = tf.boolean_mask(start, keep)
      limit = tf.boolean_mask(limit, keep)
      row = tf.boolean_mask(row, keep)
      cls = tf.boolean_mask(cls, keep)
      flags = tf.boolean_mask(flags, keep)
      cp, cls = self._final_sigma(cp, cls, flags, row)
      # Expand each character to lower() + NFD - Mn.
      exp_len = tf.gather(self._class_len, cls)
      num_chars = tf.shape(cp)[0]
      src = tf.repeat(tf.range(num_chars), exp_len)
      first = tf.cumsum(exp_len, exclusive=True)
      pos = tf.range(tf.shape(src)[0]) - tf.gather(first, src)
      cls_n = tf.gather(cls, src)
      elem = cls_n * self._width + pos
      cp_src = tf.gather(cp, src)
      identity = _has(tf.gather(self._class_flags, cls_n), ut.FLAG_IDENTITY)
      ncp = tf.where(identity, cp_src, tf.gather(self._class_exp, elem))
      nflags = tf.gather(self._class_elem_flags, elem)
      nrow = tf.gather(row, src)
      valid = None
    else:
      # No normalization: dropped characters are removed together with
      # whitespace below (one mask instead of two).
      src = tf.range(tf.shape(cp)[0])
      ncp = cp
      nflags = tf.gather(self._class_elem_flags, cls * self._width)
      nrow = row
      valid = keep
    # Words: split on whitespace, punctuation and CJK characters. A word
    # continues from the previous kept code point iff both are in the same
    # row, no whitespace lies between them and neither is punctuation/CJK.
    is_ws = _has(nflags, ut.FLAG_WS)
    ws_count = tf.cumsum(tf.cast(is_ws, tf.int32))
    kept = tf.logical_not(is_ws)
    if valid is not None:
      kept = kept & valid
    ncp = tf.boolean_mask(ncp, kept)
    src = tf.boolean_mask(src, kept)
    nflags = tf.boolean_mask(nflags, kept)
    nrow = tf.boolean_mask(nrow, kept)
    ws_count = tf.boolean_mask(ws_count, kept)
    single = _has(nflags, ut.FLAG_PUNCT) | _has(nflags, ut.FLAG_CJK)
    row_prev = tf.concat([[-1], nrow[:-1]], axis=0)
    ws_prev = tf.concat([[-1], ws_count[:-1]], axis=0)
    single_prev = tf.concat([[True], single[:-1]], axis=0)
    contiguous = tf.equal(nrow, row_prev) & tf.equal(ws_count, ws_prev)
    word_start = single | single_prev | tf.logical_not(contiguous)
    word_id = tf.cumsum(tf.cast(word_start, tf.int64)) - 1
    num_words = tf.reduce_sum(tf.cast(word_start, tf.int64))
    words = _ragged_from_sorted_rowids(ncp, word_id, num_words)
    word_first = words.row_starts()
    word_last = words.row_limits() - 1
    word_row = tf.gather(nrow, word_first)
    word_char_start = tf.gather(src, word_first)
    word_char_last = tf.gather(src, word_last)
    word_start_byte = tf.gather(start, word_char_start)
    word_limit_byte = tf.gather(limit, word_char_last)
    too_long = words.row_lengths() > MAX_INPUT_CHARS_PER_WORD
    word_str = tf.strings.unicode_encode(words, "UTF-8")
    return dict(ncp=ncp, src=src, start=start, limit=limit,
                word_first=word_first, too_long=too_long, word_str=word_str,
                word_start_byte=word_start_byte,
                word_limit_byte=word_limit_byte, word_row=word_row,
                num_rows=num_rows)
