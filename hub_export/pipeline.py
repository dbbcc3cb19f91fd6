"""The main job: checkpoint + config + vocab -> a verified TF-Hub bundle, atomically.

`export_bundle` checks every input before any work, converts the checkpoint strictly,
writes the bundle (`../shared/HUB_API.md`) into a staging directory beside `export_dir`
(`publish.atomic_directory`), reloads what it wrote from disk, compares it with the
source model (`verify`), and only then moves it into place. A failure at any step leaves
nothing behind and leaves an existing bundle at `export_dir` untouched; a kill -9 at any
moment leaves `export_dir` absent or a complete bundle (the old or the new one), and the
next export into it repairs what the killed one left (`publish`'s guarantees). One
export at a time per `export_dir`: a second fails at once, naming the first.

Downstream tasks (e.g. the SQuAD mobile package) plug in as `tasks.BundleTask`s in
`BundleOptions.tasks`; this module never imports a task package.
"""

import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from typing import Callable, Iterator, Optional, Tuple

import numpy as np

from checkpoints import converter
from checkpoints import model as model_lib
from checkpoints import tf1_writer
from hub_export import encoder as encoder_lib
from hub_export import inputs as inputs_lib
from hub_export import manifest as manifest_lib
from hub_export import model_card
from hub_export import tasks as tasks_lib
from hub_export import verify
from hub_export import worker as worker_lib
from hub_export.errors import ExportError
from preprocessors import probes
import publish

__all__ = ["BundleOptions", "ExportConfig", "ExportError", "ExportResult", "export_bundle",
           "run", "loading_snippet", "print_error"]


@dataclasses.dataclass(frozen=True)
class BundleOptions:
  """What to write and how; the same for every source of checkpoint.

  Attributes:
    do_lower_case: None to decide from the vocab; an explicit value that contradicts
      the vocab raises unless `force_do_lower_case`.
    force_do_lower_case: accept an explicit `do_lower_case` against the vocab's evidence.
    seq_length: the preprocessor's default output length, 3..min(512,
      max_position_embeddings).
    overwrite: replace an existing bundle at `export_dir` (only after the new one
      verified, and only if it is a bundle: it has a manifest.json from this tool).
    with_mlm: export the `mlm` sub-object and signature (the checkpoint needs
      `cls/predictions/*`).
    with_text_signature: also write `serving/`, raw text -> `pooled_output` in one
      SavedModel (`hub_export/serving.py`), reloaded and checked against
      preprocessor + encoder before publishing.
    archive: also write `encoder.tar.gz`, `preprocessor.tar.gz` (and `serving.tar.gz`),
      TF Hub's compressed-model layout (`hub_export/archive.py`), read back and checked.
    preprocessor_tflite: also write `preprocessor.tflite` (the same tokenization and
      packing for the TFLite interpreter with tensorflow-text's registered ops; no Flex
      delegate needed), run against the reloaded preprocessor SavedModel first.
    attention_mask: how the encoder masks padded keys (`checkpoints.model.
      ATTENTION_MASKS`): "original" (google-research `mobilebert/modeling.py`: masked
      scores set to -6, softmax over every key) or "model_garden" (zero weight on padded
      keys, as Model Garden's `MobileBERTEncoder` and the published TF-Hub modules).
      Every function of `encoder/` (and `serving/`, and the tasks' float models)
      computes it; `checkpoint/` is the same in both.
    tasks: downstream `tasks.BundleTask`s, each adding its verified directory.
  """
  do_lower_case: Optional[bool] = None
  force_do_lower_case: bool = False
  seq_length: int = 128
  overwrite: bool = False
  with_mlm: bool = True
  with_text_signature: bool = False
  archive: bool = False
  preprocessor_tflite: bool = False
  attention_mask: str = model_lib.DEFAULT_ATTENTION_MASK
  tasks: Tuple[tasks_lib.BundleTask, ...] = ()


@dataclasses.dataclass(frozen=True)
class ExportConfig:
  """Everything the CLI decides; see `export_main.py` for the meaning of each flag.

  The source is either `demo` (a seeded demo checkpoint written on the fly) or a
  checkpoint directory as Google ships one, whose parts `bert_config_file`,
  `checkpoint` and `vocab_file` override.
  """
  export_dir: str
  checkpoint_dir: Optional[str] = None
  bert_config_file: Optional[str] = None
  checkpoint: Optional[str] = None
  vocab_file: Optional[str] = None
  demo: Optional[str] = None
  demo_seed: int = 0
  options: BundleOptions = BundleOptions()


@dataclasses.dataclass(frozen=True)
class ExportResult:
  """What `export_bundle` produced."""
  export_dir: str
  manifest: dict
  seconds: float


def export_bundle(export_dir: str, *, checkpoint: str, bert_config_file: str,
                  vocab_file: str, options: BundleOptions = BundleOptions(),
                  trained: bool = True, demo: Optional[str] = None,
                  log: Callable[[str], None] = print) -> ExportResult:
  """Exports a MobileBERT checkpoint as a verified TF-Hub bundle.

  Args:
    export_dir: where the bundle goes; must not exist unless `options.overwrite`.
    checkpoint: checkpoint prefix, `.index` file, or directory with one checkpoint;
      original TF1 layout or this tool's TF2 `checkpoint/`.
    bert_config_file: the checkpoint's `bert_config.json`.
    vocab_file: the checkpoint's `vocab.txt`.
    options: `BundleOptions`.
    trained: False marks the bundle as untrained demo weights everywhere.
    demo: demo variant name, recorded in the manifest.
    log: receives one line per step.

  Returns:
    `ExportResult`.

  Raises:
    ExportError: contradictory or bad arguments, vocab/config/checkpoint mismatch,
      unwritable destination, another export writing `export_dir` (its pid, command
      line and the lock file named), failed verification. Nothing is written then.
    publish.WriteError: a write failed midway (no space, a file-size limit, a
      read-only destination); names the path and the cause. Nothing is left behind
      and an existing bundle is kept.
    FileExistsError: `export_dir` exists and `options.overwrite` is False.
    FileNotFoundError, ValueError: from reading the inputs (they name the file).
  """
  start = time.time()
  plain_log = log
  log = lambda line: plain_log(f"[{time.time() - start:6.1f} s] {line}")  # pylint: disable=unnecessary-lambda-assignment
  export_dir = os.path.abspath(export_dir)
  with _destination(export_dir):
    inputs_lib.check_destination(export_dir, options.overwrite)
    inputs = inputs_lib.check_inputs(checkpoint=checkpoint, bert_config_file=bert_config_file,
                                     vocab_file=vocab_file, options=options, log=log)
    with publish.atomic_directory(
        export_dir, overwrite=options.overwrite,
        replaceable=lambda d: inputs_lib.check_destination(d, True),
        fix=WRITE_FIX) as work:
      manifest = _write_bundle(work, inputs, options, trained=trained, demo=demo, log=log)
  seconds = time.time() - start
  plain_log(f"Bundle written to {export_dir} in {seconds:.1f} s")
  return ExportResult(export_dir=export_dir, manifest=manifest, seconds=seconds)


WRITE_FIX = "free space or choose another --export_dir"


@contextlib.contextmanager
def _destination(export_dir: str) -> Iterator[None]:
  """Holds `export_dir`'s lock and repairs a killed export's leftovers first.

  `publish.recover` renames back a bundle that a killed `--overwrite` left under
  `.NAME.old-*` (only where the two-rename fallback swap was used) and removes staging
  directories of exports that no longer run. The lock is reentrant, so `run` and
  `export_bundle` may both hold it.

  Raises:
    ExportError: another export is writing `export_dir` (names its pid, command line
      and the lock file), or the directory beside it cannot be written.
    publish.WriteError: a write failed inside the block (no space, size limit,
      read-only), with path and cause.
  """
  try:
    with publish.destination_lock(export_dir):
      publish.recover(export_dir)
      yield
  except publish.DestinationBusyError as e:
    raise ExportError(f"another export is writing --export_dir={export_dir}: {e.holder} "
                      f"holds the lock {e.lock_file}; wait for it to finish or choose "
                      "another --export_dir") from None
  except publish.WriteError:
    raise
  except publish.PublishError as e:
    raise ExportError(f"cannot write beside --export_dir={export_dir} ({e.reason}); choose "
                      "a directory you can write to") from None


def run(cfg: ExportConfig, log: Callable[[str], None] = print) -> ExportResult:
  """Resolves the inputs of `cfg` (checkpoint directory parts, or the demo) and exports.

  A checkpoint directory is laid out as Google ships one: `bert_config.json`,
  `vocab.txt` and one checkpoint (`*.index` + `*.data-*`, any prefix); explicit
  `bert_config_file`, `checkpoint` and `vocab_file` override those parts.

  Raises:
    ExportError: `demo` together with checkpoint arguments, or no source at all;
      plus everything `export_bundle` raises.
  """
  explicit = {k: getattr(cfg, k) for k in ("checkpoint_dir", "bert_config_file",
                                            "checkpoint", "vocab_file") if getattr(cfg, k)}
  if cfg.demo and explicit:
    raise ExportError(f"--demo={cfg.demo} writes its own checkpoint; it cannot be combined "
                      f"with {sorted('--' + k for k in explicit)}: drop one or the other")
  if cfg.demo:
    if cfg.demo not in tf1_writer.DEMO_VARIANTS:
      raise ExportError(f"--demo={cfg.demo!r} is not a demo; choose one of "
                        f"{sorted(tf1_writer.DEMO_VARIANTS)}")
    export_dir = os.path.abspath(cfg.export_dir)
    with _destination(export_dir), tempfile.TemporaryDirectory(
        prefix="mobilebert_demo_") as scratch:
      inputs_lib.check_destination(export_dir, cfg.options.overwrite)
      log(f"Writing the UNTRAINED demo checkpoint ({cfg.demo}, seed {cfg.demo_seed}) in the "
          "released TF1 layout ...")
      prefix = tf1_writer.write_demo_checkpoint_dir(scratch, cfg.demo, seed=cfg.demo_seed)
      return export_bundle(
          cfg.export_dir, checkpoint=prefix,
          bert_config_file=os.path.join(scratch, "bert_config.json"),
          vocab_file=os.path.join(scratch, "vocab.txt"), options=cfg.options,
          trained=False, demo=f"{cfg.demo} (seed {cfg.demo_seed})", log=log)
  if not explicit:
    raise ExportError("no checkpoint given: pass --checkpoint_dir=DIR (as Google ships "
                      "MobileBERT) or --demo")
  base = cfg.checkpoint_dir
  if base is not None and not os.path.isdir(base):
    raise ExportError(f"--checkpoint_dir={base} is not a directory")

  def part(value, name):
    if value:
      return value
    if base is None:
      raise ExportError(f"no {name}: pass --checkpoint_dir or --{_FLAG_FOR[name]}")
    return os.path.join(base, name) if name != "checkpoint" else base

  return export_bundle(
      cfg.export_dir, checkpoint=part(cfg.checkpoint, "checkpoint"),
      bert_config_file=part(cfg.bert_config_file, "bert_config.json"),
      vocab_file=part(cfg.vocab_file, "vocab.txt"), options=cfg.options, trained=True,
      log=log)


_FLAG_FOR = {"checkpoint": "checkpoint", "bert_config.json": "bert_config_file",
             "vocab.txt": "vocab_file"}


def _write_bundle(work: str, inputs: inputs_lib.Inputs, options: BundleOptions, *, trained: bool,
                  demo: Optional[str], log) -> dict:
  """Writes and verifies every part of the bundle into `work`; returns the manifest."""
  log("Saving preprocessor/" + (" and preprocessor.tflite" if options.preprocessor_tflite
                                else "") + " in a worker process ...")
  worker = worker_lib.PreprocessorWorker(
      os.path.join(work, "preprocessor"), inputs.vocab.path, inputs.do_lower_case,
      options.seq_length, options.preprocessor_tflite)
  try:
    log(f"Converting {inputs.prefix} ...")
    model, report = converter.load_model(inputs.prefix, inputs.config,
                                         with_mlm=options.with_mlm,
                                         attention_mask=options.attention_mask)
    log(f"Converted {report.source_format.upper()} checkpoint: {len(report.mapped)} "
        f"variables mapped, {len(report.ignored)} ignored, {len(report.synthesized)} "
        "synthesized" if report.source_format == "tf1" else
        f"Restored TF2 checkpoint: {report.num_source_variables} entries, all consumed")
    _write_checkpoint(work, model, inputs)
    parity = _write_encoder(work, model, inputs, log)
    log("Waiting for preprocessor/ (saved, reloaded, checked against FullTokenizer) ...")
    preprocessor_check = worker.result()
  finally:
    worker.stop()
  serving_check = _write_text_serving(work, log) if options.with_text_signature else None
  archives = _write_archives(work, log) if options.archive else None
  summaries = {}
  for task in options.tasks:
    summaries[task.name] = task.export(work, config=inputs.config,
                                       vocab_file=inputs.vocab.path,
                                       do_lower_case=inputs.do_lower_case,
                                       attention_mask=options.attention_mask, log=log)
  manifest = manifest_lib.build_manifest(
      source=_source_entry(inputs, report, demo), config=inputs.config,
      do_lower_case=inputs.do_lower_case, casing_reason=inputs.casing_reason,
      vocab=inputs.vocab, parameter_counts=_parameter_counts(model),
      seq_length=options.seq_length, parity=parity, trained=trained,
      conversion=_conversion_entry(report), preprocessor_check=preprocessor_check,
      serving=serving_check, archives=archives, tasks=summaries,
      attention_mask=options.attention_mask)
  manifest_lib.write_manifest(os.path.join(work, "manifest.json"), manifest)
  sections = [task.card_section(summaries[task.name]) for task in options.tasks]
  with open(os.path.join(work, "README.md"), "w", encoding="utf-8") as f:
    f.write(model_card.render(manifest, sections=sections))
  worst = max(v["max_rel"] for v in parity["outputs"].values())
  log(f"Verified: {len(parity['outputs'])} outputs, largest relative difference {worst:.2e} "
      f"(tolerance {parity['tolerance']:g}); tokenizer probe "
      f"{preprocessor_check['identical']}/{preprocessor_check['sentences']} identical")
  return manifest


def _write_checkpoint(work: str, model, inputs: inputs_lib.Inputs) -> None:
  ckpt_dir = os.path.join(work, "checkpoint")
  converter.write_tf2_checkpoint(model, ckpt_dir)
  with open(os.path.join(ckpt_dir, "bert_config.json"), "w") as f:
    f.write(inputs.config.to_json_string())
  shutil.copyfile(inputs.vocab.path, os.path.join(ckpt_dir, "vocab.txt"))


def _write_encoder(work: str, model, inputs: inputs_lib.Inputs, log) -> dict:
  """Saves `encoder/`, reloads it and compares it with `model` on the probe batches."""
  probes_batches = verify.probe_batch(inputs.config, inputs.vocab.special_ids)
  log("Computing reference outputs of the converted model on the probe batches ...")
  reference = [verify.source_outputs(model, batch) for batch in probes_batches]
  log("Saving encoder/ ...")
  obj, signatures = encoder_lib.build_encoder_module(
      model, vocab_file=inputs.vocab.path, do_lower_case=inputs.do_lower_case)
  encoder_lib.save_encoder(obj, signatures, os.path.join(work, "encoder"))
  log("Verifying encoder/ reloaded from disk ...")
  try:
    return verify.verify_encoder(os.path.join(work, "encoder"), probes_batches, reference,
                                 with_mlm=model.masked_lm is not None)
  except ValueError as e:
    raise ExportError(str(e)) from None


def _write_text_serving(work, log) -> dict:
  """Writes and checks `serving/` (raw text -> pooled_output) from the saved parts."""
  from hub_export import serving  # pylint: disable=g-import-not-at-top  (imports tensorflow_text)
  parts = dict(preprocessor_dir=os.path.join(work, "preprocessor"),
               encoder_dir=os.path.join(work, "encoder"))
  log("Saving serving/ (preprocessor + encoder, raw text in) ...")
  serving.save_text_serving(os.path.join(work, "serving"), **parts)
  log("Verifying serving/ reloaded from disk against preprocessor/ + encoder/ ...")
  sentences = probes.PROBE_SENTENCES
  try:
    return serving.verify_text_serving(
        os.path.join(work, "serving"), sentences=sentences,
        pairs=(sentences, sentences[::-1]), **parts)
  except ValueError as e:
    raise ExportError(f"serving/: {e}") from None


def _write_archives(work, log) -> dict:
  """Writes `<name>.tar.gz` beside each SavedModel of the bundle (TF Hub layout)."""
  from hub_export import archive as archive_lib  # pylint: disable=g-import-not-at-top
  result = {}
  for name in ("encoder", "preprocessor", "serving"):
    if os.path.isdir(os.path.join(work, name)):
      log(f"Archiving {name}/ as {name}.tar.gz ...")
      result[name] = archive_lib.write_archive(os.path.join(work, name),
                                               os.path.join(work, f"{name}.tar.gz"))
  return result


def _parameter_counts(model) -> dict:
  counts = {"encoder": int(sum(np.prod(v.shape) for v in model.encoder.variables))}
  if model.masked_lm is None:
    counts["mlm_head"] = 0
    return counts
  enc_ids = {id(v) for v in model.encoder.variables}
  counts["mlm_head"] = int(sum(np.prod(v.shape) for v in model.masked_lm.variables
                               if id(v) not in enc_ids))
  return counts


def _source_entry(inputs: inputs_lib.Inputs, report, demo) -> dict:
  return {"checkpoint": os.path.abspath(inputs.prefix), "format": report.source_format,
          "checkpoint_sha256": converter.checkpoint_files_sha256(inputs.prefix),
          "bert_config_file": os.path.abspath(inputs.bert_config_file),
          "vocab_file": os.path.abspath(inputs.vocab.path), "demo": demo,
          "has_squad_head": report.has_squad_head}


def _conversion_entry(report) -> dict:
  return {"source_variables": report.num_source_variables, "mapped": len(report.mapped),
          "ignored": [{"name": n, "reason": r} for n, r in report.ignored],
          "synthesized": [{"target": t, "reason": r} for t, r in report.synthesized]}


def loading_snippet(export_dir: str) -> str:
  """The two-line loading snippet printed at the end of an export."""
  return (f"import tensorflow_hub as hub, tensorflow_text  # noqa\n"
          f"encoder = hub.KerasLayer({os.path.join(export_dir, 'encoder')!r}, trainable=True); "
          f"preprocessor = hub.KerasLayer({os.path.join(export_dir, 'preprocessor')!r})")


def print_error(e: BaseException) -> None:
  """One clear line on stderr for an export failure."""
  print(f"export failed: {e}", file=sys.stderr)
