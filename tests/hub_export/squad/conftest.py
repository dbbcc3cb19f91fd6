"""A tiny squad/ export shared by the squad tests (built once per session)."""

import json
import os

import pytest

from checkpoints import converter
from checkpoints.config import MobileBertConfig
from hub_export.squad import export as squad_export_lib
from hub_export.squad import features as features_lib
from hub_export.squad import model as qa_model
from tests import testutil

XQUAD_EN = os.path.join(testutil.SHARED_DATA, "squad", "xquad", "xquad.en.json")
SEQ_LENGTH = 128  # the tiny config has max_position_embeddings 128


def read_file(tiny_squad: dict, name: str) -> bytes:
  """The bytes of squad/`name` of the tiny export."""
  with open(os.path.join(tiny_squad["dir"], name), "rb") as f:
    return f.read()


@pytest.fixture(scope="session")
def squad_export(tmp_path_factory):
  """A 2-block checkpoint WITH a cls/squad head, exported to squad/ at seq 128, written
  once per run (`testutil.build_once`). Returns a dict: `dir` (squad dir), `prefix`
  (the checkpoint), `manifest` (squad_manifest.json as read back).
  """

  def build(root):
    prefix = testutil.write_checkpoint(str(root / "ckpt"), testutil.tiny_config(), seed=11,
                                       with_squad=True)
    model, _ = converter.load_model(prefix, MobileBertConfig.from_dict(testutil.tiny_config()),
                                    with_mlm=False)
    squad_dir = str(root / "squad")
    squad_export_lib.export_squad(
        squad_dir, model, vocab_file=testutil.UNCASED_VOCAB, do_lower_case=True,
        squad_file=XQUAD_EN, calibration_questions=8, verify_questions=4,
        seq_length=SEQ_LENGTH, log=lambda _: None)
    with open(os.path.join(squad_dir, "squad_manifest.json")) as f:
      manifest = json.load(f)  # As written (numpy figures as floats).
    return dict(dir=squad_dir, prefix=prefix, manifest=manifest)

  return testutil.build_once(tmp_path_factory, "squad_export", build)


@pytest.fixture(scope="session")
def tiny_squad(squad_export):
  """`squad_export` plus, in this worker, `model` (the converted model it was exported
  from) and `config`."""
  config = MobileBertConfig.from_dict(testutil.tiny_config())
  model, _ = converter.load_model(squad_export["prefix"], config, with_mlm=False)
  return dict(squad_export, model=model, config=config)


@pytest.fixture(scope="session")
def fresh_windows(tiny_squad):
  """Windows of XQuAD questions 20..27 (the export used 0..11) and their reference."""
  examples = features_lib.read_squad_json(XQUAD_EN, limit=28)[20:]
  m = tiny_squad["manifest"]
  feats = features_lib.Featurizer(
      testutil.UNCASED_VOCAB, do_lower_case=True, max_seq_length=SEQ_LENGTH,
      doc_stride=m["doc_stride"], max_query_length=m["max_query_length"]).features(examples)
  batches = list(features_lib.iter_batches(feats))
  ref = qa_model.reference_outputs(tiny_squad["model"], batches)
  return dict(examples=examples, features=feats, batches=batches, ref=ref)
