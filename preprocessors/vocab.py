"""Loading and validating a BERT WordPiece vocabulary file (vocab.txt).

Format: one token per line, UTF-8, the id of a token is its 0-based line number
(as in `load_vocab` of original BERT tokenization.py).

Line endings: LF or CRLF are accepted, but one style for the whole file. A
trailing `\\r\\n` or `\\n` is removed from every line; nothing else is stripped.
(The original `load_vocab` calls `token.strip()`; a token with surrounding
whitespace would silently change meaning there, so it is rejected here.)
A file that mixes LF and CRLF lines is rejected. The last line may lack a
final newline.
"""

import dataclasses
import hashlib

SPECIAL_TOKENS = {
    "padding_id": "[PAD]",
    "start_of_sequence_id": "[CLS]",
    "end_of_segment_id": "[SEP]",
    "mask_id": "[MASK]",
    "unk_id": "[UNK]",
}

# Number of non-special tokens with an uppercase letter from which a vocabulary
# is considered cased (uncased BERT: 2, 'ℝ' and '##ℝ'; multi_cased: 18,998).
_CASED_MIN_UPPERCASE_TOKENS = 100


@dataclasses.dataclass(frozen=True)
class Vocab:
  """A validated WordPiece vocabulary.

  Attributes:
    path: the path as given to `load_vocab`.
    tokens: the tokens; `tokens[i]` has id i.
    sha256: hex sha256 of the file bytes.
    special_ids: {'padding_id', 'start_of_sequence_id', 'end_of_segment_id',
      'mask_id', 'unk_id'} -> int, the ids of [PAD], [CLS], [SEP], [MASK],
      [UNK].
  """
  path: str
  tokens: tuple[str, ...]
  sha256: str
  special_ids: dict

  @property
  def size(self) -> int:
    """Number of tokens (= vocab_size of the model)."""
    return len(self.tokens)


def load_vocab(path: str) -> Vocab:
  """Reads and validates a vocab.txt.

  Args:
    path: path of a UTF-8 file with one token per line.

  Returns:
    A `Vocab`.

  Raises:
    ValueError: the file is missing or unreadable, not UTF-8, empty, mixes
      LF and CRLF line endings, has a blank line, a token with surrounding
      whitespace, a duplicate token (both line numbers are named), or lacks one
      of [PAD] [UNK] [CLS] [SEP] [MASK].
  """
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise ValueError(
        f"Cannot read vocab file {path!r}: {e.strerror or e}; pass the path of "
        "the vocab.txt that came with the checkpoint.") from e
  if not data:
    raise ValueError(f"Vocab file {path!r} is empty (0 bytes); pass the "
                     "vocab.txt that came with the checkpoint.")
  try:
    text = data.decode("utf-8")
  except UnicodeDecodeError as e:
    raise ValueError(f"Vocab file {path!r} is not valid UTF-8 at byte "
                     f"{e.start}; re-save it as UTF-8.") from e
  lines = text.split("\n")
  if lines[-1] == "":
    lines.pop()
  terminated = len(lines) if text.endswith("\n") else len(lines) - 1
  crlf = [l.endswith("\r") for l in lines[:terminated]]
  if any(crlf) and not all(crlf):
    raise ValueError(
        f"Vocab file {path!r} mixes CRLF (e.g. line {crlf.index(True) + 1}) "
        f"and LF (e.g. line {crlf.index(False) + 1}) line endings; convert it "
        "to one style (e.g. with dos2unix).")
  if any(crlf):
    lines = [l[:-1] for l in lines[:terminated]] + lines[terminated:]
  seen = {}
  for lineno, token in enumerate(lines, start=1):
    if not token:
      raise ValueError(
          f"Vocab file {path!r} has a blank line at line {lineno}; every line "
          "must hold one token (ids are line numbers), remove the blank line "
          "only if the model was trained without it.")
    if token != token.strip():
      raise ValueError(
          f"Vocab file {path!r} line {lineno}: token {token!r} has leading or "
          "trailing whitespace; remove it (original BERT strips it).")
    if token in seen:
      raise ValueError(
          f"Vocab file {path!r} has duplicate token {token!r} at lines "
          f"{seen[token]} and {lineno}; each token must appear once, use the "
          "vocab.txt that came with the checkpoint.")
    seen[token] = lineno
  missing = [t for t in SPECIAL_TOKENS.values() if t not in seen]
  if missing:
    raise ValueError(
        f"Vocab file {path!r} lacks special token(s) {' '.join(missing)}; a "
        "BERT vocab needs [PAD] [UNK] [CLS] [SEP] [MASK], pass the vocab.txt "
        "that came with the checkpoint.")
  special_ids = {k: seen[t] - 1 for k, t in SPECIAL_TOKENS.items()}
  return Vocab(path=path, tokens=tuple(lines),
               sha256=hashlib.sha256(data).hexdigest(),
               special_ids=special_ids)


def _is_special(token: str) -> bool:
  return token.startswith("[") and token.endswith("]")


def infer_do_lower_case(vocab: Vocab) -> tuple[bool, str]:
  """Decides the casing mode from the vocab content (not its path).

  An uncased vocab (built from lower-cased text) has no token with an
  uppercase letter besides bracketed special tokens such as [UNK]; a cased
  one has thousands (multi_cased: 18,998, e.g. 'The', 'Berlin'; uncased
  BERT: 2, the symbols 'ℝ' and '##ℝ').

  Returns:
    (do_lower_case, reason): do_lower_case is True iff fewer than 100
    non-special tokens contain an uppercase letter; reason is a one-line
    human-readable explanation with the counts.
  """
  upper = [t for t in vocab.tokens
           if not _is_special(t) and any(c.isupper() for c in t)]
  n = len(upper)
  examples = ", ".join(repr(t) for t in upper[:3])
  if n < _CASED_MIN_UPPERCASE_TOKENS:
    return True, (f"{n} of {vocab.size} non-special tokens contain an "
                  f"uppercase letter (< {_CASED_MIN_UPPERCASE_TOKENS})"
                  f"{': ' + examples if n else ''}; the vocab is uncased, "
                  "so do_lower_case=True")
  return False, (f"{n} of {vocab.size} non-special tokens contain an uppercase "
                 f"letter (>= {_CASED_MIN_UPPERCASE_TOKENS}, e.g. {examples}); "
                 "the vocab is cased, so do_lower_case=False")
