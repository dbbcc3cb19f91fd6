"""The model card's `squad/` section, from the summary that `SquadOptions.export` returns.

Plain Markdown without code blocks (the model card's fenced blocks are executed by its
tests). Every figure comes from the summary: file sizes, the verification figure of each
file, the head's origin, the sequence length, the masking of padded attention keys and
the `verify.TOLERANCES` rows applied.
"""

from typing import Optional

from hub_export.squad import constants


def tflite_export_pick() -> str:
  """`tflite_export.PICK`, imported late (tflite_export imports TensorFlow)."""
  from hub_export.squad import tflite_export  # pylint: disable=g-import-not-at-top
  return tflite_export.PICK

TITLE = "## SQuAD 1.1 mobile package (`squad/`)"

# One sentence per masking mode of padded attention keys (`checkpoints.model.
# ATTENTION_MASKS`; the values are `forward.additive_mask_value`'s).
MASKING = {
    "original": ("Padded attention keys are masked as in google-research MobileBERT's "
                 "`modeling.py` (attention mask `original`, in every file, int8 too): "
                 "their scores become -6 and the softmax runs over all keys, so the "
                 "logits at real positions depend on the amount of padding."),
    "model_garden": ("Padded attention keys get zero weight, as in Model Garden's "
                     "`MobileBERTEncoder` (attention mask `model_garden`; the int8 files "
                     f"add {constants.QUANT_MASK_VALUE:g} to their scores)."),
}


def _figure_text(figures: Optional[dict]) -> str:
  """int8 files: logit SQNR (dB) per output; float files: largest relative difference."""
  per_output = {k: v for k, v in sorted((figures or {}).items()) if isinstance(v, dict)}
  if any("sqnr_db" in v for v in per_output.values()):
    return ", ".join(f"{k} SQNR {v['sqnr_db']:.1f} dB" for k, v in per_output.items()
                     if "sqnr_db" in v)
  return ", ".join(f"{k} max rel. diff {v['max_rel']:.1e}" for k, v in per_output.items()
                   if "max_rel" in v)


def section(summary: Optional[dict]) -> str:
  """The section's Markdown ("" if `summary` is None or empty).

  Args:
    summary: `files` (name -> bytes), `figures` (name -> per-output figures),
      `squad_head`, `tolerances` ({"squad_float": {"max_rel"}, "squad_int8":
      {"min_sqnr_db", "target_sqnr_db"}}), optionally `seq_length` (default 384),
      `details` (default "squad/squad_manifest.json") and `attention_mask` (a key of
      `MASKING`; without it the section says nothing about the masking).

  Returns:
    The section, starting with an empty line and the `##` title, ending with a newline.

  Raises:
    ValueError: `attention_mask` is not a key of `MASKING`.
  """
  if not summary:
    return ""
  mode = summary.get("attention_mask")
  if mode is not None and mode not in MASKING:
    raise ValueError(f"summary attention_mask={mode!r} is not a masking mode; expected one "
                     f"of {list(MASKING)}")
  seq_length = summary.get("seq_length", constants.MAX_SEQ_LENGTH)
  details = summary.get("details", f"squad/{constants.MANIFEST}")
  float_bound = summary["tolerances"]["squad_float"]
  int8_bound = summary["tolerances"]["squad_int8"]
  intro = ("Extractive question answering as MLPerf Mobile ships MobileBERT: inputs "
           f"`input_ids`, `input_mask`, `segment_ids` int32 [1, {seq_length}], outputs "
           "`end_logits`, `start_logits` float32 (`squad/saved_model` also has an `answer` "
           "signature: question and context strings -> answer text and byte span).")
  rows = [f"| `squad/{name}` | {nbytes / 1e6:.1f} | "
          f"{_figure_text(summary['figures'].get(name))} |"
          for name, nbytes in summary["files"].items()]
  notes = (
      f"Bounds: float variants {float_bound['max_rel']:g} of max |logit|, int8 variants "
      f">= {int8_bound['min_sqnr_db']:g} dB (target {int8_bound['target_sqnr_db']:g} dB). "
      "int8: per-channel weights, NoNorm outputs shifted and scaled per channel (folded "
      "into the weights); the MLPerf int8 file keeps its SOFTMAX ops in float, the NNAPI "
      "file is full-integer, the dynamic-range file quantizes activations at run time; "
      "every int8 file passes TFLite's 8-bit quantization spec check. Details in "
      f"`{details}`. The .tflite files carry "
      "TFLite metadata for the TFLite Task Library's BertQuestionAnswerer (tensors `ids`, "
      "`mask`, `segment_ids` -> `end_logits`, `start_logits`, vocab.txt packed); that API "
      "always feeds 384 tokens and lower-cases its input. EM/F1 of every variant: "
      "`python -m hub_export.squad.evaluate --squad_dir=squad --squad_file=SQUAD.json` "
      "(exporter repository); size and latency: `benchmarks/squad_mobile_benchmark.py`.")
  lines = ["", TITLE, intro, f"SQuAD head: {summary['squad_head']}.",
           *([MASKING[mode]] if mode else []), "",
           "| file | MB | verified against the float model |", "|---|---|---|",
           *rows, "", tflite_export_pick(), "", notes, ""]
  return "\n".join(lines)
