"""Hard cases where tensorflow-text BertTokenizer differs from the original BERT
FullTokenizer (shared by test_probes.py and test_tflite.py); expected ids are computed by
FullTokenizer at test time."""

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
