"""Natural-language-inference data for fine-tuning: strict readers and the training order.

Two on-disk formats, both tab-separated UTF-8 text (no quoting: a `"` is an ordinary
character, as in BERT's `run_classifier.py`, which reads them with `quotechar=None`):

* `xtreme`: `premise<TAB>hypothesis<TAB>label`, one pair per line, no header. This is the
  format of XTREME's XNLI files (`dev-xx.tsv`, `test-xx.tsv`; github google-research/xtreme)
  and of XNLI-MT's `multinli.train.xx.tsv`, whose first line is the header
  `premise<TAB>hypo<TAB>label`: a first line `premise<TAB>hypo[thesis]<TAB>label` is skipped.
* `glue_mnli`: GLUE's `MNLI/train.tsv` (`dev_matched.tsv`, ...): a header line naming the
  columns (12 for train: `index promptID pairID genre sentence1_binary_parse ...
  sentence1 sentence2 label1 gold_label`), then one pair per line with exactly that many
  columns; premise = `sentence1`, hypothesis = `sentence2`, label = `gold_label` (BERT's
  `MnliProcessor` reads the same columns: 8, 9 and the last).

Labels are the strings `entailment`, `neutral`, `contradiction`, mapped to ids 0, 1, 2 in the
order of TFDS `multi_nli` / `xnli` and Hugging Face `datasets` (`ClassLabel(names=[
"entailment", "neutral", "contradiction"])`). `contradictory`, the spelling of XNLI-MT's
training files, is read as `contradiction` (as BERT's `XnliProcessor` does).

TensorFlow Datasets, when a user has them prepared (`tfds build` / `download_and_prepare`;
nothing is downloaded here): the spec `tfds:NAME[/SPLIT][@LANG]` reads `multi_nli` (premise,
hypothesis, label) or, with a language, `xnli` (premise[LANG] and the LANG entry of the
hypothesis translations); their label names must be `LABELS` in that order.

Documented handling of file quirks: a UTF-8 byte-order mark at the start of the file is
ignored; CRLF line ends are accepted (XTREME's XNLI files are CRLF as published); the last
line may lack its newline. Everything else that does not fit raises `NliDataError` naming
the file, the 1-based line number, what was found and what was expected: a wrong number of
columns, an unknown label, an empty line, bytes that are not UTF-8, a file with no pairs.
"""

import dataclasses
import hashlib
import os
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

LABELS = ("entailment", "neutral", "contradiction")
LABEL_ALIASES = {"contradictory": "contradiction"}
XNLI_LANGUAGES = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr",
                  "ur", "vi", "zh")
FORMATS = ("auto", "xtreme", "glue_mnli")
_GLUE_COLUMNS = ("sentence1", "sentence2", "gold_label")
_XTREME_HEADERS = (("premise", "hypo", "label"), ("premise", "hypothesis", "label"))


class NliDataError(ValueError):
  """A malformed data file; the message names the file, the line and the fix."""


@dataclasses.dataclass(frozen=True)
class NliExamples:
  """Sentence pairs with labels, in file order.

  Attributes:
    premises, hypotheses: tuples of str, one per pair.
    labels: int32 [N], ids into `LABELS`.
    ids: tuple of str, a stable id per pair: `pairID=<id>` for GLUE MNLI rows with a
      `pairID` column, else `<file name>:<line number>`.
    source: the file read.
  """
  premises: Tuple[str, ...]
  hypotheses: Tuple[str, ...]
  labels: np.ndarray
  ids: Tuple[str, ...]
  source: str

  def __len__(self) -> int:
    return len(self.premises)

  def take(self, n: int) -> "NliExamples":
    """The first `n` pairs (all if `n` >= len)."""
    return NliExamples(self.premises[:n], self.hypotheses[:n], self.labels[:n],
                       self.ids[:n], self.source)


def _lines(path: str):
  """Yields (line number, text) of a UTF-8 file, BOM and CR/LF removed."""
  with open(path, "rb") as f:
    data = f.read()
  if data.startswith(b"\xef\xbb\xbf"):
    data = data[3:]
  raw_lines = data.split(b"\n")
  if raw_lines and raw_lines[-1] == b"":
    raw_lines.pop()  # The final newline.
  for number, raw in enumerate(raw_lines, start=1):
    if raw.endswith(b"\r"):
      raw = raw[:-1]
    try:
      text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
      raise NliDataError(f"{path}: line {number} is not valid UTF-8 ({e.reason} at byte "
                         f"{e.start}); save the file as UTF-8") from None
    yield number, text


def _label_id(path: str, number: int, value: str) -> int:
  label = LABEL_ALIASES.get(value, value)
  if label not in LABELS:
    raise NliDataError(f"{path}: line {number} has the unknown label {value!r}; expected one "
                       f"of {list(LABELS)} (or 'contradictory'); fix or drop the line")
  return LABELS.index(label)


def detect_format(path: str) -> str:
  """'glue_mnli' if line 1 is a GLUE MNLI header, 'xtreme' if it has 3 columns.

  Raises:
    FileNotFoundError: no such file.
    NliDataError: empty file, or a first line that fits neither format.
  """
  for number, text in _lines(path):
    fields = text.split("\t")
    if all(c in fields for c in _GLUE_COLUMNS):
      return "glue_mnli"
    if len(fields) == 3:
      return "xtreme"
    raise NliDataError(
        f"{path}: cannot tell the format from line {number}: it has {len(fields)} "
        "tab-separated columns and is not a GLUE MNLI header (with sentence1, sentence2, "
        "gold_label); expected premise<TAB>hypothesis<TAB>label (xtreme) or GLUE's "
        "MNLI train.tsv (glue_mnli); pass the format explicitly if the file is one of them")
  raise NliDataError(f"{path} is empty; expected sentence pairs (xtreme: "
                     "premise<TAB>hypothesis<TAB>label; glue_mnli: GLUE MNLI train.tsv)")


def read_nli_file(path: str, fmt: str = "auto", limit: Optional[int] = None) -> NliExamples:
  """Reads a labelled NLI file strictly (see the module docstring for the formats).

  Args:
    path: the .tsv file.
    fmt: one of `FORMATS`; 'auto' uses `detect_format`.
    limit: read only the first `limit` pairs (None: all).

  Returns:
    `NliExamples` in file order.

  Raises:
    FileNotFoundError: no such file.
    ValueError: `fmt` or `limit` invalid.
    NliDataError: malformed content (file, line, found and expected are named).
  """
  if fmt not in FORMATS:
    raise ValueError(f"format {fmt!r} is not one of {list(FORMATS)}")
  if limit is not None and limit < 1:
    raise ValueError(f"limit={limit} must be None or >= 1")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"NLI data file {path} does not exist")
  if fmt == "auto":
    fmt = detect_format(path)
  premises, hypotheses, labels, ids = [], [], [], []
  name = os.path.basename(path)
  header = None
  columns = None
  for number, text in _lines(path):
    if limit is not None and len(labels) >= limit:
      break
    if not text:
      raise NliDataError(f"{path}: line {number} is empty; expected a sentence pair "
                         "(remove blank lines)")
    fields = text.split("\t")
    if fmt == "glue_mnli" and header is None:
      missing = [c for c in _GLUE_COLUMNS if c not in fields]
      if missing:
        raise NliDataError(f"{path}: line {number} is not a GLUE MNLI header: it lacks the "
                           f"columns {missing}; expected the header line of GLUE's "
                           "MNLI/train.tsv")
      header = fields
      columns = {c: fields.index(c) for c in (*_GLUE_COLUMNS, "pairID") if c in fields}
      continue
    if fmt == "xtreme" and number == 1 and tuple(fields) in _XTREME_HEADERS:
      continue
    expected = len(header) if fmt == "glue_mnli" else 3
    if len(fields) != expected:
      what = (f"the {expected} columns of the header" if fmt == "glue_mnli" else
              "3 columns: premise<TAB>hypothesis<TAB>label")
      raise NliDataError(f"{path}: line {number} has {len(fields)} tab-separated columns; "
                         f"expected {what} (a tab inside a sentence, or a truncated line?)")
    if fmt == "glue_mnli":
      premise, hypothesis = fields[columns["sentence1"]], fields[columns["sentence2"]]
      label = fields[columns["gold_label"]]
      ident = (f"pairID={fields[columns['pairID']]}" if "pairID" in columns
               else f"{name}:{number}")
    else:
      premise, hypothesis, label = fields
      ident = f"{name}:{number}"
    labels.append(_label_id(path, number, label))
    premises.append(premise)
    hypotheses.append(hypothesis)
    ids.append(ident)
  if not labels:
    raise NliDataError(f"{path} has no sentence pairs (only a header or nothing); expected "
                       "at least one labelled pair")
  return NliExamples(tuple(premises), tuple(hypotheses), np.asarray(labels, np.int32),
                     tuple(ids), path)


TFDS_PREFIX = "tfds:"


def parse_tfds_spec(spec: str) -> Tuple[str, str, Optional[str]]:
  """'tfds:NAME[/SPLIT][@LANG]' -> (name, split, language); split defaults to 'train'.

  Raises:
    ValueError: not a `tfds:` spec, or an empty name/split/language.
  """
  if not spec.startswith(TFDS_PREFIX):
    raise ValueError(f"{spec!r} is not a TFDS spec; expected tfds:NAME[/SPLIT][@LANG]")
  rest, at, language = spec[len(TFDS_PREFIX):].partition("@")
  name, slash, split = rest.partition("/")
  if not name or (slash and not split) or (at and not language):
    raise ValueError(f"TFDS spec {spec!r} has an empty part; expected tfds:NAME[/SPLIT][@LANG],"
                     " e.g. tfds:multi_nli/train or tfds:xnli/validation@de")
  return name, split or "train", language or None


def read_tfds(spec: str, *, data_dir: Optional[str] = None,
              limit: Optional[int] = None) -> NliExamples:
  """Reads a prepared TFDS NLI split (see the module docstring); nothing is downloaded.

  Args:
    spec: 'tfds:NAME[/SPLIT][@LANG]'; LANG is required for datasets whose premise is a
      per-language dict (`xnli`) and refused for plain-text ones (`multi_nli`).
    data_dir: TFDS data directory (None: TFDS's default, `~/tensorflow_datasets`).
    limit: read only the first `limit` pairs.

  Raises:
    NliDataError: the dataset is not prepared, its labels are not `LABELS`, or the
      language is missing/unexpected/absent from an example.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  name, split, language = parse_tfds_spec(spec)
  try:
    builder = tfds.builder(name, data_dir=data_dir)
    names = list(builder.info.features["label"].names)
    dataset = tfds.load(name, split=split, data_dir=data_dir, download=False)
  except Exception as e:  # pylint: disable=broad-except  (TFDS raises AssertionError & co.)
    raise NliDataError(f"{spec}: cannot load TFDS {name!r} split {split!r} ({e}); prepare it "
                       f"first (`tfds build {name}`) or pass its --tfds_data_dir") from None
  if names != list(LABELS):
    raise NliDataError(f"{spec}: label names {names} differ from {list(LABELS)}")
  if limit is not None:
    dataset = dataset.take(limit)
  premises, hypotheses, labels, ids = [], [], [], []
  for i, example in enumerate(tfds.as_numpy(dataset)):
    premise, hypothesis = example["premise"], example["hypothesis"]
    if isinstance(premise, dict):
      if language is None:
        raise NliDataError(f"{spec}: {name} is multilingual; name a language, e.g. {spec}@en")
      if language not in premise:
        raise NliDataError(f"{spec}: language {language!r} is not among {sorted(premise)}")
      premise = premise[language]
      langs = [x.decode() for x in hypothesis["language"]]
      if language not in langs:
        raise NliDataError(f"{spec}: example {i} has no {language!r} hypothesis (has {langs})")
      hypothesis = hypothesis["translation"][langs.index(language)]
    elif language is not None:
      raise NliDataError(f"{spec}: {name} has one language; drop @{language}")
    premises.append(premise.decode("utf-8"))
    hypotheses.append(hypothesis.decode("utf-8"))
    labels.append(int(example["label"]))
    ids.append(f"{spec}:{i}")
  if not labels:
    raise NliDataError(f"{spec} has no examples")
  return NliExamples(tuple(premises), tuple(hypotheses), np.asarray(labels, np.int32),
                     tuple(ids), spec)


def load_examples(source: str, fmt: str = "auto", *, limit: Optional[int] = None,
                  tfds_data_dir: Optional[str] = None) -> NliExamples:
  """A file (`read_nli_file`) or a `tfds:` spec (`read_tfds`)."""
  if source.startswith(TFDS_PREFIX):
    return read_tfds(source, data_dir=tfds_data_dir, limit=limit)
  return read_nli_file(source, fmt, limit=limit)


def examples_sha256(examples: NliExamples) -> str:
  """sha256 hex of the pairs and labels, in order (identifies training data on resume)."""
  digest = hashlib.sha256()
  for premise, hypothesis, label in zip(examples.premises, examples.hypotheses,
                                        examples.labels):
    digest.update(f"{premise}\t{hypothesis}\t{int(label)}\n".encode("utf-8"))
  return digest.hexdigest()


def eval_files(*, languages: Sequence[str], eval_dir: Optional[str] = None,
               split: str = "dev", files: Optional[Dict[str, str]] = None) -> Dict[str, str]:
  """Resolves one evaluation file per language.

  Args:
    languages: language codes, in the order wanted (e.g. `XNLI_LANGUAGES`).
    eval_dir: a directory with XTREME's `{split}-{lang}.tsv` files, or `tfds:xnli` (then
      each language resolves to `tfds:xnli/{validation|test}@{lang}`).
    split: 'dev' or 'test' (XTREME's file name prefix).
    files: explicit {lang: path}; takes precedence over `eval_dir` per language.

  Returns:
    {lang: path} in the order of `languages`.

  Raises:
    ValueError: duplicate languages, or a language with neither a file in `files` nor an
      `eval_dir`.
    FileNotFoundError: resolved files that do not exist (all are listed).
  """
  files = dict(files or {})
  if len(set(languages)) != len(languages):
    raise ValueError(f"eval languages {list(languages)} contain duplicates")
  unused = sorted(set(files) - set(languages))
  if unused:
    raise ValueError(f"eval files were given for {unused}, which are not among the eval "
                     f"languages {list(languages)}; add them to the languages or drop them")
  resolved = {}
  for lang in languages:
    if lang in files:
      resolved[lang] = files[lang]
    elif eval_dir is not None and eval_dir.startswith(TFDS_PREFIX):
      resolved[lang] = (f"{eval_dir}/{'validation' if split == 'dev' else split}@{lang}")
    elif eval_dir is not None:
      resolved[lang] = os.path.join(eval_dir, f"{split}-{lang}.tsv")
    else:
      raise ValueError(f"no evaluation file for language {lang!r}: pass an eval directory "
                       f"with {split}-{lang}.tsv or an explicit file for it")
  missing = [f"{lang}: {path}" for lang, path in resolved.items()
             if not path.startswith(TFDS_PREFIX) and not os.path.isfile(path)]
  if missing:
    raise FileNotFoundError("evaluation files not found: " + "; ".join(missing))
  return resolved


def epoch_permutation(num_examples: int, *, seed: int, epoch: int) -> np.ndarray:
  """The deterministic shuffled order of one epoch: int64 [num_examples].

  numpy's `Generator(PCG64)` seeded by the pair (seed, epoch); each epoch is a different
  permutation, the same on every run with the same seed and numpy's stream.
  """
  return np.random.default_rng([seed, epoch]).permutation(num_examples).astype(np.int64)


def example_order(num_examples: int, *, seed: int, num_positions: int) -> np.ndarray:
  """Example indices of training positions 0 .. num_positions-1: int64 [num_positions].

  Position p is the (p mod N)-th entry of epoch (p div N)'s permutation (N =
  `num_examples`): each epoch visits every example exactly once, and a batch may span two
  epochs. Step s of a run with global batch size B reads positions [s*B, (s+1)*B), so a
  resumed run derives its data position from the checkpointed step alone.
  """
  if num_examples < 1:
    raise ValueError(f"num_examples={num_examples} must be >= 1")
  epochs = -(-num_positions // num_examples)
  parts = [epoch_permutation(num_examples, seed=seed, epoch=e) for e in range(epochs)]
  return (np.concatenate(parts) if parts else np.zeros([0], np.int64))[:num_positions]


def order_fingerprint(order: np.ndarray) -> str:
  """sha256 hex of an example order (detects a changed numpy stream on resume)."""
  return hashlib.sha256(np.ascontiguousarray(order, dtype="<i8").tobytes()).hexdigest()
