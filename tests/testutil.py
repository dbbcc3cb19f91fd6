"""Helpers shared by the tests: data paths, tiny configs, original-layout checkpoints."""

import copy
import glob
import json
import os

import numpy as np

from checkpoints import tf1_writer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _shared_data() -> str:
  """../shared/data beside the repo (CI clones main with shared/ next to it), or, under
  `bazel test`, the `@shared_data` repository (MODULE.bazel) in the runfiles."""
  runfiles = os.environ.get("RUNFILES_DIR") or os.environ.get("TEST_SRCDIR")
  if runfiles:
    found = sorted(glob.glob(os.path.join(runfiles, "*shared_data*", "data")))
    if found:
      return found[0]
  return os.path.join(os.path.dirname(REPO), "shared", "data")


SHARED_DATA = _shared_data()
UNCASED_VOCAB = os.path.join(SHARED_DATA, "vocab", "bert_uncased_en", "vocab.txt")
MULTI_CASED_VOCAB = os.path.join(SHARED_DATA, "vocab", "bert_multi_cased", "vocab.txt")
ORIGINAL_CONFIG = os.path.join(SHARED_DATA, "configs", "google_research_mobilebert",
                               "uncased_L-24_H-128_B-512_A-4_F-4_OPT.json")


def original_config() -> dict:
  """The released English config (google-research), as a dict."""
  with open(ORIGINAL_CONFIG) as f:
    return json.load(f)


def tiny_config(**overrides) -> dict:
  """The original config's structure at toy size (2 blocks, hidden 64), vocab 30522."""
  config = original_config()
  config.update(num_hidden_layers=2, hidden_size=64, embedding_size=32,
                intra_bottleneck_size=32, intermediate_size=48, num_attention_heads=4,
                max_position_embeddings=128)
  config.update(overrides)
  return config


def write_tiny_vocab(path: str, words=("the", "quick", "brown", "fox", "jumps")) -> str:
  """A hand-checkable vocab: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4, then `words`."""
  with open(path, "w") as f:
    f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
  return path


def write_checkpoint(directory: str, config: dict, vocab_file: str = UNCASED_VOCAB,
                     **kwargs) -> str:
  """An original-layout TF1 checkpoint directory; returns the checkpoint prefix."""
  return tf1_writer.write_checkpoint_dir(directory, copy.deepcopy(config), vocab_file,
                                         **kwargs)


def encoder_inputs(vocab_size: int, batch: int = 2, seq_length: int = 16, seed: int = 0):
  """Seeded int32 inputs with padding (row 1) and two segments."""
  rng = np.random.default_rng(seed)
  ids = rng.integers(5, vocab_size, (batch, seq_length)).astype(np.int32)
  mask = np.ones_like(ids)
  mask[1:, seq_length // 2 + 1:] = 0
  ids[mask == 0] = 0
  types = np.zeros_like(ids)
  types[:, seq_length // 4:] = 1
  types[mask == 0] = 0
  return dict(input_word_ids=ids, input_mask=mask, input_type_ids=types)


def build_once(tmp_path_factory, name: str, build):
  """Runs `build(directory)` once per test session, even across pytest-xdist workers.

  Each xdist worker has its own base temporary directory, all under one root of the
  session (`tmp_path_factory.getbasetemp().parent` under xdist); the first caller builds
  into ROOT/name while holding ROOT/name.lock (the `filelock` library), records the
  result in ROOT/name/build_once.json, and every later caller, in any worker, waits for
  the lock and reads that record. Without xdist, ROOT is the session's own base
  temporary directory.

  Args:
    tmp_path_factory: pytest's session fixture.
    name: the artifact's directory name, unique in the session.
    build: called with the (absent) directory as a `pathlib.Path`; creates it and
      returns a JSON-serialisable dict (paths as strings).

  Returns:
    `build`'s dict, as read back from the record.

  Raises:
    RuntimeError: an earlier `build` of this name failed in another worker (its
      directory exists without a record); the message names the directory.
  """
  import filelock  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    root = root.parent
  directory = root / name
  record = directory / "build_once.json"
  with filelock.FileLock(str(root / f"{name}.lock")):
    if record.is_file():
      return json.loads(record.read_text())
    if directory.exists():
      raise RuntimeError(f"an earlier build of {directory} failed (no {record.name}); "
                         "see the first test that used it")
    result = build(directory)
    record.write_text(json.dumps(result))
    return result


def free_ports(n: int) -> list:
  """`n` TCP ports on 127.0.0.1 that were free a moment ago (bound, read, released)."""
  import socket  # pylint: disable=g-import-not-at-top
  sockets = [socket.socket() for _ in range(n)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports
