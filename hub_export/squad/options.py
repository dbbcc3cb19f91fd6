"""`SquadOptions`: the SQuAD mobile package as a `hub_export.tasks.BundleTask`.

`export_main.py --task=squad` builds one from its flags and passes it to the pipeline
(`pipeline.BundleOptions(tasks=(SquadOptions(...),))`). Importing this module is cheap:
it imports neither TensorFlow nor the converters (tf2onnx, onnx, LiteRT); `export`
imports them when it runs.
"""

import dataclasses
import os
from typing import Callable, ClassVar, Optional

from hub_export.squad import card
from hub_export.squad import constants


@dataclasses.dataclass(frozen=True)
class SquadOptions:
  """What the bundle's `squad/` directory needs beyond the bundle itself.

  Attributes:
    squad_file: SQuAD v1.1 JSON; its first `calibration_questions` questions calibrate
      the int8 variants, the next 8 verify every variant.
    calibration_questions: MLPerf Mobile calibrates on the first 100 questions.
    seq_length: model length S (MLPerf: 384); in [16, max_position_embeddings].
    with_onnx: also write the two ONNX models.
    name: the bundle directory and manifest.json key, "squad".
  """
  squad_file: Optional[str]
  calibration_questions: int = 100
  seq_length: int = constants.MAX_SEQ_LENGTH
  with_onnx: bool = True
  name: ClassVar[str] = "squad"

  def check(self, config) -> None:
    """Checks the options against the `MobileBertConfig`, before any export work.

    Raises:
      ValueError: no or a missing `squad_file`, `seq_length` outside [16,
        config.max_position_embeddings], or `calibration_questions` < 1.
    """
    if not self.squad_file:
      raise ValueError("--task=squad needs --squad_file=PATH (a SQuAD v1.1 JSON; its first "
                       "questions calibrate the int8 models)")
    if not os.path.isfile(self.squad_file):
      raise ValueError(f"--squad_file={self.squad_file} does not exist")
    longest = config.max_position_embeddings
    if not 16 <= self.seq_length <= longest:
      raise ValueError(f"squad seq_length={self.seq_length} must be in [16, "
                       f"{longest}] (max_position_embeddings)")
    if self.calibration_questions < 1:
      raise ValueError(f"--squad_calibration_questions={self.calibration_questions} must "
                       "be >= 1")

  def export(self, work: str, *, config, vocab_file: str, do_lower_case: bool,
             attention_mask: str, log: Callable[[str], None] = print) -> dict:
    """Writes and verifies `work/squad/` from the bundle's own `work/checkpoint/`.

    Reads the TF2 checkpoint the pipeline just wrote (with its `squad` head if the
    source had `cls/squad/*`) into a model that masks padded attention keys as the
    bundle does, so the squad artifacts derive from exactly what the bundle ships;
    `export.export_squad` does the work.

    Args:
      work: the bundle's staging directory.
      config: the `MobileBertConfig`.
      vocab_file, do_lower_case: the bundle's tokenizer.
      attention_mask: the bundle's masking of padded keys, one of
        `checkpoints.model.ATTENTION_MASKS`; every squad/ file computes it.
      log: one line per step.

    Returns:
      The manifest.json entry: `files` (name -> bytes), `squad_head`, `figures` (file ->
      per-output figures), `tolerances` (the `verify.TOLERANCES` rows applied),
      `details` (path of squad_manifest.json in the bundle), `seq_length`,
      `int8_equalization`, `attention_mask` (the mode), `latency` (indicative
      1-thread latency per file on the exporting machine, with its CPU's 8-bit
      dot-product flags).

    Raises:
      checks.SquadExportError: an artifact failed its check.
      ValueError: a bad SQuAD file or an unknown `attention_mask`.
    """
    # pylint: disable=g-import-not-at-top
    from checkpoints import converter
    from hub_export.squad import export as export_lib
    # pylint: enable=g-import-not-at-top
    prefix = os.path.join(work, "checkpoint", converter.TF2_PREFIX_NAME)
    model, _ = converter.load_model(prefix, config, with_mlm=False,
                                    attention_mask=attention_mask)
    m = export_lib.export_squad(
        os.path.join(work, self.name), model, vocab_file=vocab_file,
        do_lower_case=do_lower_case, squad_file=self.squad_file,
        calibration_questions=self.calibration_questions, seq_length=self.seq_length,
        with_onnx=self.with_onnx, log=log)
    figures = {name: c.get("figures") for name, c in m["checks"].items()}
    return {"files": m["files"], "squad_head": m["squad_head"], "figures": figures,
            "tolerances": m["tolerances"], "details": f"{self.name}/{constants.MANIFEST}",
            "seq_length": m["seq_length"], "int8_equalization": m["int8_equalization"],
            "attention_mask": m["attention_mask"], "latency": m["latency"]}

  def card_section(self, summary: Optional[dict]) -> str:
    """The model card's `squad/` section from `export`'s summary (see `card.section`)."""
    return card.section(summary)
