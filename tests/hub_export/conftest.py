"""Tiny exported bundles shared by the hub_export tests (each written once per run,
whichever pytest-xdist worker asks first: `testutil.build_once`; only read afterwards).
`full_demo_bundle` lives in `tests/conftest.py`."""

import os

import pytest

from hub_export import pipeline
from tests import testutil


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
  """Exports a 2-block original-layout checkpoint with the real uncased vocab.

  Returns a dict: `dir` (bundle), `source` (checkpoint directory), `root` (the directory
  holding both).
  """

  def build(root):
    source = str(root / "source_ckpt")
    testutil.write_checkpoint(source, testutil.tiny_config(), seed=7)
    result = pipeline.export_bundle(
        str(root / "bundle"), checkpoint=source,
        bert_config_file=os.path.join(source, "bert_config.json"),
        vocab_file=os.path.join(source, "vocab.txt"), log=lambda _: None)
    return dict(dir=result.export_dir, source=source, root=str(root))

  return testutil.build_once(tmp_path_factory, "tiny_bundle", build)


@pytest.fixture(scope="session")
def multi_bundle(tmp_path_factory):
  """A 2-block multilingual cased bundle (vocab 119,547), exported through the CLI with
  `--with_text_signature --archive --preprocessor_tflite`. Returns a dict like `tiny_bundle`.
  """
  import export_main  # pylint: disable=g-import-not-at-top

  def build(root):
    source = str(root / "source_ckpt")
    testutil.write_checkpoint(source, testutil.tiny_config(vocab_size=119547),
                              vocab_file=testutil.MULTI_CASED_VOCAB, seed=11)
    export_dir = str(root / "bundle")
    code = export_main.run_main(["export_main.py", f"--checkpoint_dir={source}",
                                 f"--export_dir={export_dir}", "--with_text_signature",
                                 "--archive", "--preprocessor_tflite"])
    assert code == 0, "export of the multilingual tiny bundle failed"
    return dict(dir=export_dir, source=source, root=str(root))

  return testutil.build_once(tmp_path_factory, "multi_bundle", build)
