"""The squad/ gates: every variant against the float model, with one error type.

The bounds are the `squad_float` and `squad_int8` rows of `hub_export.verify.TOLERANCES`
(read when a check runs); the comparisons are `verify.check_float_outputs` and
`verify.check_quantized_outputs`. The reference is `model.reference_outputs`.
"""

from hub_export import errors
from hub_export import verify

FLOAT_BOUND = "squad_float"
INT8_BOUND = "squad_int8"


class SquadExportError(errors.ExportError):
  """An artifact failed its check; the message names it, the figure and the bound."""


def tolerances() -> dict:
  """The `verify.TOLERANCES` rows the squad/ checks apply (copies, for the manifest)."""
  return {row: dict(verify.TOLERANCES[row]) for row in (FLOAT_BOUND, INT8_BOUND)}


def _gate(check, name, got, ref, bound):
  try:
    return check(f"squad/{name}", got, ref, bound=bound)
  except ValueError as e:
    raise SquadExportError(str(e)) from e


def check_float(name: str, got: dict, ref: dict) -> dict:
  """A float variant: max |got - ref| / max |ref| per output within `squad_float`.

  Args:
    name: the file (or directory) inside squad/, named in the error.
    got, ref: `end_logits`, `start_logits`, float32 [N, S].

  Returns:
    {output: {"max_abs", "max_rel"}}.

  Raises:
    SquadExportError: an output over the bound.
  """
  return _gate(verify.check_float_outputs, name, got, ref, FLOAT_BOUND)


def check_int8(name: str, got: dict, ref: dict) -> dict:
  """An int8 variant: logit SQNR per output against `squad_int8`.

  Args:
    name: the file inside squad/, named in the error.
    got, ref: `end_logits`, `start_logits`, float32 [N, S].

  Returns:
    {output: {"sqnr_db", "argmax_agreement", "meets_target"}}; `meets_target` says
    whether the figure reaches `target_sqnr_db`.

  Raises:
    SquadExportError: an output under `min_sqnr_db`.
  """
  return _gate(verify.check_quantized_outputs, name, got, ref, INT8_BOUND)
