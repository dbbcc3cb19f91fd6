"""Hard cases where tensorflow-text BertTokenizer differs from original BERT
FullTokenizer; expected ids are computed by FullTokenizer at test time."""

import pytest
import tensorflow as tf

from preprocessors import probes
from preprocessors import vocab
from tests.preprocessors import conftest as c

LONG_WORD_200 = "a" * 200
LONG_WORD_201 = "a" * 201

PROBES = {
    "sharp_s": "Straße STRASSE ß",
    "ligatures": "ﬁne ﬂow ﬀ ﬃ",
    "turkish_dotted_I": "İstanbul İİ ıi I",
    "combining_marks": "e\u0301te cafe\u0301 \u0301 a\u0308\u0304 n\u0303",
    "precomposed_accents": "Éléphant Ångström Ñandú Ǆ ǅ",
    "final_sigma": "ΟΔΟΣ. ΣΑΣ Σ aΣ. ΑΣ'Β Α\u0301Σ ΑΣ\u0301 ΑΣ\u200bΒ Σ\u0345",
    "no_break_space": "a\u00a0b\u202fc\u2007d",
    "ideographic_space": "日本\u3000語 x\u3000y",
    "zero_width": "a\u200bb c\u200cd e\u200df \ufeffg \u2060h",
    "soft_hyphen": "co\u00adop\u00ad \u00ad",
    "control_chars": "a\x00b\x01c\x7fd\x0be\x0cf\x1cg\x85h\ufffdi \t\r\n j",
    "line_separators": "a\u2028b\u2029c",
    "emoji_symbols": "I ❤️ 🤗🎉 👍🏽 ™ © ° € ₹ ∑ √ ♀",
    "cjk": "中文分词测试，你好！日本語のテキスト。한국어 텍스트",
    "cjk_ext_b": "𠀀𠀁 𪚥 \U0002B740 \U0002F800",
    "cjk_compat": "\uf900\ufa0e 豈",
    "thai_lao": "ภาษาไทยไม่มีช่องว่าง ພາສາລາວ",
    "long_words": f"{LONG_WORD_200} {LONG_WORD_201} x{'é' * 199}",
    "long_words_mixed": "b" * 199 + "É" + " " + "Σ" * 201,
    "unk_only": "\U0001d54f\U0001d54f ⺀⺁ \U000e0001",
    "mixed_scripts": "Москва-Berlin 東京 كتاب हिन्दी ελληνικά Ǳ ǲ ǳ",
    "punctuation": "a.b,c!d?e-f—g–h'i\"j¿k¡l«m»n‹o›p„q“r”s…t",
    "greek_ano_teleia_varia": "a\u0387b c\u037ed e\u1fefe f\u1fedg",
    "hangul_jamo": "한글 ᄀ\u1161",
    "digits": "1,000.5 ١٢٣ ๑๒๓ ½ ² ⅷ",
    "empty": "",
    "whitespace_only": " \t\n\r\u00a0\u3000\u2028 ",
    "kelvin_ohm": "\u212a \u2126 \u212b",
    "special_tokens_text": "[CLS] [SEP] [MASK] [UNK] [PAD]",
}


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
