"""SQuAD v1.1 accuracy (EM/F1) and fidelity of a variant against the float model.

EM/F1 follow the definitions of the official SQuAD v1.1 evaluation script
(`evaluate-v1.1.py`, Rajpurkar et al. 2016; copied in tf-models-official as
`official/nlp/tools/squad_evaluate_v1_1.py`): answers are normalized by lower-casing,
removing ASCII punctuation (`string.punctuation`), the articles a/an/the and extra
whitespace; EM is exact equality after normalization, F1 the bag-of-tokens F1; both
take the max over the ground truths and the mean over ALL questions of the dataset (an
unanswered question scores 0); reported in percent like the official script's JSON.
`tests/hub_export/squad/test_metrics.py` holds this to the official copy.

Fidelity (variant vs. the float SavedModel, on the same windows):
* logit SQNR in dB: 10 log10(sum(ref^2) / sum((got - ref)^2)), per output
  (`hub_export.verify.sqnr_db`);
* start/end argmax agreement: fraction of windows whose argmax position is the same;
* answer agreement F1: the official F1 of the variant's answer text taking the float
  model's answer as the only ground truth, mean over questions (and the EM alike).
"""

import collections
import re
import string
from typing import Dict, Iterable, List

import numpy as np

from hub_export import verify

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(s: str) -> str:
  """Lower case, drop punctuation, drop articles, collapse whitespace (official v1.1)."""
  s = "".join(ch for ch in s.lower() if ch not in _PUNCT)
  return " ".join(_ARTICLES.sub(" ", s).split())


def f1_score(prediction: str, ground_truth: str) -> float:
  """Bag-of-normalized-tokens F1 in [0, 1]; 0 if nothing in common."""
  pred = normalize_answer(prediction).split()
  truth = normalize_answer(ground_truth).split()
  same = sum((collections.Counter(pred) & collections.Counter(truth)).values())
  if same == 0:
    return 0.0
  precision, recall = same / len(pred), same / len(truth)
  return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, ground_truth: str) -> float:
  """1.0 if the normalized strings are equal, else 0.0."""
  return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def evaluate(dataset: List[dict], predictions: Dict[str, str]) -> dict:
  """The official v1.1 `evaluate` over SQuAD `data` (list of articles).

  Args:
    dataset: the `data` list of a SQuAD v1.1 JSON.
    predictions: question id -> answer text; missing ids score 0.

  Returns:
    dict `exact_match`, `f1` in percent (0..100), `total` questions, `answered`.

  Raises:
    ValueError: the dataset has no questions, or a question has no answers.
  """
  em = f1 = 0.0
  total = answered = 0
  for article in dataset:
    for paragraph in article["paragraphs"]:
      for qa in paragraph["qas"]:
        total += 1
        truths = [a["text"] for a in qa["answers"]]
        if not truths:
          raise ValueError(f"question {qa['id']} has no answers; SQuAD v1.1 needs at "
                           "least one (v2.0 files with unanswerable questions are not "
                           "supported)")
        if qa["id"] not in predictions:
          continue
        answered += 1
        pred = predictions[qa["id"]]
        em += max(exact_match(pred, t) for t in truths)
        f1 += max(f1_score(pred, t) for t in truths)
  if total == 0:
    raise ValueError("the dataset has no questions")
  return {"exact_match": 100.0 * em / total, "f1": 100.0 * f1 / total, "total": total,
          "answered": answered}


def subset(dataset: List[dict], qids: Iterable[str]) -> List[dict]:
  """The articles/paragraphs of `dataset` restricted to questions `qids` (same order)."""
  keep = set(qids)
  out = []
  for article in dataset:
    paragraphs = []
    for p in article["paragraphs"]:
      qas = [qa for qa in p["qas"] if qa["id"] in keep]
      if qas:
        paragraphs.append(dict(p, qas=qas))
    if paragraphs:
      out.append(dict(article, paragraphs=paragraphs))
  return out


def fidelity(got: dict, ref: dict, got_answers: Dict[str, str],
             ref_answers: Dict[str, str]) -> dict:
  """Fidelity of a variant against the float model (see the module docstring).

  Args:
    got, ref: dicts `end_logits`, `start_logits`, float [num_windows, S].
    got_answers, ref_answers: qid -> answer text of the variant / the float model.

  Returns:
    dict: `sqnr_db` {output: dB}, `argmax_agreement` {output: fraction},
    `max_abs_diff` {output: float}, `answer_f1` and `answer_em` (percent, the float
    model's answers as ground truth), `windows`, `questions`.
  """
  out = {"sqnr_db": {}, "argmax_agreement": {}, "max_abs_diff": {}}
  for k in sorted(ref):
    g, r = np.asarray(got[k]), np.asarray(ref[k])
    out["sqnr_db"][k] = verify.sqnr_db(g, r)
    out["argmax_agreement"][k] = float(np.mean(g.argmax(-1) == r.argmax(-1)))
    out["max_abs_diff"][k] = float(np.max(np.abs(g - r)))
  qids = sorted(ref_answers)
  out["answer_f1"] = 100.0 * float(np.mean(
      [f1_score(got_answers.get(q, ""), ref_answers[q]) if ref_answers[q] else
       float(got_answers.get(q, "") == "") for q in qids])) if qids else float("nan")
  out["answer_em"] = 100.0 * float(np.mean(
      [exact_match(got_answers.get(q, ""), ref_answers[q]) for q in qids])) \
      if qids else float("nan")
  out["windows"] = int(np.asarray(ref[sorted(ref)[0]]).shape[0])
  out["questions"] = len(qids)
  return out
