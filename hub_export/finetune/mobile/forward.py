"""The NLI classifier written out op by op for the mobile converters (`NliForward`).

The encoder is `hub_export.squad.forward.QaForward.encode` (the same op-by-op MobileBERT,
with its GPU rewrites, quantized masking and NoNorm equalization); the head is BERT's
classifier (google-research/bert `run_classifier.py` `create_model`) on Model Garden's
`pooled_output`: the first token's `sequence_output`, through the tanh pooler when the
config has `classifier_activation` (`MobileBERTEncoder`), then the dense layer and a
softmax.
"""


import tensorflow as tf

from hub_export.finetune.mobile import weights as weights_lib
from hub_export.squad import forward as squad_forward

OUTPUT_NAMES = ("probabilities", "label_id")


class NliForward(squad_forward.QaForward):
  """Call: `(input_ids, input_mask, segment_ids)`, int32 [1, S] each ->
  `{"probabilities": float32 [1, 3], "label_id": int32 [1]}` (columns and ids in the
  order of `hub_export.finetune.data.LABELS`). Options and `equalization` as
  `QaForward`'s."""

  def __init__(self, weights: weights_lib.NliWeights, *, seq_length: int,
               options=None, equalization=None):
    super().__init__(weights.encoder, seq_length=seq_length, options=options,
                     equalization=equalization)
    self._head = (weights.kernel, weights.bias)

  def __call__(self, input_ids, input_mask, segment_ids):
    x, x_dom = self.encode(input_ids, input_mask, segment_ids)
    first = x[0:1]  # [1, H], the first token ([CLS]), carried in x_dom
    kernel, bias = self._head
    if self._c.classifier_activation:
      k, b = squad_forward.fold_dense(self._w["pooler/kernel"], self._w["pooler/bias"],
                                      x_dom, None)
      pooled = tf.tanh(tf.matmul(first, tf.constant(k)) + tf.constant(b))
      k, b = kernel, bias
    else:
      pooled = first
      k, b = squad_forward.fold_dense(kernel, bias, x_dom, None)
    logits = tf.matmul(pooled, tf.constant(k)) + tf.constant(b)  # [1, 3]
    probabilities = tf.nn.softmax(logits, axis=-1)
    return {"probabilities": probabilities,
            "label_id": tf.argmax(probabilities, axis=-1, output_type=tf.int32)}
