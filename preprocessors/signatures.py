"""The serving functions that map text to the encoder's inputs, built in one place.

Every artifact of the bundle that takes raw text gets its signature functions
from `serving_functions`, so their names, inputs and specs cannot drift apart
(B = batch size, S = seq_length):

  * `serving_default`: input `sentences` string [B];
  * `bert_pack_pair` (`PAIR_SIGNATURE_NAME`): inputs `text_a`, `text_b`
    string [B], packed `[CLS] a [SEP] b [SEP]` (type ids 0 for text_a with
    [CLS] and its [SEP], 1 for text_b and its [SEP]).

Users:
  * the preprocessor SavedModel (`export.py`) and its TFLite conversion
    (`tflite.py`): `encode` is `packer(tokenize, ...)`, the outputs are
    `input_word_ids`, `input_mask`, `input_type_ids` int32 [B, S]
    (`OUTPUT_KEYS`);
  * the text-serving SavedModel (`hub_export/serving.py`): `encode` chains
    `saved_preprocessor(loaded)` (the bundle's preprocessor/ signatures) with
    the encoder and returns `pooled_output`.
"""

from typing import Callable, Sequence

import tensorflow as tf

from preprocessors import packing

SINGLE_SIGNATURE_NAME = "serving_default"
PAIR_SIGNATURE_NAME = "bert_pack_pair"
# The inputs of each signature, in the order of the texts `encode` receives.
INPUT_NAMES = {SINGLE_SIGNATURE_NAME: ("sentences",),
               PAIR_SIGNATURE_NAME: ("text_a", "text_b")}
OUTPUT_KEYS = ("input_word_ids", "input_mask", "input_type_ids")

# encode(texts): a list of 1 or 2 string [B] tensors -> dict of named tensors.
Encode = Callable[[Sequence[tf.Tensor]], dict]


def text_spec(name: str, shape=(None,)) -> tf.TensorSpec:
  """A string TensorSpec named `name`: [B] by default, `shape=None` for any rank."""
  return tf.TensorSpec(shape, tf.string, name=name)


def packer(tokenize, special_ids: dict, seq_length: int) -> Encode:
  """`encode` that tokenizes each text and packs the segments.

  Args:
    tokenize: maps string [B] to int32 RaggedTensor [B, (words),
      (wordpieces)] (`tokenizer.ParityBertTokenizer.tokenize`, possibly
      sharded over the batch).
    special_ids: `vocab.Vocab.special_ids`.
    seq_length: S, an int in [3, 512] (checked by the caller).

  Returns:
    encode(texts) -> `packing.bert_pack_inputs([tokenize(t) for t in texts],
    seq_length)`: dict of `OUTPUT_KEYS`, each int32 [B, S].
  """
  ids = packing.special_token_ids(special_ids)

  def encode(texts):
    return packing.bert_pack_inputs([tokenize(t) for t in texts], seq_length,
                                    **ids)

  return encode


def serving_functions(encode: Encode):
  """The two signature functions, both calling `encode`.

  Args:
    encode: maps a list of string [B] tensors, one per signature input in
      `INPUT_NAMES` order, to the dict of named outputs.

  Returns:
    (serving_default, bert_pack_pair): `tf.function`s with the input
    signatures `sentences` and `text_a`, `text_b`, each string [B]. Their
    Python names are the signature names, which the TFLite converter takes
    as signature keys.
  """

  @tf.function(input_signature=[text_spec(n) for n in
                                INPUT_NAMES[SINGLE_SIGNATURE_NAME]],
               autograph=False)
  def serving_default(sentences):
    return encode([sentences])

  @tf.function(input_signature=[text_spec(n) for n in
                                INPUT_NAMES[PAIR_SIGNATURE_NAME]],
               autograph=False)
  def bert_pack_pair(text_a, text_b):
    return encode([text_a, text_b])

  return serving_default, bert_pack_pair


def signature_for(texts: Sequence) -> str:
  """`serving_default` for one text input, `bert_pack_pair` for two.

  Raises:
    ValueError: len(texts) is not 1 or 2.
  """
  for name, inputs in INPUT_NAMES.items():
    if len(texts) == len(inputs):
      return name
  raise ValueError(f"got {len(texts)} text inputs; the preprocessor's "
                   "signatures take 1 (sentences) or 2 (text_a, text_b).")


def signature_inputs(texts: Sequence) -> dict:
  """{input name: text} for the signature `signature_for(texts)`."""
  return dict(zip(INPUT_NAMES[signature_for(texts)], texts))


def saved_preprocessor(loaded) -> Encode:
  """`encode` that calls a loaded preprocessor SavedModel's own signatures.

  Args:
    loaded: `tf.saved_model.load` of a preprocessor/ directory, with both
      signatures (check `INPUT_NAMES` against `loaded.signatures` first).

  Returns:
    encode(texts) -> `loaded.signatures[signature_for(texts)](...)`: dict
    of `OUTPUT_KEYS`, each int32 [B, S] (the preprocessor's seq_length).
  """

  def encode(texts):
    return loaded.signatures[signature_for(texts)](**signature_inputs(texts))

  return encode
