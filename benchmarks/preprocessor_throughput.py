"""Throughput of BERT preprocessing on XNLI dev text (multilingual cased vocab).

Prints sentences/second at batch 256 for, all in one run:
  * ours: the saved preprocessor (this repo), tokenize + pack (`pre(batch)`);
  * tf-text BertTokenizer as in the published bert_multi_cased_preprocess
    (tf-models `layers.BertTokenizer(lower_case=False)` + `BertPackInputs`);
  * tf-text FastBertTokenizer (+ the same BertPackInputs);
  * HF tokenizers BertWordPieceTokenizer (Rust, encode_batch) and
    transformers BertTokenizerFast (Rust, padding/truncation to 128);
  * pure-Python original BERT FullTokenizer (on a subset, it is slow);
with the fraction of sentences whose token ids equal FullTokenizer's
(max_input_chars_per_word=200) and the throughput ratio to the Rust
tokenizers, per wall-clock second and per CPU second of this process (the
latter is robust to other processes competing for the cores; the load
average is printed).

The tokenizers are measured in interleaved rounds (round r times every
tokenizer once over all the text), so a slow spell of the machine hits all of
them alike. Throughputs are the best round; ratios are the median over rounds
of the ratio within the round. Not a test: numbers depend on the machine.

Usage: python benchmarks/preprocessor_throughput.py [--saved_model DIR]
           [--rounds N]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402
import tensorflow_text as tf_text  # noqa: E402

from official.nlp.modeling import layers  # noqa: E402
from official.nlp.tools import tokenization  # noqa: E402
from preprocessors import export  # noqa: E402
from preprocessors import tokenizer as tokenizer_lib  # noqa: E402
from preprocessors import vocab as vocab_lib  # noqa: E402

# ../shared/data beside the repo.
DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "shared", "data")
VOCAB = os.path.join(DATA, "vocab/bert_multi_cased/vocab.txt")
LANGS = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th",
         "tr", "ur", "vi", "zh")
BATCH = 256
SEQ_LENGTH = 128
PARITY_SAMPLE = 4096
PYTHON_SUBSET = 4096


def load_texts():
  texts = []
  for lang in LANGS:
    with open(os.path.join(DATA, "xnli/xtreme_dev", f"dev-{lang}.tsv"),
              encoding="utf-8", newline="") as f:
      for line in f:
        texts += line.rstrip("\r\n").split("\t")[:2]
  return texts


def batches(texts):
  return [texts[i:i + BATCH] for i in range(0, len(texts), BATCH)]


def measure(fn, texts):
  """Sentences per wall-clock second and per CPU second of one pass.

  One pass of fn over texts in batches. CPU seconds are this process's (all
  threads, `time.process_time`), so the second figure is the work done, much
  less sensitive to other processes competing for the cores than the
  wall-clock one.
  """
  start, cpu = time.perf_counter(), time.process_time()
  for b in batches(texts):
    fn(b)
  return (len(texts) / (time.perf_counter() - start),
          len(texts) / (time.process_time() - cpu))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--saved_model", default=None)
  parser.add_argument("--rounds", type=int, default=3)
  args = parser.parse_args()
  texts = load_texts()
  vocab = vocab_lib.load_vocab(VOCAB)
  ft = tokenization.FullTokenizer(VOCAB, do_lower_case=False)
  ft.wordpiece_tokenizer.max_input_chars_per_word = (
      tokenizer_lib.MAX_INPUT_CHARS_PER_WORD)
  sample = texts[::max(1, len(texts) // PARITY_SAMPLE)][:PARITY_SAMPLE]
  reference = [ft.convert_tokens_to_ids(ft.tokenize(t)) for t in sample]

  tmp = None
  if args.saved_model is None:
    tmp = tempfile.mkdtemp()
    args.saved_model = os.path.join(tmp, "pre")
    export.save_preprocessor(args.saved_model, vocab_file=VOCAB,
                             do_lower_case=False, seq_length=SEQ_LENGTH)
  pre = tf.saved_model.load(args.saved_model)

  def ours_ids(b):
    return [sum(r, []) for r in pre.tokenize(tf.constant(b)).to_list()]

  # Published module configuration (tf-models export_tfhub_lib).
  pub_tok = layers.BertTokenizer(vocab_file=VOCAB, lower_case=False)
  pub_pack = layers.BertPackInputs(
      seq_length=SEQ_LENGTH,
      special_tokens_dict=pub_tok.get_special_tokens_dict())
  pub_fn = tf.function(lambda x: pub_pack(pub_tok(x)))
  fast = tf_text.FastBertTokenizer(vocab=list(vocab.tokens),
                                   token_out_type=tf.int32,
                                   lower_case_nfd_strip_accents=False)
  fast_fn = tf.function(lambda x: pub_pack(fast.tokenize(x)))

  def tf_ids(tok):
    fn = tf.function(lambda x: tok(x).merge_dims(1, -1))
    return lambda b: fn(tf.constant(b)).to_list()

  from tokenizers import BertWordPieceTokenizer  # pylint: disable=g-import-not-at-top
  from transformers import BertTokenizerFast  # pylint: disable=g-import-not-at-top
  wp = BertWordPieceTokenizer(VOCAB, lowercase=False, strip_accents=False,
                              clean_text=True, handle_chinese_chars=True)
  hf = BertTokenizerFast(VOCAB, do_lower_case=False, strip_accents=False,
                         tokenize_chinese_chars=True)

  def wp_ids(b):
    return [e.ids[1:-1] for e in wp.encode_batch(b)]

  def hf_ids(b):
    return [r[1:-1] for r in hf(b, add_special_tokens=True)["input_ids"]]

  rows = [
      ("ours: saved preprocessor pre(batch) (tokenize+pack)",
       lambda b: pre(tf.constant(b)), ours_ids, texts),
      ("tf-text BertTokenizer, published config (+pack)",
       lambda b: pub_fn(tf.constant(b)), tf_ids(pub_tok), texts),
      ("tf-text FastBertTokenizer (+pack)",
       lambda b: fast_fn(tf.constant(b)), tf_ids(fast.tokenize), texts),
      ("HF tokenizers BertWordPieceTokenizer (Rust, encode_batch)",
       wp.encode_batch, wp_ids, texts),
      ("HF transformers BertTokenizerFast (Rust, pad+trunc 128)",
       lambda b: hf(b, padding="max_length", truncation=True,
                    max_length=SEQ_LENGTH), hf_ids, texts),
      ("pure-Python FullTokenizer (subset of %d)" % PYTHON_SUBSET,
       lambda b: [ft.convert_tokens_to_ids(ft.tokenize(t)) for t in b],
       lambda b: [ft.convert_tokens_to_ids(ft.tokenize(t)) for t in b],
       texts[:PYTHON_SUBSET]),
  ]
  same = []
  for name, fn, ids_fn, data in rows:
    got = []
    for b in batches(sample):
      got += ids_fn(b)
    same.append(sum(g == r for g, r in zip(got, reference)))
    fn(batches(data)[0])  # warm-up (tracing, caches).
  load_before = os.getloadavg()
  # rounds[r][i] = (wall, cpu) of row i in round r.
  rounds = [[measure(fn, data) for _, fn, _, data in rows]
            for _ in range(args.rounds)]
  load_after = os.getloadavg()
  wp_row = [i for i, row in enumerate(rows) if "WordPiece" in row[0]][0]
  hf_row = [i for i, row in enumerate(rows) if "Fast (" in row[0]
            or "BertTokenizerFast" in row[0]][0]

  def ratio(i, ref, k):
    return statistics.median(r[i][k] / r[ref][k] for r in rounds)
  print(f"XNLI dev, 15 languages, {len(texts)} sentences, batch {BATCH}, "
        f"multi_cased vocab, TF {tf.__version__}, tf-text "
        f"{tf_text.__version__}, {os.cpu_count()} CPUs, {args.rounds} "
        f"interleaved rounds, load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after")
  print(f"{'tokenizer':58s} {'sent/s':>8s} {'sent/CPU-s':>10s} "
        f"{'exact ids':>13s} {'vs WordPiece':>13s} {'vs Fast':>11s}")
  print(f"{'':58s} {'(wall)':>8s} {'':>10s} {'':>13s} "
        f"{'wall / CPU':>13s} {'wall / CPU':>11s}")
  for i, (name, _, _, _) in enumerate(rows):
    wall = max(r[i][0] for r in rounds)
    cpu = max(r[i][1] for r in rounds)
    print(f"{name:58s} {wall:8.0f} {cpu:10.0f} {same[i]:6d}/{len(sample):<6d} "
          f"{ratio(i, wp_row, 0):6.2f} {ratio(i, wp_row, 1):6.2f} "
          f"{ratio(i, hf_row, 0):5.2f} {ratio(i, hf_row, 1):5.2f}")
  ours_vs_wp = [r[0][0] / r[wp_row][0] for r in rounds]
  print("ours / BertWordPieceTokenizer, wall, per round: " +
        ", ".join(f"{x:.2f}" for x in ours_vs_wp))
  if tmp:
    import shutil  # pylint: disable=g-import-not-at-top
    shutil.rmtree(tmp)


if __name__ == "__main__":
  main()
