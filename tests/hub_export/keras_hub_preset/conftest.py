"""Fixtures of the keras_hub/ preset tests: a tiny multilingual bundle exported with
`--keras_hub` (then moved, its source deleted) and the full-size demo bundle's preset.
Each is built once per run (`testutil.build_once`)."""

import os
import shutil
import subprocess
import sys

import pytest

from checkpoints import converter
from checkpoints.config import MobileBertConfig
from hub_export.keras_hub_preset import export as export_lib
from tests import testutil


@pytest.fixture(scope="session", name="keras_hub_bundle")
def fixture_keras_hub_bundle(tmp_path_factory):
  """A 2-block multilingual bundle exported by `export_main.py --keras_hub`, then moved
  to another directory with its source checkpoint deleted. Returns {"dir", "stdout"}."""

  def build(root):
    source = str(root / "source_ckpt")
    testutil.write_checkpoint(source, testutil.tiny_config(vocab_size=119547),
                              vocab_file=testutil.MULTI_CASED_VOCAB, seed=11)
    result = subprocess.run(
        [sys.executable, os.path.join(testutil.REPO, "export_main.py"),
         f"--checkpoint_dir={source}", f"--export_dir={root / 'bundle'}", "--keras_hub"],
        capture_output=True, text=True, cwd=testutil.REPO, check=False,
        env=dict(os.environ, PYTHONPATH=testutil.REPO, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    moved = root / "moved" / "bundle"
    moved.parent.mkdir()
    os.rename(root / "bundle", moved)
    shutil.rmtree(source)
    return dict(dir=str(moved), stdout=result.stdout)

  return testutil.build_once(tmp_path_factory, "keras_hub_bundle", build)


@pytest.fixture(scope="session", name="full_preset")
def fixture_full_preset(tmp_path_factory, full_demo_bundle):
  """keras_hub/ for the full-size (24-block) demo bundle, written and verified by
  `export_preset` against that bundle's encoder/ and preprocessor/."""

  def build(root):
    bundle = full_demo_bundle["dir"]
    config = MobileBertConfig.from_json_file(os.path.join(bundle, "checkpoint",
                                                          "bert_config.json"))
    prefix = os.path.join(bundle, "checkpoint", converter.TF2_PREFIX_NAME)
    model, _ = converter.load_model(prefix, config, with_mlm=True)
    summary = export_lib.export_preset(
        str(root / "keras_hub"), work=bundle, model=model,
        vocab_file=os.path.join(bundle, "checkpoint", "vocab.txt"), do_lower_case=True,
        sequence_length=128, log=lambda _: None)
    return dict(preset=str(root / "keras_hub"), bundle=bundle, summary=summary)

  return testutil.build_once(tmp_path_factory, "full_preset", build)
