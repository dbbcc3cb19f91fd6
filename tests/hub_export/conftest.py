"""A tiny exported bundle shared by the hub_export tests (built once per session)."""

import os

import pytest

from hub_export import pipeline
from tests import testutil


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
  """Exports a 2-block original-layout checkpoint with the real uncased vocab.

  Returns a dict: `dir` (bundle), `source` (checkpoint directory), `result`.
  """
  root = tmp_path_factory.mktemp("bundle")
  source = str(root / "source_ckpt")
  testutil.write_checkpoint(source, testutil.tiny_config(), seed=7)
  result = pipeline.export_bundle(
      str(root / "bundle"), checkpoint=source,
      bert_config_file=os.path.join(source, "bert_config.json"),
      vocab_file=os.path.join(source, "vocab.txt"), log=lambda _: None)
  return dict(dir=result.export_dir, source=source, result=result, root=root)
