"""Fixtures of the fine-tuning tests: a tiny multilingual-vocab bundle and one trained run.

The bundle: the original config's structure at toy size (2 blocks, hidden 64, no_norm),
the real multilingual cased vocab (119,547), seeded random weights, dropout 0 in the
encoder so that a short run can memorize 64 pairs. Both fixtures are built once for the
tests of this folder.
"""

import os

import pytest
import tensorflow as tf

from hub_export import pipeline
from hub_export.finetune import config
from hub_export.finetune import data
from hub_export.finetune import input_pipeline
from hub_export.finetune import trainer
from tests import testutil

XNLI_DIR = os.path.join(testutil.SHARED_DATA, "xnli", "xtreme_dev")
EN_DEV = os.path.join(XNLI_DIR, "dev-en.tsv")
SEQ_LENGTH = 32


def count_lines(path):
  with open(path, "rb") as f:
    return f.read().count(b"\n")


def train_pairs():
  """The 64 English pairs the `trained` run fits."""
  return data.read_nli_file(EN_DEV, limit=64)


def in_memory_probabilities(model, bundle, premises, hypotheses):
  """The in-memory classifier's probabilities, float32 [N, 3], dropout off."""
  pre = input_pipeline.load_preprocessor(bundle)
  features = input_pipeline.pack_pairs(pre, tf.constant(premises), tf.constant(hypotheses),
                                       SEQ_LENGTH)
  return tf.nn.softmax(model(features, training=False)).numpy()


@pytest.fixture(scope="package")
def bundle(tmp_path_factory):
  """The bundle's directory (written once per run: `testutil.build_once`)."""

  def build(root):
    source = str(root / "source_ckpt")
    testutil.write_checkpoint(
        source, testutil.tiny_config(vocab_size=119547, hidden_dropout_prob=0.0,
                                     attention_probs_dropout_prob=0.0),
        vocab_file=testutil.MULTI_CASED_VOCAB, seed=11)
    result = pipeline.export_bundle(
        str(root / "bundle"), checkpoint=source,
        bert_config_file=os.path.join(source, "bert_config.json"),
        vocab_file=os.path.join(source, "vocab.txt"), log=lambda _: None)
    return dict(dir=result.export_dir)

  return testutil.build_once(tmp_path_factory, "finetune_bundle", build)["dir"]


@pytest.fixture(scope="package")
def trained(bundle, tmp_path_factory):
  """200 full-batch steps on the first 64 English pairs; eval on all 15 languages; export."""
  root = tmp_path_factory.mktemp("finetune_run")
  steps = []
  lines = []
  cfg = config.FinetuneConfig(
      bundle_dir=bundle, model_dir=str(root / "model"), train_file=EN_DEV,
      max_train_examples=64, eval_dir=XNLI_DIR, seq_length=SEQ_LENGTH, batch_size=64,
      eval_batch_size=256, learning_rate=5e-3, num_train_steps=200, dropout_rate=0.0,
      log_every=10, checkpoint_every=100, export_dir=str(root / "classifier"))
  result = trainer.run(cfg, log=lines.append,
                       on_step=lambda step, ids: steps.append((step, ids.tolist())))
  return dict(cfg=cfg, result=result, steps=steps, lines=lines, root=root)
