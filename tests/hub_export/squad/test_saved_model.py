"""squad/saved_model of the tiny export: the `answer` signature against the Python pipeline."""

import pytest
import os

import tensorflow as tf
import tensorflow_text  # noqa: F401  # pylint: disable=unused-import

from hub_export.squad import features as features_lib

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow


def test_answer_signature_returns_context_substring_like_python_pipeline(tiny_squad,
                                                                        fresh_windows):
  loaded = tf.saved_model.load(os.path.join(tiny_squad["dir"], "saved_model"))
  answer = loaded.signatures["answer"]
  ref = fresh_windows["ref"]
  want = features_lib.best_answers(fresh_windows["examples"], fresh_windows["features"],
                                   ref["start_logits"], ref["end_logits"])
  for ex in fresh_windows["examples"]:
    out = answer(question=tf.constant(ex.question), context=tf.constant(ex.context))
    text = out["answer"].numpy().decode("utf-8")
    start, limit = int(out["start_byte"]), int(out["limit_byte"])
    assert text and text in ex.context
    assert ex.context.encode("utf-8")[start:limit].decode("utf-8") == text
    assert text == want[ex.qid], ex.qid
