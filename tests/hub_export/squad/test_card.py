"""The model card's squad/ section (`card.section`) from the tiny export's summary."""

import pytest

from checkpoints import model as model_lib
from hub_export.squad import card
from hub_export.squad import constants
from tests.hub_export.squad.conftest import SEQ_LENGTH

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow


def test_model_card_section_lists_every_file_with_its_figure(tiny_squad):
  m = tiny_squad["manifest"]
  summary = {"files": m["files"], "squad_head": m["squad_head"],
             "figures": {n: c.get("figures") for n, c in m["checks"].items()},
             "tolerances": m["tolerances"], "seq_length": m["seq_length"],
             "attention_mask": m["attention_mask"]}
  text = card.section(summary)
  assert card.section(None) == ""
  assert "```" not in text  # the model card's code blocks are executed by its tests
  for name in m["files"]:
    row = next(l for l in text.splitlines() if l.startswith(f"| `squad/{name}` |"))
    fig = m["checks"][name]["figures"]
    if "int8" in name:
      want = f"start_logits SQNR {fig['start_logits']['sqnr_db']:.1f} dB"
    else:
      want = f"start_logits max rel. diff {fig['start_logits']['max_rel']:.1e}"
    assert want in row, row
  assert f"[1, {SEQ_LENGTH}]" in text and "from the checkpoint" in text
  assert card.MASKING["original"] in text


def test_bounds_come_from_the_summary():
  summary = {"files": {"a.tflite": 2e6}, "squad_head": "from the checkpoint",
             "figures": {"a.tflite": {"start_logits": {"max_rel": 1e-6, "max_abs": 0.1}}},
             "tolerances": {"squad_float": {"max_rel": 0.25},
                            "squad_int8": {"min_sqnr_db": 7.0, "target_sqnr_db": 9.0}}}
  text = card.section(summary)
  assert "float variants 0.25 of max |logit|, int8 variants >= 7 dB (target 9 dB)" in text
  assert "| `squad/a.tflite` | 2.0 | start_logits max rel. diff 1.0e-06 |" in text
  assert "[1, 384]" in text and "`squad/squad_manifest.json`" in text


def test_masking_mode_is_said_in_one_sentence():
  summary = {"files": {}, "squad_head": "from the checkpoint", "figures": {},
             "tolerances": {"squad_float": {"max_rel": 0.25},
                            "squad_int8": {"min_sqnr_db": 7.0, "target_sqnr_db": 9.0}}}
  assert "attention mask `" not in card.section(summary)  # a summary without a mode
  original = card.section(dict(summary, attention_mask="original"))
  assert card.MASKING["original"] in original
  assert f"their scores become {model_lib.ORIGINAL_MASKED_SCORE:g}" in original
  garden = card.section(dict(summary, attention_mask="model_garden"))
  assert card.MASKING["model_garden"] in garden and card.MASKING["original"] not in garden
  assert f"add {constants.QUANT_MASK_VALUE:g} to their scores" in garden
  assert set(card.MASKING) == set(model_lib.ATTENTION_MASKS)
  assert all(t.count(". ") == 0 and t.endswith(".") for t in card.MASKING.values())
  with pytest.raises(ValueError, match="attention_mask='keras' is not a masking mode"):
    card.section(dict(summary, attention_mask="keras"))
