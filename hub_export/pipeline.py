"""The main job: checkpoint + config + vocab -> a verified TF-Hub bundle, atomically.

`export_bundle` checks every input before any work, converts the checkpoint strictly,
writes the bundle (`../shared/HUB_API.md`) into a temporary directory beside
`export_dir`, reloads what it wrote from disk, compares it with the source model, and
only then moves it into place. A failure at any step leaves nothing behind and leaves an
existing bundle at `export_dir` untouched.
"""

import dataclasses
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from checkpoints import converter
from checkpoints import tf1_writer
from checkpoints.config import MobileBertConfig
from hub_export import encoder as encoder_lib
from hub_export import manifest as manifest_lib
from hub_export import verify
from preprocessors import export as preprocessor_export
from preprocessors import tokenizer as tokenizer_lib
from preprocessors import vocab as vocab_lib

MAX_SEQ_LENGTH = 512
MIN_SEQ_LENGTH = 3  # [CLS] token [SEP]
# Probe sentences for the reloaded preprocessor (English, accents, CJK, Cyrillic, Hindi).
PROBE_SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Héllo, Wörld! Ça va? naïve café résumé",
    "東京は日本の首都です。",
    "Москва — столица России.",
    "भारत एक विशाल देश है।",
    "",
)


@dataclasses.dataclass(frozen=True)
class ExportResult:
  """What `export_bundle` produced."""
  export_dir: str
  manifest: dict
  seconds: float


class ExportError(ValueError):
  """Bad input or a failed verification; the message names value, expectation and fix."""


def export_bundle(export_dir: str, *, checkpoint: str, bert_config_file: str,
                  vocab_file: str, do_lower_case: Optional[bool] = None,
                  force_do_lower_case: bool = False, seq_length: int = 128,
                  overwrite: bool = False, with_mlm: bool = True, trained: bool = True,
                  demo: Optional[str] = None, with_text_signature: bool = False,
                  archive: bool = False, squad=None, preprocessor_tflite: bool = False,
                  log: Callable[[str], None] = print) -> ExportResult:
  """Exports a MobileBERT checkpoint as a verified TF-Hub bundle.

  Args:
    export_dir: where the bundle goes; must not exist unless `overwrite`.
    checkpoint: checkpoint prefix, `.index` file, or directory with one checkpoint;
      original TF1 layout or this tool's TF2 `checkpoint/`.
    bert_config_file: the checkpoint's `bert_config.json`.
    vocab_file: the checkpoint's `vocab.txt`.
    do_lower_case: None to decide from the vocab; an explicit value that contradicts
      the vocab raises unless `force_do_lower_case`.
    force_do_lower_case: accept an explicit `do_lower_case` against the vocab's evidence.
    seq_length: the preprocessor's default output length, 3..min(512,
      max_position_embeddings).
    overwrite: replace an existing bundle at `export_dir` (only after the new one
      verified, and only if it is a bundle: it has a manifest.json from this tool).
    with_mlm: export the `mlm` sub-object and signature (the checkpoint needs
      `cls/predictions/*`).
    trained: False marks the bundle as untrained demo weights everywhere.
    demo: demo variant name, recorded in the manifest.
    with_text_signature: also write `serving/`, raw text -> `pooled_output` in one
      SavedModel (`hub_export/serving.py`), reloaded and checked against
      preprocessor + encoder before publishing.
    archive: also write `encoder.tar.gz`, `preprocessor.tar.gz` (and `serving.tar.gz`),
      TF Hub's compressed-model layout (`hub_export/archive.py`), read back and checked.
    preprocessor_tflite: also write `preprocessor.tflite` (the same tokenization and
      packing for the TFLite interpreter with tensorflow-text's registered ops; no Flex
      delegate needed), run against the reloaded preprocessor SavedModel before publishing.
      Costs about 10-13 s in the preprocessor worker process.
    squad: a `hub_export.squad.export.SquadOptions` to add the verified `squad/` mobile
      package (issue #6), or None.
    log: receives one line per step.

  Returns:
    `ExportResult`.

  Raises:
    ExportError: contradictory or bad arguments, vocab/config/checkpoint mismatch,
      unwritable destination, failed verification. Nothing is written then.
    FileExistsError: `export_dir` exists and `overwrite` is False.
    FileNotFoundError, ValueError: from reading the inputs (they name the file).
  """
  start = time.time()
  plain_log = log
  log = lambda line: plain_log(f"[{time.time() - start:6.1f} s] {line}")  # pylint: disable=unnecessary-lambda-assignment
  export_dir = os.path.abspath(export_dir)
  _check_destination(export_dir, overwrite)
  config = MobileBertConfig.from_json_file(bert_config_file)
  log(f"Read {bert_config_file}: {config.num_hidden_layers} blocks, hidden "
      f"{config.hidden_size}, vocab {config.vocab_size}, {config.normalization_type}")
  if not MIN_SEQ_LENGTH <= seq_length <= min(MAX_SEQ_LENGTH, config.max_position_embeddings):
    raise ExportError(f"--seq_length={seq_length} is out of range: it must be in "
                      f"[{MIN_SEQ_LENGTH}, {min(MAX_SEQ_LENGTH, config.max_position_embeddings)}]"
                      " (max_position_embeddings of the config); pick a length in range")
  if squad is not None:
    try:
      squad.check(config.max_position_embeddings)
    except ValueError as e:
      raise ExportError(str(e)) from None
  vocab = vocab_lib.load_vocab(vocab_file)
  if vocab.size != config.vocab_size:
    raise ExportError(f"vocab {vocab_file} has {vocab.size} tokens but {bert_config_file} "
                      f"says vocab_size={config.vocab_size}; pass the vocab.txt that came "
                      "with the checkpoint")
  prefix = converter.find_checkpoint(checkpoint)
  _check_embedding_rows(prefix, config, bert_config_file)
  inferred, reason = vocab_lib.infer_do_lower_case(vocab)
  if do_lower_case is None:
    do_lower_case, casing_reason = inferred, f"inferred from the vocab: {reason}"
  elif do_lower_case != inferred and not force_do_lower_case:
    raise ExportError(
        f"--do_lower_case={do_lower_case} contradicts the vocab {vocab_file} ({reason}); "
        f"a wrong casing silently changes every token id. Drop the flag, or add "
        "--force_do_lower_case if you are sure")
  else:
    casing_reason = (f"--do_lower_case={do_lower_case} given" +
                     (f" and forced against the vocab ({reason})"
                      if do_lower_case != inferred else f", agrees with the vocab ({reason})"))
  log(f"do_lower_case={do_lower_case} ({casing_reason})")

  parent = os.path.dirname(export_dir)
  try:
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(export_dir)}.tmp-")
  except OSError as e:
    raise ExportError(f"cannot write beside --export_dir={export_dir} ({e.strerror}); choose "
                      "a directory you can write to") from None
  try:
    manifest = _export_into(
        work, config=config, prefix=prefix, bert_config_file=bert_config_file,
        vocab=vocab, do_lower_case=do_lower_case, casing_reason=casing_reason,
        seq_length=seq_length, with_mlm=with_mlm, trained=trained, demo=demo,
        with_text_signature=with_text_signature, archive=archive,
        preprocessor_tflite=preprocessor_tflite, log=log)
    if squad is not None:  # issue #6: squad/ from the checkpoint/ just written, verified
      from hub_export.squad import export as squad_export  # pylint: disable=g-import-not-at-top
      manifest["squad"] = squad_export.export_into_bundle(
          work, config=config, vocab_file=vocab.path, do_lower_case=do_lower_case,
          options=squad, log=log)
    manifest_lib.write_manifest(os.path.join(work, "manifest.json"), manifest)
    with open(os.path.join(work, "README.md"), "w") as f:  # The model card.
      f.write(manifest_lib.model_card(manifest))
    _publish(work, export_dir, overwrite)
  except BaseException:
    shutil.rmtree(work, ignore_errors=True)
    raise
  seconds = time.time() - start
  plain_log(f"Bundle written to {export_dir} in {seconds:.1f} s")
  return ExportResult(export_dir=export_dir, manifest=manifest, seconds=seconds)


@dataclasses.dataclass(frozen=True)
class ExportConfig:
  """Everything the CLI decides; see `export_main.py` for the meaning of each flag."""
  export_dir: str
  checkpoint_dir: Optional[str] = None
  bert_config_file: Optional[str] = None
  checkpoint: Optional[str] = None
  vocab_file: Optional[str] = None
  demo: Optional[str] = None
  demo_seed: int = 0
  do_lower_case: Optional[bool] = None
  force_do_lower_case: bool = False
  seq_length: int = 128
  overwrite: bool = False
  with_mlm: bool = True
  with_text_signature: bool = False
  archive: bool = False
  preprocessor_tflite: bool = False
  squad: Optional[object] = None  # hub_export.squad.export.SquadOptions (--task=squad)


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
    _check_destination(os.path.abspath(cfg.export_dir), cfg.overwrite)
    scratch = tempfile.mkdtemp(prefix="mobilebert_demo_")
    try:
      log(f"Writing the UNTRAINED demo checkpoint ({cfg.demo}, seed {cfg.demo_seed}) in the "
          "released TF1 layout ...")
      prefix = tf1_writer.write_demo_checkpoint_dir(scratch, cfg.demo, seed=cfg.demo_seed)
      return export_bundle(
          cfg.export_dir, checkpoint=prefix,
          bert_config_file=os.path.join(scratch, "bert_config.json"),
          vocab_file=os.path.join(scratch, "vocab.txt"), do_lower_case=cfg.do_lower_case,
          force_do_lower_case=cfg.force_do_lower_case, seq_length=cfg.seq_length,
          overwrite=cfg.overwrite, with_mlm=cfg.with_mlm, trained=False,
          with_text_signature=cfg.with_text_signature, archive=cfg.archive,
          preprocessor_tflite=cfg.preprocessor_tflite,
          squad=cfg.squad, demo=f"{cfg.demo} (seed {cfg.demo_seed})", log=log)
    finally:
      shutil.rmtree(scratch, ignore_errors=True)
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
      vocab_file=part(cfg.vocab_file, "vocab.txt"), do_lower_case=cfg.do_lower_case,
      force_do_lower_case=cfg.force_do_lower_case, seq_length=cfg.seq_length,
      overwrite=cfg.overwrite, with_mlm=cfg.with_mlm, trained=True,
      with_text_signature=cfg.with_text_signature, archive=cfg.archive, squad=cfg.squad,
      preprocessor_tflite=cfg.preprocessor_tflite,
      log=log)


_FLAG_FOR = {"checkpoint": "checkpoint", "bert_config.json": "bert_config_file",
             "vocab.txt": "vocab_file"}


def _check_destination(export_dir: str, overwrite: bool) -> None:
  if os.path.lexists(export_dir):
    if not overwrite:
      raise FileExistsError(f"--export_dir={export_dir} already exists; pass --overwrite to "
                            "replace it (after the new bundle verified) or choose another")
    if not os.path.isfile(os.path.join(export_dir, "manifest.json")):
      raise ExportError(f"--export_dir={export_dir} exists and is not a bundle (no "
                        "manifest.json); refusing to replace it even with --overwrite")


def _check_embedding_rows(prefix: str, config: MobileBertConfig, config_file: str) -> None:
  if converter.is_tf2_checkpoint(prefix):
    return  # Restoring checks every shape against the config.
  shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
  rows = shapes.get("bert/embeddings/word_embeddings", [None])[0]
  if rows is not None and rows != config.vocab_size:
    raise ExportError(f"checkpoint {prefix} has {rows} word-embedding rows but "
                      f"{config_file} says vocab_size={config.vocab_size}; the config does "
                      "not belong to this checkpoint")


def _export_into(work, *, config, prefix, bert_config_file, vocab, do_lower_case,
                 casing_reason, seq_length, with_mlm, trained, demo, log,
                 with_text_signature=False, archive=False,
                 preprocessor_tflite=False) -> dict:
  # The preprocessor does not depend on the model: build, save and check it in a second
  # process while this one converts, saves and verifies the encoder.
  log("Saving preprocessor/" + (" and preprocessor.tflite" if preprocessor_tflite else "") +
      " in a worker process ...")
  worker = _PreprocessorWorker(os.path.join(work, "preprocessor"), vocab.path,
                               do_lower_case, seq_length, preprocessor_tflite)
  try:
    log(f"Converting {prefix} ...")
    model, report = converter.load_model(prefix, config, with_mlm=with_mlm)
    log(f"Converted {report.source_format.upper()} checkpoint: {len(report.mapped)} "
        f"variables mapped, {len(report.ignored)} ignored, {len(report.synthesized)} "
        "synthesized" if report.source_format == "tf1" else
        f"Restored TF2 checkpoint: {report.num_source_variables} entries, all consumed")
    return _export_encoder_and_manifest(
        work, worker, model, report, config=config, prefix=prefix,
        bert_config_file=bert_config_file, vocab=vocab, do_lower_case=do_lower_case,
        casing_reason=casing_reason, seq_length=seq_length, trained=trained, demo=demo,
        log=log, with_text_signature=with_text_signature, archive=archive)
  finally:
    worker.stop()


class _PreprocessorWorker:
  """Saves the preprocessor SavedModel, reloads it and checks its ids, in a process.

  A fresh "spawn" process (forking a process that runs TensorFlow is unsafe). `result`
  returns the check's figures or raises `ExportError` with the worker's message; `stop`
  ends the worker if it still runs (a failed export does not wait for it).
  """

  def __init__(self, path, vocab_path, do_lower_case, seq_length, with_tflite=False):
    ctx = multiprocessing.get_context("spawn")
    self._receive, send = ctx.Pipe(duplex=False)
    self._process = ctx.Process(
        target=_preprocessor_main, name="preprocessor-export",
        args=(send, path, vocab_path, do_lower_case, seq_length, with_tflite), daemon=True)
    self._process.start()
    send.close()

  def result(self) -> dict:
    try:
      status, value = self._receive.recv()
    except EOFError:
      self._process.join()
      raise ExportError(f"the preprocessor worker died (exit code {self._process.exitcode})"
                        " before reporting; rerun the export") from None
    self._process.join()
    if status != "ok":
      raise ExportError(f"preprocessor/: {value}")
    return value

  def stop(self) -> None:
    if self._process.is_alive():
      self._process.terminate()
    self._process.join()
    self._receive.close()


def _preprocessor_main(send, path, vocab_path, do_lower_case, seq_length,
                       with_tflite=False) -> None:
  """Worker-process entry point; sends ("ok", figures) or ("error", message).

  With `with_tflite`, also writes `preprocessor.tflite` beside `path` (TFLite builtins +
  tensorflow-text's registered TFLite ops, no Flex), after running both of its
  signatures in the TFLite interpreter against the reloaded SavedModel
  (`preprocessors.tflite.verify_tflite_preprocessor`, which raises on any mismatch).
  """
  try:
    preprocessor_export.save_preprocessor(path, vocab_file=vocab_path,
                                          do_lower_case=do_lower_case, seq_length=seq_length)
    check = _verify_preprocessor(path, vocab_path, do_lower_case, seq_length)
    if with_tflite:
      from preprocessors import tflite as preprocessor_tflite  # pylint: disable=g-import-not-at-top
      model = preprocessor_tflite.convert_preprocessor_to_tflite(
          vocab_file=vocab_path, do_lower_case=do_lower_case, seq_length=seq_length)
      check["tflite"] = preprocessor_tflite.verify_tflite_preprocessor(
          model, saved_model_dir=path)
      with open(os.path.join(os.path.dirname(path), "preprocessor.tflite"), "wb") as f:
        f.write(model)
    send.send(("ok", check))
  except Exception as e:  # pylint: disable=broad-except  # Reported to the parent.
    send.send(("error", f"{type(e).__name__}: {e}"))
  finally:
    send.close()


def _export_encoder_and_manifest(work, worker, model, report, *, config, prefix,
                                 bert_config_file, vocab, do_lower_case, casing_reason,
                                 seq_length, trained, demo, log,
                                 with_text_signature=False, archive=False) -> dict:
  ckpt_dir = os.path.join(work, "checkpoint")
  converter.write_tf2_checkpoint(model, ckpt_dir)
  with open(os.path.join(ckpt_dir, "bert_config.json"), "w") as f:
    f.write(config.to_json_string())
  shutil.copyfile(vocab.path, os.path.join(ckpt_dir, "vocab.txt"))

  probes = verify.probe_batch(config, vocab.special_ids)
  log("Computing reference outputs of the converted model on the probe batches ...")
  reference = [_source_outputs(model, batch) for batch in probes]

  log("Saving encoder/ ...")
  obj, signatures = encoder_lib.build_encoder_module(
      model, vocab_file=vocab.path, do_lower_case=do_lower_case)
  encoder_lib.save_encoder(obj, signatures, os.path.join(work, "encoder"))
  log("Verifying encoder/ reloaded from disk ...")
  parity = _verify_encoder(os.path.join(work, "encoder"), probes, reference,
                           with_mlm=model.masked_lm is not None)
  log("Waiting for preprocessor/ (saved, reloaded, checked against FullTokenizer) ...")
  preprocessor_check = worker.result()
  serving_check = _export_text_serving(work, log) if with_text_signature else None
  archives = _write_archives(work, log) if archive else None
  counts = {"encoder": int(sum(np.prod(v.shape) for v in model.encoder.variables))}
  if model.masked_lm is not None:
    enc_ids = {id(v) for v in model.encoder.variables}
    counts["mlm_head"] = int(sum(np.prod(v.shape) for v in model.masked_lm.variables
                                 if id(v) not in enc_ids))
  else:
    counts["mlm_head"] = 0
  source = {"checkpoint": os.path.abspath(prefix), "format": report.source_format,
            "checkpoint_sha256": converter.checkpoint_files_sha256(prefix),
            "bert_config_file": os.path.abspath(bert_config_file),
            "vocab_file": os.path.abspath(vocab.path), "demo": demo,
            "has_squad_head": report.has_squad_head}
  conversion = {"source_variables": report.num_source_variables,
                "mapped": len(report.mapped),
                "ignored": [{"name": n, "reason": r} for n, r in report.ignored],
                "synthesized": [{"target": t, "reason": r} for t, r in report.synthesized]}
  manifest = manifest_lib.build_manifest(
      source=source, config=config, do_lower_case=do_lower_case, casing_reason=casing_reason,
      vocab=vocab, parameter_counts=counts, seq_length=seq_length, parity=parity,
      trained=trained, conversion=conversion, preprocessor_check=preprocessor_check,
      serving=serving_check, archives=archives)
  worst = max(v["max_rel"] for v in parity["outputs"].values())
  log(f"Verified: {len(parity['outputs'])} outputs, largest relative difference {worst:.2e} "
      f"(tolerance {parity['tolerance']:g}); tokenizer probe "
      f"{preprocessor_check['identical']}/{preprocessor_check['sentences']} identical")
  return manifest


def _export_text_serving(work, log) -> dict:
  """Writes and checks `serving/` (raw text -> pooled_output) from the saved parts."""
  from hub_export import serving  # pylint: disable=g-import-not-at-top  (imports tensorflow_text)
  parts = dict(preprocessor_dir=os.path.join(work, "preprocessor"),
               encoder_dir=os.path.join(work, "encoder"))
  log("Saving serving/ (preprocessor + encoder, raw text in) ...")
  serving.save_text_serving(os.path.join(work, "serving"), **parts)
  log("Verifying serving/ reloaded from disk against preprocessor/ + encoder/ ...")
  try:
    return serving.verify_text_serving(
        os.path.join(work, "serving"), sentences=PROBE_SENTENCES,
        pairs=(PROBE_SENTENCES, PROBE_SENTENCES[::-1]), **parts)
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


def _source_outputs(model, batch) -> dict:
  inputs = {k: tf.constant(batch[k]) for k in encoder_lib.ENCODER_INPUTS}
  out = model.encoder(inputs, training=False)
  result = {"sequence_output": out["sequence_output"].numpy(),
            "pooled_output": out["pooled_output"].numpy(),
            "encoder_outputs": [t.numpy() for t in out["encoder_outputs"][1:]]}
  if model.masked_lm is not None:
    result["mlm_logits"] = model.masked_lm(
        out["sequence_output"], tf.constant(batch["masked_lm_positions"])).numpy()
  return result


def _verify_encoder(path, probes, reference, *, with_mlm) -> dict:
  loaded = tf.saved_model.load(path)
  figures_all, failures_all = {}, []
  for batch, ref in zip(probes, reference):
    inputs = {k: batch[k] for k in encoder_lib.ENCODER_INPUTS}
    if with_mlm:
      got = loaded.mlm(dict(inputs, masked_lm_positions=batch["masked_lm_positions"]),
                       training=False)
    else:
      got = loaded(inputs, training=False)
    actual = {k: (v.numpy() if k != "encoder_outputs" else [t.numpy() for t in v])
              for k, v in got.items()}
    figures, failures = verify.compare_encoder_outputs(actual, ref)
    failures_all += [f"[B={batch['input_word_ids'].shape[0]}, "
                     f"S={batch['input_word_ids'].shape[1]}] {m}" for m in failures]
    for name, fig in figures.items():  # Keep the worst figure per output over probes.
      if name not in figures_all or fig.get("max_rel", 0) > figures_all[name].get("max_rel", 0):
        figures_all[name] = fig
  # The serving signature wraps the same function; check it on the short probe.
  batch, ref = probes[-1], reference[-1]
  signature = loaded.signatures["serving_default"](
      **{k: tf.constant(batch[k]) for k in encoder_lib.ENCODER_INPUTS})
  d = verify.difference(signature["pooled_output"].numpy(), ref["pooled_output"])
  if d.max_rel > verify.ENCODER_TOLERANCE:
    failures_all.append(f"serving_default pooled_output: max relative {d.max_rel:.3g}")
  if failures_all:
    raise ExportError("the reloaded encoder does not match the converted model: " +
                      "; ".join(failures_all[:10]))
  shapes = [list(b["input_word_ids"].shape) for b in probes]
  return {"tolerance": verify.ENCODER_TOLERANCE, "relative_to": "max|reference output|",
          "probe_shapes": shapes, "outputs": figures_all}


def _verify_preprocessor(path, vocab_path, do_lower_case, seq_length) -> dict:
  import tensorflow_text  # noqa: F401  # pylint: disable=g-import-not-at-top,unused-import  (registers the ops)
  from official.nlp.tools import tokenization  # pylint: disable=g-import-not-at-top
  loaded = tf.saved_model.load(path)
  truth = tokenization.FullTokenizer(vocab_path, do_lower_case=do_lower_case)
  # Model Garden's copy allows 400 characters per word; original BERT (and MobileBERT's
  # tokenization.py) allows 200.
  truth.wordpiece_tokenizer.max_input_chars_per_word = tokenizer_lib.MAX_INPUT_CHARS_PER_WORD
  out = loaded(tf.constant(PROBE_SENTENCES))
  ids = out["input_word_ids"].numpy()
  if ids.shape != (len(PROBE_SENTENCES), seq_length):
    raise ExportError(f"the reloaded preprocessor returned shape {ids.shape}, expected "
                      f"{(len(PROBE_SENTENCES), seq_length)}")
  vocab = truth.vocab
  identical, mismatches = 0, []
  for row, sentence in enumerate(PROBE_SENTENCES):
    tokens = truth.convert_tokens_to_ids(truth.tokenize(sentence))[:seq_length - 2]
    want = [vocab["[CLS]"]] + tokens + [vocab["[SEP]"]]
    got = ids[row][:int(out["input_mask"].numpy()[row].sum())].tolist()
    if got == want:
      identical += 1
    else:
      mismatches.append(sentence)
  if mismatches:
    raise ExportError(f"the reloaded preprocessor tokenizes {len(mismatches)} probe "
                      f"sentence(s) differently from the original BERT FullTokenizer: "
                      f"{mismatches[:3]}")
  return {"sentences": len(PROBE_SENTENCES), "identical": identical,
          "reference": "official.nlp.tools.tokenization.FullTokenizer"}


def _publish(work: str, export_dir: str, overwrite: bool) -> None:
  """Moves the verified bundle into place; an old bundle is replaced only now."""
  if not os.path.lexists(export_dir):
    os.rename(work, export_dir)
    return
  _check_destination(export_dir, overwrite)  # It may have appeared meanwhile.
  backup = tempfile.mkdtemp(dir=os.path.dirname(export_dir),
                            prefix=f".{os.path.basename(export_dir)}.old-")
  os.rmdir(backup)
  os.rename(export_dir, backup)
  try:
    os.rename(work, export_dir)
  except BaseException:
    os.rename(backup, export_dir)
    raise
  shutil.rmtree(backup, ignore_errors=True)


def loading_snippet(export_dir: str) -> str:
  """The two-line loading snippet printed at the end of an export."""
  return (f"import tensorflow_hub as hub, tensorflow_text  # noqa\n"
          f"encoder = hub.KerasLayer({os.path.join(export_dir, 'encoder')!r}, trainable=True); "
          f"preprocessor = hub.KerasLayer({os.path.join(export_dir, 'preprocessor')!r})")


def print_error(e: BaseException) -> None:
  """One clear line on stderr for an export failure."""
  print(f"export failed: {e}", file=sys.stderr)
