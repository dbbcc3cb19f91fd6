"""Per-code-point tables that encode the original BERT `BasicTokenizer` rules.

The tables are computed from the running Python's `unicodedata` (the same
database the reference `FullTokenizer` uses) and embedded as constants in the
TensorFlow graph, so the graph does not depend on the ICU or RE2 Unicode
versions bundled with TensorFlow.

Every code point gets a *class id*. A class stores:
  * `flags`: int32 bit set (see the `FLAG_*` constants) of the source character;
  * `expansion`: the code points the character turns into, up to `width`
    of them. For lower-casing mode this is
    `_run_strip_accents(char.lower())` of original BERT tokenization.py
    (lower() then NFD then drop category Mn); for cased mode it is the
    character itself. Identity classes (the vast majority of code points) store
    no expansion and copy the input code point instead (`FLAG_IDENTITY`);
  * `element_flags`: flags per expanded code point (punctuation and
    whitespace are re-evaluated on the normalized text, as the original does
    in `_run_split_on_punc` and the final `whitespace_tokenize`).

Lookup is a two-level table: `class = stage2[stage1[cp >> 7] * 128 + (cp & 127)]`.
`element_tables` flattens them into the arrays the tokenizer's graph gathers
from: the class of every code point, and the kind and code point of every
expansion element (`KIND_*`: removed, whitespace, word, word of its own).

Rules and their source in original BERT tokenization.py:
  * FLAG_DROP: `_clean_text` removes cp 0, U+FFFD and `_is_control`
    (categories Cc, Cf except tab, newline, carriage return).
  * FLAG_WS: `_is_whitespace` (space, tab, newline, carriage return, Zs) and
    `str.split()` whitespace used by `whitespace_tokenize` (e.g. U+2028).
  * FLAG_CJK: `_tokenize_chinese_chars` / `_is_chinese_char` blocks.
  * FLAG_PUNCT: `_is_punctuation` (ASCII 33-47, 58-64, 91-96, 123-126 or
    category P*).
  * FLAG_CASED / FLAG_CASE_IGNORABLE: the properties Python's `str.lower()`
    uses for the Final_Sigma rule (U+03A3 -> U+03C2 at the end of a word);
    probed from `str.lower()` itself.
"""

import dataclasses
import functools
import unicodedata

import numpy as np

FLAG_DROP = 1
FLAG_WS = 2
FLAG_CJK = 4
FLAG_PUNCT = 8
FLAG_CASED = 16
FLAG_CASE_IGNORABLE = 32
FLAG_IDENTITY = 64

MAX_CODE_POINT = 0x10FFFF
BLOCK_BITS = 7
BLOCK_SIZE = 1 << BLOCK_BITS

CAPITAL_SIGMA = 0x3A3
FINAL_SIGMA = 0x3C2

# _is_chinese_char of original BERT tokenization.py.
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF),
               (0x2A700, 0x2B73F), (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF),
               (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def is_chinese_char(cp: int) -> bool:
  """`BasicTokenizer._is_chinese_char` of original BERT tokenization.py."""
  return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def is_punctuation(char: str) -> bool:
  """`_is_punctuation` of original BERT tokenization.py."""
  cp = ord(char)
  if (33 <= cp <= 47) or (58 <= cp <= 64) or (91 <= cp <= 96) or (
      123 <= cp <= 126):
    return True
  return unicodedata.category(char).startswith("P")


def is_dropped(char: str) -> bool:
  """Characters removed by `BasicTokenizer._clean_text`."""
  cp = ord(char)
  if cp == 0 or cp == 0xFFFD:
    return True
  if char in "\t\n\r":
    return False
  return unicodedata.category(char) in ("Cc", "Cf")


def is_whitespace(char: str) -> bool:
  """`_is_whitespace` plus the `str.split()` whitespace of `whitespace_tokenize`."""
  return (char in " \t\n\r" or unicodedata.category(char) == "Zs" or
          char.isspace())


def _is_cased(char: str) -> bool:
  # Final_Sigma probe: in "XΣ" the sigma is final iff X is cased and not
  # case-ignorable (an ignorable X is skipped and nothing precedes it).
  return (char + "\u03a3").lower()[-1] == "\u03c2"


def _is_case_ignorable(char: str) -> bool:
  # In "AXΣ" the sigma is final iff X is case-ignorable (skipped, so "A"
  # decides) or X is cased and not ignorable (excluded by _is_cased).
  return ("A" + char + "\u03a3").lower()[-1] == "\u03c2" and not _is_cased(
      char)


def normalize_char(char: str, do_lower_case: bool) -> str:
  """What one character becomes in `BasicTokenizer.tokenize` (Σ: non-final)."""
  if not do_lower_case:
    return char
  text = unicodedata.normalize("NFD", char.lower())
  return "".join(c for c in text if unicodedata.category(c) != "Mn")


@dataclasses.dataclass(frozen=True)
class CharTables:
  """Numpy tables; see the module docstring. All int32."""
  stage1: np.ndarray          # [0x110000 >> 7]
  stage2: np.ndarray          # [num_blocks * 128]
  class_flags: np.ndarray     # [num_classes]
  class_len: np.ndarray       # [num_classes]
  class_exp: np.ndarray       # [num_classes * width]
  class_elem_flags: np.ndarray  # [num_classes * width]
  width: int
  final_sigma_class: int


def _char_flags(char: str, do_lower_case: bool) -> int:
  cp = ord(char)
  if is_dropped(char):
    return FLAG_DROP
  flags = 0
  if is_whitespace(char):
    flags |= FLAG_WS
  if is_chinese_char(cp):
    flags |= FLAG_CJK
  if do_lower_case:
    if _is_cased(char):
      flags |= FLAG_CASED
    if _is_case_ignorable(char):
      flags |= FLAG_CASE_IGNORABLE
  return flags


def _elem_flags(char: str, source_flags: int) -> int:
  flags = source_flags & (FLAG_WS | FLAG_CJK)
  if is_punctuation(char):
    flags |= FLAG_PUNCT
  if char.isspace():
    flags |= FLAG_WS
  return flags


@functools.lru_cache(maxsize=2)
def build_char_tables(do_lower_case: bool) -> CharTables:
  """Returns the `CharTables` for one casing mode (cached, immutable)."""
  classes = {}  # key -> class id
  class_rows = []  # (flags, expansion or None, elem_flags)

  def class_id(key, row):
    if key not in classes:
      classes[key] = len(class_rows)
      class_rows.append(row)
    return classes[key]

  plain = class_id(("id", 0, 0), (FLAG_IDENTITY, None, (0,)))
  codes = np.full(MAX_CODE_POINT + 1, plain, dtype=np.int32)
  for cp in range(MAX_CODE_POINT + 1):
    if 0xD800 <= cp <= 0xDFFF:
      continue
    char = chr(cp)
    cat = unicodedata.category(char)
    if cat in ("Cn", "Co") and not is_chinese_char(cp):
      continue  # unassigned / private use: plain identity.
    flags = _char_flags(char, do_lower_case)
    if flags & FLAG_DROP:
      codes[cp] = class_id(("drop",), (FLAG_DROP, (), ()))
      continue
    norm = normalize_char(char, do_lower_case)
    if flags & FLAG_WS:
      norm = " "
    if norm == char:
      elem = _elem_flags(char, flags)
      if flags == 0 and elem == 0:
        continue
      codes[cp] = class_id(("id", flags, elem),
                           (flags | FLAG_IDENTITY, None, (elem,)))
    else:
      elems = tuple(_elem_flags(c, flags) for c in norm)
      exp = tuple(ord(c) for c in norm)
      codes[cp] = class_id(("exp", flags, exp, elems), (flags, exp, elems))
  final_sigma_class = codes[FINAL_SIGMA]

  width = max(max(len(r[2]) for r in class_rows), 1)
  n = len(class_rows)
  class_flags = np.zeros(n, np.int32)
  class_len = np.zeros(n, np.int32)
  class_exp = np.zeros((n, width), np.int32)
  class_elem = np.zeros((n, width), np.int32)
  for i, (flags, exp, elems) in enumerate(class_rows):
    class_flags[i] = flags
    class_len[i] = 1 if exp is None else len(exp)
    if exp:
      class_exp[i, :len(exp)] = exp
    class_elem[i, :len(elems)] = elems

  blocks = codes.reshape(-1, BLOCK_SIZE)
  unique, stage1 = np.unique(blocks, axis=0, return_inverse=True)

  def frozen(a):
    a = np.ascontiguousarray(a.reshape(-1), dtype=np.int32)
    a.setflags(write=False)  # the result is cached: keep it immutable.
    return a

  return CharTables(
      stage1=frozen(stage1),
      stage2=frozen(unique),
      class_flags=frozen(class_flags),
      class_len=frozen(class_len),
      class_exp=frozen(class_exp),
      class_elem_flags=frozen(class_elem),
      width=width,
      final_sigma_class=int(final_sigma_class))


# Kind of a normalized code point (an element of `element_tables`): removed
# (dropped by `_clean_text`, or a padding slot of a short expansion),
# whitespace (separates words, removed), part of a word, or a word of its
# own (punctuation, CJK). Kept elements are those >= KIND_KEEP.
KIND_NONE, KIND_WS, KIND_KEEP, KIND_SINGLE = 0, 1, 2, 3


def _smallest_int_dtype(values):
  """numpy array cast to uint8 / int16 / int32, the smallest that holds it."""
  top = int(values.max(initial=0))
  dtype = np.uint8 if top < 256 else np.int16 if top < 32768 else np.int32
  return values.astype(dtype)


def element_tables(tables: CharTables) -> dict:
  """The tables in the form the tokenizer's graph gathers from.

  Args:
    tables: from `build_char_tables`.

  Returns:
    dict of numpy arrays:
      class_of_cp: [0x110000] class id of every code point (one gather
        instead of the two-level lookup), in the smallest of uint8 / int16 /
        int32 that holds it;
      kind_of_cp: [0x110000] kind (KIND_*) of every code point's first
        element, same narrowing (the whole lookup when `width` is 1, i.e.
        in cased mode);
      elem_kind: int32 [num_classes * width], the kind (KIND_NONE, KIND_WS,
        KIND_KEEP, KIND_SINGLE) of expansion element j of class c at
        c * width + j;
      elem_exp: int32 [num_classes * width], its code point, or -1 where the
        class is an identity (the element is the input code point);
      class_nonign: bool [num_classes], neither case-ignorable nor dropped
        (the characters the Final_Sigma rule looks at, on cleaned text);
      class_cased: bool [num_classes], cased (Final_Sigma);
      class_multi: bool [num_classes], normalizes to 2+ code points.
  """
  width = tables.width
  blocks = tables.stage2.reshape(-1, BLOCK_SIZE)
  class_of_cp = blocks[tables.stage1].reshape(-1)
  flags = tables.class_flags
  elem_flags = tables.class_elem_flags.reshape(-1, width)
  slot = np.arange(width)[None, :]
  valid = slot < tables.class_len[:, None]  # 0 for dropped classes.
  kind = np.where(
      elem_flags & FLAG_WS, KIND_WS,
      np.where(elem_flags & (FLAG_PUNCT | FLAG_CJK), KIND_SINGLE, KIND_KEEP))
  kind = np.where(valid, kind, KIND_NONE).astype(np.int32).reshape(-1)
  identity = (flags & FLAG_IDENTITY) != 0
  exp = np.where(identity[:, None], -1,
                 tables.class_exp.reshape(-1, width)).astype(np.int32)
  return dict(
      class_of_cp=_smallest_int_dtype(class_of_cp),
      kind_of_cp=_smallest_int_dtype(kind[class_of_cp * width]),
      elem_kind=kind,
      elem_exp=exp.reshape(-1),
      class_nonign=((flags & (FLAG_CASE_IGNORABLE | FLAG_DROP)) == 0),
      class_cased=(flags & FLAG_CASED) != 0,
      class_multi=tables.class_len > 1)
