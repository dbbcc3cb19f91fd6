"""`KerasHubOptions`: the bundle's keras-hub preset as a `hub_export.tasks.BundleTask`.

`export_main.py --keras_hub` builds one and passes it to the pipeline; the CLI imports
this module only with that flag (importing the package imports Keras and keras-hub, to
register its classes). `export` imports the converter and the export code when it runs.
"""

import dataclasses
import importlib.util
import os
from typing import Callable, ClassVar, Optional

from hub_export.keras_hub_preset import card

# What keras-hub's preset format and these classes were built and tested against.
KERAS_HUB_REQUIREMENT = "keras-hub==0.32.*"


@dataclasses.dataclass(frozen=True)
class KerasHubOptions:
  """What the bundle's `keras_hub/` preset needs beyond the bundle itself.

  Attributes:
    sequence_length: the preset preprocessors' packed length (the bundle's
      `--seq_length`), in [3, 512].
    name: the bundle directory and manifest.json key, "keras_hub".
  """
  sequence_length: int = 128
  name: ClassVar[str] = "keras_hub"

  def check(self, config) -> None:
    """Checks that keras-hub is installed and the length fits, before any export work.

    Raises:
      ValueError: keras-hub is not importable, or `sequence_length` is outside [3,
        config.max_position_embeddings].
    """
    if importlib.util.find_spec("keras_hub") is None:
      raise ValueError(f"--keras_hub needs keras-hub; install it with `pip install "
                       f"'{KERAS_HUB_REQUIREMENT}'` (requirements.txt has it)")
    if not 3 <= self.sequence_length <= config.max_position_embeddings:
      raise ValueError(f"keras_hub sequence_length={self.sequence_length} must be in [3, "
                       f"{config.max_position_embeddings}] (max_position_embeddings)")

  def export(self, work: str, *, config, vocab_file: str, do_lower_case: bool,
             attention_mask: str, log: Callable[[str], None] = print) -> dict:
    """Writes and verifies `work/keras_hub/` from the bundle's own `work/checkpoint/`.

    Args:
      work: the bundle's staging directory (with the verified `encoder/` and
        `preprocessor/`).
      config: the `MobileBertConfig`.
      vocab_file, do_lower_case: the bundle's tokenizer.
      attention_mask: the bundle's masking of padded keys; the backbone computes it.
      log: one line per step.

    Returns:
      The manifest.json entry (`export.export_preset`'s).

    Raises:
      export.KerasHubExportError: the preset differs from the bundle's SavedModels.
    """
    # pylint: disable=g-import-not-at-top
    from checkpoints import converter
    from hub_export.keras_hub_preset import export as export_lib
    # pylint: enable=g-import-not-at-top
    prefix = os.path.join(work, "checkpoint", converter.TF2_PREFIX_NAME)
    model, _ = converter.load_model(prefix, config,
                                    with_mlm=export_lib.has_mlm_head(prefix),
                                    attention_mask=attention_mask)
    return export_lib.export_preset(
        os.path.join(work, self.name), work=work, model=model, vocab_file=vocab_file,
        do_lower_case=do_lower_case, sequence_length=self.sequence_length, log=log)

  def card_section(self, summary: Optional[dict]) -> str:
    """The model card's `keras_hub/` section from `export`'s summary."""
    return card.section(summary)
