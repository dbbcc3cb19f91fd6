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
average is printed). Not a test: numbers depend on the machine.

Usage: python benchmarks/preprocessor_throughput.py [--saved_model DIR]
"""

import argparse
import os
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


def measure(fn, texts, repeats=1):
  """Sentences per wall-clock second and per CPU second of fn over texts.

  In batches, after a warm-up call; the best of `repeats` passes for each.
  CPU seconds are this process's (all threads, `time.process_time`), so the
  second figure is the work done, much less sensitive to other processes
  competing for the cores than the wall-clock one.
  """
  bs = batches(texts)
  fn(bs[0])
  best_wall = best_cpu = 0.0
  for _ in range(repeats):
    start, cpu = time.perf_counter(), time.process_time()
    for b in bs:
      fn(b)
    best_wall = max(best_wall, len(texts) / (time.perf_counter() - start))
    best_cpu = max(best_cpu, len(texts) / (time.process_time() - cpu))
  return best_wall, best_cpu


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--saved_model", default=None)
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
  results = []
  load_before = os.getloadavg()
  for name, fn, ids_fn, data in rows:
    got = []
    for b in batches(sample):
      got += ids_fn(b)
    same = sum(g == r for g, r in zip(got, reference))
    wall, cpu = measure(fn, data,
                        repeats=2 if len(data) > PYTHON_SUBSET else 1)
    results.append((name, wall, cpu, same))
  load_after = os.getloadavg()
  rust = {n: (w, c) for n, w, c, _ in results if "Rust" in n}
  rust_wp = rust[[n for n in rust if "WordPiece" in n][0]]
  rust_hf = rust[[n for n in rust if "Fast" in n][0]]
  print(f"XNLI dev, 15 languages, {len(texts)} sentences, batch {BATCH}, "
        f"multi_cased vocab, TF {tf.__version__}, tf-text "
        f"{tf_text.__version__}, {os.cpu_count()} CPUs, load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after")
  print(f"{'tokenizer':58s} {'sent/s':>8s} {'sent/CPU-s':>10s} "
        f"{'exact ids':>13s} {'vs WordPiece':>13s} {'vs Fast':>11s}")
  print(f"{'':58s} {'(wall)':>8s} {'':>10s} {'':>13s} "
        f"{'wall / CPU':>13s} {'wall / CPU':>11s}")
  for name, wall, cpu, same in results:
    print(f"{name:58s} {wall:8.0f} {cpu:10.0f} {same:6d}/{len(sample):<6d} "
          f"{wall / rust_wp[0]:6.2f} {cpu / rust_wp[1]:6.2f} "
          f"{wall / rust_hf[0]:5.2f} {cpu / rust_hf[1]:5.2f}")
  if tmp:
    import shutil  # pylint: disable=g-import-not-at-top
    shutil.rmtree(tmp)


if __name__ == "__main__":
  main()
