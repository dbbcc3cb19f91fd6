"""Reads an original TF1 (or this tool's TF2) MobileBERT checkpoint into Model Garden's
model, strictly, and writes the TF2 object-based checkpoint of the bundle.

TF1 checkpoints are name-based (`bert/encoder/layer_0/...`) and mapped by
`checkpoints.name_map`. TF2 checkpoints are those this tool writes (`checkpoint/` of a
bundle): `tf.train.Checkpoint(encoder=..., masked_lm=..., [squad=...])`, restored with
`assert_consumed()` so that nothing is left over on either side.
"""

import dataclasses
import glob
import hashlib
import os
import re

import numpy as np
import tensorflow as tf

from checkpoints import model as model_lib
from checkpoints import name_map
from checkpoints.config import MobileBertConfig

TF2_PREFIX_NAME = "mobilebert"
_OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_SHARD_RE = re.compile(r"\.data-(\d{5})-of-(\d{5})$")


@dataclasses.dataclass
class ConversionReport:
  """What a conversion did, for the manifest and the console.

  Attributes:
    source_format: "tf1" (name-based) or "tf2" (this tool's object-based checkpoint).
    prefix: checkpoint path prefix read.
    num_source_variables: variables in the checkpoint (object-graph entry excluded).
    mapped: (source, target, transform) triples (TF1 only).
    ignored: (source, reason) pairs (TF1 only).
    synthesized: (target, reason) pairs (TF1 only).
    has_squad_head: the checkpoint has a `run_squad.py` head (`cls/squad/*`).
  """
  source_format: str
  prefix: str
  num_source_variables: int
  mapped: list
  ignored: list
  synthesized: list
  has_squad_head: bool


def find_checkpoint(path: str) -> str:
  """Resolves a checkpoint prefix from a prefix, an `.index`/`.data-*` file or a directory.

  A directory must hold exactly one checkpoint (`*.index`), whatever its prefix.

  Raises:
    FileNotFoundError: nothing there, or no `.index` in the directory.
    ValueError: several checkpoints in the directory (all listed), or data shards
      missing (`prefix.data-0000i-of-0000N`, each missing one named).
  """
  if os.path.isdir(path):
    indexes = sorted(glob.glob(os.path.join(glob.escape(path), "*.index")))
    if not indexes:
      raise FileNotFoundError(
          f"no TF checkpoint (*.index) in directory {path!r}; pass --checkpoint=PREFIX")
    if len(indexes) > 1:
      raise ValueError(f"several checkpoints in {path!r}: "
                       f"{[os.path.basename(i)[:-6] for i in indexes]}; pick one with "
                       "--checkpoint=PREFIX")
    prefix = indexes[0][:-len(".index")]
  else:
    prefix = path
    for suffix in (".index", ".meta"):
      if prefix.endswith(suffix):
        prefix = prefix[:-len(suffix)]
    prefix = _SHARD_RE.sub("", prefix)
  if not os.path.isfile(prefix + ".index"):
    raise FileNotFoundError(f"checkpoint index {prefix + '.index'!r} not found; pass the "
                            "checkpoint prefix (e.g. .../mobilebert_variables.ckpt)")
  shards = glob.glob(glob.escape(prefix) + ".data-*-of-*")
  if not shards:
    raise ValueError(f"checkpoint {prefix!r} has an index but no data shard "
                     f"({os.path.basename(prefix)}.data-00000-of-0000N); copy the whole "
                     "checkpoint (index and all data files)")
  totals = {int(_SHARD_RE.search(s).group(2)) for s in shards if _SHARD_RE.search(s)}
  if len(totals) != 1:
    raise ValueError(f"checkpoint {prefix!r} has data shards of different sets: {shards}")
  total = totals.pop()
  missing = [f"{prefix}.data-{i:05d}-of-{total:05d}" for i in range(total)
             if not os.path.isfile(f"{prefix}.data-{i:05d}-of-{total:05d}")]
  if missing:
    raise ValueError(f"checkpoint {prefix!r} is incomplete: missing {missing}; copy all "
                     f"{total} data shard(s)")
  return prefix


def checkpoint_files_sha256(prefix: str) -> dict:
  """basename -> sha256 hex of the checkpoint's index and data files (for provenance)."""
  out = {}
  for f in sorted([prefix + ".index"] + glob.glob(glob.escape(prefix) + ".data-*")):
    h = hashlib.sha256()
    with open(f, "rb") as fh:
      for chunk in iter(lambda: fh.read(1 << 22), b""):
        h.update(chunk)
    out[os.path.basename(f)] = h.hexdigest()
  return out


def _open(prefix: str):
  try:
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
  except (tf.errors.OpError, ValueError) as e:
    raise ValueError(f"checkpoint {prefix!r} cannot be read ({_first_line(e)}); it is "
                     "corrupt or truncated: copy it again") from None
  return reader, shapes


def _first_line(e: Exception) -> str:
  return (str(e).strip().splitlines() or [type(e).__name__])[0][:300]


def is_tf2_checkpoint(prefix: str) -> bool:
  """True for an object-based (TF2) checkpoint, False for a name-based (TF1) one."""
  _, shapes = _open(prefix)
  return _OBJECT_GRAPH_KEY in shapes


def load_model(prefix: str, config: MobileBertConfig, *, with_mlm: bool = True,
               attention_mask: str = model_lib.DEFAULT_ATTENTION_MASK) -> tuple:
  """Builds Model Garden's MobileBERT from `config` and fills it from a checkpoint.

  Args:
    prefix: checkpoint prefix (see `find_checkpoint`); TF1 or this tool's TF2 format.
    config: the config of that checkpoint.
    with_mlm: also build and fill the MLM head (the checkpoint must have one).
    attention_mask: the encoder's masking of padded keys (`model.ATTENTION_MASKS`).

  Returns:
    (model, report): a `checkpoints.model.MobileBertModel` and a `ConversionReport`.

  Raises:
    ValueError: unreadable/corrupt checkpoint; any unmapped source variable, unfilled
      target or shape mismatch (all listed, see `name_map.plan_conversion`); a TF2
      checkpoint that does not restore every object exactly.
  """
  reader, shapes = _open(prefix)
  if _OBJECT_GRAPH_KEY in shapes:
    return _load_tf2(prefix, shapes, config, with_mlm=with_mlm,
                     attention_mask=attention_mask)
  has_squad = any(k.startswith("cls/squad/") for k in shapes)
  model = model_lib.build_model(config, with_mlm=with_mlm, with_squad=has_squad,
                                attention_mask=attention_mask)
  targets = model_lib.target_variables(model)

  def read(name):
    try:
      value = reader.get_tensor(name)
    except (tf.errors.OpError, IndexError, ValueError) as e:  # IndexError: short read
      raise ValueError(f"checkpoint {prefix!r}: variable {name} cannot be read "
                       f"({_first_line(e)}); the data file is corrupt or truncated") from None
    if not np.issubdtype(value.dtype, np.floating):
      raise ValueError(f"checkpoint {prefix!r}: {name} has dtype {value.dtype}, expected "
                       "a float weight")
    return value.astype(np.float32)

  plan = name_map.plan_conversion(
      {k: tuple(v) for k, v in shapes.items()}, read,
      {k: tuple(v.shape) for k, v in targets.items()}, config, with_mlm=with_mlm)
  for target, value in plan.values.items():
    targets[target].assign(value)
  report = ConversionReport(
      source_format="tf1", prefix=prefix, num_source_variables=len(shapes),
      mapped=plan.mapped, ignored=plan.ignored, synthesized=plan.synthesized,
      has_squad_head=has_squad)
  return model, report


def _load_tf2(prefix, shapes, config, *, with_mlm, attention_mask):
  roots = {k.split("/", 1)[0] for k in shapes if k != _OBJECT_GRAPH_KEY}
  has_squad, has_mlm = "squad" in roots, "masked_lm" in roots
  if with_mlm and not has_mlm:
    raise ValueError(f"TF2 checkpoint {prefix!r} has no masked_lm; export without the MLM "
                     "head (--nowith_mlm)")
  # Restore everything the checkpoint holds, strictly both ways, then drop what the
  # export does not want: no partial restore is ever accepted.
  model = model_lib.build_model(config, with_mlm=has_mlm, with_squad=has_squad,
                                attention_mask=attention_mask)
  status = tf.train.Checkpoint(**model.checkpoint_items()).restore(prefix)
  try:
    status.assert_consumed()
  except AssertionError as e:
    raise ValueError(f"TF2 checkpoint {prefix!r} does not match bert_config.json: "
                     f"{_first_line(e)}") from None
  if not with_mlm:
    model.masked_lm = None
  report = ConversionReport(
      source_format="tf2", prefix=prefix,
      num_source_variables=len(shapes) - 1, mapped=[], ignored=[], synthesized=[],
      has_squad_head=has_squad)
  return model, report


def write_tf2_checkpoint(model: model_lib.MobileBertModel, directory: str) -> str:
  """Writes `tf.train.Checkpoint(**model.checkpoint_items())` to `directory/mobilebert`.

  It restores into tf-models-official's own `BertPretrainerV2` with
  `tf.train.Checkpoint(**pretrainer.checkpoint_items).restore(path)`.

  Returns:
    The checkpoint prefix written.
  """
  os.makedirs(directory, exist_ok=True)
  ckpt = tf.train.Checkpoint(**model.checkpoint_items())
  # `restore()` (unlike `read()`) creates `save_counter` and then expects it in the
  # checkpoint; without it Model Garden's documented
  # `restore(path).assert_existing_objects_matched()` fails.
  _ = ckpt.save_counter
  return ckpt.write(os.path.join(directory, TF2_PREFIX_NAME))
