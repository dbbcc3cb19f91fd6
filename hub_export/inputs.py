"""The export's inputs, read and cross-checked before any work.

`check_inputs` reads the config strictly, loads the vocab, finds the checkpoint and
decides the casing, raising `ExportError` on the first contradiction (vocab size vs
config, word-embedding rows vs config, `--do_lower_case` vs the vocab, a length out of
range, a task option); `check_destination` refuses an existing `--export_dir` unless
overwriting a complete bundle of this tool (`bundle_check.check_bundle`).
"""

import dataclasses
import os
from typing import Tuple

from checkpoints import converter
from checkpoints import model as model_lib
from checkpoints.config import MobileBertConfig
from hub_export import bundle_check
from hub_export.errors import ExportError
from preprocessors import packing
from preprocessors import vocab as vocab_lib

MIN_SEQ_LENGTH = 3  # [CLS] token [SEP]


@dataclasses.dataclass(frozen=True)
class Inputs:
  """The checked inputs of one export."""
  config: MobileBertConfig
  bert_config_file: str
  vocab: vocab_lib.Vocab
  prefix: str
  do_lower_case: bool
  casing_reason: str


def check_destination(export_dir: str, overwrite: bool) -> None:
  """Refuses an existing `export_dir`, unless `overwrite` and it is a complete bundle.

  What counts as a complete bundle of this tool is `bundle_check.check_bundle`'s test;
  anything else (a directory without manifest.json, another tool's manifest, a truncated
  bundle, a file) might be someone's work and is never replaced.

  Raises:
    FileExistsError: it exists and `overwrite` is False.
    bundle_check.BundleError: (an ExportError) it exists, `overwrite` is True, and it is
      not a complete bundle of this tool; one line.
  """
  if os.path.lexists(export_dir):
    if not overwrite:
      raise FileExistsError(f"--export_dir={export_dir} already exists; pass --overwrite "
                            "to replace it (only after the new bundle verified) or choose "
                            "another")
    bundle_check.check_bundle(
        export_dir, flag="--export_dir",
        fix="refusing to replace it even with --overwrite: move it away yourself or "
            "choose another --export_dir")


def check_inputs(*, checkpoint: str, bert_config_file: str, vocab_file: str, options,
                 log) -> Inputs:
  """Reads and cross-checks config, vocab, checkpoint and casing before any work.

  Args:
    checkpoint, bert_config_file, vocab_file: see `pipeline.export_bundle`.
    options: the `pipeline.BundleOptions` (seq_length, casing, tasks are checked).
    log: one line each for the config and the casing decision.

  Raises:
    ExportError: the first contradiction, naming value, expectation and fix.
    FileNotFoundError, ValueError: from reading the config, vocab or checkpoint.
  """
  config = MobileBertConfig.from_json_file(bert_config_file)
  log(f"Read {bert_config_file}: {config.num_hidden_layers} blocks, hidden "
      f"{config.hidden_size}, vocab {config.vocab_size}, {config.normalization_type}")
  longest = min(packing.MAX_SEQ_LENGTH, config.max_position_embeddings)
  if not MIN_SEQ_LENGTH <= options.seq_length <= longest:
    raise ExportError(f"--seq_length={options.seq_length} is out of range: it must be in "
                      f"[{MIN_SEQ_LENGTH}, {longest}] (max_position_embeddings of the "
                      "config); pick a length in range")
  if options.attention_mask not in model_lib.ATTENTION_MASKS:
    raise ExportError(f"--attention_mask={options.attention_mask!r} is not a masking mode; "
                      f"choose one of {list(model_lib.ATTENTION_MASKS)}")
  names = [t.name for t in options.tasks]
  if len(set(names)) != len(names):
    raise ExportError(f"tasks {names} name one directory twice; give each task once")
  for task in options.tasks:
    try:
      task.check(config)
    except ValueError as e:
      raise ExportError(str(e)) from None
  vocab = vocab_lib.load_vocab(vocab_file)
  if vocab.size != config.vocab_size:
    raise ExportError(f"vocab {vocab_file} has {vocab.size} tokens but {bert_config_file} "
                      f"says vocab_size={config.vocab_size}; pass the vocab.txt that came "
                      "with the checkpoint")
  prefix = converter.find_checkpoint(checkpoint)
  _check_embedding_rows(prefix, config, bert_config_file)
  do_lower_case, casing_reason = _decide_casing(vocab, vocab_file, options)
  log(f"do_lower_case={do_lower_case} ({casing_reason})")
  return Inputs(config=config, bert_config_file=bert_config_file, vocab=vocab,
                 prefix=prefix, do_lower_case=do_lower_case, casing_reason=casing_reason)


def _decide_casing(vocab, vocab_file, options) -> Tuple[bool, str]:
  inferred, reason = vocab_lib.infer_do_lower_case(vocab)
  given = options.do_lower_case
  if given is None:
    return inferred, f"inferred from the vocab: {reason}"
  if given != inferred and not options.force_do_lower_case:
    raise ExportError(
        f"--do_lower_case={given} contradicts the vocab {vocab_file} ({reason}); "
        f"a wrong casing silently changes every token id. Drop the flag, or add "
        "--force_do_lower_case if you are sure")
  return given, (f"--do_lower_case={given} given" +
                 (f" and forced against the vocab ({reason})" if given != inferred
                  else f", agrees with the vocab ({reason})"))


def _check_embedding_rows(prefix: str, config: MobileBertConfig, config_file: str) -> None:
  if converter.is_tf2_checkpoint(prefix):
    return  # Restoring checks every shape against the config.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
  rows = shapes.get("bert/embeddings/word_embeddings", [None])[0]
  if rows is not None and rows != config.vocab_size:
    raise ExportError(f"checkpoint {prefix} has {rows} word-embedding rows but "
                      f"{config_file} says vocab_size={config.vocab_size}; the config does "
                      "not belong to this checkpoint")
