"""The preprocessor as a TFLite model: TFLite builtins + tensorflow-text ops
only (no Flex), run in the LiteRT interpreter and compared with the
SavedModel (both signatures) and with original BERT FullTokenizer."""

import numpy as np
import pytest
import tensorflow as tf

from preprocessors import signatures
from preprocessors import tflite
from tests.preprocessors import conftest as c
from tests.preprocessors import probe_texts

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow

CASINGS = ("multi_cased", "uncased")
_PER_LANGUAGE = 100
INVALID_UTF8 = [b"\xff abc", b"ab\xc3", b"a\xe2\x82b caf\xc3\xa9",
                b"\xed\xa0\x80x", b"\xf4\x90\x80\x80y", b"\xc0\xafz",
                b"ok\x80\x80ok"]


def _sample():
  """XNLI dev premises/hypotheses spread over all 15 languages, the probe
  set of probe_texts (200/201-char words, CJK ext B, control characters,
  final sigma, ...) and ill-formed UTF-8."""
  texts = []
  for lang, rows in sorted(c.load_xnli_texts().items()):
    step = len(rows) // _PER_LANGUAGE
    texts += rows[::step][:_PER_LANGUAGE]
  texts += [probe_texts.PROBES[k] for k in sorted(probe_texts.PROBES)]
  return texts + INVALID_UTF8


SAMPLE = _sample()


@pytest.mark.parametrize("casing", CASINGS)
def test_converted_model_has_no_flex_ops(tflite_models, casing):
  model = tflite_models[casing]
  ops = tflite.custom_ops(model)
  assert not [op for op in ops if op.startswith("Flex")], ops
  assert set(ops) <= tflite.ALLOWED_CUSTOM_OPS, ops
  signature_list = tflite.make_interpreter(model).get_signature_list()
  assert signature_list == {
      "serving_default": {"inputs": ["sentences"],
                          "outputs": sorted(signatures.OUTPUT_KEYS)},
      "bert_pack_pair": {"inputs": ["text_a", "text_b"],
                         "outputs": sorted(signatures.OUTPUT_KEYS)}}


@pytest.mark.parametrize("casing", CASINGS)
def test_tflite_matches_saved_model_multilingual(tflite_models, casing,
                                                 request):
  path = request.getfixturevalue(f"{casing}_path")
  figures = tflite.verify_tflite_preprocessor(
      tflite_models[casing], saved_model_dir=path, sentences=SAMPLE,
      batch_size=64)
  print(f"tflite vs SavedModel/{casing}: {figures}")
  assert figures["sentences"] == len(SAMPLE) > 1500
  assert figures["identical_single"] == figures["identical_pair"] == len(
      SAMPLE)


@pytest.mark.parametrize("casing", CASINGS)
def test_tflite_ids_equal_full_tokenizer(tflite_models, casing, request):
  ft = request.getfixturevalue(f"{casing}_ref")
  runner = tflite.make_interpreter(tflite_models[casing]).get_signature_runner(
      "serving_default")
  raw = [t if isinstance(t, bytes) else t.encode("utf-8") for t in SAMPLE]
  got = runner(sentences=np.array(raw, dtype=object))
  cls, sep = ft.vocab["[CLS]"], ft.vocab["[SEP]"]
  expected = np.zeros((len(raw), 128), np.int32)
  for row, text in enumerate(raw):
    ids = [cls] + c.reference_ids(ft, text)[:126] + [sep]
    expected[row, :len(ids)] = ids
  same = int(np.all(got["input_word_ids"] == expected, axis=1).sum())
  print(f"tflite vs FullTokenizer/{casing}: compared {len(raw)}, identical "
        f"{same}")
  assert same == len(raw)
  np.testing.assert_array_equal(got["input_mask"], expected != 0)
  assert not got["input_type_ids"].any()


def test_pair_signature_truncates_round_robin(tflite_models, multi_cased_ref):
  runner = tflite.make_interpreter(
      tflite_models["multi_cased"]).get_signature_runner("bert_pack_pair")
  a, b = "one two three " * 60, "vier"
  got = runner(text_a=np.array([a.encode()], dtype=object),
               text_b=np.array([b.encode()], dtype=object))
  ft = multi_cased_ref
  ids_a, ids_b = c.reference_ids(ft, a), c.reference_ids(ft, b)
  assert len(ids_a) > 128 and len(ids_b) == 1
  want = ([ft.vocab["[CLS]"]] + ids_a[:128 - 4] + [ft.vocab["[SEP]"]] +
          ids_b + [ft.vocab["[SEP]"]])
  assert got["input_word_ids"][0].tolist() == want
  assert got["input_type_ids"][0].tolist() == [0] * (128 - 2) + [1, 1]
  assert got["input_mask"][0].tolist() == [1] * 128


def test_verify_fails_if_model_and_saved_model_differ(tflite_models,
                                                      multi_cased_path):
  with pytest.raises(RuntimeError, match="differs from the SavedModel"):
    tflite.verify_tflite_preprocessor(tflite_models["uncased"],
                                      saved_model_dir=multi_cased_path,
                                      sentences=["Straße ÉCOLE"])


def test_verify_fails_on_bad_arguments(tflite_models, multi_cased_path):
  model = tflite_models["multi_cased"]
  with pytest.raises(ValueError, match="sentences is empty"):
    tflite.verify_tflite_preprocessor(model, saved_model_dir=multi_cased_path,
                                      sentences=[])
  with pytest.raises(ValueError, match="batch_size=0"):
    tflite.verify_tflite_preprocessor(model, saved_model_dir=multi_cased_path,
                                      batch_size=0)
  with pytest.raises(ValueError, match="not a TFLite flatbuffer"):
    tflite.verify_tflite_preprocessor(b"not a model",
                                      saved_model_dir=multi_cased_path)


def test_convert_fails_on_bad_arguments(tmp_path):
  with pytest.raises(ValueError, match="do_lower_case must be a bool"):
    tflite.convert_preprocessor_to_tflite(vocab_file=c.UNCASED_VOCAB,
                                          do_lower_case="yes")
  with pytest.raises(ValueError, match="seq_length=2 is invalid"):
    tflite.convert_preprocessor_to_tflite(vocab_file=c.UNCASED_VOCAB,
                                          do_lower_case=True, seq_length=2)
  missing = str(tmp_path / "vocab.txt")
  with pytest.raises(ValueError, match="vocab.txt"):
    tflite.convert_preprocessor_to_tflite(vocab_file=missing,
                                          do_lower_case=True)


def test_check_tflite_ops_refuses_flex_ops():

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
  def decode(s):
    return tf.strings.unicode_decode(s, "UTF-8").flat_values

  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [decode.get_concrete_function()], tf.Module())
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS,
                                         tf.lite.OpsSet.SELECT_TF_OPS]
  model = converter.convert()
  assert "FlexUnicodeDecode" in tflite.custom_ops(model)
  with pytest.raises(ValueError, match="FlexUnicodeDecode"):
    tflite.check_tflite_ops(model)

