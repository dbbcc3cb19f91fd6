"""`manifest.build_manifest`: task entries, and the publishing metadata of a vocab."""

import json

import pytest

from checkpoints import config as config_lib
from hub_export import manifest as manifest_lib
from preprocessors import vocab as vocab_lib
from tests import testutil

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow

UNCASED_SHA = "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"


def _build(tmp_path, **kwargs):
  vocab = vocab_lib.load_vocab(testutil.write_tiny_vocab(str(tmp_path / "vocab.txt")))
  config = config_lib.MobileBertConfig.from_dict(testutil.tiny_config(vocab_size=vocab.size))
  return manifest_lib.build_manifest(
      source={"checkpoint": "ckpt", "checkpoint_sha256": {}, "format": "tf1", "demo": None},
      config=config, do_lower_case=True, casing_reason="test", vocab=vocab,
      parameter_counts={"encoder": 10, "mlm_head": 0}, seq_length=16,
      parity={"outputs": {}, "tolerance": 1e-5}, trained=True, conversion={},
      preprocessor_check={"identical": 1, "sentences": 1}, **kwargs)


def test_task_summaries_become_manifest_entries(tmp_path):
  squad = {"files": {"int8.tflite": 123}, "seq_length": 384}
  manifest = _build(tmp_path, tasks={"squad": squad, "xnli": {"accuracy": 0.5}})
  assert manifest["squad"] == squad and manifest["xnli"] == {"accuracy": 0.5}
  assert list(manifest)[-2:] == ["squad", "xnli"]
  assert json.loads(json.dumps(manifest)) == manifest
  without = _build(tmp_path)
  assert set(manifest) - set(without) == {"squad", "xnli"}
  assert _build(tmp_path, tasks={}).keys() == without.keys()


@pytest.mark.parametrize("tasks,message", [
    ({"config": {}}, r"task name 'config' is already a manifest.json field"),
    ({3: {}}, r"task name 3 \(int\) is not a str; manifest.json keys are the tasks' directory"),
], ids=["clashing_name", "not_str"])
def test_build_manifest_rejects_a_bad_task_name(tmp_path, tasks, message):
  with pytest.raises(ValueError, match=message):
    _build(tmp_path, tasks=tasks)


def test_publishing_metadata_of_a_released_vocab():
  trained = manifest_lib.publishing_metadata(vocab_sha256=UNCASED_SHA, trained=True,
                                             do_lower_case=True)
  assert trained["language"] == ["en"] and trained["dataset"] == ["wikipedia-and-bookscorpus"]
  demo = manifest_lib.publishing_metadata(vocab_sha256=UNCASED_SHA, trained=False,
                                          do_lower_case=True)
  assert demo["language"] == ["en"] and demo["dataset"] == [] and "untrained" in demo[
      "decided_by"]
