"""The end-to-end text serving SavedModel: raw strings in, `pooled_output` out.

`EXPORT_DIR/serving/` (written with `--with_text_signature`) chains the bundle's own
preprocessor/ and encoder/ in one SavedModel, so TF Serving (or any client of
`loaded.signatures`) needs no client-side tokenization:

  * `serving_default`: `sentences` string [B] -> `pooled_output` float32 [B, H].
  * `text_pair`: `text_a`, `text_b` string [B] -> `pooled_output` float32 [B, H]
    (packed `[CLS] a [SEP] b [SEP]` as the preprocessor's `bert_pack_pair`).
  * `__call__(sentences)`: the same dict as `serving_default`, for `tf.saved_model.load`.

The signature functions come from the preprocessor's own builder
(`preprocessors.signatures.serving_functions`, same input names and specs), composed
with the encoder. Both parts are the SavedModels already written and verified
(reloaded from disk and saved again: their functions are not traced a second time),
with the preprocessor's default seq_length. Loading needs `import tensorflow_text`
(the tokenizer's ops).
"""

import os

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  # pylint: disable=unused-import  (registers the preprocessor's ops)

import publish
from hub_export import verify
from preprocessors import signatures

PAIR_SIGNATURE = "text_pair"


def _pooled(preprocessor, encoder):
  """encode(texts): the preprocessor's signature for the texts, then the encoder.

  Returns:
    encode: list of 1 or 2 string [B] -> {"pooled_output": float32 [B, H]}.
  """
  to_inputs = signatures.saved_preprocessor(preprocessor)

  def encode(texts):
    return {"pooled_output": encoder(to_inputs(texts), training=False)["pooled_output"]}

  return encode


class _TextServing(tf.Module):
  """Holds the loaded preprocessor and encoder; its functions chain them.

  `__call__` (the `serving_default` signature) and `serve_pair` (`text_pair`) are
  `signatures.serving_functions` of `_pooled(preprocessor, encoder)`.
  """

  def __init__(self, preprocessor, encoder):
    super().__init__(name="text_serving")
    self.preprocessor = preprocessor
    self.encoder = encoder
    self.__call__, self.serve_pair = signatures.serving_functions(
        _pooled(preprocessor, encoder))


def save_text_serving(export_path: str, *, preprocessor_dir: str, encoder_dir: str) -> None:
  """Writes the text serving SavedModel at `export_path` from two saved bundle parts.

  Written beside `export_path` and renamed into place (`publish.atomic_directory`):
  a failure leaves nothing there.

  Args:
    export_path: directory to create; must not exist.
    preprocessor_dir, encoder_dir: the bundle's preprocessor/ and encoder/ SavedModels.

  Raises:
    FileExistsError: `export_path` exists.
    ValueError: a part is not a SavedModel directory, or lacks the signatures
      `serving_default`/`bert_pack_pair` (preprocessor) the chain calls.
    RuntimeError: TensorFlow wrote no saved_model.pb.
  """
  if os.path.lexists(export_path):
    raise FileExistsError(f"{export_path} already exists; pass a new directory")
  for part in (preprocessor_dir, encoder_dir):
    if not os.path.isfile(os.path.join(part, "saved_model.pb")):
      raise ValueError(f"{part} is not a SavedModel directory (no saved_model.pb); pass the "
                       "bundle's preprocessor/ and encoder/")
  preprocessor = tf.saved_model.load(preprocessor_dir)
  missing = set(signatures.INPUT_NAMES) - set(preprocessor.signatures)
  if missing:
    raise ValueError(f"{preprocessor_dir} lacks the signatures {sorted(missing)}; export the "
                     "preprocessor with this tool")
  module = _TextServing(preprocessor, tf.saved_model.load(encoder_dir))
  with publish.atomic_directory(export_path) as work:
    tf.saved_model.save(module, work, signatures={
        "serving_default": module.__call__.get_concrete_function(),
        PAIR_SIGNATURE: module.serve_pair.get_concrete_function()})
    if not os.path.isfile(os.path.join(work, "saved_model.pb")):
      raise RuntimeError(f"tf.saved_model.save wrote no saved_model.pb for {export_path}")


def verify_text_serving(serving_dir: str, *, preprocessor_dir: str, encoder_dir: str,
                        sentences, pairs) -> dict:
  """Reloads the serving SavedModel and compares both signatures with the parts chained.

  The reference is the bundle's preprocessor and encoder, each reloaded from disk,
  called in sequence (`encoder(preprocessor(sentences))`).

  Args:
    sentences: list of str, the single-text probe.
    pairs: (list of str, list of str), the pair probe (same lengths).

  Returns:
    {"tolerance", "outputs": {"serving_default.pooled_output": Difference dict,
     "text_pair.pooled_output": ...}}.

  Raises:
    ValueError: a difference above `verify.TOLERANCES["serving"]["max_rel"]`, or
      missing signatures (both name what differs).
  """
  serving = tf.saved_model.load(serving_dir)
  if set(serving.signatures) != {"serving_default", PAIR_SIGNATURE}:
    raise ValueError(f"the serving SavedModel has signatures {sorted(serving.signatures)}, "
                     f"expected ['serving_default', '{PAIR_SIGNATURE}']")
  reference = _pooled(tf.saved_model.load(preprocessor_dir),
                      tf.saved_model.load(encoder_dir))
  cases = {}
  for name, texts in (("serving_default", [sentences]), (PAIR_SIGNATURE, pairs)):
    texts = [tf.constant(list(t)) for t in texts]
    cases[f"{name}.pooled_output"] = (
        serving.signatures[name](**signatures.signature_inputs(texts)), reference(texts))
  max_rel = verify.TOLERANCES["serving"]["max_rel"]
  figures, failures = {}, []
  for name, (got, want) in cases.items():
    if set(got) != {"pooled_output"}:
      failures.append(f"{name.split('.')[0]} returns {sorted(got)}, expected ['pooled_output']")
      continue
    d = verify.difference(got["pooled_output"].numpy(), want["pooled_output"].numpy())
    figures[name] = d.as_dict()
    if not np.isfinite(d.max_rel) or d.max_rel > max_rel:
      failures.append(f"{name}: max relative difference {d.max_rel:.3g} > {max_rel:g}")
  if failures:
    raise ValueError("the reloaded text serving model does not match preprocessor + "
                     "encoder: " + "; ".join(failures))
  return {"tolerance": max_rel, "relative_to": "max|reference output|",
          "reference": "preprocessor/ then encoder/, reloaded from disk",
          "outputs": figures}
