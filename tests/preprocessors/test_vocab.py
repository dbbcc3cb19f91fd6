"""load_vocab validation branches and infer_do_lower_case."""

import hashlib
import os

import pytest

from preprocessors import vocab
from tests.preprocessors import conftest as c

_TINY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "##b"]


def _write(tmp_path, data: bytes, name="vocab.txt"):
  path = os.path.join(tmp_path, name)
  with open(path, "wb") as f:
    f.write(data)
  return path


def test_load_real_vocabs():
  for path, size, sha in [
      (c.UNCASED_VOCAB, 30522,
       "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"),
      (c.MULTI_CASED_VOCAB, 119547,
       "fe0fda7c425b48c516fc8f160d594c8022a0808447475c1a7c6d6479763f310c")]:
    v = vocab.load_vocab(path)
    assert v.size == size and v.sha256 == sha and v.path == path
    assert v.special_ids == dict(padding_id=0, unk_id=100,
                                 start_of_sequence_id=101,
                                 end_of_segment_id=102, mask_id=103)
  assert vocab.load_vocab(c.UNCASED_VOCAB).tokens[15347] == "blaze"


def test_tiny_vocab_lf_and_crlf_and_no_final_newline(tmp_path):
  lf = "\n".join(_TINY).encode() + b"\n"
  crlf = "\r\n".join(_TINY).encode() + b"\r\n"
  for data in (lf, crlf, lf[:-1], crlf[:-2]):
    v = vocab.load_vocab(_write(tmp_path, data))
    assert v.tokens == tuple(_TINY)
    assert v.sha256 == hashlib.sha256(data).hexdigest()


def test_load_vocab_fails_if_missing(tmp_path):
  path = os.path.join(tmp_path, "nope.txt")
  with pytest.raises(ValueError, match=r"Cannot read vocab file .*nope\.txt"):
    vocab.load_vocab(path)


def test_load_vocab_fails_if_directory(tmp_path):
  with pytest.raises(ValueError, match="Cannot read vocab file"):
    vocab.load_vocab(str(tmp_path))


def test_load_vocab_fails_if_empty(tmp_path):
  with pytest.raises(ValueError, match=r"is empty \(0 bytes\)"):
    vocab.load_vocab(_write(tmp_path, b""))


def test_load_vocab_fails_if_not_utf8(tmp_path):
  with pytest.raises(ValueError, match="not valid UTF-8 at byte 18"):
    vocab.load_vocab(_write(tmp_path, "\n".join(_TINY[:3]).encode() +
                            b"\n\xff\xfe\n"))


def test_load_vocab_fails_if_duplicate(tmp_path):
  data = "\n".join(_TINY + ["x", "a"]).encode() + b"\n"
  with pytest.raises(ValueError,
                     match=r"duplicate token 'a' at lines 6 and 9"):
    vocab.load_vocab(_write(tmp_path, data))


@pytest.mark.parametrize("token", ["[PAD]", "[UNK]", "[CLS]", "[SEP]",
                                   "[MASK]"])
def test_load_vocab_fails_if_special_token_missing(tmp_path, token):
  data = "\n".join(t for t in _TINY if t != token).encode() + b"\n"
  with pytest.raises(ValueError,
                     match=r"lacks special token\(s\) " + __import__(
                         "re").escape(token)):
    vocab.load_vocab(_write(tmp_path, data))


def test_load_vocab_fails_if_blank_line(tmp_path):
  data = "\n".join(_TINY[:3] + [""] + _TINY[3:]).encode() + b"\n"
  with pytest.raises(ValueError, match="blank line at line 4"):
    vocab.load_vocab(_write(tmp_path, data))


def test_load_vocab_fails_if_mixed_line_endings(tmp_path):
  data = ("\r\n".join(_TINY[:3]) + "\r\n" + "\n".join(_TINY[3:]) +
          "\n").encode()
  with pytest.raises(ValueError, match=r"mixes CRLF \(e.g. line 1\) and LF "
                     r"\(e.g. line 4\)"):
    vocab.load_vocab(_write(tmp_path, data))


def test_load_vocab_fails_if_token_has_surrounding_whitespace(tmp_path):
  data = "\n".join(_TINY + [" x"]).encode() + b"\n"
  with pytest.raises(ValueError, match="line 8: token ' x' has leading"):
    vocab.load_vocab(_write(tmp_path, data))


def test_infer_do_lower_case_real_vocabs():
  lower, reason = vocab.infer_do_lower_case(vocab.load_vocab(c.UNCASED_VOCAB))
  assert lower is True and "2 of 30522" in reason
  lower, reason = vocab.infer_do_lower_case(
      vocab.load_vocab(c.MULTI_CASED_VOCAB))
  assert lower is False and "18998 of 119547" in reason


def test_infer_do_lower_case_ignores_path(tmp_path):
  path = _write(tmp_path, "\n".join(_TINY).encode(), name="cased_vocab.txt")
  assert vocab.infer_do_lower_case(vocab.load_vocab(path))[0] is True
