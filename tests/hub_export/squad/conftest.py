"""A tiny squad/ export shared by the squad tests (built once per session)."""

import os

import pytest

from checkpoints import converter
from checkpoints.config import MobileBertConfig
from hub_export.squad import export as squad_export
from tests import testutil

XQUAD_EN = os.path.join(testutil.SHARED_DATA, "squad", "xquad", "xquad.en.json")
SEQ_LENGTH = 128  # the tiny config has max_position_embeddings 128


@pytest.fixture(scope="session")
def tiny_squad(tmp_path_factory):
  """A 2-block checkpoint WITH a cls/squad head, exported to squad/ at seq 128.

  Returns a dict: `dir` (squad dir), `manifest`, `model` (the converted model),
  `config`.
  """
  root = tmp_path_factory.mktemp("squad")
  cfg = testutil.tiny_config()
  prefix = testutil.write_checkpoint(str(root / "ckpt"), cfg, seed=11, with_squad=True)
  config = MobileBertConfig.from_dict(cfg)
  model, _ = converter.load_model(prefix, config, with_mlm=False)
  squad_dir = str(root / "squad")
  manifest = squad_export.export_squad(
      squad_dir, model, vocab_file=testutil.UNCASED_VOCAB, do_lower_case=True,
      squad_file=XQUAD_EN, calibration_questions=8, verify_questions=4,
      seq_length=SEQ_LENGTH, log=lambda _: None)
  return dict(dir=squad_dir, manifest=manifest, model=model, config=config)
