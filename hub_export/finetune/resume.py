"""Resuming a fine-tuning run: the newest complete checkpoint, and the same data order.

TF's `CheckpointManager` names a checkpoint in the `checkpoint` state file (written
atomically, write-then-rename) only after its `.index` and `.data-*` files are complete;
a save killed midway leaves `ckpt-N_temp/` or a partial `ckpt-N.index` that the state
file does not name. The state file may still name checkpoints whose files a later save
was deleting, or that storage damaged, so `restore_latest_complete` reads every tensor of
a candidate (which checks its CRC32C) and skips an incomplete one for the previous one,
with a logged line, never silently. `run_config.json` records the settings that decide
the data order; `check_resume` refuses to resume with others.
"""

import json
import os
import tempfile
from typing import Callable, Optional

import tensorflow as tf

from hub_export.finetune.config import FinetuneError

RUN_CONFIG = "run_config.json"
# The run_config.json keys that decide which examples each step reads.
RESUME_KEYS = ("train_data_sha256", "train_format", "num_train_examples", "seed",
               "global_batch_size", "num_train_steps", "seq_length", "order_sha256")


def check_resume(path: str, run_config: dict) -> None:
  """Raises FinetuneError if the saved run_config.json at `path` orders data differently."""
  with open(path) as f:
    saved = json.load(f)
  clashes = [f"{k}: saved {saved.get(k)!r}, now {run_config[k]!r}"
             for k in RESUME_KEYS if saved.get(k) != run_config[k]]
  if clashes:
    raise FinetuneError(
        f"cannot resume from {os.path.dirname(path)}: settings that decide the data order "
        f"changed ({'; '.join(clashes)}); resume with the original settings or pass a new "
        "--model_dir")


def write_json_atomically(path: str, value: dict) -> None:
  """Writes `value` as JSON to `path` via a temporary file and a rename (never partial)."""
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.")
  try:
    with os.fdopen(fd, "w") as f:
      json.dump(value, f, indent=2)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def checkpoint_problem(prefix: str) -> Optional[str]:
  """Why the tf.train checkpoint `prefix` cannot be restored, or None if it is complete.

  Complete: `prefix.index` opens as a checkpoint index, the data shards it names exist,
  and every tensor reads back (the reader checks each tensor's CRC32C and size).

  Args:
    prefix: a checkpoint prefix such as `model_dir/ckpt-6`.

  Returns:
    None, or a one-line reason (the missing file or the reader's error).
  """
  if not os.path.isfile(prefix + ".index"):
    return f"{prefix}.index is missing"
  try:
    reader = tf.train.load_checkpoint(prefix)
    for name in sorted(reader.get_variable_to_shape_map()):
      reader.get_tensor(name)
  # The reader raises OpErrors, and IndexError/RuntimeError/ValueError from its C++ status.
  except (tf.errors.OpError, OSError, ValueError, IndexError, RuntimeError) as e:
    return f"{prefix} does not read back ({type(e).__name__}: {str(e).splitlines()[0]})"
  return None


def restore_latest_complete(checkpoint: tf.train.Checkpoint, model_dir: str,
                            log: Callable[[str], None]) -> Optional[str]:
  """Restores the newest complete checkpoint that `model_dir`'s state file names.

  Candidates are the state file's `all_model_checkpoint_paths`, newest first; each
  incomplete one (`checkpoint_problem`) is skipped with a logged line. A state file that
  names checkpoints none of which is complete is logged too, and the run starts afresh.

  Args:
    checkpoint: the `tf.train.Checkpoint` of the model and optimizer.
    model_dir: the directory of the chief's checkpoints and `checkpoint` state file.
    log: receives the skip lines.

  Returns:
    The restored prefix, or None (no checkpoint; nothing restored).

  Raises:
    AssertionError: the checkpoint does not match the model (another model's directory).
  """
  state = tf.train.get_checkpoint_state(model_dir)
  if state is None:
    return None
  candidates = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
  if state.model_checkpoint_path and candidates[-1] != state.model_checkpoint_path:
    candidates.append(state.model_checkpoint_path)
  for prefix in reversed(candidates):
    if not os.path.isabs(prefix):
      prefix = os.path.join(model_dir, prefix)
    problem = checkpoint_problem(prefix)
    if problem is None:
      checkpoint.restore(prefix).assert_existing_objects_matched()
      return prefix
    log(f"WARNING: skipping checkpoint {prefix}: {problem}; trying the previous one")
  log(f"WARNING: none of the {len(candidates)} checkpoint(s) named in {model_dir}/checkpoint "
      "is complete; training starts from step 0")
  return None
