"""`MobileBertTokenizer`: the FullTokenizer-exact tokenizer of `preprocessors/` for keras-hub.

keras-hub's `WordPieceTokenizer` (and `BertTokenizer` on it) does not tokenize like the
original BERT `FullTokenizer` (its own regex split and normalization); this class runs
`preprocessors.tokenizer.ParityBertTokenizer`, the tokenizer of the bundle's
`preprocessor/` SavedModel, so ids equal `FullTokenizer`'s (`tokenization.py` of
google-research/bert), invalid UTF-8 bytes ignored as `convert_to_unicode` ignores them.

Like every keras-hub preprocessing layer it computes in TensorFlow whatever the Keras
backend (TensorFlow and tensorflow-text must be installed), inside `tf.data` or eagerly;
outside `tf.data` the results are converted to the backend's tensors.

`MobileBertPacker` packs tokenized segments as the bundle's preprocessor does
(`preprocessors.packing.bert_pack_inputs`: [CLS] a [SEP] b [SEP], round-robin truncation,
the original `_truncate_seq_pair`'s allocation).
"""

import os

import keras
import keras_hub
import tensorflow as tf
from keras_hub.src.layers.preprocessing.preprocessing_layer import PreprocessingLayer
from keras_hub.src.utils.tensor_utils import preprocessing_function

from hub_export.keras_hub_preset.backbone import PACKAGE, MobileBertBackbone
from preprocessors import packing
from preprocessors import vocab as vocab_lib
from preprocessors.tokenizer import ParityBertTokenizer

VOCAB_FILENAME = "vocabulary.txt"  # keras-hub's asset name (word_piece_tokenizer.py)
_SPECIAL = (("[CLS]", "cls_token"), ("[SEP]", "sep_token"), ("[PAD]", "pad_token"),
            ("[MASK]", "mask_token"), ("[UNK]", "unk_token"))


@keras.saving.register_keras_serializable(package=PACKAGE)
class MobileBertTokenizer(keras_hub.tokenizers.Tokenizer):
  """Text -> WordPiece ids exactly as the original BERT `FullTokenizer`.

  Call it on a string scalar (-> int32 [num_tokens]) or a string [batch_size] (-> int32
  ragged [batch_size, (num_tokens)]); no [CLS]/[SEP], no padding (the preprocessors add
  them).

  Args:
    vocabulary: a vocab.txt path (one token per line, id = line number) or a list of
      tokens; None until `load_preset_assets` sets it.
    do_lower_case: `FullTokenizer(do_lower_case=...)`: lower-case and strip accents
      (uncased vocabularies) or keep the text as is (cased ones).

  Raises:
    ValueError: the vocabulary lacks [CLS], [SEP], [PAD], [MASK] or [UNK].
  """

  backbone_cls = MobileBertBackbone

  def __init__(self, vocabulary=None, do_lower_case=True, **kwargs):
    super().__init__(**kwargs)
    self.do_lower_case = bool(do_lower_case)
    self.file_assets = [VOCAB_FILENAME]
    self._tokenizer = None
    self.vocabulary = None
    for token, name in _SPECIAL:
      self._add_special_token(token, name)
    self.set_vocabulary(vocabulary)

  def set_vocabulary(self, vocabulary):
    """Sets the vocabulary (a vocab.txt path or a list of tokens) and builds the graph."""
    if vocabulary is None:
      self.vocabulary, self._tokenizer = None, None
      return
    if isinstance(vocabulary, str):
      tokens = list(vocab_lib.load_vocab(vocabulary).tokens)
    else:
      tokens = [str(t) for t in vocabulary]
    missing = [t for t, _ in _SPECIAL if t not in tokens]
    if missing:
      raise ValueError(f"the vocabulary lacks {missing}; MobileBertTokenizer needs a BERT "
                       "WordPiece vocab.txt with [CLS], [SEP], [PAD], [MASK] and [UNK]")
    self.vocabulary = tokens
    self._token_to_id = {t: i for i, t in enumerate(tokens)}
    self._tokenizer = ParityBertTokenizer(tokens, do_lower_case=self.do_lower_case,
                                          unk_id=self._token_to_id["[UNK]"])
    self._update_special_token_ids()
    self.start_token_id = self.cls_token_id
    self.end_token_id = self.sep_token_id

  def _check_vocabulary(self):
    if self.vocabulary is None:
      raise ValueError("MobileBertTokenizer has no vocabulary; pass `vocabulary=` or load "
                       "it with `MobileBertTokenizer.from_preset(path)`")

  def save_assets(self, dir_path):
    self._check_vocabulary()
    with open(os.path.join(dir_path, VOCAB_FILENAME), "w", encoding="utf-8") as f:
      f.write("".join(t + "\n" for t in self.vocabulary))

  def load_assets(self, dir_path):
    self.set_vocabulary(os.path.join(dir_path, VOCAB_FILENAME))

  def get_vocabulary(self):
    self._check_vocabulary()
    return list(self.vocabulary)

  def vocabulary_size(self):
    self._check_vocabulary()
    return len(self.vocabulary)

  def id_to_token(self, id):  # pylint: disable=redefined-builtin
    self._check_vocabulary()
    if not 0 <= id < len(self.vocabulary):
      raise ValueError(f"id={id} is outside [0, {len(self.vocabulary) - 1}]")
    return self.vocabulary[id]

  def token_to_id(self, token):
    self._check_vocabulary()
    if token not in self._token_to_id:
      raise ValueError(f"token {token!r} is not in the vocabulary")
    return self._token_to_id[token]

  @preprocessing_function
  def tokenize(self, inputs):
    self._check_vocabulary()
    inputs = tf.convert_to_tensor(inputs)
    if inputs.dtype != tf.string:
      raise TypeError(f"MobileBertTokenizer takes strings; got dtype {inputs.dtype.name}")
    scalar = inputs.shape.rank == 0
    batch = tf.reshape(inputs, [-1]) if scalar else inputs
    if batch.shape.rank != 1:
      raise ValueError(f"MobileBertTokenizer takes a string scalar or [batch_size]; got "
                       f"rank {inputs.shape.rank}")
    ids = self._tokenizer.tokenize(batch).merge_dims(1, 2)
    return ids[0] if scalar else ids

  @preprocessing_function
  def detokenize(self, inputs):
    """int ids [..., num_tokens] (dense or ragged) -> string [...]: WordPiece joined."""
    self._check_vocabulary()
    tokens = tf.gather(tf.constant(self.vocabulary), inputs)
    text = tf.strings.reduce_join(tokens, axis=-1, separator=" ")
    return tf.strings.regex_replace(text, " ##", "")

  def get_config(self):
    config = super().get_config()
    config.update({"vocabulary": None,  # an asset: assets/tokenizer/vocabulary.txt
                   "do_lower_case": self.do_lower_case})
    return config


class MobileBertPacker(PreprocessingLayer):
  """Segments int32 ragged [B, (tokens)] (1 or 2) -> (token_ids, segment_ids) int32 [B, S].

  A segment of rank 1 (one unbatched text) gives [S] outputs. `sequence_length` is
  mutable, as keras-hub's `MultiSegmentPacker`'s.

  Raises:
    ValueError: `sequence_length` too short for the segments' special tokens (call).
  """

  def __init__(self, tokenizer: MobileBertTokenizer, sequence_length: int, **kwargs):
    super().__init__(**kwargs)
    self.tokenizer = tokenizer
    self.sequence_length = sequence_length

  @preprocessing_function
  def call(self, inputs):
    segments = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    packing.check_seq_length(self.sequence_length, len(segments))
    unbatched = not isinstance(segments[0], tf.RaggedTensor) and segments[0].shape.rank == 1
    if unbatched:
      segments = tuple(tf.RaggedTensor.from_tensor(s[None, :]) for s in segments)
    packed = packing.bert_pack_inputs(
        list(segments), self.sequence_length,
        start_of_sequence_id=self.tokenizer.cls_token_id,
        end_of_segment_id=self.tokenizer.sep_token_id,
        padding_id=self.tokenizer.pad_token_id)
    token_ids, segment_ids = packed["input_word_ids"], packed["input_type_ids"]
    if unbatched:
      return token_ids[0], segment_ids[0]
    return token_ids, segment_ids
