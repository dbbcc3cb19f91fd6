"""Runs in a fresh interpreter under one KERAS_BACKEND: loads presets, compares, fine-tunes.

    KERAS_BACKEND=jax python -m tests.hub_export.keras_hub_preset.backend_check \
        CASES.json RESULT.json

CASES.json: a list of {"preset", "reference" (.npz from test_preset.py: the encoder
SavedModel's outputs on the probe batches, the packed ids of the pairs), "fit" (bool)}.
RESULT.json gets, per case: the backend, the largest relative difference per output,
whether the preprocessor's ids are identical, and with "fit" the trainable weights one
`fit` step (Adam, epsilon 1e-30) left unchanged and the largest difference of a fine-tuned
classifier's logits after `save_to_preset` and `from_preset`.
"""

import json
import os
import sys
import tempfile

import keras
import keras_hub
import numpy as np

import hub_export.keras_hub_preset  # noqa: F401  pylint: disable=unused-import


def _np(x):
  return np.asarray(keras.ops.convert_to_numpy(x))


def _rel(a, r):
  return float(np.abs(_np(a) - r).max() / np.abs(r).max())


def check(case: dict) -> dict:
  ref = np.load(case["reference"])
  preset = case["preset"]
  masked_lm = keras_hub.models.MaskedLM.from_preset(preset)
  backbone = keras_hub.models.Backbone.from_preset(preset)
  out = {"backend": keras.config.backend(), "max_rel": {}}
  for b in range(int(ref["num_batches"])):
    feed = {k: ref[f"{b}/{k}"] for k in ("token_ids", "segment_ids", "padding_mask")}
    got = backbone(feed, training=False)
    logits = masked_lm(dict(feed, mask_positions=ref[f"{b}/mask_positions"]),
                       training=False)
    for name, value in (("sequence_output", got["sequence_output"]),
                        ("pooled_output", got["pooled_output"]), ("mlm_logits", logits)):
      out["max_rel"][name] = max(out["max_rel"].get(name, 0.0),
                                 _rel(value, ref[f"{b}/{name}"]))
  pre = keras_hub.models.TextClassifierPreprocessor.from_preset(preset)
  pre.sequence_length = int(ref["pair_sequence_length"])
  first, second = [str(s) for s in ref["premises"]], [str(s) for s in ref["hypotheses"]]
  packed = pre(x=(first, second))
  out["ids_identical"] = all(
      np.array_equal(_np(packed[k]).astype(np.int64), ref[f"pair/{k}"])
      for k in ("token_ids", "segment_ids", "padding_mask"))
  if case.get("fit"):
    classifier = keras_hub.models.TextClassifier.from_preset(
        preset, num_classes=3, preprocessor=pre)
    # Adam with a negligible epsilon moves every weight whose gradient is not exactly 0
    # by about the learning rate in its first step (m / sqrt(v) = sign(g)), however
    # small that gradient is at these near-initialization weights: a weight left
    # unchanged is one the backend's gradient does not reach.
    classifier.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3, epsilon=1e-30),
                       loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [_np(w).copy() for w in classifier.trainable_weights]
    labels = np.arange(len(first)) % 3
    classifier.fit(x=(first, second), y=labels, batch_size=len(first), epochs=1,
                   verbose=0)
    after = [_np(w) for w in classifier.trainable_weights]
    out["trainable_weights"] = len(before)
    out["unchanged_after_fit"] = [w.path for w, b0, a0 in
                                  zip(classifier.trainable_weights, before, after)
                                  if np.array_equal(b0, a0)]
    features = pre(x=(first, second))
    logits = _np(classifier.backbone(features, training=False)["pooled_output"])
    with tempfile.TemporaryDirectory() as d:
      classifier.save_to_preset(d)
      reloaded = keras_hub.models.TextClassifier.from_preset(d)
      out["reload_max_abs"] = float(np.abs(
          _np(reloaded(features, training=False)) -
          _np(classifier(features, training=False))).max())
      out["reload_backbone_max_abs"] = float(np.abs(
          _np(reloaded.backbone(features, training=False)["pooled_output"]) -
          logits).max())
  return out


def main(argv):
  with open(argv[1], encoding="utf-8") as f:
    cases = json.load(f)
  results = [check(c) for c in cases]
  with open(argv[2], "w", encoding="utf-8") as f:
    json.dump(results, f)
  return 0


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  sys.exit(main(sys.argv))
