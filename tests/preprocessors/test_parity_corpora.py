"""Exact id parity of the saved preprocessor with original BERT FullTokenizer
on real corpora (SQuAD v1.1 dev questions, XQuAD, XNLI dev in 15 languages)."""

import pytest

from tests.preprocessors import conftest as c

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow


def _compare(name, pre, ft, texts):
  got = c.tokenize_all(pre, texts)
  expected = [c.reference_ids(ft, t) for t in texts]
  same = sum(g == e for g, e in zip(got, expected))
  print(f"{name}: compared {len(texts)}, identical {same}")
  bad = [i for i, (g, e) in enumerate(zip(got, expected)) if g != e]
  assert not bad, (f"{name}: {len(bad)} texts differ, first {texts[bad[0]]!r}:"
                   f" got {got[bad[0]]} expected {expected[bad[0]]}")
  return got


def test_squad_dev_questions_uncased(uncased_pre, uncased_ref):
  questions, golden = c.load_squad_questions()
  assert len(questions) == 10570
  got = _compare("squad_v1.1_dev_questions/uncased", uncased_pre, uncased_ref,
                 questions)
  same_golden = sum(g == e for g, e in zip(got, golden))
  print(f"squad golden ids: compared {len(golden)}, identical {same_golden}")
  assert same_golden == len(golden) == 10570


def test_xquad_english_contexts_uncased(uncased_pre, uncased_ref):
  contexts = c.load_xquad_contexts("en")
  assert len(contexts) == 240
  _compare("xquad.en contexts/uncased", uncased_pre, uncased_ref, contexts)


@pytest.mark.parametrize("casing", ["multi_cased", "uncased"])
def test_xnli_dev_all_languages(casing, request):
  pre = request.getfixturevalue(f"{casing}_pre")
  ft = request.getfixturevalue(f"{casing}_ref")
  total = same = 0
  for lang, texts in c.load_xnli_texts().items():
    assert len(texts) == 2 * 2490
    got = c.tokenize_all(pre, texts)
    expected = [c.reference_ids(ft, t) for t in texts]
    n_same = sum(g == e for g, e in zip(got, expected))
    print(f"xnli dev {lang}/{casing}: compared {len(texts)}, identical "
          f"{n_same}")
    total += len(texts)
    same += n_same
  print(f"xnli dev all/{casing}: compared {total}, identical {same}")
  assert same == total == 74700
