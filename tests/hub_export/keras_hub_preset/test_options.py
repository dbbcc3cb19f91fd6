"""KerasHubOptions: the checks before any export work, and a refused preset."""

import importlib.util
import os

import pytest

from checkpoints.config import MobileBertConfig
from checkpoints import converter
from hub_export import verify
from hub_export.keras_hub_preset import options
from hub_export.keras_hub_preset import export as export_lib
from tests import testutil

CONFIG = MobileBertConfig.from_dict(testutil.tiny_config())


def test_options_are_a_bundle_task():
  from hub_export import tasks  # pylint: disable=g-import-not-at-top
  assert isinstance(options.KerasHubOptions(), tasks.BundleTask)
  assert options.KerasHubOptions.name == "keras_hub"


@pytest.mark.parametrize("length", [2, 129])
def test_sequence_length_outside_the_model_is_refused(length):
  with pytest.raises(ValueError, match=f"sequence_length={length} must be in \\[3, 128\\]"):
    options.KerasHubOptions(sequence_length=length).check(CONFIG)


def test_missing_keras_hub_names_the_install_command(monkeypatch):
  real = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec",
                      lambda name, *a: None if name == "keras_hub" else real(name, *a))
  with pytest.raises(ValueError, match="pip install 'keras-hub==0.32.\\*'"):
    options.KerasHubOptions().check(CONFIG)


@pytest.mark.slow
def test_a_preset_over_its_bound_is_refused(keras_hub_bundle, tmp_path, monkeypatch):
  """With the keras_hub bound at 0 the check after writing fails, naming keras_hub/, the
  probe and the output (the pipeline then removes its staging directory, as for every
  failed task: tests/hub_export/squad/test_export.py)."""
  monkeypatch.setitem(verify.TOLERANCES, "keras_hub", {"max_rel": 0.0})
  bundle = keras_hub_bundle["dir"]
  config = MobileBertConfig.from_json_file(os.path.join(bundle, "checkpoint",
                                                        "bert_config.json"))
  model, _ = converter.load_model(
      os.path.join(bundle, "checkpoint", converter.TF2_PREFIX_NAME), config, with_mlm=True)
  with pytest.raises(export_lib.KerasHubExportError,
                     match=r"keras_hub/ \(probe 2x128\): \w+ differs from the float model"):
    export_lib.export_preset(str(tmp_path / "keras_hub"), work=bundle, model=model,
                             vocab_file=os.path.join(bundle, "checkpoint", "vocab.txt"),
                             do_lower_case=False, sequence_length=32, log=lambda _: None)


def test_keras_hub_engine_refuses_what_it_does_not_offer(tmp_path):
  from hub_export.finetune import config  # pylint: disable=g-import-not-at-top
  from hub_export.finetune import keras_hub_fit  # pylint: disable=g-import-not-at-top
  model_dir = tmp_path / "model"
  model_dir.mkdir()
  (model_dir / "checkpoint").write_text("x")
  cfg = config.FinetuneConfig(bundle_dir=str(tmp_path / "bundle"), model_dir=str(model_dir),
                              train_file="t.tsv", engine="keras_hub",
                              distribution_strategy="mirrored")
  with pytest.raises(config.FinetuneError) as e:
    keras_hub_fit.check(cfg)
  message = str(e.value)
  assert "keras_hub/ (config.json missing); export the bundle with export_main.py " \
         "--keras_hub" in message
  assert "--distribution_strategy=mirrored is offered by --engine=saved_model only" in message
  assert "is not empty; --engine=keras_hub does not resume runs" in message
  with pytest.raises(config.FinetuneError, match="--engine=pytorch is not one of"):
    config.FinetuneConfig(bundle_dir=str(tmp_path), model_dir=str(model_dir),
                          train_file="t.tsv", engine="pytorch").check()
