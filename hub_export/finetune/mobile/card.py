"""The model-card section of the on-device files: `ON_DEVICE_CARD`, from the manifest.

`templates/on_device.md.j2` (Jinja2, `hub_export.model_card.environment`) is filled
from `export.write_verified`'s manifest: the files' sizes and figures, the signatures,
and which signature to call. That depends on the attention masking
(`checkpoints.attention_mask`). Its Python block runs as it stands once `CLASSIFIER`
points at the export (tests/hub_export/finetune/test_tflite.py runs it).
"""

import os

from hub_export import model_card
from hub_export.finetune import data
from hub_export.finetune.mobile import convert
from hub_export.finetune.mobile import runner

ON_DEVICE_CARD = "on_device.md"
CLASSIFIER_PLACEHOLDER = "path/to/classifier"
TEMPLATE = "templates/on_device.md.j2"
_ROOT = os.path.dirname(os.path.abspath(__file__))


def render(manifest: dict, *, do_lower_case: bool) -> str:
  """The section's Markdown for a `write_verified` manifest.

  Raises:
    KeyError: the manifest lacks a field the section shows.
  """
  float_fit = manifest["files"][convert.FLOAT_FILE]["fit_vs_trained"]
  files = [{"name": name, "mb": f"{entry['bytes'] / 1e6:.1f}",
            "max": f"{entry['figures']['max_abs_probability']:.1e}",
            "agreement": f"{entry['figures']['label_agreement']:.3f}"}
           for name, entry in manifest["files"].items()]
  context = {
      "float_file": convert.FLOAT_FILE, "int8_file": convert.INT8_FILE,
      "do_lower_case": do_lower_case, "files": files,
      "pairs": manifest["files"][convert.FLOAT_FILE]["figures"]["pairs"],
      "seq_length": manifest["seq_length"], "seq_lengths": manifest["seq_lengths"],
      "labels": ", ".join(data.LABELS), "label_list": list(data.LABELS),
      "fit": manifest["default_seq_length"] == runner.FIT,
      "fit_agreement": f"{100 * float_fit['label_agreement']:.1f}%",
      "fit_max": f"{float_fit['max_abs_probability']:.1e}"}
  return model_card.environment(_ROOT).get_template(TEMPLATE).render(context)
