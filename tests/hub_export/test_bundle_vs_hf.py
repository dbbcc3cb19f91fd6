"""The reloaded bundle against the independent reference (HF PyTorch MobileBERT).

tests/checkpoints/test_hf_parity.py checks the converted Model Garden model for every
config variant; this checks the artifact a user gets: encoder/ loaded from disk, in the
default `original` attention masking and in `model_garden`, on probes with no padding,
heavy padding and padding of several lengths.
"""

import hashlib
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from hub_export import pipeline
from hub_export import verify
from tests import hf_reference
from tests import testutil

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow

# float32 noise through 2 blocks; see test_hf_parity.py for the full-size figures.
TOLERANCE = 1e-5
PADDINGS = {"no_padding": (24, 24, 24), "heavy_padding": (24, 2, 1),
            "several_paddings": (24, 17, 9)}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
  """One 2-block checkpoint whose attention matters (initializer_range 0.2: with 0.02 the
  two maskings differ by less than float32 noise), exported in both masking modes."""
  root = tmp_path_factory.mktemp("masking")
  source = str(root / "source_ckpt")
  testutil.write_checkpoint(source, testutil.tiny_config(initializer_range=0.2), seed=9)
  out = {}
  for mode in ("default", "model_garden"):
    options = pipeline.BundleOptions() if mode == "default" else \
        pipeline.BundleOptions(attention_mask=mode)
    result = pipeline.export_bundle(
        str(root / mode), checkpoint=source,
        bert_config_file=os.path.join(source, "bert_config.json"),
        vocab_file=os.path.join(source, "vocab.txt"), options=options, log=lambda _: None)
    out[mode] = dict(dir=result.export_dir, source=source)
  return out


def _inputs(vocab_size, lengths, seq_length=24, seed=5):
  rng = np.random.default_rng(seed)
  ids = rng.integers(5, vocab_size, (len(lengths), seq_length)).astype(np.int32)
  mask = (np.arange(seq_length)[None, :] < np.array(lengths)[:, None]).astype(np.int32)
  ids[mask == 0] = 0
  types = np.zeros_like(ids)
  types[:, seq_length // 3:] = 1
  types[mask == 0] = 0
  return dict(input_word_ids=ids, input_mask=mask, input_type_ids=types)


def _sequence_output(bundle, inputs):
  loaded = tf.saved_model.load(os.path.join(bundle["dir"], "encoder"))
  return loaded({k: tf.constant(v) for k, v in inputs.items()})["sequence_output"].numpy()


def _check(bundle, lengths):
  with open(os.path.join(bundle["source"], "bert_config.json")) as f:
    bert_config = json.load(f)
  with open(os.path.join(bundle["dir"], "manifest.json")) as f:
    mode = json.load(f)["attention_mask"]["mode"]
  inputs = _inputs(bert_config["vocab_size"], lengths)
  positions = np.array([[1, 5, 9], [0, 1, 2], [0, 3, 7]], np.int32)
  ref = hf_reference.hf_reference_outputs(
      os.path.join(bundle["source"], "mobilebert_variables.ckpt"), bert_config,
      inputs["input_word_ids"], inputs["input_mask"], inputs["input_type_ids"],
      masked_lm_positions=positions, attention_mask=mode)
  loaded = tf.saved_model.load(os.path.join(bundle["dir"], "encoder"))
  got = loaded.mlm(dict({k: tf.constant(v) for k, v in inputs.items()},
                        masked_lm_positions=tf.constant(positions)), training=False)
  actual = {"sequence_output": got["sequence_output"].numpy(),
            "pooled_output": got["pooled_output"].numpy(),
            "encoder_outputs": [t.numpy() for t in got["encoder_outputs"]],
            "mlm_logits": got["mlm_logits"].numpy()}
  figures, failures = verify.compare_encoder_outputs(actual, ref, tolerance=TOLERANCE)
  for name, fig in figures.items():
    print(f"{mode} {name}: max abs {fig['max_abs']:.3g}, max rel {fig['max_rel']:.3g}")
  assert not failures, failures
  assert figures["mlm_logits"]["top5_agreement"] == 1.0
  return mode


def test_tiny_bundle_matches_hf_reference(tiny_bundle):
  assert _check(tiny_bundle, PADDINGS["several_paddings"]) == "original"  # the default


@pytest.mark.parametrize("padding", list(PADDINGS))
def test_default_bundle_matches_original_reference(bundles, padding):
  assert _check(bundles["default"], PADDINGS[padding]) == "original"


@pytest.mark.parametrize("padding", list(PADDINGS))
def test_model_garden_bundle_matches_model_garden_reference(bundles, padding):
  assert _check(bundles["model_garden"], PADDINGS[padding]) == "model_garden"


def test_the_two_bundles_differ_only_on_padded_rows(bundles):
  inputs = _inputs(30522, (24, 3, 24))
  a = _sequence_output(bundles["default"], inputs)
  b = _sequence_output(bundles["model_garden"], inputs)
  scale = np.abs(b).max()
  assert np.abs(a[[0, 2]] - b[[0, 2]]).max() <= TOLERANCE * scale  # no padding: same
  assert np.abs(a[1, :3] - b[1, :3]).max() > 100 * TOLERANCE * scale  # padded row: not


@pytest.mark.slow
def test_full_size_demo_bundle_matches_original_reference(full_demo_bundle, tmp_path):
  """The released 24-block config, exported with the default masking, reloaded from disk,
  against the reference on rows with no padding and heavy padding (1e-4: the float32
  drift of 24 NoNorm blocks, see test_hf_parity.py)."""
  from checkpoints import tf1_writer  # pylint: disable=g-import-not-at-top
  source = str(tmp_path / "demo_ckpt")  # The demo's seeded checkpoint, written again.
  prefix = tf1_writer.write_demo_checkpoint_dir(source, "en_uncased", seed=0)
  with open(os.path.join(source, "bert_config.json")) as f:
    bert_config = json.load(f)
  with open(os.path.join(full_demo_bundle["dir"], "manifest.json")) as f:
    manifest = json.load(f)
  assert manifest["attention_mask"]["mode"] == "original"
  assert manifest["source"]["checkpoint_sha256"] == {
      n: hashlib.sha256(open(os.path.join(source, n), "rb").read()).hexdigest()
      for n in manifest["source"]["checkpoint_sha256"]}
  inputs = _inputs(bert_config["vocab_size"], (128, 7, 60), seq_length=128)
  ref = hf_reference.hf_reference_outputs(
      prefix, bert_config, inputs["input_word_ids"], inputs["input_mask"],
      inputs["input_type_ids"], attention_mask="original")
  loaded = tf.saved_model.load(os.path.join(full_demo_bundle["dir"], "encoder"))
  got = loaded({k: tf.constant(v) for k, v in inputs.items()}, training=False)
  actual = {"sequence_output": got["sequence_output"].numpy(),
            "pooled_output": got["pooled_output"].numpy(),
            "encoder_outputs": [t.numpy() for t in got["encoder_outputs"]]}
  figures, failures = verify.compare_encoder_outputs(actual, ref, tolerance=1e-4)
  print({k: f"{v['max_rel']:.2e}" for k, v in figures.items() if not k.startswith("enc")})
  assert not failures, failures
