"""The preprocessor SavedModel on disk, cut off from its source vocab."""

import os
import shutil

import pytest

from tests import testutil
import tensorflow as tf
import tensorflow_hub as hub

import publish
from preprocessors import export
from preprocessors import signatures

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow

# Tiny vocab with hand-checkable ids.
TINY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "d", "e",
        "##s", "."]
A, B, C, D, E, S_, DOT = 5, 6, 7, 8, 9, 10, 11
CLS, SEP = 2, 3
OUTPUTS = {"input_word_ids", "input_mask", "input_type_ids"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("tiny"))
  src = os.path.join(root, "source_vocab_dir")
  os.makedirs(src)
  vocab_file = os.path.join(src, "vocab.txt")
  with open(vocab_file, "w", encoding="utf-8") as f:
    f.write("\n".join(TINY) + "\n")
  first = os.path.join(root, "out", "pre")
  export.save_preprocessor(first, vocab_file=vocab_file, do_lower_case=True,
                           seq_length=8)
  leftovers = os.listdir(os.path.join(root, "out"))
  shutil.rmtree(src)
  moved = os.path.join(root, "elsewhere", "pre")
  shutil.move(first, moved)
  return dict(path=moved, root=root, src=src, leftovers=leftovers,
              pre=tf.saved_model.load(moved))


def test_no_source_path_or_temp_dir_in_saved_model(tiny):
  with open(os.path.join(tiny["path"], "saved_model.pb"), "rb") as f:
    pb = f.read()
  assert tiny["src"].encode() not in pb
  assert b"source_vocab_dir" not in pb
  assert b".preprocessor_tmp_" not in pb
  assert publish.TMP_INFIX.encode() not in pb
  assert tiny["root"].encode() not in pb
  assert tiny["leftovers"] == ["pre"]  # temp dir removed.


def test_attributes(tiny):
  pre = tiny["pre"]
  asset = pre.vocab_file.asset_path.numpy().decode()
  assert asset == os.path.join(tiny["path"], "assets", "vocab.txt")
  with open(asset, encoding="utf-8") as f:
    assert f.read().split("\n")[:-1] == TINY
  assert isinstance(pre.do_lower_case, tf.Variable)
  assert pre.do_lower_case.dtype == tf.bool and not pre.do_lower_case.trainable
  assert bool(pre.do_lower_case.numpy()) is True
  assert int(pre.seq_length.numpy()) == 8
  for obj in (pre.tokenize, pre.tokenize_with_offsets):
    special = obj.get_special_tokens_dict()
    assert {k: int(v) for k, v in special.items()} == dict(
        vocab_size=12, padding_id=0, start_of_sequence_id=2,
        end_of_segment_id=3, mask_id=4)
    assert all(v.dtype == tf.int32 and v.shape == () for v in special.values())


def test_signatures_have_named_outputs(tiny):
  sigs = tiny["pre"].signatures
  assert set(sigs.keys()) == {"serving_default", signatures.PAIR_SIGNATURE_NAME}
  assert signatures.PAIR_SIGNATURE_NAME == "bert_pack_pair"
  single = sigs["serving_default"]
  assert set(single.structured_input_signature[1]) == {"sentences"}
  assert set(single.structured_outputs) == OUTPUTS
  pair = sigs["bert_pack_pair"]
  assert set(pair.structured_input_signature[1]) == {"text_a", "text_b"}
  assert set(pair.structured_outputs) == OUTPUTS
  out = single(sentences=tf.constant(["A b", ""]))
  assert out["input_word_ids"].numpy().tolist() == [
      [CLS, A, B, SEP, 0, 0, 0, 0], [CLS, SEP, 0, 0, 0, 0, 0, 0]]
  out = pair(text_a=tf.constant(["a b c d e"]), text_b=tf.constant(["es."]))
  # budget 8 - 3 = 5, round robin: 3 from text_a, 2 from text_b.
  assert out["input_word_ids"].numpy().tolist() == [
      [CLS, A, B, C, SEP, E, S_, SEP]]
  assert out["input_type_ids"].numpy().tolist() == [[0, 0, 0, 0, 0, 1, 1, 1]]
  assert out["input_mask"].numpy().tolist() == [[1] * 8]


def test_call_tokenize_and_offsets(tiny):
  pre = tiny["pre"]
  out = pre(tf.constant(["ÀS. x", "d"]))  # "x" is not in the vocab.
  assert out["input_word_ids"].numpy().tolist() == [
      [CLS, A, S_, DOT, 1, SEP, 0, 0], [CLS, D, SEP, 0, 0, 0, 0, 0]]
  assert out["input_mask"].dtype == tf.int32
  toks = pre.tokenize(tf.constant(["Es. aés"]))
  assert toks.dtype == tf.int32 and toks.ragged_rank == 2
  assert toks.to_list() == [[[E, S_], [DOT], [1]]]
  ids, starts, limits = pre.tokenize_with_offsets(tf.constant(["Es. Éš"]))
  assert starts.dtype == tf.int64 and limits.dtype == tf.int64
  assert ids.to_list() == [[[E, S_], [DOT], [E, S_]]]
  # byte offsets into the original: "É" and "š" are 2 bytes each.
  assert starts.to_list() == [[[0, 1], [2], [4, 6]]]
  assert limits.to_list() == [[[1, 2], [3], [6, 8]]]


def test_bert_pack_inputs_one_two_three_segments(tiny):
  pre = tiny["pre"]
  a = pre.tokenize(tf.constant(["a b c d"]))
  b = pre.tokenize(tf.constant(["e e e"]))
  c = pre.tokenize(tf.constant(["d"]))
  out = pre.bert_pack_inputs([a])
  assert out["input_word_ids"].numpy().tolist() == [[CLS, A, B, C, D, SEP, 0,
                                                     0]]
  out = pre.bert_pack_inputs([a, b], seq_length=8)
  assert out["input_word_ids"].numpy().tolist() == [[CLS, A, B, C, SEP, E, E,
                                                     SEP]]
  out = pre.bert_pack_inputs([a, b, c], seq_length=9)
  # budget 9 - 4 = 5: round robin 2, 2, 1.
  assert out["input_word_ids"].numpy().tolist() == [
      [CLS, A, B, SEP, E, E, SEP, D, SEP]]
  assert out["input_type_ids"].numpy().tolist() == [[0, 0, 0, 0, 1, 1, 1, 2,
                                                     2]]
  out = pre.bert_pack_inputs([a.merge_dims(1, 2)], seq_length=tf.constant(4))
  assert out["input_word_ids"].numpy().tolist() == [[CLS, A, B, SEP]]


def test_bert_pack_inputs_fails_if_seq_length_too_small(tiny):
  a = tiny["pre"].tokenize(tf.constant(["a"]))
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="seq_length is too small for 2 segment"):
    tiny["pre"].bert_pack_inputs([a, a], seq_length=2)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="seq_length must be <= 512"):
    tiny["pre"].bert_pack_inputs([a], seq_length=600)


def test_call_fails_if_wrong_rank(tiny):
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="sentences must be a rank-1 string tensor"):
    tiny["pre"](tf.constant([["a"]]))
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="sentences must be a rank-1 string tensor"):
    tiny["pre"].tokenize(tf.constant("a"))


def test_call_fails_if_wrong_dtype(tiny):
  with pytest.raises((TypeError, ValueError), match="tf.string"):
    tiny["pre"](tf.constant([1, 2]))
  with pytest.raises((TypeError, ValueError), match="tf.string"):
    tiny["pre"].tokenize(tf.constant([1.0]))
  a = tf.ragged.constant([[1]], dtype=tf.int64)
  with pytest.raises((TypeError, ValueError), match="int32"):
    tiny["pre"].bert_pack_inputs([a])


def test_hub_keras_layer(tiny):
  layer = hub.KerasLayer(tiny["path"])
  out = layer(tf.constant(["a b"]))
  assert set(out) == OUTPUTS
  assert out["input_word_ids"].numpy().tolist() == [[CLS, A, B, SEP, 0, 0, 0,
                                                     0]]
  pre = hub.load(tiny["path"])
  tok = hub.KerasLayer(pre.tokenize)
  assert tok(tf.constant(["a b"])).to_list() == [[[A], [B]]]
  pack = hub.KerasLayer(pre.bert_pack_inputs, arguments=dict(seq_length=5))
  out = pack([tok(tf.constant(["a b c"]))])
  assert out["input_word_ids"].numpy().tolist() == [[CLS, A, B, C, SEP]]


def test_reexport_loaded_bundle(tiny, tmp_path):
  again = os.path.join(tmp_path, "again")
  tf.saved_model.save(tiny["pre"], again)
  pre2 = tf.saved_model.load(again)
  x = tf.constant(["a b. c"])
  assert pre2(x)["input_word_ids"].numpy().tolist() == tiny["pre"](
      x)["input_word_ids"].numpy().tolist()


def test_save_fails_if_export_path_exists(tmp_path, tiny):
  with pytest.raises(FileExistsError, match="already exists"):
    export.save_preprocessor(tiny["path"], vocab_file="unused",
                             do_lower_case=True)


def test_save_leaves_nothing_if_writing_fails(tmp_path, monkeypatch):
  vocab_file = os.path.join(tmp_path, "vocab.txt")
  with open(vocab_file, "w", encoding="utf-8") as f:
    f.write("\n".join(TINY) + "\n")
  out = os.path.join(tmp_path, "out")

  def fail(*args, **kwargs):
    raise OSError("disk full")

  monkeypatch.setattr(tf.saved_model, "save", fail)
  with pytest.raises(OSError, match="disk full"):
    export.save_preprocessor(os.path.join(out, "pre"), vocab_file=vocab_file,
                             do_lower_case=True, seq_length=8)
  assert os.listdir(out) == []  # no pre/, no staging directory.


@pytest.mark.parametrize("seq_length", [2, 0, 513, 128.0])
def test_build_fails_if_seq_length_invalid(tmp_path, seq_length):
  with pytest.raises(ValueError, match=r"seq_length=.* is invalid .* in "
                     r"\[3, 512\]"):
    export.build_preprocessor(vocab_file="unused", do_lower_case=True,
                              seq_length=seq_length)


def test_build_fails_if_do_lower_case_not_bool():
  with pytest.raises(ValueError, match="do_lower_case must be a bool"):
    export.build_preprocessor(vocab_file="unused", do_lower_case="yes")


def test_build_fails_if_vocab_missing(tmp_path):
  with pytest.raises(ValueError, match="Cannot read vocab file"):
    export.build_preprocessor(vocab_file=os.path.join(tmp_path, "v.txt"),
                              do_lower_case=True)


def test_real_multi_cased_bundle_attributes(multi_cased_pre, multi_cased_path):
  pre = multi_cased_pre
  assert bool(pre.do_lower_case.numpy()) is False
  assert int(pre.tokenize.get_special_tokens_dict()["vocab_size"]) == 119547
  out = pre(tf.constant(["The Berlin München"]))
  assert out["input_word_ids"].shape == (1, 128)
  with open(os.path.join(multi_cased_path, "saved_model.pb"), "rb") as f:
    assert os.path.dirname(testutil.SHARED_DATA).encode() not in f.read()


@pytest.mark.parametrize("parallel_shards", [0, 65, 2.0, True])
def test_build_fails_if_parallel_shards_invalid(parallel_shards):
  with pytest.raises(ValueError, match=r"parallel_shards must be an int in "
                     r"\[1, 64\], got"):
    export.build_preprocessor(vocab_file="unused", do_lower_case=True,
                              parallel_shards=parallel_shards)


def _all_outputs(pre, texts):
  """Every output of the three callables, as nested Python lists."""
  batch = tf.constant(texts, tf.string)
  ids, starts, limits = pre.tokenize_with_offsets(batch)
  packed = pre(batch)
  return dict(tokenize=pre.tokenize(batch).to_list(), ids=ids.to_list(),
              starts=starts.to_list(), limits=limits.to_list(),
              **{k: v.numpy().tolist() for k, v in packed.items()})


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_parallel_shards_do_not_change_outputs(do_lower_case):
  # Real multilingual text, including a capital sigma (Final_Sigma path)
  # and Korean (multi-code-point expansion path), in batches smaller than,
  # equal to and larger than the number of shards.
  lines = []
  for lang in ("el", "zh", "hi", "en"):
    path = os.path.join(testutil.SHARED_DATA, "xnli", "xtreme_dev",
                        f"dev-{lang}.tsv")
    with open(path, encoding="utf-8", newline="") as f:
      lines += [f.readline().rstrip("\r\n").split("\t")[0]
                for _ in range(8)]
  texts = ["ΟΔΟΣ ΣΟΦΙΑΣ", "한국어 텍스트", "", "  ", "a" * 250] + lines
  vocab = (testutil.UNCASED_VOCAB if do_lower_case
           else testutil.MULTI_CASED_VOCAB)
  one = export.build_preprocessor(vocab_file=vocab,
                                  do_lower_case=do_lower_case,
                                  parallel_shards=1)
  three = export.build_preprocessor(vocab_file=vocab,
                                    do_lower_case=do_lower_case,
                                    parallel_shards=3)
  for size in (0, 1, 2, 3, 4, 37):
    want = _all_outputs(one, texts[:size])
    got = _all_outputs(three, texts[:size])
    assert got == want, f"batch of {size}"
  assert len(want["tokenize"]) == 37
  assert sum(len(row) for row in want["tokenize"]) > 300
