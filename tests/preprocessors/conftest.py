"""Shared fixtures: saved preprocessors (cut off from their vocab) and the
reference tokenizer (original BERT FullTokenizer from tf-models-official)."""

import json
import os
import shutil

import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers FastWordpiece ops)

from official.nlp.tools import tokenization
from preprocessors import export
from tests import testutil
from preprocessors import tokenizer as tokenizer_lib

DATA = testutil.SHARED_DATA  # ../shared/data beside the repo
UNCASED_VOCAB = testutil.UNCASED_VOCAB
MULTI_CASED_VOCAB = testutil.MULTI_CASED_VOCAB
XNLI_LANGS = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw",
              "th", "tr", "ur", "vi", "zh")


def reference_tokenizer(vocab_file, do_lower_case):
  """FullTokenizer with original BERT's max_input_chars_per_word=200.

  The tf-models copy defaults to 400; google-research/bert uses 200.
  """
  ft = tokenization.FullTokenizer(vocab_file, do_lower_case=do_lower_case)
  ft.wordpiece_tokenizer.max_input_chars_per_word = (
      tokenizer_lib.MAX_INPUT_CHARS_PER_WORD)
  return ft


def reference_ids(ft, text):
  return ft.convert_tokens_to_ids(ft.tokenize(text))


def _save_cut_off(tmp_root, vocab_file, do_lower_case, seq_length=128):
  """Saves a preprocessor, deletes the vocab copy, moves the directory."""
  src_dir = os.path.join(tmp_root, "src")
  os.makedirs(src_dir)
  vocab_copy = os.path.join(src_dir, "vocab.txt")
  shutil.copy(vocab_file, vocab_copy)
  first = os.path.join(tmp_root, "first", "preprocessor")
  export.save_preprocessor(first, vocab_file=vocab_copy,
                           do_lower_case=do_lower_case, seq_length=seq_length)
  shutil.rmtree(src_dir)
  moved = os.path.join(tmp_root, "moved", "preprocessor")
  os.makedirs(os.path.dirname(moved))
  shutil.move(first, moved)
  return moved


@pytest.fixture(scope="session")
def uncased_path(tmp_path_factory):
  return _save_cut_off(str(tmp_path_factory.mktemp("uncased")), UNCASED_VOCAB,
                       True)


@pytest.fixture(scope="session")
def multi_cased_path(tmp_path_factory):
  return _save_cut_off(str(tmp_path_factory.mktemp("multi")),
                       MULTI_CASED_VOCAB, False)


@pytest.fixture(scope="session")
def uncased_pre(uncased_path):
  return tf.saved_model.load(uncased_path)


@pytest.fixture(scope="session")
def multi_cased_pre(multi_cased_path):
  return tf.saved_model.load(multi_cased_path)


@pytest.fixture(scope="session")
def uncased_ref():
  return reference_tokenizer(UNCASED_VOCAB, True)


@pytest.fixture(scope="session")
def multi_cased_ref():
  return reference_tokenizer(MULTI_CASED_VOCAB, False)


@pytest.fixture(scope="session")
def tflite_models():
  """{"uncased", "multi_cased"}: bytes of `preprocessors.tflite`'s model at
  seq_length 128 (converted once per session)."""
  from preprocessors import tflite  # pylint: disable=g-import-not-at-top
  vocabs = {"multi_cased": (MULTI_CASED_VOCAB, False),
            "uncased": (UNCASED_VOCAB, True)}
  return {casing: tflite.convert_preprocessor_to_tflite(
      vocab_file=vocab, do_lower_case=lower, seq_length=128)
          for casing, (vocab, lower) in vocabs.items()}


def tokenize_all(pre, texts, batch_size=1024):
  """Token ids per text (flattened words) from a loaded preprocessor."""
  out = []
  for i in range(0, len(texts), batch_size):
    ragged = pre.tokenize(tf.constant(texts[i:i + batch_size]))
    out.extend(ragged.merge_dims(1, 2).to_list())
  return out


def load_xnli_texts():
  """Every premise and hypothesis of XNLI dev, 15 languages (CRLF stripped)."""
  texts = {}
  for lang in XNLI_LANGS:
    path = os.path.join(DATA, "xnli/xtreme_dev", f"dev-{lang}.tsv")
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
      for line in f:
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) != 3:
          raise ValueError(f"{path}: expected 3 tab-separated fields, got "
                           f"{len(fields)} in {line!r}")
        rows += fields[:2]
    texts[lang] = rows
  return texts


def load_squad_questions():
  d = os.path.join(DATA, "squad/squad_v1.1_dev_questions_tokenized")
  with open(os.path.join(d, "question_tokens.json"), encoding="utf-8") as f:
    questions = [q["original"] for q in json.load(f)]
  with open(os.path.join(d, "tokenized_questions.json"),
            encoding="utf-8") as f:
    golden = json.load(f)
  return questions, golden


def load_xquad_contexts(lang="en"):
  path = os.path.join(DATA, "squad/xquad", f"xquad.{lang}.json")
  with open(path, encoding="utf-8") as f:
    data = json.load(f)["data"]
  return [p["context"] for article in data for p in article["paragraphs"]]
