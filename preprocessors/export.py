"""Builds and saves the preprocessor SavedModel (HUB_API.md, "preprocessor/").

Loading: `import tensorflow_text` (registers the FastWordpiece op), then
`pre = tf.saved_model.load(path)` or `hub.load(path)` or `hub.KerasLayer(path)`.

Callables of the loaded object (B = batch size, S = seq_length):
  * `pre(sentences)`: sentences string [B] -> dict `input_word_ids`,
    `input_mask`, `input_type_ids`, each int32 [B, S] with the S given at
    export (default 128).
  * `pre.tokenize(sentences)`: int32 RaggedTensor [B, (words), (wordpieces)],
    the ids of original BERT `FullTokenizer` (see `tokenizer.py`).
  * `pre.tokenize_with_offsets(sentences)`: `(token_ids, start_offsets,
    limit_offsets)`; offsets are int64 RaggedTensors [B, (words),
    (wordpieces)] of BYTE offsets into the ORIGINAL input strings, in both
    casing modes.
  * `pre.tokenize.get_special_tokens_dict()` (also on
    `pre.tokenize_with_offsets`): scalar int32 `vocab_size`, `padding_id`,
    `start_of_sequence_id`, `end_of_segment_id`, `mask_id`.
  * `pre.bert_pack_inputs(segments, seq_length=S)`: segments = list of 1, 2
    or 3 int32 RaggedTensors of rank 2 or 3 (from `tokenize`); seq_length an
    int or int32 scalar in [len(segments) + 1, 512]. Packs
    `[CLS] a [SEP] b [SEP] (c [SEP])` with round-robin truncation; type ids
    0 for [CLS], segment 0 and its [SEP], 1 for segment 1, 2 for segment 2;
    padding id 0 / mask 0. Returns the three-tensor dict, int32 [B, seq_length].
    A too-small tensor seq_length raises InvalidArgumentError("seq_length is
    too small ...").
Attributes: `vocab_file` (tf.saved_model.Asset, the vocab copied into
`assets/`), `do_lower_case` (non-trainable bool tf.Variable), `seq_length`
(non-trainable int32 tf.Variable, the default S).

Serving signatures (outputs are named, never output_0), built by
`signatures.serving_functions`:
  * `serving_default`: input `sentences` string [B] -> `input_word_ids`,
    `input_mask`, `input_type_ids` int32 [B, S].
  * `bert_pack_pair`: inputs `text_a`, `text_b` string [B] -> the same three
    outputs for sentence pairs (type ids 0 for text_a, 1 for text_b).

Parallelism: each call splits the batch into `parallel_shards` (default
`DEFAULT_PARALLEL_SHARDS`) contiguous slices, tokenizes them as independent
subgraphs that TensorFlow's inter-op thread pool runs concurrently, and
concatenates the results in order. Tokenization is per sentence, so ids and
offsets do not depend on the number of shards (tested); a batch smaller than
the number of shards leaves some slices empty, which is valid.

Wrong inputs: a string tensor of rank != 1 raises InvalidArgumentError
("sentences must be a rank-1 string tensor ..."); a non-string dtype fails to
bind to the function signature (TypeError/ValueError naming the expected
`tf.string` spec).
"""

import os

import tensorflow as tf

import publish
from preprocessors import packing
from preprocessors import signatures
from preprocessors import tokenizer as tokenizer_lib
from preprocessors import vocab as vocab_lib

# Two slices per batch use both cores of a 2-CPU machine; more slices were no
# faster there (benchmarks/preprocessor_throughput.py, benchmarks/README.md).
DEFAULT_PARALLEL_SHARDS = 2
_MAX_PARALLEL_SHARDS = 64
# `pre(...)` and `pre.tokenize*` accept any rank and check rank 1 at run time.
_SENTENCES_SPEC = signatures.text_spec("sentences", shape=None)


def _as_batch(sentences):
  """Checks rank 1 at run time; returns string [B] with static rank 1."""
  check = tf.debugging.assert_rank(
      sentences, 1,
      message=("sentences must be a rank-1 string tensor [batch_size]; wrap "
               "a single string in a list, flatten higher ranks"))
  with tf.control_dependencies([check]):
    return tf.reshape(sentences, [-1])


def _sharded(fn, sentences, num_shards):
  """`fn(sentences)` computed on `num_shards` contiguous slices of the batch.

  Args:
    fn: maps string [b] to a RaggedTensor or a tuple of RaggedTensors whose
      rows correspond to the input strings.
    sentences: string [B] (static rank 1).
    num_shards: static int >= 1.

  Returns:
    The outputs of `fn` for the slices, concatenated along the batch axis:
    the same rows as `fn(sentences)`.
  """
  if num_shards == 1:
    return fn(sentences)
  n = tf.shape(sentences)[0]
  bounds = [n * i // num_shards for i in range(num_shards + 1)]
  parts = [fn(sentences[bounds[i]:bounds[i + 1]]) for i in range(num_shards)]
  if isinstance(parts[0], tuple):
    return tuple(tf.concat([p[j] for p in parts], axis=0)
                 for j in range(len(parts[0])))
  return tf.concat(parts, axis=0)


class _SpecialTokens(tf.Module):
  """Callable returning the special-token dict (scalar int32 tensors)."""

  def __init__(self, values):
    super().__init__()
    self._values = dict(values)

  @tf.function(input_signature=[], autograph=False)
  def __call__(self):
    return {k: tf.constant(v, tf.int32) for k, v in self._values.items()}


class _ShardedTokenize(tf.Module):
  """`pre.tokenize` / `pre.tokenize_with_offsets`: `tokenize_fn` over batch slices.

  Called with string [B]; returns what `tokenize_fn` returns for the whole batch
  (see the module docstring), computed by `_sharded`.
  """

  def __init__(self, tokenize_fn, special_tokens, num_shards):
    super().__init__()
    self._tokenize_fn = tokenize_fn
    self._num_shards = num_shards
    self.get_special_tokens_dict = special_tokens

  @tf.function(input_signature=[_SENTENCES_SPEC], autograph=False)
  def __call__(self, sentences):
    return _sharded(self._tokenize_fn, _as_batch(sentences), self._num_shards)


class _BertPackInputs(tf.Module):
  """`pre.bert_pack_inputs(segments, seq_length=default)`."""

  def __init__(self, special_ids, default_seq_length):
    super().__init__()
    ids = packing.special_token_ids(special_ids)

    @tf.function(autograph=False)
    def call(segments, seq_length=default_seq_length):
      return packing.bert_pack_inputs(segments, seq_length, **ids)

    self.__call__ = call
    for rank in (2, 3):
      for num_segments in (1, 2, 3):
        call.get_concrete_function(
            [tf.RaggedTensorSpec([None] * rank, tf.int32, ragged_rank=rank - 1)
             for _ in range(num_segments)],
            seq_length=tf.TensorSpec([], tf.int32))


class Preprocessor(tf.Module):
  """The preprocessor object; see the module docstring for its API.

  `serve_single` and `serve_pair` are the functions of the `serving_default`
  and `bert_pack_pair` signatures (`signatures.serving_functions`).
  """

  def __init__(self, vocab, *, do_lower_case: bool, seq_length: int,
               parallel_shards: int = DEFAULT_PARALLEL_SHARDS):
    super().__init__(name="preprocessor")
    self._num_shards = parallel_shards
    self._tokenizer = tokenizer_lib.ParityBertTokenizer(
        vocab.tokens, do_lower_case=do_lower_case,
        unk_id=vocab.special_ids["unk_id"])
    special = _SpecialTokens(dict(
        vocab_size=vocab.size,
        padding_id=vocab.special_ids["padding_id"],
        start_of_sequence_id=vocab.special_ids["start_of_sequence_id"],
        end_of_segment_id=vocab.special_ids["end_of_segment_id"],
        mask_id=vocab.special_ids["mask_id"]))
    self.vocab_file = tf.saved_model.Asset(vocab.path)
    self.do_lower_case = tf.Variable(bool(do_lower_case), trainable=False,
                                     name="do_lower_case")
    self.seq_length = tf.Variable(seq_length, dtype=tf.int32, trainable=False,
                                  name="seq_length")
    self.tokenize = _ShardedTokenize(self._tokenizer.tokenize, special,
                                     parallel_shards)
    self.tokenize_with_offsets = _ShardedTokenize(
        self._tokenizer.tokenize_with_offsets, special, parallel_shards)
    self.bert_pack_inputs = _BertPackInputs(vocab.special_ids, seq_length)
    self._encode = signatures.packer(self._tokens, vocab.special_ids,
                                     seq_length)
    self.serve_single, self.serve_pair = signatures.serving_functions(
        self._encode)

  def _tokens(self, sentences):
    return _sharded(self._tokenizer.tokenize, _as_batch(sentences),
                    self._num_shards)

  @tf.function(input_signature=[_SENTENCES_SPEC], autograph=False)
  def __call__(self, sentences):
    return self._encode([sentences])


def build_preprocessor(
    *, vocab_file: str, do_lower_case: bool, seq_length: int = 128,
    parallel_shards: int = DEFAULT_PARALLEL_SHARDS) -> tf.Module:
  """Builds the preprocessor object (not yet saved).

  Args:
    vocab_file: path of the WordPiece vocab.txt (validated by
      `vocab.load_vocab`).
    do_lower_case: as original BERT `FullTokenizer`; use
      `vocab.infer_do_lower_case` to decide it from the vocab.
    seq_length: default output length S of `pre(...)`, the serving signatures
      and `bert_pack_inputs`, in [3, 512] (a pair needs [CLS] + 2 x [SEP]).
    parallel_shards: number of slices each batch is split into and tokenized
      concurrently (module docstring, "Parallelism"); 1 disables it. The
      output does not depend on it.

  Returns:
    A `Preprocessor` (tf.Module) with the API of the module docstring.

  Raises:
    ValueError: bad vocab file (see `load_vocab`), do_lower_case not a bool,
      seq_length not an int in [3, 512], parallel_shards not an int in
      [1, 64].
  """
  if not isinstance(do_lower_case, bool):
    raise ValueError(f"do_lower_case must be a bool, got {do_lower_case!r}; "
                     "use vocab.infer_do_lower_case to decide it.")
  packing.check_seq_length(seq_length, 2)
  if (isinstance(parallel_shards, bool) or
      not isinstance(parallel_shards, int) or
      not 1 <= parallel_shards <= _MAX_PARALLEL_SHARDS):
    raise ValueError(
        f"parallel_shards must be an int in [1, {_MAX_PARALLEL_SHARDS}], got "
        f"{parallel_shards!r}; use 1 to tokenize each batch as one slice.")
  vocab = vocab_lib.load_vocab(vocab_file)
  return Preprocessor(vocab, do_lower_case=do_lower_case,
                      seq_length=seq_length, parallel_shards=parallel_shards)


def save_preprocessor(
    export_path: str, *, vocab_file: str, do_lower_case: bool,
    seq_length: int = 128,
    parallel_shards: int = DEFAULT_PARALLEL_SHARDS) -> None:
  """Builds the preprocessor and writes it as a TF2 SavedModel.

  The SavedModel is written to a staging directory next to `export_path`
  and renamed into place (`publish.atomic_directory`), so a failure leaves
  nothing at `export_path`. The vocab is stored as an asset
  (`assets/<basename>`); no source path is recorded in saved_model.pb.

  Args:
    export_path: directory to create; must not exist.
    vocab_file, do_lower_case, seq_length, parallel_shards: see
      `build_preprocessor`.

  Raises:
    FileExistsError: export_path exists.
    ValueError: see `build_preprocessor`.
    publish.PublishError: the directory beside export_path is not writable.
  """
  if os.path.exists(export_path):
    raise FileExistsError(
        f"export_path {export_path!r} already exists; pass a new directory "
        "or remove the old one first.")
  pre = build_preprocessor(vocab_file=vocab_file, do_lower_case=do_lower_case,
                           seq_length=seq_length,
                           parallel_shards=parallel_shards)
  with publish.atomic_directory(export_path) as work:
    tf.saved_model.save(
        pre, work,
        signatures={
            signatures.SINGLE_SIGNATURE_NAME:
                pre.serve_single.get_concrete_function(),
            signatures.PAIR_SIGNATURE_NAME:
                pre.serve_pair.get_concrete_function(),
        })
