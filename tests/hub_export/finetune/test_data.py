"""finetune.data: strict readers on the real XNLI/MNLI files and on malformed files; the order."""

import csv
import glob
import os

import numpy as np
import pytest

from hub_export.finetune import data as nli_data
from tests import testutil

XNLI_DIR = os.path.join(testutil.SHARED_DATA, "xnli", "xtreme_dev")
MNLI_DIR = os.path.join(testutil.SHARED_DATA, "mnli", "lm_bff_kshot")


def _count_lines(path):
  with open(path, "rb") as f:
    return f.read().count(b"\n")


@pytest.mark.parametrize("lang", nli_data.XNLI_LANGUAGES)
def test_reads_every_xnli_dev_file(lang):
  path = os.path.join(XNLI_DIR, f"dev-{lang}.tsv")
  examples = nli_data.read_nli_file(path)
  # Independent truth: the file's newline count, and ../shared/data/README.md (2490 pairs,
  # 830 per label).
  assert len(examples) == _count_lines(path) == 2490
  assert np.bincount(examples.labels, minlength=3).tolist() == [830, 830, 830]
  assert not any("\r" in s for s in examples.premises + examples.hypotheses)
  assert len(set(examples.ids)) == len(examples)


def test_first_english_pair_is_the_known_one():
  examples = nli_data.read_nli_file(os.path.join(XNLI_DIR, "dev-en.tsv"))
  # ../shared/data/README.md: row 1 of dev-en.tsv is the known first XNLI dev pair.
  assert examples.premises[0] == "And he said, Mama, I'm home."
  assert examples.hypotheses[0] == ("He called his mom as soon as the school bus dropped him "
                                    "off.")
  assert nli_data.LABELS[examples.labels[0]] == "neutral"
  assert examples.ids[0] == "dev-en.tsv:1"


def test_reads_glue_mnli_like_the_csv_module():
  files = sorted(glob.glob(os.path.join(MNLI_DIR, "*", "*.tsv")))
  assert len(files) == 10
  pair_ids = []
  for path in files:
    assert nli_data.detect_format(path) == "glue_mnli"
    examples = nli_data.read_nli_file(path)
    with open(path, newline="", encoding="utf-8") as f:
      rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert list(examples.premises) == [r["sentence1"] for r in rows]
    assert list(examples.hypotheses) == [r["sentence2"] for r in rows]
    assert [nli_data.LABELS[i] for i in examples.labels] == [r["gold_label"] for r in rows]
    assert np.bincount(examples.labels, minlength=3).tolist() == [16, 16, 16]  # README.
    pair_ids += list(examples.ids)
  assert len(set(pair_ids)) == 480 and all(i.startswith("pairID=") for i in pair_ids)


def test_detects_xtreme_and_limit_reads_a_prefix():
  path = os.path.join(XNLI_DIR, "dev-de.tsv")
  assert nli_data.detect_format(path) == "xtreme"
  full = nli_data.read_nli_file(path)
  head = nli_data.read_nli_file(path, limit=7)
  assert head.premises == full.premises[:7] and head.labels.tolist() == full.labels[:7].tolist()


def _write(tmp_path, name, data: bytes):
  path = tmp_path / name
  path.write_bytes(data)
  return str(path)


def test_bom_crlf_and_missing_final_newline_are_accepted(tmp_path):
  plain = _write(tmp_path, "plain.tsv", b"a b\tc d\tentailment\ne\tf\tneutral\n")
  quirky = _write(tmp_path, "quirky.tsv",
                  b"\xef\xbb\xbfa b\tc d\tentailment\r\ne\tf\tneutral")
  want = nli_data.read_nli_file(plain)
  got = nli_data.read_nli_file(quirky)
  assert got.premises == want.premises == ("a b", "e")
  assert got.hypotheses == want.hypotheses == ("c d", "f")
  assert got.labels.tolist() == want.labels.tolist() == [0, 1]


def test_xnli_mt_header_and_contradictory_alias(tmp_path):
  path = _write(tmp_path, "multinli.train.en.tsv",
                b"premise\thypo\tlabel\nx\ty\tcontradictory\n")
  examples = nli_data.read_nli_file(path)
  assert len(examples) == 1 and nli_data.LABELS[examples.labels[0]] == "contradiction"
  assert examples.ids == ("multinli.train.en.tsv:2",)


@pytest.mark.parametrize("name,data,fmt,pattern", [
    ("wrong_columns", b"a\tb\tneutral\na\tb\n", "auto", r"bad\.tsv: line 2 has 2 tab-separated"
     r" columns; expected 3 columns"),
    ("extra_tab", b"a\tb\tneutral\na\tb\tc\tneutral\n", "xtreme", r"line 2 has 4 tab-separated"),
    ("unknown_label", b"a\tb\tneutral\na\tb\tmaybe\n", "auto",
     r"line 2 has the unknown label 'maybe'; expected one of \['entailment', 'neutral', "
     r"'contradiction'\]"),
    ("label_with_space", b"a\tb\tneutral \n", "auto", r"line 1 has the unknown label 'neutral '"),
    ("empty", b"", "auto", r"bad\.tsv is empty"),
    ("empty_xtreme", b"", "xtreme", r"bad\.tsv has no sentence pairs"),
    ("only_bom", b"\xef\xbb\xbf", "auto", r"is empty"),
    ("blank_line", b"a\tb\tneutral\n\na\tb\tneutral\n", "xtreme", r"line 2 is empty"),
    ("not_utf8", b"a\tb\tneutral\n\xff\xfe\tb\tneutral\n", "auto", r"line 2 is not valid UTF-8"),
    ("undetectable", b"just one column\n", "auto", r"cannot tell the format from line 1: it "
     r"has 1 tab-separated columns"),
    ("glue_header_only", b"index\tsentence1\tsentence2\tgold_label\n", "auto",
     r"has no sentence pairs"),
    ("glue_short_row", b"index\tsentence1\tsentence2\tgold_label\n1\ta\tb\n", "auto",
     r"line 2 has 3 tab-separated columns; expected the 4 columns of the header"),
    ("glue_no_header", b"1\ta\tb\tneutral\n", "glue_mnli", r"line 1 is not a GLUE MNLI header:"
     r" it lacks the columns \['sentence1', 'sentence2', 'gold_label'\]"),
    ("glue_dash_label", b"index\tsentence1\tsentence2\tgold_label\n1\ta\tb\t-\n", "auto",
     r"line 2 has the unknown label '-'"),
])
def test_malformed_file_fails_naming_file_and_line(tmp_path, name, data, fmt, pattern):
  del name
  path = _write(tmp_path, "bad.tsv", data)
  with pytest.raises(nli_data.NliDataError, match=pattern):
    nli_data.read_nli_file(path, fmt)


def test_bad_arguments(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    nli_data.read_nli_file(str(tmp_path / "missing.tsv"))
  path = _write(tmp_path, "ok.tsv", b"a\tb\tneutral\n")
  with pytest.raises(ValueError, match="format 'csv' is not one of"):
    nli_data.read_nli_file(path, "csv")
  with pytest.raises(ValueError, match="limit=0 must be None or >= 1"):
    nli_data.read_nli_file(path, limit=0)


def test_eval_files_resolves_and_reports_every_missing_file(tmp_path):
  files = nli_data.eval_files(languages=nli_data.XNLI_LANGUAGES, eval_dir=XNLI_DIR)
  assert list(files) == list(nli_data.XNLI_LANGUAGES)
  assert files["sw"] == os.path.join(XNLI_DIR, "dev-sw.tsv")
  own = _write(tmp_path, "mine.tsv", b"a\tb\tneutral\n")
  assert nli_data.eval_files(languages=["en", "xx"], eval_dir=XNLI_DIR,
                             files={"xx": own})["xx"] == own
  with pytest.raises(FileNotFoundError, match=r"test-en\.tsv.*test-de\.tsv"):
    nli_data.eval_files(languages=["en", "de"], eval_dir=XNLI_DIR, split="test")
  with pytest.raises(ValueError, match="contain duplicates"):
    nli_data.eval_files(languages=["en", "en"], eval_dir=XNLI_DIR)
  with pytest.raises(ValueError, match=r"eval files were given for \['fr'\]"):
    nli_data.eval_files(languages=["en"], eval_dir=XNLI_DIR, files={"fr": own})
  with pytest.raises(ValueError, match="no evaluation file for language 'en'"):
    nli_data.eval_files(languages=["en"])


def test_example_order_visits_each_example_once_per_epoch():
  n, seed = 10, 3
  order = nli_data.example_order(n, seed=seed, num_positions=35)
  assert order.shape == (35,) and order.dtype == np.int64
  for epoch in range(3):
    assert sorted(order[epoch * n:(epoch + 1) * n].tolist()) == list(range(n))
  assert set(order[30:].tolist()) <= set(range(n)) and len(set(order[30:].tolist())) == 5
  assert order[:n].tolist() != order[n:2 * n].tolist()  # Reshuffled per epoch.
  # Deterministic, and a prefix of any longer run: resuming needs only the step.
  assert nli_data.example_order(n, seed=seed, num_positions=12).tolist() == order[:12].tolist()
  assert nli_data.example_order(n, seed=seed + 1, num_positions=35).tolist() != order.tolist()
  assert nli_data.order_fingerprint(order) == nli_data.order_fingerprint(order.copy())
  assert nli_data.order_fingerprint(order) != nli_data.order_fingerprint(order[::-1])


def _fake_tfds(examples):
  """A `tfds.testing.mock_data` as_dataset_fn serving `examples` (TFDS feature layout)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  def as_dataset_fn(self, split, decoders=None, read_config=None, **kwargs):
    del self, split, decoders, read_config, kwargs
    return tf.data.Dataset.from_generator(
        lambda: iter(examples),
        output_signature=tf.nest.map_structure(
            lambda x: tf.TensorSpec(np.shape(x), tf.string if isinstance(np.ravel(x)[0], str)
                                    else tf.int64), examples[0]))
  return as_dataset_fn


def test_reads_prepared_tfds_multi_nli_and_xnli():
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  mnli = [{"premise": "P one", "hypothesis": "H one", "label": 2},
          {"premise": "P two", "hypothesis": "H two", "label": 0}]
  with tfds.testing.mock_data(as_dataset_fn=_fake_tfds(mnli)):
    got = nli_data.read_tfds("tfds:multi_nli")
    assert got.premises == ("P one", "P two") and got.hypotheses == ("H one", "H two")
    assert got.labels.tolist() == [2, 0] and got.ids[1] == "tfds:multi_nli:1"
    assert len(nli_data.load_examples("tfds:multi_nli/train", limit=1)) == 1
    with pytest.raises(nli_data.NliDataError, match="has one language; drop @en"):
      nli_data.read_tfds("tfds:multi_nli/train@en")
  langs = list(nli_data.XNLI_LANGUAGES)
  xnli = [{"premise": {l: f"premise-{l}-{i}" for l in langs},
           "hypothesis": {"language": np.array(order), "translation": np.array(
               [f"hypothesis-{l}-{i}" for l in order])},
           "label": i}
          for i, order in enumerate([sorted(langs), sorted(langs, reverse=True)])]
  with tfds.testing.mock_data(as_dataset_fn=_fake_tfds(xnli)):
    got = nli_data.read_tfds("tfds:xnli/validation@de")
    assert got.premises == ("premise-de-0", "premise-de-1")
    assert got.hypotheses == ("hypothesis-de-0", "hypothesis-de-1")
    assert got.labels.tolist() == [0, 1]
    with pytest.raises(nli_data.NliDataError, match=r"xnli is multilingual; name a language"):
      nli_data.read_tfds("tfds:xnli/validation")
    with pytest.raises(nli_data.NliDataError, match=r"language 'xx' is not among"):
      nli_data.read_tfds("tfds:xnli/test@xx")


def test_tfds_errors_and_eval_resolution(tmp_path):
  with pytest.raises(nli_data.NliDataError,
                     match=r"tfds:multi_nli/train: cannot load TFDS 'multi_nli'.*tfds build"):
    nli_data.read_tfds("tfds:multi_nli/train", data_dir=str(tmp_path))
  for bad in ("tfds:", "tfds:xnli/", "tfds:xnli/test@", "multi_nli"):
    with pytest.raises(ValueError, match="TFDS spec|not a TFDS spec"):
      nli_data.parse_tfds_spec(bad)
  assert nli_data.parse_tfds_spec("tfds:xnli/test[:10]@sw") == ("xnli", "test[:10]", "sw")
  files = nli_data.eval_files(languages=["en", "zh"], eval_dir="tfds:xnli", split="dev")
  assert files == {"en": "tfds:xnli/validation@en", "zh": "tfds:xnli/validation@zh"}
