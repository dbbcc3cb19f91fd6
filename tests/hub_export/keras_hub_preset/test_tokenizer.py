"""MobileBertTokenizer and the classifier preprocessor vs the original BERT FullTokenizer.

Truth: tf-models-official's copy of google-research `tokenization.py` (`FullTokenizer`,
with the original's 200-character word limit) and, for pairs, the original
`run_classifier.py` packing written out here (`_truncate_seq_pair`: drop the last token
of the longer segment until the pair fits).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from official.nlp.tools import tokenization

from hub_export.keras_hub_preset import models
from hub_export.keras_hub_preset.tokenizer import MobileBertTokenizer
from tests import testutil
from tests.hub_export.keras_hub_preset.xnli_pairs import ids_of as _ids
from tests.hub_export.keras_hub_preset.xnli_pairs import original_pack as _original_pack
from tests.hub_export.keras_hub_preset.xnli_pairs import truth as _truth
from tests.hub_export.keras_hub_preset.xnli_pairs import xnli as _xnli

# XNLI dev languages with different scripts; premises and hypotheses of each.
LANGS = ("el", "zh", "hi", "th", "ar", "ru", "de", "en")


@pytest.fixture(scope="module", name="multi")
def fixture_multi():
  return (MobileBertTokenizer(vocabulary=testutil.MULTI_CASED_VOCAB, do_lower_case=False),
          _truth(testutil.MULTI_CASED_VOCAB, False))


@pytest.mark.parametrize("lang", LANGS)
def test_multi_cased_ids_equal_full_tokenizer_on_xnli(multi, lang):
  tokenizer, truth = multi
  premises, hypotheses = _xnli(lang, 60)
  texts = premises + hypotheses
  got = _ids(tokenizer(tf.constant(texts)))
  want = [truth.convert_tokens_to_ids(truth.tokenize(t)) for t in texts]
  assert got == want


def test_uncased_ids_equal_full_tokenizer_on_xnli_en():
  tokenizer = MobileBertTokenizer(vocabulary=testutil.UNCASED_VOCAB, do_lower_case=True)
  truth = _truth(testutil.UNCASED_VOCAB, True)
  premises, hypotheses = _xnli("en", 200)
  texts = premises + hypotheses
  assert _ids(tokenizer(tf.constant(texts))) == [
      truth.convert_tokens_to_ids(truth.tokenize(t)) for t in texts]


@pytest.mark.parametrize("seq_length", [16, 64])
def test_pairs_pack_like_run_classifier(multi, seq_length):
  tokenizer, truth = multi
  premises, hypotheses = [], []
  for lang in ("de", "zh", "ar"):
    p, h = _xnli(lang, 20)
    premises += p
    hypotheses += h
  pre = models.MobileBertTextClassifierPreprocessor(tokenizer, sequence_length=seq_length)
  got = pre(x=(tf.constant(premises), tf.constant(hypotheses)))
  for row, (a, b) in enumerate(zip(premises, hypotheses)):
    ids, segments, mask = _original_pack(truth, a, b, seq_length)
    assert keras.ops.convert_to_numpy(got["token_ids"][row]).tolist() == ids
    assert keras.ops.convert_to_numpy(got["segment_ids"][row]).tolist() == segments
    assert keras.ops.convert_to_numpy(got["padding_mask"][row]).astype(int).tolist() == mask


def test_scalar_text_and_empty_string(multi):
  tokenizer, truth = multi
  text = "Zürich ist schön."
  assert _ids(tokenizer(text)) == \
      truth.convert_tokens_to_ids(truth.tokenize(text))
  pre = models.MobileBertTextClassifierPreprocessor(tokenizer, sequence_length=8)
  out = pre(tf.constant(["", text]))
  ids = keras.ops.convert_to_numpy(out["token_ids"])
  assert ids[0].tolist() == [tokenizer.cls_token_id, tokenizer.sep_token_id] + [0] * 6
  assert ids[1, 0] == tokenizer.cls_token_id and ids[1, 7] == tokenizer.sep_token_id


def test_invalid_utf8_is_ignored_like_convert_to_unicode(multi):
  tokenizer, truth = multi
  raw = [b"caf\xc3", b"\xff\xfeHello", b"ab\xed\xa0\x80cd", b"x\x00y"]
  got = _ids(tokenizer(tf.constant(raw)))
  assert got == [truth.convert_tokens_to_ids(truth.tokenize(
      tokenization.convert_to_unicode(r))) for r in raw]


def test_detokenize_joins_wordpieces(multi):
  tokenizer, _ = multi
  ids = _ids(tokenizer(tf.constant(["Tokenization works"])))
  text = tokenizer.detokenize(tf.ragged.constant(ids))
  assert (text[0] if isinstance(text, list) else text.numpy()[0].decode()) == \
      "Tokenization works"


def test_vocabulary_lookups_and_errors(tmp_path):
  tokenizer = MobileBertTokenizer(vocabulary=testutil.UNCASED_VOCAB)
  assert tokenizer.vocabulary_size() == 30522
  assert tokenizer.token_to_id("[MASK]") == tokenizer.mask_token_id == 103
  assert tokenizer.id_to_token(101) == "[CLS]"
  with pytest.raises(ValueError, match="outside"):
    tokenizer.id_to_token(30522)
  with pytest.raises(ValueError, match="not in the vocabulary"):
    tokenizer.token_to_id("[NOPE]")
  with pytest.raises(TypeError, match="takes strings; got dtype int32"):
    tokenizer(tf.constant([1, 2]))
  with pytest.raises(ValueError, match="string scalar or \\[batch_size\\]; got rank 2"):
    tokenizer(tf.constant([["a"]]))
  with pytest.raises(ValueError, match="has no vocabulary"):
    MobileBertTokenizer()(tf.constant(["a"]))
  bad = testutil.write_tiny_vocab(str(tmp_path / "vocab.txt"))
  with open(bad, encoding="utf-8") as f:
    lines = [line for line in f if line.strip() != "[MASK]"]
  with open(bad, "w", encoding="utf-8") as f:
    f.writelines(lines)
  with pytest.raises(ValueError, match=r"lacks special token\(s\) \[MASK\]"):
    MobileBertTokenizer(vocabulary=bad)
  with pytest.raises(ValueError, match=r"lacks \['\[MASK\]'\]"):
    MobileBertTokenizer(vocabulary=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the"])


def test_preprocessor_refuses_other_truncation_and_short_lengths(multi):
  tokenizer, _ = multi
  with pytest.raises(ValueError, match="round_robin"):
    models.MobileBertTextClassifierPreprocessor(tokenizer, truncate="waterfall")
  pre = models.MobileBertTextClassifierPreprocessor(tokenizer, sequence_length=2)
  with pytest.raises(ValueError, match="seq_length=2 is invalid for 2 segment"):
    pre(x=(tf.constant(["a"]), tf.constant(["b"])))
  assert np.asarray(keras.ops.convert_to_numpy(
      pre(tf.constant(["a"]))["token_ids"])).shape == (1, 2)
