"""The hard probe set: sentences on which a tokenizer is easily not FullTokenizer-exact.

`PROBE_SENTENCES` is the default sample of the export-time checks: the reloaded
preprocessor SavedModel against original BERT `FullTokenizer`
(`hub_export.verify.verify_preprocessor`), and the TFLite preprocessor against
the SavedModel (`tflite.verify_tflite_preprocessor`). Each entry is a str, or
bytes where the input is deliberately not valid UTF-8 (decoded as
`FullTokenizer` does: `bytes.decode("utf-8", "ignore")`).

It covers the original BERT rules where a re-implementation tends to differ, in
many scripts: accents and combining marks (removed in lower-casing mode), ß and
ligatures (`str.lower()` keeps them; no case folding), dotted/dotless i, the
context-dependent final sigma, CJK incl. extension B (one word per character),
Thai and Lao without spaces, Hangul and Tamil (one character becomes several
code points when lower-cased and NFD-decomposed), control, format and
zero-width characters (dropped by `_clean_text`), no-break and ideographic
spaces (whitespace), emoji and symbols (punctuation or not), words of 200 and
201 characters (`max_input_chars_per_word` = 200: the longer is [UNK]), empty
and whitespace-only text, special-token text (tokenized as plain text), and
ill-formed UTF-8 (invalid lead bytes, truncated sequences, a surrogate).
"""

PROBE_SENTENCES = (
    "Hello, world! The quick brown fox jumps over the lazy dog.",
    "Straße STRASSE ß ﬁne ﬂow İstanbul ıi Éléphant cafe\u0301",
    "ΟΔΟΣ. ΣΑΣ Σ aΣ. Α\u0301Σ ΑΣ\u200bΒ",
    "Москва — столица России. Ünïcödé ǅ",
    "中文分词测试，你好！日本語のテキスト。한국어 텍스트 𠀀𠀁 𪚥",
    "ภาษาไทยไม่มีช่องว่าง ພາສາລາວ नमस्ते दुनिया كتاب",
    "a\u00a0b\u202fc d\u3000e f\u200bg co\u00adop a\x00b\x01c\x7fd\ufffde",
    "I ❤️ 🤗🎉 👍🏽 ™ © ° € ₹ 1,000.5 ١٢٣ ½",
    "a" * 200 + " " + "b" * 201 + " x" + "é" * 199,
    "",
    " \t\n\u3000 ",
    "[CLS] [SEP] [MASK] [UNK] [PAD]",
    "தொடர் கொண்டு",
    b"caf\xc3\xa9 \xff\xe2\x82 ok \xed\xa0\x80",
)
