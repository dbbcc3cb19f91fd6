"""Hard cases where tensorflow-text BertTokenizer differs from original BERT
FullTokenizer; expected ids are computed by FullTokenizer at test time."""

import pytest
import tensorflow as tf

from preprocessors import probes
from preprocessors import vocab
from tests.preprocessors import conftest as c
from tests.preprocessors import probe_texts

PROBES = probe_texts.PROBES
LONG_WORD_200 = probe_texts.LONG_WORD_200
LONG_WORD_201 = probe_texts.LONG_WORD_201


@pytest.mark.parametrize("casing", ["uncased", "multi_cased"])
def test_probe_set_parity(casing, request):
  pre = request.getfixturevalue(f"{casing}_pre")
  ft = request.getfixturevalue(f"{casing}_ref")
  names = sorted(PROBES)
  texts = [PROBES[n] for n in names]
  got = c.tokenize_all(pre, texts)
  mismatches = {}
  for name, text, g in zip(names, texts, got):
    expected = c.reference_ids(ft, text)
    if g != expected:
      mismatches[name] = (g, expected)
  print(f"probes/{casing}: compared {len(texts)}, identical "
        f"{len(texts) - len(mismatches)}")
  assert not mismatches


@pytest.mark.parametrize("casing", ["uncased", "multi_cased"])
def test_long_word_boundary(casing, request):
  pre = request.getfixturevalue(f"{casing}_pre")
  ft = request.getfixturevalue(f"{casing}_ref")
  unk = vocab.load_vocab(c.UNCASED_VOCAB if casing == "uncased" else
                         c.MULTI_CASED_VOCAB).special_ids["unk_id"]
  ids = c.tokenize_all(pre, [LONG_WORD_200, LONG_WORD_201])
  assert ids[0] != [unk] and ids[0] == c.reference_ids(ft, LONG_WORD_200)
  assert ids[1] == [unk] == c.reference_ids(ft, LONG_WORD_201)


@pytest.mark.parametrize("casing", ["uncased", "multi_cased"])
def test_100kb_text(casing, request):
  pre = request.getfixturevalue(f"{casing}_pre")
  ft = request.getfixturevalue(f"{casing}_ref")
  xnli = c.load_xnli_texts()
  text = ""
  i = 0
  langs = sorted(xnli)
  while len(text.encode("utf-8")) < 100_000:
    text += xnli[langs[i % len(langs)]][i] + " "
    i += 1
  assert len(text.encode("utf-8")) >= 100_000
  got = c.tokenize_all(pre, [text, "short"])
  assert got[0] == c.reference_ids(ft, text)
  assert got[1] == c.reference_ids(ft, "short")
  out = pre(tf.constant([text]))
  assert out["input_word_ids"].shape == (1, 128)
  assert int(out["input_mask"].numpy().sum()) == 128


@pytest.mark.parametrize("casing", ["uncased", "multi_cased"])
def test_empty_and_whitespace_only(casing, request):
  pre = request.getfixturevalue(f"{casing}_pre")
  out = pre(tf.constant(["", "   \t\n\u3000"]))
  ids = out["input_word_ids"].numpy()
  assert ids[:, :3].tolist() == [[101, 102, 0], [101, 102, 0]]
  assert out["input_mask"].numpy().sum(axis=1).tolist() == [2, 2]
  toks = pre.tokenize(tf.constant(["", " "]))
  assert toks.to_list() == [[], []]
  empty = pre.tokenize(tf.constant([], tf.string))
  assert empty.to_list() == []


@pytest.mark.parametrize("casing", ["uncased", "multi_cased"])
def test_invalid_utf8_is_ignored_like_convert_to_unicode(casing, request):
  pre = request.getfixturevalue(f"{casing}_pre")
  ft = request.getfixturevalue(f"{casing}_ref")
  raw = [b"\xff abc", b"ab\xc3", b"a\xe2\x82b caf\xc3\xa9", b"\xed\xa0\x80x",
         b"\xf4\x90\x80\x80y", b"\xc0\xafz", b"ok\x80\x80ok"]
  got = c.tokenize_all(pre, raw)
  assert got == [c.reference_ids(ft, r) for r in raw]


@pytest.mark.parametrize("casing", ["uncased", "multi_cased"])
def test_probe_sentences_pass_the_export_time_check(casing, request):
  # The export-time check of hub_export compares the reloaded preprocessor with
  # FullTokenizer on probes.PROBE_SENTENCES; every probe (incl. the invalid UTF-8
  # bytes) must pass it, in both casings.
  from hub_export import verify  # pylint: disable=g-import-not-at-top
  vocab_file, lower = ((c.UNCASED_VOCAB, True) if casing == "uncased"
                       else (c.MULTI_CASED_VOCAB, False))
  sentences = probes.PROBE_SENTENCES
  assert any(isinstance(s, bytes) for s in sentences)
  figures = verify.verify_preprocessor(
      request.getfixturevalue(f"{casing}_path"), vocab_path=vocab_file,
      do_lower_case=lower, seq_length=128, sentences=sentences)
  assert figures["sentences"] == figures["identical"] == len(sentences)
