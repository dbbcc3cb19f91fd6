"""finetune.mobile: the trained run's on-device classifier files against its SavedModel."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from hub_export import verify
from hub_export.finetune import data
from hub_export.finetune.config import FinetuneError
from hub_export.finetune.mobile import convert
from hub_export.finetune.mobile import export as mobile_export
from hub_export.finetune.mobile import runner
from preprocessors import tflite as preprocessor_tflite
from tests.hub_export.finetune.conftest import XNLI_DIR

pytestmark = pytest.mark.slow

PAIRS_PER_LANGUAGE = 20


def _read(export_dir, name):
  with open(os.path.join(export_dir, name), "rb") as f:
    return f.read()


@pytest.fixture(scope="module")
def xnli_pairs():
  """20 dev pairs of each of the 15 XNLI languages (300 pairs)."""
  premises, hypotheses = [], []
  for lang in data.XNLI_LANGUAGES:
    dev = data.read_nli_file(os.path.join(XNLI_DIR, f"dev-{lang}.tsv"),
                             limit=PAIRS_PER_LANGUAGE)
    premises += dev.premises
    hypotheses += dev.hypotheses
  return premises, hypotheses


@pytest.fixture(scope="module")
def saved_model_probabilities(trained, xnli_pairs):
  served = tf.saved_model.load(trained["cfg"].export_dir).signatures["serving_default"]
  premises, hypotheses = xnli_pairs
  return served(premise=tf.constant(premises),
                hypothesis=tf.constant(hypotheses))["probabilities"].numpy()


def test_export_writes_both_files_with_their_figures_and_no_flex_op(trained):
  export_dir = trained["cfg"].export_dir
  with open(os.path.join(export_dir, mobile_export.MANIFEST)) as f:
    manifest = json.load(f)
  assert sorted(manifest["files"]) == sorted([convert.FLOAT_FILE, convert.INT8_FILE])
  assert manifest["seq_length"] == trained["cfg"].seq_length
  for name, entry in manifest["files"].items():
    content = _read(export_dir, name)
    assert entry["bytes"] == len(content)
    assert set(preprocessor_tflite.custom_ops(content)) <= \
        preprocessor_tflite.ALLOWED_CUSTOM_OPS, name
    assert not any(op.startswith("Flex") for op in preprocessor_tflite.custom_ops(content))
  float_figures = manifest["files"][convert.FLOAT_FILE]["figures"]
  assert float_figures["max_abs_probability"] <= 1e-5
  assert float_figures["label_agreement"] == 1.0
  assert any(line.startswith(convert.FLOAT_FILE) and "label agreement 1.000" in line
             for line in trained["lines"])


def test_float_file_equals_the_saved_model_in_15_languages(trained, xnli_pairs,
                                                          saved_model_probabilities):
  model = runner.NliTfliteClassifier(_read(trained["cfg"].export_dir, convert.FLOAT_FILE))
  got = model.classify(*xnli_pairs)
  assert got["probabilities"].shape == (len(xnli_pairs[0]), 3)
  assert got["probabilities"].dtype == np.float32 and got["label_id"].dtype == np.int32
  bound = verify.TOLERANCES["nli_tflite_float"]["max_abs_probability"]
  # The tiny model's probabilities move with every token id, so this also holds the
  # tokenizer inside the file to the SavedModel's (FullTokenizer) ids.
  np.testing.assert_allclose(got["probabilities"], saved_model_probabilities, atol=bound)
  np.testing.assert_array_equal(got["label_id"],
                                np.argmax(saved_model_probabilities, axis=-1))


def test_int8_file_holds_its_gate_in_15_languages(trained, xnli_pairs,
                                                  saved_model_probabilities):
  model = runner.NliTfliteClassifier(_read(trained["cfg"].export_dir, convert.INT8_FILE))
  got = model.classify(*xnli_pairs)
  figures = mobile_export._figures(got, saved_model_probabilities)  # pylint: disable=protected-access
  assert figures["pairs"] == 15 * PAIRS_PER_LANGUAGE
  mobile_export.check_figures(convert.INT8_FILE, figures, "nli_tflite_int8")
  # Not the float file under another name: int8 weights make it several times smaller.
  assert len(_read(trained["cfg"].export_dir, convert.INT8_FILE)) < \
      0.6 * len(_read(trained["cfg"].export_dir, convert.FLOAT_FILE))


def test_empty_and_very_long_strings(trained):
  export_dir = trained["cfg"].export_dir
  premises = ["", "Der Hund schläft. " * 400, "", "東京は日本の首都です。" * 300]
  hypotheses = ["", "Ein Tier ruht.", "Nothing at all.", ""]
  want = tf.saved_model.load(export_dir).signatures["serving_default"](
      premise=tf.constant(premises), hypothesis=tf.constant(hypotheses))
  for name in (convert.FLOAT_FILE, convert.INT8_FILE):
    got = runner.NliTfliteClassifier(_read(export_dir, name)).classify(premises, hypotheses)
    if name == convert.FLOAT_FILE:
      np.testing.assert_allclose(got["probabilities"], want["probabilities"].numpy(),
                                 atol=1e-5)
    else:  # runs and gives probabilities
      assert got["probabilities"].shape == (4, 3)
      np.testing.assert_allclose(got["probabilities"].sum(-1), 1.0, atol=1e-2)


def test_wrong_inputs_give_clear_errors(trained):
  content = _read(trained["cfg"].export_dir, convert.FLOAT_FILE)
  model = runner.NliTfliteClassifier(content)
  with pytest.raises(ValueError, match="premises must be str or UTF-8 bytes, got int"):
    model.classify([3], ["x"])
  with pytest.raises(ValueError, match="got 2 premises and 1 hypotheses"):
    model.classify(["a", "b"], ["x"])
  with pytest.raises(ValueError, match="not a TFLite flatbuffer"):
    runner.NliTfliteClassifier(b"not a model")
  # The interpreter itself refuses a wrong dtype or rank, naming what it expected.
  signature = preprocessor_tflite.make_interpreter(content).get_signature_runner()
  with pytest.raises(ValueError, match="STRING"):
    signature(premise=np.array([1], np.int32), hypothesis=np.array([b"x"], object))
  with pytest.raises(RuntimeError, match=r"shape must be rank 1: \[ 1 1 \]"):
    signature(premise=np.array([[b"a"]], object), hypothesis=np.array([b"x"], object))


def test_a_file_off_its_bound_is_refused_naming_the_figures():
  figures = {"pairs": 10, "max_abs_probability": 0.3, "label_agreement": 0.9}
  with pytest.raises(FinetuneError, match=r"classifier.tflite disagrees with the SavedModel "
                     r"classifier on 10 pairs: max \|probability difference\| 0.3 > 1e-05; "
                     r"label agreement 0.900 < 1"):
    mobile_export.check_figures(convert.FLOAT_FILE, figures, "nli_tflite_float")
