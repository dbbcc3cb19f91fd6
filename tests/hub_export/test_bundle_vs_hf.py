"""The reloaded bundle against the independent reference (HF PyTorch MobileBERT).

tests/checkpoints/test_hf_parity.py checks the converted Model Garden model for every
config variant; this checks the artifact a user gets: encoder/ loaded from disk.
"""

import json
import os

import numpy as np
import tensorflow as tf

from hub_export import verify
from tests import hf_reference
from tests import testutil

# float32 noise through 2 blocks; see test_hf_parity.py for the full-size figures.
TOLERANCE = 1e-5


def test_bundle_matches_hf_reference(tiny_bundle):
  with open(os.path.join(tiny_bundle["source"], "bert_config.json")) as f:
    bert_config = json.load(f)
  inputs = testutil.encoder_inputs(bert_config["vocab_size"], batch=2, seq_length=24, seed=5)
  positions = np.array([[1, 5, 9], [2, 3, 11]], np.int32)
  ref = hf_reference.hf_reference_outputs(
      os.path.join(tiny_bundle["source"], "mobilebert_variables.ckpt"), bert_config,
      inputs["input_word_ids"], inputs["input_mask"], inputs["input_type_ids"],
      masked_lm_positions=positions)
  loaded = tf.saved_model.load(os.path.join(tiny_bundle["dir"], "encoder"))
  got = loaded.mlm(dict({k: tf.constant(v) for k, v in inputs.items()},
                        masked_lm_positions=tf.constant(positions)), training=False)
  actual = {"sequence_output": got["sequence_output"].numpy(),
            "pooled_output": got["pooled_output"].numpy(),
            "encoder_outputs": [t.numpy() for t in got["encoder_outputs"]],
            "mlm_logits": got["mlm_logits"].numpy()}
  figures, failures = verify.compare_encoder_outputs(actual, ref, tolerance=TOLERANCE)
  for name, fig in figures.items():
    print(f"{name}: max abs {fig['max_abs']:.3g}, max rel {fig['max_rel']:.3g}")
  assert not failures, failures
  assert figures["mlm_logits"]["top5_agreement"] == 1.0
