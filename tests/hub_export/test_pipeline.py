"""export_bundle's checks and its promise: nothing half-written, no good bundle lost."""

import json
import os

import pytest

from hub_export import pipeline
from hub_export import verify
from hub_export import worker as worker_lib
from tests import testutil

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow


@pytest.fixture()
def source(tmp_path):
  d = str(tmp_path / "src")
  testutil.write_checkpoint(d, testutil.tiny_config(), seed=1)
  return d


def _export(source_dir, export_dir, vocab_file=None, **options):
  return pipeline.export_bundle(
      export_dir, checkpoint=source_dir,
      bert_config_file=os.path.join(source_dir, "bert_config.json"),
      vocab_file=vocab_file or os.path.join(source_dir, "vocab.txt"),
      options=pipeline.BundleOptions(**options), log=lambda _: None)


def _leftovers(parent):
  return [n for n in os.listdir(parent) if ".tmp-" in n or ".old-" in n]


def test_fails_if_export_dir_exists(source, tmp_path):
  dest = tmp_path / "out"
  dest.mkdir()
  with pytest.raises(FileExistsError, match=r"already exists; pass --overwrite"):
    _export(source, str(dest))


def test_overwrite_refuses_a_directory_that_is_not_a_bundle(source, tmp_path):
  dest = tmp_path / "home"
  dest.mkdir()
  (dest / "precious.txt").write_text("keep me")
  with pytest.raises(pipeline.ExportError, match=r"is not a bundle .* refusing"):
    _export(source, str(dest), overwrite=True)
  assert (dest / "precious.txt").read_text() == "keep me"


def test_failed_verification_leaves_old_bundle_and_no_temp(source, tmp_path, monkeypatch):
  dest = tmp_path / "bundle"
  first = _export(source, str(dest))
  manifest_before = (dest / "manifest.json").read_text()
  # A verification that cannot pass: every output must then be rejected.
  monkeypatch.setitem(verify.TOLERANCES["encoder"], "max_rel", -1.0)
  with pytest.raises(pipeline.ExportError, match=r"reloaded encoder does not match"):
    _export(source, str(dest), overwrite=True)
  assert (dest / "manifest.json").read_text() == manifest_before
  assert _leftovers(tmp_path) == []
  monkeypatch.undo()
  second = _export(source, str(dest), overwrite=True)
  assert second.manifest["created_utc"] >= first.manifest["created_utc"]
  assert _leftovers(tmp_path) == []
  assert json.loads((dest / "manifest.json").read_text())["trained"] is True


def test_fails_if_vocab_size_differs(source, tmp_path):
  vocab = testutil.write_tiny_vocab(str(tmp_path / "vocab.txt"))
  with pytest.raises(pipeline.ExportError, match=r"has 10 tokens but .*vocab_size=30522; pass "
                     r"the vocab\.txt that came with the checkpoint"):
    _export(source, str(tmp_path / "out"), vocab_file=vocab)
  assert not os.path.exists(tmp_path / "out")


def test_fails_if_config_does_not_belong_to_checkpoint(source, tmp_path):
  other = tmp_path / "other"
  other.mkdir()
  config = testutil.tiny_config(vocab_size=119547)
  (other / "bert_config.json").write_text(json.dumps(config))
  with pytest.raises(pipeline.ExportError, match=r"30522 word-embedding rows but .*"
                     r"vocab_size=119547"):
    pipeline.export_bundle(str(tmp_path / "out"), checkpoint=source,
                           bert_config_file=str(other / "bert_config.json"),
                           vocab_file=testutil.MULTI_CASED_VOCAB, log=lambda _: None)


def test_fails_if_checkpoint_disagrees_with_config(source, tmp_path):
  other = tmp_path / "other"
  other.mkdir()
  (other / "bert_config.json").write_text(json.dumps(
      testutil.tiny_config(num_feedforward_networks=2)))
  with pytest.raises(ValueError, match=r"checkpoint does not match bert_config\.json"):
    pipeline.export_bundle(str(tmp_path / "out"), checkpoint=source,
                           bert_config_file=str(other / "bert_config.json"),
                           vocab_file=os.path.join(source, "vocab.txt"), log=lambda _: None)
  assert _leftovers(tmp_path) == [] and not os.path.exists(tmp_path / "out")


def test_fails_if_casing_contradicts_vocab_unless_forced(source, tmp_path):
  with pytest.raises(pipeline.ExportError, match=r"--do_lower_case=False contradicts the vocab"
                     r".*--force_do_lower_case"):
    _export(source, str(tmp_path / "out"), do_lower_case=False)
  result = _export(source, str(tmp_path / "forced"), do_lower_case=False,
                   force_do_lower_case=True)
  assert result.manifest["do_lower_case"] is False
  assert "forced against the vocab" in result.manifest["do_lower_case_decided_by"]


@pytest.mark.parametrize("seq_length", [2, 129])
def test_fails_if_seq_length_out_of_range(source, tmp_path, seq_length):
  with pytest.raises(pipeline.ExportError, match=rf"--seq_length={seq_length} is out of range"):
    _export(source, str(tmp_path / "out"), seq_length=seq_length)


def test_fails_if_destination_unwritable(source, tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("")
  with pytest.raises(pipeline.ExportError, match=r"cannot write beside --export_dir="):
    _export(source, str(blocker / "bundle"))


def test_fails_if_checkpoint_missing(source, tmp_path):
  with pytest.raises(FileNotFoundError, match=r"checkpoint index .* not found"):
    pipeline.export_bundle(str(tmp_path / "out"), checkpoint=str(tmp_path / "none.ckpt"),
                           bert_config_file=os.path.join(source, "bert_config.json"),
                           vocab_file=os.path.join(source, "vocab.txt"), log=lambda _: None)


def test_run_fails_on_contradictory_sources(source, tmp_path):
  with pytest.raises(pipeline.ExportError, match=r"--demo=en_uncased .* cannot be combined "
                     r"with \['--checkpoint_dir'\]"):
    pipeline.run(pipeline.ExportConfig(export_dir=str(tmp_path / "o"), demo="en_uncased",
                                       checkpoint_dir=source))
  with pytest.raises(pipeline.ExportError, match=r"no checkpoint given"):
    pipeline.run(pipeline.ExportConfig(export_dir=str(tmp_path / "o")))
  with pytest.raises(pipeline.ExportError, match=r"--demo='fr' is not a demo"):
    pipeline.run(pipeline.ExportConfig(export_dir=str(tmp_path / "o"), demo="fr"))


def test_fine_tuned_checkpoint_without_mlm(tmp_path):
  src = str(tmp_path / "squad")
  testutil.write_checkpoint(src, testutil.tiny_config(), with_mlm=False, with_nsp=False,
                            with_squad=True, with_training_state=True)
  with pytest.raises(ValueError, match=r"--nowith_mlm"):
    _export(src, str(tmp_path / "a"))
  result = _export(src, str(tmp_path / "b"), with_mlm=False)
  assert result.manifest["source"]["has_squad_head"]
  assert result.manifest["parameter_counts"]["mlm_head"] == 0
  assert "mlm_logits" not in result.manifest["verification"]["encoder"]["outputs"]


def test_preprocessor_worker_reports_its_error(tmp_path):
  worker = worker_lib.PreprocessorWorker(
      str(tmp_path / "missing_parent" / "x" / "preprocessor"),
      str(tmp_path / "no_such_vocab.txt"), True, 128)
  try:
    with pytest.raises(pipeline.ExportError, match=r"^preprocessor/: .*no_such_vocab\.txt"):
      worker.result()
  finally:
    worker.stop()
