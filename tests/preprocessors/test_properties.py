"""Hypothesis property tests over random Unicode text (derandomized): id
parity with FullTokenizer, word segmentation, and byte offsets that point at
the original text each token came from."""

import hypothesis
from hypothesis import strategies as st
import pytest
import tensorflow as tf

from preprocessors import tokenizer as tokenizer_lib
from preprocessors import vocab as vocab_lib
from tests.preprocessors import conftest as c

# Hypothesis over thousands of texts (not in the fast run).
pytestmark = pytest.mark.slow

_TRICKY = list("ßẞﬁﬂİıIiΣσςΑΒ\u0301\u0308\u0345\u00a0\u3000\u200b\u200d\u00ad"
               "\x00\x01\x7f\x0b\x85\ufffd\u2028 \t\n\r.,!?'\"-`´¨\u1fef"
               "日本語한글ภาษาไทย𠀀\uf900😀👍🏽™ǄǅǆǱ\u212a\u2126Åé") + [
                   "a" * 199, "É" * 200, "b" * 201]

_CHARS = st.one_of(
    st.characters(blacklist_categories=("Cs",)),
    st.characters(min_codepoint=0x20, max_codepoint=0x24F),
    st.characters(min_codepoint=0x370, max_codepoint=0x3FF),
    st.sampled_from(_TRICKY),
)
_TEXT = st.lists(_CHARS, max_size=40).map("".join)
_BATCH = st.lists(_TEXT, min_size=1, max_size=6)

_SETTINGS = hypothesis.settings(
    derandomize=True, max_examples=120, deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow])


def _fold_sigma(s):
  return s.replace("\u03c2", "\u03c3")


def _check(pre, ft, texts):
  ids, starts, limits = pre.tokenize_with_offsets(tf.constant(texts))
  ids, starts, limits = ids.to_list(), starts.to_list(), limits.to_list()
  unk = ft.vocab["[UNK]"]
  for text, t_ids, t_starts, t_limits in zip(texts, ids, starts, limits):
    # Id parity, word by word.
    words = ft.basic_tokenizer.tokenize(text)
    assert [i for w in t_ids for i in w] == c.reference_ids(ft, text), text
    assert len(t_ids) == len(words), (text, words)
    raw = text.encode("utf-8")
    for word, w_ids, w_starts, w_limits in zip(words, t_ids, t_starts,
                                               t_limits):
      assert w_ids == ft.convert_tokens_to_ids(
          ft.wordpiece_tokenizer.tokenize(word))
      # The whole word's span normalizes back to the word.
      span = raw[w_starts[0]:w_limits[-1]].decode("utf-8")
      assert _fold_sigma("".join(ft.basic_tokenizer.tokenize(span))) == (
          _fold_sigma(word)), (text, word, span)
      for piece_id, s, l in zip(w_ids, w_starts, w_limits):
        span = raw[s:l].decode("utf-8")  # offsets are on char boundaries.
        norm = _fold_sigma("".join(ft.basic_tokenizer.tokenize(span)))
        piece = ft.inv_vocab[piece_id]
        if piece_id == unk and piece != word:
          piece = word
        piece = _fold_sigma(piece[2:] if piece.startswith("##") else piece)
        assert piece in norm, (text, word, piece, span)


@pytest.mark.parametrize("casing", ["uncased", "multi_cased"])
def test_random_unicode_parity_and_offsets(casing, request):
  pre = request.getfixturevalue(f"{casing}_pre")
  ft = request.getfixturevalue(f"{casing}_ref")

  @_SETTINGS
  @hypothesis.given(_BATCH)
  def run(texts):
    _check(pre, ft, texts)

  run()


def test_offsets_point_at_original_accented_uppercase_text(uncased_pre,
                                                          uncased_ref):
  text = "ÉCOLE Straße İstanbul ΟΔΟΣ"
  _check(uncased_pre, uncased_ref, [text])
  _, starts, limits = uncased_pre.tokenize_with_offsets(tf.constant([text]))
  raw = text.encode("utf-8")
  word_spans = [raw[s[0]:l[-1]].decode("utf-8")
                for s, l in zip(starts.to_list()[0], limits.to_list()[0])]
  assert word_spans == ["ÉCOLE", "Straße", "İstanbul", "ΟΔΟΣ"]


@pytest.mark.parametrize("casing", ["uncased", "multi_cased"])
def test_tflite_compatible_graph_random_unicode_parity(casing, request):
  """The graph converted to TFLite (utf8.decode/encode_rows instead of TF's
  Unicode ops), run in TF on random text, gives FullTokenizer's ids."""
  ft = request.getfixturevalue(f"{casing}_ref")
  vocab_file = c.UNCASED_VOCAB if casing == "uncased" else c.MULTI_CASED_VOCAB
  vocab = vocab_lib.load_vocab(vocab_file)
  tok = tokenizer_lib.ParityBertTokenizer(
      vocab.tokens, do_lower_case=casing == "uncased",
      unk_id=vocab.special_ids["unk_id"], tflite_compatible=True)
  tokenize = tf.function(
      lambda s: tok.tokenize(s).merge_dims(1, 2),
      input_signature=[tf.TensorSpec([None], tf.string)])

  @_SETTINGS
  @hypothesis.given(_BATCH)
  def run(texts):
    got = tokenize(tf.constant(texts)).to_list()
    assert got == [c.reference_ids(ft, t) for t in texts]

  run()
