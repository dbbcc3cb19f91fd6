"""A TensorFlow-graph tokenizer with the exact output of original BERT FullTokenizer.

`ParityBertTokenizer` reproduces `FullTokenizer(vocab, do_lower_case)` of
original BERT tokenization.py (copied in tf-models-official
`official/nlp/tools/tokenization.py`) id for id, and reports byte offsets into
the ORIGINAL input strings.

How (all vectorized over the flattened batch, no Python per string):
  1. `tf.strings.unicode_decode_with_offsets` gives code points and their byte
     offsets in the original string (`utf8.decode` in the TFLite-compatible
     graph: same values, ops with TFLite kernels).
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
  4. Words (UTF-8 strings from `tf.strings.unicode_encode`, or from
     `utf8.encode_rows` in the TFLite-compatible graph) go through
     `tensorflow_text.FastWordpieceTokenizer`
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
from preprocessors import utf8

MAX_INPUT_CHARS_PER_WORD = 200
_UNK_TOKEN = "[UNK]"
# Bytes per word for FastWordpieceTokenizer: 200 code points * 4 bytes fit;
# longer words give [UNK] there, and `_unk_long_words` handles 201+ chars.
_MAX_BYTES_PER_WORD = 4 * MAX_INPUT_CHARS_PER_WORD + 8


class ParityBertTokenizer(tf.Module):
  """Tokenizes like original BERT `FullTokenizer`, in TensorFlow ops.

  Args (constructor):
    vocab_tokens: sequence of str, token i has id i (see `vocab.load_vocab`).
    do_lower_case: bool, as `FullTokenizer(do_lower_case=...)`.
    unk_id: int, id of [UNK].
    tflite_compatible: bool. False (the SavedModel): UTF-8 is decoded and
      encoded by `tf.strings.unicode_decode_with_offsets` /
      `unicode_encode`. True: by `utf8.decode` / `utf8.encode_rows`, so
      the graph converts to TFLite builtins plus tensorflow-text ops (no
      Select TF ops). Same ids and offsets either way.

  Raises:
    ValueError: [UNK] is not in `vocab_tokens`.
  """

  def __init__(self, vocab_tokens, *, do_lower_case: bool, unk_id: int,
               tflite_compatible: bool = False, name=None):
    super().__init__(name=name)
    vocab_tokens = list(vocab_tokens)
    if _UNK_TOKEN not in vocab_tokens:
      raise ValueError("vocab_tokens lacks '[UNK]'; pass a BERT vocab.")
    self._do_lower_case = bool(do_lower_case)
    self._tflite_compatible = bool(tflite_compatible)
    self._unk_id = int(unk_id)
    tables = ut.build_char_tables(self._do_lower_case)
    self._width = tables.width
    self._final_sigma_class = tables.final_sigma_class
    t = ut.element_tables(tables)
    if self._do_lower_case:
      self._class_of_cp = tf.constant(t["class_of_cp"])
      self._elem_kind = tf.constant(t["elem_kind"])
      self._elem_exp = tf.constant(t["elem_exp"])
      self._class_nonign = tf.constant(t["class_nonign"])
      self._class_cased = tf.constant(t["class_cased"])
      self._class_multi = tf.constant(t["class_multi"])
    else:
      # No normalization (width 1, the element is the code point): look up
      # each code point's kind directly.
      if self._width != 1:
        raise RuntimeError(f"cased tables have width {self._width}, "
                           "expected 1; unicode_tables.py changed.")
      self._kind_of_cp = tf.constant(t["kind_of_cp"])
    self._wordpiece = tf_text.FastWordpieceTokenizer(
        vocab=vocab_tokens,
        suffix_indicator="##",
        max_bytes_per_word=_MAX_BYTES_PER_WORD,
        token_out_type=tf.int32,
        unknown_token=_UNK_TOKEN,
        no_pretokenization=True,
        support_detokenization=False)

  def _classify(self, cp):
    """int32 class id (see unicode_tables) of int32 code points."""
    return tf.cast(tf.gather(self._class_of_cp, cp), tf.int32)

  def _final_sigma(self, cp, cls, rows_of):
    """Python str.lower() Final_Sigma on the cleaned text: updated (cp, cls).

    U+03A3 lowers to U+03C2 iff the closest preceding character that is not
    case-ignorable is cased and the closest following one is not, within
    its row (Unicode SpecialCasing Final_Sigma, as CPython's str.lower).
    Dropped characters are skipped like case-ignorable ones: the original
    lowers the text after `_clean_text` removed them. `rows_of(i)` gives
    the rows of the characters at int64 indices i.
    """
    sig_pos = tf.where(tf.equal(cp, ut.CAPITAL_SIGMA))[:, 0]
    nonign = tf.gather(self._class_nonign, cls)
    nonign_pos = tf.where(nonign)[:, 0]
    count = tf.cumsum(tf.cast(nonign, tf.int64))
    num_nonign = tf.shape(nonign_pos, out_type=tf.int64)[0]
    k = tf.gather(count, sig_pos) - 1  # index of each sigma in nonign_pos.
    sig_row = rows_of(sig_pos)

    def cased(i):
      return tf.gather(self._class_cased, tf.gather(cls, i))

    prev_idx = tf.gather(nonign_pos, tf.maximum(k - 1, 0))
    prev_ok = ((k >= 1) & tf.equal(rows_of(prev_idx), sig_row) &
               cased(prev_idx))
    next_idx = tf.gather(nonign_pos, tf.minimum(k + 1, num_nonign - 1))
    next_cased = ((k + 1 < num_nonign) &
                  tf.equal(rows_of(next_idx), sig_row) &
                  cased(next_idx))
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
    ids, _ = self._unk_long_words(self._wordpiece.tokenize(w["word_str"]),
                                  w["too_long"])
    return tf.RaggedTensor.from_row_splits(ids, w["word_splits"],
                                           validate=False)

  def _unk_long_words(self, pieces, too_long):
    """Words over MAX_INPUT_CHARS_PER_WORD become one [UNK] piece.

    `WordpieceTokenizer.tokenize` of original BERT: `len(chars) >
    max_input_chars_per_word` -> unk_token. `_words` passes only the first
    code point of such a word to WordPiece, which yields exactly one piece
    for it; that piece's id is set to [UNK].

    Returns:
      (ids, long_piece_index): int32 RaggedTensor [words, (pieces)] and
      int64 [num_long_words, 1], the flat index of each long word's piece.
    """
    long_piece = tf.gather(pieces.row_starts(), tf.where(too_long))
    n = tf.shape(long_piece)[0]
    values = tf.tensor_scatter_nd_update(
        pieces.flat_values, long_piece,
        tf.fill([n], tf.constant(self._unk_id, tf.int32)))
    return pieces.with_flat_values(values), long_piece

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
    pieces, piece_start, piece_limit = self._wordpiece.tokenize_with_offsets(
        w["word_str"])
    ids, long_piece = self._unk_long_words(pieces, too_long)
    # Map piece byte offsets in the normalized word to the original string.
    nbytes = utf8.utf8_length(ncp, tf.int64)
    gpos = tf.cumsum(nbytes, exclusive=True)  # strictly increasing.
    piece_word = ids.value_rowids()
    base = tf.gather(tf.gather(gpos, word_first), piece_word)
    first_cp = tf.searchsorted(gpos, base + piece_start.flat_values,
                               side="right") - 1
    last_cp = tf.searchsorted(gpos, base + piece_limit.flat_values,
                              side="left") - 1
    p_start = tf.gather(start, tf.gather(src, first_cp))
    p_limit = tf.gather(limit, tf.gather(src, last_cp))
    # The one piece of a long word covers the whole word.
    long_word = tf.where(too_long)
    p_start = tf.tensor_scatter_nd_update(
        p_start, long_piece, tf.gather_nd(word_start_byte, long_word))
    p_limit = tf.tensor_scatter_nd_update(
        p_limit, long_piece, tf.gather_nd(word_limit_byte, long_word))

    def nest(values):
      return tf.RaggedTensor.from_row_splits(
          ids.with_flat_values(values), w["word_splits"], validate=False)

    return nest(ids.flat_values), nest(p_start), nest(p_limit)

  def _expand(self, cls, first, width):
    """Element slots of the normalized text, `width` per character.

    Args:
      cls: int32 [n] class ids; first: bool [n], first character of a row;
      width: static int, self._width, or 1 if no character of the batch
        expands to more than one code point.

    Returns:
      (kind int32 [n * width], first bool [n * width] (on slot 0),
      elem int32 [n * width] index into the element tables).
    """
    if width == 1:
      elem = cls * self._width
      return tf.gather(self._elem_kind, elem), first, elem
    elem = tf.reshape(cls[:, None] * self._width + tf.range(width)[None, :],
                      [-1])
    first = tf.reshape(tf.concat(
        [first[:, None], tf.zeros([tf.shape(cls)[0], width - 1], tf.bool)],
        axis=1), [-1])
    return tf.gather(self._elem_kind, elem), first, elem

  def _words(self, sentences):
    """Basic tokenization: words as UTF-8 strings plus bookkeeping tensors.

    Returns a dict: ncp int32 [m] (kept normalized code points, all rows),
    src int64 [m] (index of each one's source character in start/limit),
    start/limit int64 [n] (byte span of every decoded character), word_first
    int64 [w] (index in ncp of each word's first code point), too_long bool
    [w], word_str string [w] (the word's UTF-8; a single character if
    too_long), word_start_byte/word_limit_byte int64 [w], word_splits int64
    [batch_size + 1] (row partition of the words).
    """
    sentences = tf.convert_to_tensor(sentences)
    if self._tflite_compatible:
      cp, start, row, num_rows = utf8.decode(sentences)
      num_chars = tf.shape(cp, out_type=tf.int64)[0]
      row_first = tf.not_equal(row, tf.concat([[-1], row[:-1]], axis=0))

      def rows_of(i):
        return tf.gather(row, i)
    else:
      chars, char_starts = tf.strings.unicode_decode_with_offsets(
          sentences, "UTF-8", errors="ignore")
      cp = chars.flat_values
      start = char_starts.flat_values
      # Row ids only where needed, by binary search in the row partition
      # (cheaper than materializing value_rowids).
      num_chars = tf.shape(cp, out_type=tf.int64)[0]
      row_starts = chars.row_starts()
      row_starts = tf.boolean_mask(row_starts, row_starts < num_chars)
      row_first = tf.scatter_nd(row_starts[:, None],
                                tf.ones_like(row_starts, tf.int32),
                                num_chars[None]) > 0

      def rows_of(i):
        return tf.searchsorted(chars.row_splits[1:], i, side="right",
                               out_type=tf.int64)
    limit = start + utf8.utf8_length(cp, tf.int64)
    if self._do_lower_case:
      cls = self._classify(cp)
      if self._tflite_compatible:
        cp, cls = self._final_sigma(cp, cls, rows_of)
        kind, first, elem = self._expand(cls, row_first, self._width)
        width = self._width
      else:
        # Skip the Final_Sigma work for batches without a capital sigma, and
        # the `width`-slot expansion for batches where every character
        # normalizes to at most one code point (e.g. all of XNLI but Korean,
        # Bengali or Tamil text).
        cp, cls = tf.cond(
            tf.reduce_any(tf.equal(cp, ut.CAPITAL_SIGMA)),
            lambda: self._final_sigma(cp, cls, rows_of), lambda: (cp, cls))
        multi = tf.reduce_any(tf.gather(self._class_multi, cls))
        kind, first, elem = tf.cond(
            multi, lambda: self._expand(cls, row_first, self._width),
            lambda: self._expand(cls, row_first, 1))
        width = None
    else:
      kind = tf.cast(tf.gather(self._kind_of_cp, cp), tf.int32)
      first = row_first
    # Words: split on whitespace, punctuation and CJK characters. `key`
    # counts whitespace and row starts, so two kept elements are in the same
    # run iff their keys are equal; a word continues from the previous kept
    # element iff both are in the same run and neither is punctuation/CJK.
    key = tf.cumsum(tf.cast(tf.equal(kind, ut.KIND_WS) | first, tf.int32))
    kept = tf.where(kind >= ut.KIND_KEEP)[:, 0]
    key = tf.gather(key, kept)
    single = tf.equal(tf.gather(kind, kept), ut.KIND_SINGLE)
    if self._do_lower_case:
      if width is None:  # decided at run time, see above.
        src = tf.cond(multi, lambda: kept // self._width, lambda: kept)
      else:  # TFLite: FLOOR_DIV has no int64 kernel.
        src = tf.cast(tf.cast(kept, tf.int32) // width, tf.int64)
      exp = tf.gather(self._elem_exp, tf.gather(elem, kept))
      ncp = tf.where(exp < 0, tf.gather(cp, src), exp)
    else:
      src = kept
      ncp = tf.gather(cp, kept)
    key_prev = tf.concat([[-1], key[:-1]], axis=0)
    single_prev = tf.concat([[True], single[:-1]], axis=0)
    word_start = single | single_prev | tf.not_equal(key, key_prev)
    word_first = tf.where(word_start)[:, 0]
    num_kept = tf.shape(ncp, out_type=tf.int64)[0]
    splits = tf.concat([word_first, [num_kept]], axis=0)
    word_len = splits[1:] - word_first
    word_first_char = tf.gather(src, word_first)
    word_start_byte = tf.gather(start, word_first_char)
    word_limit_byte = tf.gather(limit, tf.gather(src, splits[1:] - 1))
    if self._tflite_compatible:
      word_row = tf.cast(tf.gather(row, word_first_char), tf.int32)
      counts = tf.math.unsorted_segment_sum(
          tf.ones_like(word_row), word_row, tf.cast(num_rows, tf.int32))
      word_splits = tf.concat(
          [[0], tf.cumsum(tf.cast(counts, tf.int64))], axis=0)
    else:
      # Words of rows < r = words whose first character is before row r.
      word_splits = tf.searchsorted(word_first_char, chars.row_splits,
                                    side="left", out_type=tf.int64)
    too_long = word_len > MAX_INPUT_CHARS_PER_WORD
    # A word over 200 code points becomes [UNK] whatever its text: one
    # character of it goes to WordPiece instead (`_unk_long_words`).
    if self._tflite_compatible:
      word_id = tf.cumsum(tf.cast(word_start, tf.int32)) - 1
      keep_cp = word_start | tf.logical_not(tf.gather(too_long, word_id))
      word_str = utf8.encode_rows(
          tf.boolean_mask(ncp, keep_cp),
          tf.cast(tf.where(too_long, tf.ones_like(word_len), word_len),
                  tf.int32))
    else:
      words = tf.RaggedTensor.from_row_splits(ncp, splits, validate=False)
      word_str = tf.where(too_long, tf.constant("x"),
                          tf.strings.unicode_encode(words, "UTF-8"))
    return dict(ncp=ncp, src=src, start=start, limit=limit,
                word_first=word_first, too_long=too_long, word_str=word_str,
                word_start_byte=word_start_byte,
                word_limit_byte=word_limit_byte, word_splits=word_splits)
