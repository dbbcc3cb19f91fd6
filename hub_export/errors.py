"""The export's error type, shared by the pipeline, the worker and the verifiers."""


class ExportError(ValueError):
  """Bad input or a failed verification; the message names value, expectation and fix."""
