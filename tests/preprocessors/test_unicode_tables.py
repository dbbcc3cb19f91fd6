"""Exhaustive check of the code-point tables against the original BERT
predicates (tokenization.py `_is_control`, `_is_whitespace`,
`_is_punctuation`, `_is_chinese_char`, `_run_strip_accents(c.lower())`) for
every code point."""

import sys

import numpy as np
import pytest

from official.nlp.tools import tokenization
from preprocessors import unicode_tables as ut


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_tables_match_original_predicates_for_every_code_point(do_lower_case):
  t = ut.build_char_tables(do_lower_case)
  basic = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
  cps = np.arange(sys.maxunicode + 1)
  cls = t.stage2[t.stage1[cps >> ut.BLOCK_BITS] * ut.BLOCK_SIZE +
                 (cps & (ut.BLOCK_SIZE - 1))]
  flags = t.class_flags[cls]
  lens = t.class_len[cls]
  checked = 0
  for cp in range(sys.maxunicode + 1):
    if 0xD800 <= cp <= 0xDFFF:
      continue
    char = chr(cp)
    f = int(flags[cp])
    k = int(cls[cp])
    dropped = cp == 0 or cp == 0xFFFD or tokenization._is_control(char)  # pylint: disable=protected-access
    assert bool(f & ut.FLAG_DROP) == dropped, hex(cp)
    if dropped:
      continue
    ws = tokenization._is_whitespace(char) or char.isspace()  # pylint: disable=protected-access
    assert bool(f & ut.FLAG_WS) == ws, hex(cp)
    assert bool(f & ut.FLAG_CJK) == basic._is_chinese_char(cp), hex(cp)  # pylint: disable=protected-access
    if ws:
      continue
    norm = (basic._run_strip_accents(char.lower()) if do_lower_case  # pylint: disable=protected-access
            else char)
    if f & ut.FLAG_IDENTITY:
      got = char
    else:
      got = "".join(chr(c) for c in
                    t.class_exp[k * t.width:k * t.width + int(lens[cp])])
    assert got == norm, hex(cp)
    elem = t.class_elem_flags[k * t.width:k * t.width + len(got)]
    for c, e in zip(got, elem):
      assert bool(e & ut.FLAG_PUNCT) == tokenization._is_punctuation(c), (  # pylint: disable=protected-access
          hex(cp))
    checked += 1
  print(f"tables (do_lower_case={do_lower_case}): {checked} code points "
        "checked")
