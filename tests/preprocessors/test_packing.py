"""Round-robin allocation (vs tensorflow_text.RoundRobinTrimmer) and packing."""

import hypothesis
from hypothesis import strategies as st
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text as tf_text

from preprocessors import packing


@hypothesis.settings(derandomize=True, max_examples=60, deadline=None)
@hypothesis.given(
    st.integers(1, 3).flatmap(lambda k: st.tuples(
        st.lists(st.lists(st.integers(0, 12), min_size=k, max_size=k),
                 min_size=1, max_size=5),
        st.integers(0, 30))))
def test_round_robin_matches_tensorflow_text(case):
  lengths, budget = case
  lengths = np.array(lengths, np.int32)
  segs = [tf.RaggedTensor.from_row_lengths(
      tf.range(int(lengths[:, i].sum())), lengths[:, i])
          for i in range(lengths.shape[1])]
  trimmed = tf_text.RoundRobinTrimmer(budget).trim(segs)
  expected = np.stack([t.row_lengths().numpy() for t in trimmed], axis=1)
  got = packing.round_robin_allocation(lengths, budget).numpy()
  np.testing.assert_array_equal(got, expected)


def _ragged(rows):
  return tf.ragged.constant(rows, dtype=tf.int32, ragged_rank=1)


def test_pack_golden_two_segments():
  a = _ragged([[10, 11, 12, 13], [10]])
  b = _ragged([[20, 21, 22], []])
  out = packing.bert_pack_inputs([a, b], 8, start_of_sequence_id=2,
                                 end_of_segment_id=3, padding_id=0)
  assert out["input_word_ids"].numpy().tolist() == [
      [2, 10, 11, 12, 3, 20, 21, 3], [2, 10, 3, 3, 0, 0, 0, 0]]
  assert out["input_type_ids"].numpy().tolist() == [
      [0, 0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 0, 0, 0, 0]]
  assert out["input_mask"].numpy().tolist() == [
      [1] * 8, [1, 1, 1, 1, 0, 0, 0, 0]]


def test_pack_golden_three_segments_and_padding_id():
  segs = [_ragged([[1, 1, 1, 1]]), _ragged([[2]]), _ragged([[3, 3, 3]])]
  out = packing.bert_pack_inputs(segs, 9, start_of_sequence_id=7,
                                 end_of_segment_id=8, padding_id=9)
  # budget 9 - 4 = 5: round robin gives 2, 1, 2.
  assert out["input_word_ids"].numpy().tolist() == [[7, 1, 1, 8, 2, 8, 3, 3,
                                                     8]]
  assert out["input_type_ids"].numpy().tolist() == [[0, 0, 0, 0, 1, 1, 2, 2,
                                                     2]]
  out = packing.bert_pack_inputs([_ragged([[5]])], 4, start_of_sequence_id=7,
                                 end_of_segment_id=8, padding_id=9)
  assert out["input_word_ids"].numpy().tolist() == [[7, 5, 8, 9]]
  assert out["input_mask"].numpy().tolist() == [[1, 1, 1, 0]]


def test_pack_accepts_rank3():
  seg = tf.ragged.constant([[[1, 2], [3]]], dtype=tf.int32)
  out = packing.bert_pack_inputs([seg], 6, start_of_sequence_id=7,
                                 end_of_segment_id=8, padding_id=0)
  assert out["input_word_ids"].numpy().tolist() == [[7, 1, 2, 3, 8, 0]]


@pytest.mark.parametrize("seq_length", [5, tf.constant(5)])
def test_pack_rank3_equals_packing_its_merge_dims(seq_length):
  # Empty rows, empty words and a truncated row; rank 3 is merged without
  # merge_dims' validation, so compare with TF's merge_dims (rank 2).
  a = tf.ragged.constant([[[1, 2], [3]], [], [[4], [], [5, 6, 7]], [[]]],
                         dtype=tf.int32, ragged_rank=2)
  b = tf.ragged.constant([[[9]], [[10, 11]], [], [[12], [13]]],
                         dtype=tf.int32, ragged_rank=2)
  ids = dict(start_of_sequence_id=7, end_of_segment_id=8, padding_id=0)

  def pack(x, y):
    return {k: v.numpy().tolist() for k, v in packing.bert_pack_inputs(
        [x, y], seq_length, **ids).items()}
  want = pack(a.merge_dims(1, 2), b.merge_dims(1, 2))
  assert pack(a, b) == want
  assert want["input_word_ids"][2] == [7, 4, 5, 8, 8]


@pytest.mark.parametrize("seq_length,num_segments", [(1, 1), (2, 2), (3, 3),
                                                     (513, 1), (0, 1)])
def test_pack_fails_if_seq_length_out_of_range(seq_length, num_segments):
  segs = [_ragged([[1]])] * num_segments
  with pytest.raises(ValueError, match=rf"seq_length={seq_length} is invalid "
                     rf"for {num_segments} segment\(s\)"):
    packing.bert_pack_inputs(segs, seq_length, start_of_sequence_id=2,
                             end_of_segment_id=3, padding_id=0)


def test_pack_fails_if_tensor_seq_length_too_small():
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="seq_length is too small for 2 segment"):
    packing.bert_pack_inputs([_ragged([[1]])] * 2, tf.constant(2),
                             start_of_sequence_id=2, end_of_segment_id=3,
                             padding_id=0)


def test_pack_fails_if_wrong_inputs():
  kw = dict(start_of_sequence_id=2, end_of_segment_id=3, padding_id=0)
  with pytest.raises(ValueError, match="non-empty list of RaggedTensors"):
    packing.bert_pack_inputs([], 8, **kw)
  with pytest.raises(TypeError, match=r"segments\[0\] is a EagerTensor"):
    packing.bert_pack_inputs([tf.constant([[1]])], 8, **kw)
  with pytest.raises(TypeError, match=r"segments\[1\] has dtype float32"):
    packing.bert_pack_inputs(
        [_ragged([[1]]), tf.ragged.constant([[1.0]])], 8, **kw)


@hypothesis.settings(derandomize=True, max_examples=60, deadline=None)
@hypothesis.given(
    st.integers(1, 3).flatmap(lambda k: st.tuples(
        st.lists(st.lists(st.lists(st.integers(5, 99), max_size=9),
                          min_size=k, max_size=k), min_size=1, max_size=4),
        st.integers(k + 1, 24), st.sampled_from([0, 4]))))
def test_pack_matches_tensorflow_text_pipeline(case):
  """Same as the published modules' trim + combine_segments + pad_model_inputs."""
  rows, seq_length, padding_id = case
  k = len(rows[0])
  segs = [_ragged([r[i] for r in rows]) for i in range(k)]
  out = packing.bert_pack_inputs(segs, seq_length, start_of_sequence_id=2,
                                 end_of_segment_id=3, padding_id=padding_id)
  trimmed = tf_text.RoundRobinTrimmer(seq_length - k - 1).trim(segs)
  ids, types = tf_text.combine_segments(trimmed, 2, 3)
  want_ids, want_mask = tf_text.pad_model_inputs(ids, seq_length, padding_id)
  want_types, _ = tf_text.pad_model_inputs(types, seq_length, 0)
  np.testing.assert_array_equal(out["input_word_ids"], want_ids)
  np.testing.assert_array_equal(out["input_mask"], want_mask)
  np.testing.assert_array_equal(out["input_type_ids"], want_types)
