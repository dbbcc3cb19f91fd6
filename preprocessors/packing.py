"""Round-robin truncation and BERT input packing, in TFLite-friendly TF ops.

Same results as `tensorflow_text.RoundRobinTrimmer` + `combine_segments` +
`pad_model_inputs` (the published bert_*_preprocess modules), computed in
closed form (water-filling by a fixed 10-step bisection, no while loop and no
RoundRobinTrim op); every output position gathers its id (no scatter).
"""

import tensorflow as tf

MAX_SEQ_LENGTH = 512  # max_position_embeddings of the released checkpoints.
_BISECTION_STEPS = 10  # 2**10 > MAX_SEQ_LENGTH + 1.


def special_token_ids(special_ids: dict) -> dict:
  """The ids `bert_pack_inputs` takes as keywords, from `vocab.Vocab.special_ids`.

  Returns:
    {"start_of_sequence_id", "end_of_segment_id", "padding_id"} -> int
    (the ids of [CLS], [SEP], [PAD]).
  """
  return {k: special_ids[k]
          for k in ("start_of_sequence_id", "end_of_segment_id", "padding_id")}


def num_special_tokens(num_segments: int) -> int:
  """[CLS] plus one [SEP] per segment."""
  return num_segments + 1


def check_seq_length(seq_length: int, num_segments: int) -> None:
  """Validates a Python int seq_length for `num_segments` segments.

  Raises:
    ValueError: seq_length is not an int in [num_segments + 1, 512].
  """
  need = num_special_tokens(num_segments)
  if (isinstance(seq_length, bool) or not isinstance(seq_length, int) or
      not need <= seq_length <= MAX_SEQ_LENGTH):
    raise ValueError(
        f"seq_length={seq_length!r} is invalid for {num_segments} segment(s): "
        f"it must be an int in [{need}, {MAX_SEQ_LENGTH}] ({need} special "
        f"tokens [CLS] + {num_segments} x [SEP] need room; 512 = "
        "max_position_embeddings); pass a seq_length in that range.")


def round_robin_allocation(lengths, budget):
  """Per-segment quota of round-robin truncation.

  Args:
    lengths: int32 [batch_size, num_segments], tokens per segment.
    budget: int32 scalar, total tokens allowed per row (>= 0).

  Returns:
    int32 [batch_size, num_segments] (num_segments must be static): tokens
    kept per segment, as
    `tensorflow_text.RoundRobinTrimmer` (one token per segment in turn,
    segment 0 first, skipping exhausted segments).
  """
  lengths = tf.convert_to_tensor(lengths, tf.int32)
  budget = tf.cast(budget, tf.int32)
  num_segments = lengths.shape[1]
  if num_segments == 1:
    return tf.minimum(lengths, budget)
  if num_segments == 2:
    # Closed form: segment 1 gets half the budget (rounded down) or what
    # segment 0 leaves over; segment 0 gets the rest.
    len_a, len_b = lengths[:, 0], lengths[:, 1]
    alloc_b = tf.minimum(len_b, tf.maximum(budget // 2, budget - len_a))
    alloc_a = tf.minimum(len_a, budget - alloc_b)
    return tf.stack([alloc_a, alloc_b], axis=1)
  batch = tf.shape(lengths)[0]
  lo = tf.zeros([batch], tf.int32)          # feasible level.
  hi = tf.fill([batch], budget + 1)         # infeasible level (or all fit).
  for _ in range(_BISECTION_STEPS):
    mid = (lo + hi) // 2
    used = tf.reduce_sum(tf.minimum(lengths, mid[:, None]), axis=1)
    ok = used <= budget
    lo = tf.where(ok, mid, lo)
    hi = tf.where(ok, hi, mid)
  base = tf.minimum(lengths, lo[:, None])
  remainder = budget - tf.reduce_sum(base, axis=1)
  more = tf.cast(lengths > lo[:, None], tf.int32)
  rank = tf.cumsum(more, axis=1, exclusive=True)
  extra = more * tf.cast(rank < remainder[:, None], tf.int32)
  return base + extra


def _as_token_rows(segment, index):
  """RaggedTensor int32 [batch_size, (tokens)] from rank 2 or 3 ragged."""
  if not isinstance(segment, tf.RaggedTensor):
    raise TypeError(
        f"segments[{index}] is a {type(segment).__name__}; expected an int32 "
        "RaggedTensor [batch_size, (words), (wordpieces)] or [batch_size, "
        "(tokens)] as returned by tokenize; pass the output of tokenize.")
  if segment.dtype not in (tf.int32, tf.int64):
    raise TypeError(
        f"segments[{index}] has dtype {segment.dtype.name}; expected int32 "
        "token ids from tokenize.")
  if segment.shape.rank not in (2, 3):
    raise ValueError(
        f"segments[{index}] has rank {segment.shape.rank}; expected rank 2 "
        "[batch_size, (tokens)] or 3 [batch_size, (words), (wordpieces)].")
  if segment.shape.rank == 3:
    # merge_dims(1, 2) without its run-time validation (three guarded Asserts
    # on every call): the token row splits are the word-level splits read at
    # the sentence-level splits.
    segment = tf.RaggedTensor.from_row_splits(
        segment.flat_values,
        tf.gather(segment.values.row_splits, segment.row_splits),
        validate=False)
  return tf.cast(segment, tf.int32)


def bert_pack_inputs(segments, seq_length, *, start_of_sequence_id: int,
                     end_of_segment_id: int, padding_id: int):
  """Packs tokenized segments into BERT encoder inputs.

  `[CLS] seg_0 [SEP] seg_1 [SEP] ...`, round-robin truncated so that the
  whole fits `seq_length`, then padded.

  Args:
    segments: list of 1 or more int32 RaggedTensors [batch_size, (words),
      (wordpieces)] or [batch_size, (tokens)], all with the same batch_size.
    seq_length: int or int32 scalar tensor, length of the outputs.
    start_of_sequence_id, end_of_segment_id, padding_id: ids of [CLS], [SEP]
      and [PAD].

  Returns:
    dict with input_word_ids, input_mask (1 for real tokens, 0 for padding)
    and input_type_ids (i for the tokens of segment i and the [SEP] after it,
    0 for [CLS]), each int32 [batch_size, seq_length].

  Raises:
    ValueError / TypeError (at trace time): no segment, wrong type, dtype or
      rank; a Python int seq_length outside [len(segments) + 1, 512].
    tf.errors.InvalidArgumentError (at run time): a tensor seq_length outside
      that range.
  """
  if not isinstance(segments, (list, tuple)) or not segments:
    raise ValueError(
        f"segments must be a non-empty list of RaggedTensors from tokenize, "
        f"got {segments!r}; pass e.g. [pre.tokenize(sentences)].")
  segs = [_as_token_rows(s, i) for i, s in enumerate(segments)]
  k = len(segs)
  if isinstance(seq_length, int):
    check_seq_length(seq_length, k)
  need = num_special_tokens(k)
  if isinstance(seq_length, int):  # checked above, at trace time.
    seq_length = tf.constant(seq_length, tf.int32)
    budget = seq_length - need
  else:
    seq_length = tf.cast(seq_length, tf.int32)
    with tf.control_dependencies([
        tf.debugging.assert_greater_equal(
            seq_length, need,
            message=(f"seq_length is too small for {k} segment(s): it must "
                     f"be >= {need} ([CLS] + {k} x [SEP]); pass a larger "
                     "seq_length")),
        tf.debugging.assert_less_equal(
            seq_length, MAX_SEQ_LENGTH,
            message=f"seq_length must be <= {MAX_SEQ_LENGTH}"),
    ]):
      budget = tf.identity(seq_length - need)
  lengths = tf.stack([tf.cast(s.row_lengths(), tf.int32) for s in segs],
                     axis=1)
  alloc = round_robin_allocation(lengths, budget)  # [B, k]
  # Start position of segment i in the packed row: after [CLS] and the
  # previous segments with their [SEP]s.
  seg_start = 1 + tf.cumsum(alloc + 1, axis=1, exclusive=True)  # [B, k]
  total = seg_start[:, -1] + alloc[:, -1] + 1  # [B], tokens incl. specials.
  # Every output position gathers its id from one flat vector: the tokens
  # of all segments, then [CLS], [SEP], [PAD].
  pos = tf.range(seq_length)[None, :]  # [1, S]
  values = [s.flat_values for s in segs]
  sizes = [tf.shape(v)[0] for v in values]
  offset = 0
  num_tokens = tf.add_n(sizes) if len(sizes) > 1 else sizes[0]
  cls_index, sep_index, pad_index = num_tokens, num_tokens + 1, num_tokens + 2
  batch = tf.shape(lengths)[0]
  index = tf.fill(tf.stack([batch, seq_length]), pad_index)  # [B, S]
  type_ids = tf.zeros_like(index)
  for i, seg in enumerate(segs):
    begin = seg_start[:, i:i + 1]
    end = begin + alloc[:, i:i + 1]  # position of this segment's [SEP].
    row_start = tf.cast(seg.row_starts(), tf.int32)[:, None]
    index = tf.where((pos >= begin) & (pos < end),
                     offset + row_start + pos - begin, index)
    index = tf.where(tf.equal(pos, end), sep_index, index)
    if i > 0:
      type_ids += tf.cast(pos >= begin, tf.int32)
    offset += sizes[i]
  index = tf.where(tf.equal(pos, 0), cls_index, index)
  flat = tf.concat(values + [tf.constant(
      [start_of_sequence_id, end_of_segment_id, padding_id], tf.int32)],
                   axis=0)
  mask = tf.cast(pos < total[:, None], tf.int32)
  return dict(input_word_ids=tf.gather(flat, index), input_mask=mask,
              input_type_ids=type_ids * mask)
