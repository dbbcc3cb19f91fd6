"""The interface through which a downstream task adds a directory to a bundle.

The export core (`pipeline`, `manifest`, `model_card`) knows tasks only through this
protocol; it never imports a task package. A task package (e.g. `hub_export.squad`)
provides a light options object implementing it, cheap to import (its heavy modules are
imported inside `export`), which the CLI builds from its flags:

    options = squad.options.SquadOptions(squad_file=...)   # a BundleTask
    pipeline.BundleOptions(tasks=(options,))

The pipeline then calls, in order: `check` before any export work, `export` inside the
bundle's staging directory after `checkpoint/`, `encoder/` and `preprocessor/` were
written and verified, and `card_section` when it writes the model card.
"""

from typing import Callable, Protocol, runtime_checkable


@runtime_checkable
class BundleTask(Protocol):
  """A downstream task's part of a bundle (one directory, one manifest entry).

  Attributes:
    name: the task's directory in the bundle and its key in manifest.json (e.g.
      "squad"); a Python identifier, unique among the bundle's tasks.
  """

  name: str

  def check(self, config) -> None:
    """Raises ValueError naming the bad option, given the `MobileBertConfig`."""

  def export(self, work: str, *, config, vocab_file: str, do_lower_case: bool,
             attention_mask: str, log: Callable[[str], None]) -> dict:
    """Writes and verifies `work/<name>/`; returns the JSON-ready manifest entry.

    `work` is the bundle's staging directory; `work/checkpoint/` holds the TF2
    checkpoint the bundle ships; `attention_mask` is the bundle's masking of padded
    keys (`checkpoints.model.ATTENTION_MASKS`), which the task's float models compute.
    Raises ValueError (or a subclass) on a failed check.
    """

  def card_section(self, summary: dict) -> str:
    """The model card's Markdown section for this task, from `export`'s summary."""
