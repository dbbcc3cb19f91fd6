"""The one builder of the text signatures (`preprocessors/signatures.py`): names, input
specs, the order of the texts, hand-checkable packing, and the dispatch to a loaded
preprocessor's signatures."""

import pytest
import tensorflow as tf

from preprocessors import signatures

CLS, SEP, PAD = 101, 102, 0
SPECIAL_IDS = dict(start_of_sequence_id=CLS, end_of_segment_id=SEP, padding_id=PAD,
                   mask_id=103, unk_id=100)


def _digits(sentences):
  """A stand-in tokenizer: "5 6" -> [5, 6], int32 RaggedTensor [B, (tokens)]."""
  return tf.strings.to_number(tf.strings.split(sentences), tf.int32)


def test_serving_functions_names_and_input_specs():
  seen = []

  def encode(texts):
    seen.append(len(texts))
    return {"joined": tf.strings.join(texts, separator="|")}

  single, pair = signatures.serving_functions(encode)
  assert single.name == signatures.SINGLE_SIGNATURE_NAME == "serving_default"
  assert pair.name == signatures.PAIR_SIGNATURE_NAME == "bert_pack_pair"
  for fn, names in ((single, ["sentences"]), (pair, ["text_a", "text_b"])):
    specs = fn.get_concrete_function().structured_input_signature[0]
    assert [s.name for s in specs] == names
    assert all(s.dtype == tf.string and s.shape.as_list() == [None] for s in specs)
  assert single(tf.constant(["x"]))["joined"].numpy().tolist() == [b"x"]
  assert pair(tf.constant(["a"]), tf.constant(["b"]))["joined"].numpy().tolist() == [b"a|b"]
  assert seen == [1, 2]  # each traced once.


def test_packer_golden_single_and_pair():
  encode = signatures.packer(_digits, SPECIAL_IDS, 6)
  single, pair = signatures.serving_functions(encode)
  out = single(tf.constant(["5 6 7", "8", ""]))
  assert set(out) == set(signatures.OUTPUT_KEYS)
  assert out["input_word_ids"].numpy().tolist() == [
      [CLS, 5, 6, 7, SEP, PAD], [CLS, 8, SEP, PAD, PAD, PAD], [CLS, SEP, PAD, PAD, PAD, PAD]]
  assert out["input_mask"].numpy().tolist() == [[1] * 5 + [0], [1] * 3 + [0] * 3,
                                                [1] * 2 + [0] * 4]
  out = pair(tf.constant(["5 6 7 8"]), tf.constant(["9 10"]))
  # budget 6 - 3 = 3, round robin: 2 from text_a, 1 from text_b.
  assert out["input_word_ids"].numpy().tolist() == [[CLS, 5, 6, SEP, 9, SEP]]
  assert out["input_type_ids"].numpy().tolist() == [[0, 0, 0, 0, 1, 1]]


def test_signature_for_and_inputs():
  assert signatures.signature_for(["s"]) == "serving_default"
  assert signatures.signature_for(["a", "b"]) == "bert_pack_pair"
  assert signatures.signature_inputs(["s"]) == {"sentences": "s"}
  assert signatures.signature_inputs(["a", "b"]) == {"text_a": "a", "text_b": "b"}


@pytest.mark.parametrize("count", [0, 3])
def test_signature_for_fails_if_not_one_or_two_texts(count):
  with pytest.raises(ValueError, match=rf"got {count} text inputs; .* take 1 \(sentences\) "
                                       r"or 2 \(text_a, text_b\)"):
    signatures.signature_for(["t"] * count)


def test_saved_preprocessor_calls_the_matching_signature():
  calls = []

  class _Loaded:
    signatures = {
        "serving_default": lambda **kw: calls.append(("serving_default", kw)) or "single",
        "bert_pack_pair": lambda **kw: calls.append(("bert_pack_pair", kw)) or "pair",
    }

  encode = signatures.saved_preprocessor(_Loaded())
  assert encode(["s"]) == "single"
  assert encode(["a", "b"]) == "pair"
  assert calls == [("serving_default", {"sentences": "s"}),
                   ("bert_pack_pair", {"text_a": "a", "text_b": "b"})]
