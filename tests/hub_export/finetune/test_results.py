"""finetune.results: per-language evaluation files of the trained run; scores vs sklearn."""

import json
import os

import numpy as np
import pytest
from sklearn import metrics

from hub_export.finetune import data
from hub_export.finetune import results
from tests.hub_export.finetune.conftest import XNLI_DIR
from tests.hub_export.finetune.conftest import count_lines

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow


def test_evaluates_all_15_languages_with_their_example_counts(trained):
  model_dir = trained["cfg"].model_dir
  with open(os.path.join(model_dir, "eval", "results.json")) as f:
    table = json.load(f)
  assert [r["language"] for r in table["languages"]] == list(data.XNLI_LANGUAGES)
  for row in table["languages"]:
    assert row["examples"] == count_lines(os.path.join(XNLI_DIR, f"dev-{row['language']}.tsv"))
    assert 0 <= row["accuracy"] <= 1 and 0 <= row["macro_f1"] <= 1
  assert table["average"]["examples"] == 15 * 2490
  assert table["average"]["accuracy"] == pytest.approx(
      np.mean([r["accuracy"] for r in table["languages"]]))
  assert table["step"] == 200 and table["bundle_trained"] is True
  assert table["attention_mask"] == "original"
  with open(os.path.join(model_dir, "eval", "results.md")) as f:
    markdown = f.read()
  for lang in data.XNLI_LANGUAGES:
    assert f"| {lang} | 2490 |" in markdown
  assert "| **average** | 37350 |" in markdown
  with open(os.path.join(model_dir, "eval", "accuracy.png"), "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  assert os.listdir(os.path.join(model_dir, "eval"))  # Events beside the tables.


def test_scores_match_scikit_learn():
  rng = np.random.default_rng(0)
  cases = [(rng.integers(0, 3, 500), rng.integers(0, 3, 500)),
           (np.array([0, 1, 2, 0]), np.array([0, 0, 0, 0])),  # Two classes never predicted.
           (np.array([1, 1, 1]), np.array([1, 1, 1]))]        # Classes 0 and 2 absent.
  for labels, predictions in cases:
    got = results.classification_scores(labels, predictions)
    assert got["examples"] == len(labels)
    assert got["accuracy"] == pytest.approx(metrics.accuracy_score(labels, predictions))
    assert got["macro_f1"] == pytest.approx(metrics.f1_score(
        labels, predictions, average="macro", labels=[0, 1, 2], zero_division=0))
