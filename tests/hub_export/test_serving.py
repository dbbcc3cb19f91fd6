"""Serving: named signatures as TF Serving calls them, and the raw-text serving/ model.

Each signature is called through `loaded.signatures[name]` with the tensors TF Serving
builds from a request: from a REST JSON body ("inputs", columnar format: JSON numbers
become the SignatureDef's dtype, JSON strings DT_STRING) and from a gRPC PredictRequest
(a serialized TensorProto per input). Outputs are checked by name and against the
object's direct `__call__`.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the preprocessor's ops)
from tensorflow.core.framework import tensor_pb2

from hub_export import serving
from tests import testutil

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow

L = 2  # testutil.tiny_config(): num_hidden_layers
SENTENCES = ["The quick brown fox.", "Héllo, Wörld! Москва — столица.", "東京"]
PAIRS = (["a question?", "short"], ["an answer, somewhat longer than the question.", ""])
ENCODER_OUTPUTS = {"pooled_output", "sequence_output", "default",
                   *(f"encoder_outputs_{i}" for i in range(L))}
PACKED = {"input_word_ids", "input_mask", "input_type_ids"}


@pytest.fixture(scope="module", params=["en_uncased", "multi_cased"])
def bundle(request, tiny_bundle, multi_bundle):
  """The bundle with its SavedModels loaded once (loading the preprocessor takes seconds)."""
  b = tiny_bundle if request.param == "en_uncased" else multi_bundle
  vocab_size = 30522 if request.param == "en_uncased" else 119547
  return dict(b, vocab_size=vocab_size, name=request.param,
              encoder=tf.saved_model.load(os.path.join(b["dir"], "encoder")),
              preprocessor=tf.saved_model.load(os.path.join(b["dir"], "preprocessor")))


VIA = ("rest", "grpc")


def _request_tensors(signature, inputs: dict, via: str) -> dict:
  """The tensors TF Serving passes to `signature` for a request carrying `inputs`."""
  specs = signature.structured_input_signature[1]
  assert set(specs) == set(inputs), (sorted(specs), sorted(inputs))
  if via == "rest":
    body = json.loads(json.dumps({"signature_name": "x", "inputs": {
        k: (np.asarray(v).tolist() if not isinstance(v, list) else v) for k, v in inputs.items()}}))
    return {k: tf.constant(v, specs[k].dtype) for k, v in body["inputs"].items()}
  protos = {k: tf.make_tensor_proto(np.asarray(v, dtype=object if specs[k].dtype == tf.string
                                                else specs[k].dtype.as_numpy_dtype))
            .SerializeToString() for k, v in inputs.items()}
  return {k: tf.constant(tf.make_ndarray(tensor_pb2.TensorProto.FromString(p)))
          for k, p in protos.items()}


def _close(actual, expected):
  np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=0, atol=1e-6)


def test_encoder_signatures_as_tf_serving_calls_them(bundle):
  enc = bundle["encoder"]
  raw = testutil.encoder_inputs(bundle["vocab_size"], batch=2, seq_length=12, seed=3)
  direct = enc({k: tf.constant(v) for k, v in raw.items()}, training=False)
  want = {"pooled_output": direct["pooled_output"], "default": direct["default"],
          "sequence_output": direct["sequence_output"],
          **{f"encoder_outputs_{i}": t for i, t in enumerate(direct["encoder_outputs"])}}
  positions = np.array([[1, 4], [0, 6]], np.int32)
  direct_mlm = enc.mlm({**{k: tf.constant(v) for k, v in raw.items()},
                        "masked_lm_positions": tf.constant(positions)})
  for via in VIA:
    for name, outputs in (("serving_default", ENCODER_OUTPUTS), ("encoder", ENCODER_OUTPUTS),
                          ("pooled", {"pooled_output"})):
      sig = enc.signatures[name]
      got = sig(**_request_tensors(sig, raw, via))
      assert set(got) == outputs, name
      for k in outputs:
        _close(got[k], want[k])
    sig = enc.signatures["mlm"]
    got = sig(**_request_tensors(sig, dict(raw, masked_lm_positions=positions), via))
    assert set(got) == {"mlm_logits"}
    assert got["mlm_logits"].shape == (2, 2, bundle["vocab_size"])
    _close(got["mlm_logits"], direct_mlm["mlm_logits"])


def test_preprocessor_signatures_as_tf_serving_calls_them(bundle):
  pre = bundle["preprocessor"]
  single = pre(tf.constant(SENTENCES))
  pair = pre.bert_pack_inputs([pre.tokenize(tf.constant(PAIRS[0])),
                               pre.tokenize(tf.constant(PAIRS[1]))],
                              seq_length=tf.constant(int(pre.seq_length.numpy())))
  for via in VIA:
    sig = pre.signatures["serving_default"]
    got = sig(**_request_tensors(sig, {"sentences": SENTENCES}, via))
    assert set(got) == PACKED
    for k in PACKED:
      np.testing.assert_array_equal(got[k], single[k])
    sig = pre.signatures["bert_pack_pair"]
    got = sig(**_request_tensors(sig, {"text_a": PAIRS[0], "text_b": PAIRS[1]}, via))
    assert set(got) == PACKED
    for k in PACKED:
      np.testing.assert_array_equal(got[k], pair[k])
    assert set(np.unique(got["input_type_ids"].numpy())) == {0, 1}


def test_text_serving_model_raw_text_in_pooled_output_out(multi_bundle):
  d = multi_bundle["dir"]
  srv = tf.saved_model.load(os.path.join(d, "serving"))
  pre = tf.saved_model.load(os.path.join(d, "preprocessor"))
  enc = tf.saved_model.load(os.path.join(d, "encoder"))
  assert set(srv.signatures) == {"serving_default", "text_pair"}
  single = enc(pre(tf.constant(SENTENCES)))["pooled_output"]
  pair = enc(pre.signatures["bert_pack_pair"](text_a=tf.constant(PAIRS[0]),
                                              text_b=tf.constant(PAIRS[1])))["pooled_output"]
  _close(srv(tf.constant(SENTENCES))["pooled_output"], single)
  for via in VIA:
    sig = srv.signatures["serving_default"]
    got = sig(**_request_tensors(sig, {"sentences": SENTENCES}, via))
    assert set(got) == {"pooled_output"}
    _close(got["pooled_output"], single)
    sig = srv.signatures["text_pair"]
    got = sig(**_request_tensors(sig, {"text_a": PAIRS[0], "text_b": PAIRS[1]}, via))
    assert set(got) == {"pooled_output"}
    _close(got["pooled_output"], pair)
  manifest = json.load(open(os.path.join(d, "manifest.json")))
  assert manifest["signatures"]["serving"] == ["serving_default", "text_pair"]
  figures = manifest["verification"]["serving"]["outputs"]
  assert set(figures) == {"serving_default.pooled_output", "text_pair.pooled_output"}
  assert all(f["max_rel"] <= 1e-5 for f in figures.values())


def test_save_text_serving_rejects_bad_parts(tiny_bundle, tmp_path):
  with pytest.raises(ValueError, match=r"is not a SavedModel directory"):
    serving.save_text_serving(str(tmp_path / "s"), preprocessor_dir=str(tmp_path),
                              encoder_dir=os.path.join(tiny_bundle["dir"], "encoder"))
  with pytest.raises(ValueError, match=r"lacks the signatures \['bert_pack_pair'\]"):
    serving.save_text_serving(str(tmp_path / "s"),
                              preprocessor_dir=os.path.join(tiny_bundle["dir"], "encoder"),
                              encoder_dir=os.path.join(tiny_bundle["dir"], "encoder"))
  assert not os.path.exists(tmp_path / "s")


def test_verify_text_serving_reports_a_mismatch(multi_bundle, monkeypatch):
  d = multi_bundle["dir"]
  parts = dict(preprocessor_dir=os.path.join(d, "preprocessor"),
               encoder_dir=os.path.join(d, "encoder"))
  figures = serving.verify_text_serving(os.path.join(d, "serving"), sentences=SENTENCES,
                                        pairs=PAIRS, **parts)
  assert all(f["max_rel"] <= 1e-6 for f in figures["outputs"].values())
  # A tolerance nothing can meet: both signatures must be reported by name.
  monkeypatch.setitem(serving.verify.TOLERANCES["serving"], "max_rel", -1.0)
  with pytest.raises(ValueError, match=r"does not match preprocessor \+ encoder: "
                                       r"serving_default.pooled_output: .*; "
                                       r"text_pair.pooled_output"):
    serving.verify_text_serving(os.path.join(d, "serving"), sentences=SENTENCES,
                                pairs=PAIRS, **parts)
