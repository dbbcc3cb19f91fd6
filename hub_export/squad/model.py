"""The SQuAD 1.1 question-answering model on the converted MobileBERT: the float reference.

`reference_logits` is Model Garden's `MobileBERTEncoder` as converted (the object every
other bundle artifact is verified against) plus the `run_squad.py` span head
(`checkpoints.model.SquadHead`: `logits = sequence_output @ output_weights^T +
output_bias`, row 0 start, row 1 end; google-research `mobilebert/run_squad.py`
`create_model`). Every squad/ variant is verified against `reference_outputs`. The op-by-op
network that the mobile variants are converted from is `forward.QaForward`.

I/O follows MLPerf Mobile (`constants.py`): `input_ids`, `input_mask`, `segment_ids`
int32 [B, S] -> `end_logits`, `start_logits` float32 [B, S].
"""

import warnings
from typing import Callable, Iterable

import numpy as np
import tensorflow as tf

from checkpoints import model as model_lib
from hub_export.squad import constants


def ensure_squad_head(model: model_lib.MobileBertModel, *, seed: int = 0,
                      log=print) -> bool:
  """Gives `model` a SQuAD head if it has none; returns True if one was made.

  The fresh head is seeded like `run_squad.py` initializes it: output_weights
  truncated_normal(stddev=0.02) (drawn as a normal clipped at 2 stddev), output_bias
  zeros. It is UNTRAINED: a loud warning goes to `log` and to `warnings`.
  """
  if model.squad is not None:
    return False
  hidden = model.config.hidden_size
  rng = np.random.default_rng(seed)
  head = model_lib.SquadHead(hidden)
  head.output_weights.assign(
      np.clip(0.02 * rng.standard_normal((2, hidden)), -0.04, 0.04).astype(np.float32))
  model.squad = head
  message = (f"WARNING: the checkpoint has no SQuAD head (cls/squad/*); a FRESH, "
             f"UNTRAINED head (seed {seed}) is used: the squad/ answers are meaningless "
             "until you export a SQuAD-fine-tuned checkpoint (run_squad.py)")
  log("!" * 78 + "\n" + message + "\n" + "!" * 78)
  warnings.warn(message, RuntimeWarning, stacklevel=2)
  return True


def reference_logits(model: model_lib.MobileBertModel, input_ids, input_mask,
                     segment_ids) -> dict:
  """Span logits from Model Garden's encoder and the SQuAD head (the ground truth).

  Args:
    model: converted model with a `squad` head.
    input_ids, input_mask, segment_ids: int32 [B, S], S <= max_position_embeddings.

  Returns:
    dict `end_logits`, `start_logits`: float32 [B, S] tensors.
  """
  out = model.encoder(dict(input_word_ids=input_ids, input_mask=input_mask,
                           input_type_ids=segment_ids), training=False)
  seq = out["sequence_output"]
  logits = tf.einsum("bsh,kh->bsk", seq, model.squad.output_weights) + \
      model.squad.output_bias
  return {"end_logits": logits[:, :, 1], "start_logits": logits[:, :, 0]}



def stack_outputs(run_one: Callable[[dict], dict], batches: Iterable[dict]) -> dict:
  """Runs `run_one` on each MLPerf input dict and stacks its logits, window by window.

  Args:
    run_one: batch (dict of int32 [1, S] `constants.INPUT_NAMES` arrays) -> dict with
      `end_logits` and `start_logits` of 1 x S values (arrays or tensors).
    batches: the windows.

  Returns:
    `end_logits`, `start_logits`: float32 [N, S] numpy arrays, row i from batch i.
  """
  got = {k: [] for k in constants.OUTPUT_NAMES}
  for batch in batches:
    out = run_one(batch)
    for k in constants.OUTPUT_NAMES:
      got[k].append(np.asarray(out[k], np.float32).reshape(-1))
  return {k: np.stack(v) for k, v in got.items()}


def reference_outputs(model: model_lib.MobileBertModel, batches: Iterable[dict]) -> dict:
  """`reference_logits` on each window: float32 [N, S] per output (see `stack_outputs`)."""
  return stack_outputs(
      lambda b: reference_logits(model, *(tf.constant(b[k]) for k in constants.INPUT_NAMES)),
      batches)
