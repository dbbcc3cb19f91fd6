"""How far the two attention maskings are apart, as a function of the padding fraction.

`original` (google-research `mobilebert/modeling.py` `attention_layer`: masked scores set
to -6, softmax over every key) and `model_garden` (zero weight on padded keys) compute
the same function on unpadded inputs and different ones on padded inputs. This script
loads one checkpoint in both modes and prints, for rows of `--seq_length` tokens of which
a given fraction is padding, the max |difference| of `sequence_output` at the REAL
positions, absolute and relative to max |model_garden output|, and the same for
`pooled_output`. Not a test: a table for the fidelity notes.

Default: the seeded, untrained full-size demo checkpoint (`--demo_seed`); trained
weights give other figures. `--checkpoint_dir` takes a directory as Google ships one.

Usage: PYTHONPATH=. python benchmarks/attention_mask_difference.py [--seq_length 128]
           [--checkpoint_dir DIR] [--rows 4]
"""

import argparse
import os
import tempfile

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402  pylint: disable=g-import-not-at-top

from checkpoints import converter  # noqa: E402  pylint: disable=g-import-not-at-top
from checkpoints import tf1_writer  # noqa: E402  pylint: disable=g-import-not-at-top
from checkpoints.config import MobileBertConfig  # noqa: E402  pylint: disable=g-import-not-at-top

FRACTIONS = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.97)


def _batch(rng, vocab_size, seq_length, fraction, rows):
  real = max(2, int(round(seq_length * (1 - fraction))))
  ids = np.zeros((rows, seq_length), np.int32)
  ids[:, :real] = rng.integers(1000, vocab_size, (rows, real))
  ids[:, 0], ids[:, real - 1] = 101, 102
  mask = np.zeros_like(ids)
  mask[:, :real] = 1
  return dict(input_word_ids=ids, input_mask=mask, input_type_ids=np.zeros_like(ids)), real


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--checkpoint_dir", default=None)
  parser.add_argument("--demo_seed", type=int, default=0)
  parser.add_argument("--seq_length", type=int, default=128)
  parser.add_argument("--rows", type=int, default=4)
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as scratch:
    source = args.checkpoint_dir
    if source is None:
      tf1_writer.write_demo_checkpoint_dir(scratch, "en_uncased", seed=args.demo_seed)
      source = scratch
    config = MobileBertConfig.from_json_file(os.path.join(source, "bert_config.json"))
    prefix = converter.find_checkpoint(source)
    models = {mode: converter.load_model(prefix, config, with_mlm=False,
                                         attention_mask=mode)[0]
              for mode in ("original", "model_garden")}
  rng = np.random.default_rng(0)
  what = (f"demo (untrained, seed {args.demo_seed})" if args.checkpoint_dir is None
          else args.checkpoint_dir)
  print(f"checkpoint: {what}; {config.num_hidden_layers} blocks; seq_length "
        f"{args.seq_length}; {args.rows} rows per fraction")
  print("| padding fraction | real tokens | sequence_output max abs | rel. | "
        "pooled_output max abs | rel. |")
  print("|---|---|---|---|---|---|")
  for fraction in FRACTIONS:
    batch, real = _batch(rng, config.vocab_size, args.seq_length, fraction, args.rows)
    out = {m: model.encoder({k: tf.constant(v) for k, v in batch.items()}, training=False)
           for m, model in models.items()}
    seq = {m: o["sequence_output"].numpy()[:, :real] for m, o in out.items()}
    pooled = {m: o["pooled_output"].numpy() for m, o in out.items()}
    d_seq = float(np.abs(seq["original"] - seq["model_garden"]).max())
    d_pool = float(np.abs(pooled["original"] - pooled["model_garden"]).max())
    print(f"| {fraction:.2f} | {real} | {d_seq:.3e} | "
          f"{d_seq / np.abs(seq['model_garden']).max():.2e} | {d_pool:.3e} | "
          f"{d_pool / max(np.abs(pooled['model_garden']).max(), 1e-30):.2e} |")


if __name__ == "__main__":
  main()
