"""`--preprocessor_tflite`: the bundle's preprocessor.tflite tokenizes like the original
BERT FullTokenizer in the TFLite interpreter, and the manifest records the check."""

import pytest
import json
import os

import numpy as np

from official.nlp.tools import tokenization
from preprocessors import tflite
from preprocessors import tokenizer as tokenizer_lib
from tests import testutil

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow

# Multilingual text from ../shared/data: the first premise of XNLI dev in a few scripts.
LANGUAGES = ("ar", "de", "el", "hi", "ru", "th", "zh")


def _xnli_sentences():
  sentences = []
  for lang in LANGUAGES:
    path = os.path.join(testutil.SHARED_DATA, "xnli", "xtreme_dev", f"dev-{lang}.tsv")
    with open(path, encoding="utf-8") as f:
      for line in f.readlines()[:6:3]:  # Premise and hypothesis of two pairs.
        sentences.extend(line.split("\t")[:2])
  return sentences


def test_bundle_preprocessor_tflite_matches_full_tokenizer(multi_bundle):
  path = os.path.join(multi_bundle["dir"], "preprocessor.tflite")
  with open(path, "rb") as f:
    model = f.read()
  truth = tokenization.FullTokenizer(testutil.MULTI_CASED_VOCAB, do_lower_case=False)
  truth.wordpiece_tokenizer.max_input_chars_per_word = tokenizer_lib.MAX_INPUT_CHARS_PER_WORD
  sentences = _xnli_sentences() + ["Straße ﬁnal ΟΔΟΣ", "東京\u200bタワー", ""]
  assert len(sentences) == 4 * len(LANGUAGES) + 3
  runner = tflite.make_interpreter(model).get_signature_runner("serving_default")
  got = runner(sentences=np.array([s.encode() for s in sentences], dtype=object))
  cls, sep = truth.vocab["[CLS]"], truth.vocab["[SEP]"]
  for row, sentence in enumerate(sentences):
    ids = truth.convert_tokens_to_ids(truth.tokenize(sentence))[:126]
    want = [cls] + ids + [sep]
    n = int(got["input_mask"][row].sum())
    assert got["input_word_ids"][row][:n].tolist() == want, sentence
    assert not got["input_word_ids"][row][n:].any()


def test_manifest_records_the_tflite_check(multi_bundle):
  with open(os.path.join(multi_bundle["dir"], "manifest.json")) as f:
    manifest = json.load(f)
  text = json.dumps(manifest)
  assert '"tflite"' in text
  check = _find(manifest, "tflite")
  assert check["identical_single"] == check["sentences"] > 0
  assert check["identical_pair"] == check["sentences"]


def _find(obj, key):
  if isinstance(obj, dict):
    if key in obj and isinstance(obj[key], dict):
      return obj[key]
    for value in obj.values():
      found = _find(value, key)
      if found is not None:
        return found
  return None
