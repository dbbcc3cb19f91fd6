"""The exported SavedModels called from many threads at once, as a serving process does.

Each SavedModel is loaded once and shared by 16 threads (TF Serving and any Python server
share one loaded model between request threads): the bundle's `serving/` text model
(`serving_default`, `text_pair`), the encoder's named signatures (`serving_default`,
`encoder`, `pooled`, `mlm`) and the fine-tuning classifier exported by
`finetune.classifier.export_classifier`. The requests mix batch sizes 1..8, empty strings,
short and over-long texts (truncated by the packer) and padded/unpadded encoder inputs.
Every concurrent answer must equal, bit for bit, the answer to the same request made
alone; no call may raise; and the process RSS (psutil) after a warm-up phase must not
grow by more than 10% (at least 100 MiB) over the measured rounds.

The harness is `tests/hub_export/concurrency.py`; `benchmarks/concurrent_serving.py` runs it
with more requests.
"""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the preprocessor's ops)

from tests.hub_export import concurrency

# End-to-end: exports a classifier and serves thousands of requests (not in the fast run).
pytestmark = pytest.mark.slow

THREADS = 16
# RSS climbs over the first ~2,000 concurrent requests on the multilingual bundle (one run:
# 1849 -> 2056 MiB over rounds 3..6, then 2055, 2087, 2087 MiB; the cause is not
# established) and then levels off; the warm-up covers that climb.
WARMUP_ROUNDS = 5
MEASURED_ROUNDS = 5
REQUESTS_PER_MODEL = 100  # distinct requests per model; each round sends all of them.
# Allowed RSS growth over the measured rounds: 10% of the RSS after warm-up, at least
# 100 MiB. In-flight outputs alone come to ~250 MB (16 concurrent `mlm` answers of up to
# 8 x 4 x 119,547 float32 logits), which the allocator may keep; a leak of 100 KB per
# request would already exceed the bound.
RSS_GROWTH_FRACTION = 0.10
RSS_GROWTH_FLOOR_BYTES = 100 * 2**20
CLASSIFIER_SEQ_LENGTH = 32


@pytest.fixture(scope="module")
def classifier_dir(multi_bundle, tmp_path_factory):
  """A serving classifier exported from an untrained head on the multilingual bundle."""
  from hub_export.finetune import classifier  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("concurrent_classifier")
  encoder = tf.saved_model.load(os.path.join(multi_bundle["dir"], "encoder"))
  model = classifier.build_classifier(encoder, seq_length=CLASSIFIER_SEQ_LENGTH,
                                      dropout_rate=0.0, seed=3)
  prefix = tf.train.Checkpoint(model=model).save(str(root / "ckpt" / "ckpt"))
  return classifier.export_classifier(str(root / "classifier"), bundle_dir=multi_bundle["dir"],
                                      checkpoint=prefix, seq_length=CLASSIFIER_SEQ_LENGTH,
                                      dropout_rate=0.0, log=lambda _: None)


def test_sixteen_threads_get_the_sequential_answers_with_flat_memory(multi_bundle,
                                                                     classifier_dir):
  d = multi_bundle["dir"]
  models = {name: tf.saved_model.load(os.path.join(d, name))
            for name in ("serving", "encoder", "preprocessor")}
  models["classifier"] = tf.saved_model.load(classifier_dir)
  requests = concurrency.make_requests(models, REQUESTS_PER_MODEL)
  labels = {label for label, _, _ in requests}
  assert labels == {"serving/serving_default", "serving/text_pair", "encoder/serving_default",
                    "encoder/encoder", "encoder/pooled", "encoder/mlm",
                    "classifier/serving_default"}
  strings = [v.numpy().tolist() for _, _, kw in requests for v in kw.values()
             if v.dtype == tf.string]
  assert any(b"" in column for column in strings), "no empty string among the requests"
  assert {len(column) for column in strings} == set(range(1, 9))
  tally = concurrency.serve_and_measure(requests, threads=THREADS,
                                       warmup_rounds=WARMUP_ROUNDS,
                                       measured_rounds=MEASURED_ROUNDS)
  assert tally["warmup"]["errors"] == 0, tally["warmup"]["first_error"]
  assert tally["warmup"]["mismatches"] == 0, tally["warmup"]["mismatched"]
  assert tally["errors"] == 0, tally["first_error"]
  assert tally["mismatches"] == 0, tally["mismatched"]
  assert tally["requests"] == MEASURED_ROUNDS * len(requests) >= 1500
  assert tally["warmup"]["requests"] == WARMUP_ROUNDS * len(requests)
  growth = tally["rss_after"] - tally["rss_before"]
  bound = max(RSS_GROWTH_FRACTION * tally["rss_before"], RSS_GROWTH_FLOOR_BYTES)
  assert growth < bound, (
      f"RSS grew by {growth / 2**20:.1f} MiB over {tally['requests']} requests (bound "
      f"{bound / 2**20:.0f} MiB; after each round: {tally['rss_rounds']})")


def test_harness_detects_a_wrong_answer_and_an_error():
  """The comparison and the error count are live: a changed output and a raising call
  are reported, not swallowed."""
  fn = tf.function(lambda x: {"y": x * 2.0})
  good = ("f", fn, {"x": tf.constant([1.0, 2.0])})
  bad_input = ("g", fn, {"x": tf.constant(["not a number"])})
  expected = [concurrency.call(good), {"y": np.array([2.0, 4.5], np.float32)}]
  tally = concurrency.run_concurrently([good, good], expected, threads=4, rounds=2)
  assert (tally["requests"], tally["mismatches"], tally["errors"]) == (4, 2, 0)
  tally = concurrency.run_concurrently([good, bad_input], [concurrency.call(good), {}],
                                       threads=4, rounds=1)
  assert (tally["requests"], tally["errors"]) == (2, 1) and tally["first_error"]
