"""Checks a SQuAD .tflite of a bundle with the official TFLite Task Library (tflite-support).

Runs OUTSIDE this project's environment: tflite-support 0.4.4 pins protobuf < 4, which
TensorFlow 2.20 cannot share, and its native modules need libusb-1.0, which the pip
package `libusb-package` provides. This script imports neither TensorFlow nor this
repository; set up a separate virtual environment once:

  python -m venv /tmp/tflite_support_venv
  /tmp/tflite_support_venv/bin/pip install tflite-support==0.4.4 libusb-package
  /tmp/tflite_support_venv/bin/python tools/task_library_check.py \
      --model=BUNDLE/squad/mobilebert_float_384.tflite \
      --vocab_file=BUNDLE/preprocessor/assets/vocab.txt

It checks, with tflite-support's own code (`tflite_support.metadata`, the C++
`GetMinimumMetadataParserVersion`, `tflite_support.task.text.BertQuestionAnswerer`):
  1. the packed associated files are exactly ["vocab.txt"], byte-equal to --vocab_file;
  2. the metadata names the inputs ids, mask, segment_ids and the outputs end_logits,
     start_logits, with one BertTokenizerOptions input process unit over vocab.txt;
  3. the model's min_parser_version equals what tflite-support computes for the buffer;
  4. `BertQuestionAnswerer.create_from_file` loads the model and `answer` runs on a
     question/context pair (a model with an untrained head may return no answer).
It prints each result and exits 1 if any check fails (2 on a setup problem).
"""

import argparse
import ctypes
import json
import sys

DEFAULT_CONTEXT = (
    "Super Bowl 50 was an American football game to determine the champion of the "
    "National Football League (NFL) for the 2015 season. The American Football "
    "Conference (AFC) champion Denver Broncos defeated the National Football Conference "
    "(NFC) champion Carolina Panthers 24-10 to earn their third Super Bowl title.")
DEFAULT_QUESTION = "Which NFL team won Super Bowl 50?"
INPUT_NAMES = ["ids", "mask", "segment_ids"]
OUTPUT_NAMES = ["end_logits", "start_logits"]


def _import_tflite_support():
  """Loads libusb (from `libusb-package`) globally, then tflite-support."""
  try:
    import libusb_package  # pylint: disable=g-import-not-at-top
    ctypes.CDLL(str(libusb_package.get_library_path()), mode=ctypes.RTLD_GLOBAL)
    from tflite_support import metadata  # pylint: disable=g-import-not-at-top
    from tflite_support.task.text import BertQuestionAnswerer  # pylint: disable=g-import-not-at-top
    from tensorflow_lite_support.metadata.cc.python import _pywrap_metadata_version  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    sys.exit(f"setup: {e}. Run this script with the venv's python after "
             "`pip install tflite-support==0.4.4 libusb-package` (module docstring).")
  return metadata, BertQuestionAnswerer, _pywrap_metadata_version


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model", required=True, help="a squad/*.tflite of a bundle")
  parser.add_argument("--vocab_file", required=True,
                      help="the bundle's vocab (preprocessor/assets/vocab.txt)")
  parser.add_argument("--question", default=DEFAULT_QUESTION)
  parser.add_argument("--context", default=DEFAULT_CONTEXT)
  args = parser.parse_args(argv)
  metadata, qa_cls, version_lib = _import_tflite_support()
  failures = []

  def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
      failures.append(what)

  try:
    disp = metadata.MetadataDisplayer.with_model_file(args.model)
  except ValueError as e:
    print(f"FAIL MetadataDisplayer: {e}")
    return 1
  packed = disp.get_packed_associated_file_list()
  check(packed == ["vocab.txt"], f"packed files {packed} == ['vocab.txt']")
  if "vocab.txt" in packed:
    with open(args.vocab_file, "rb") as f:
      check(disp.get_associated_file_buffer("vocab.txt") == f.read(),
            f"packed vocab.txt byte-equal to {args.vocab_file}")
  meta = json.loads(disp.get_metadata_json())
  sg = meta["subgraph_metadata"][0]
  ins = [t["name"] for t in sg["input_tensor_metadata"]]
  outs = [t["name"] for t in sg["output_tensor_metadata"]]
  check(ins == INPUT_NAMES, f"input tensor metadata {ins} == {INPUT_NAMES}")
  check(outs == OUTPUT_NAMES, f"output tensor metadata {outs} == {OUTPUT_NAMES}")
  units = sg.get("input_process_units", [])
  tokenizer = [u for u in units if u.get("options_type") == "BertTokenizerOptions"]
  files = [f.get("name") for u in tokenizer
           for f in u.get("options", {}).get("vocab_file", [])]
  check(len(units) == 1 and files == ["vocab.txt"],
        f"one BertTokenizerOptions input process unit over vocab.txt (got {units})")
  expected = version_lib.GetMinimumMetadataParserVersion(
      bytes(disp.get_metadata_buffer()))
  check(meta.get("min_parser_version") == expected,
        f"min_parser_version {meta.get('min_parser_version')} == tflite-support's "
        f"{expected}")
  try:
    answers = qa_cls.create_from_file(args.model).answer(args.context, args.question)
    spans = [(a.text, round(a.pos.logit, 3)) for a in answers.answers]
    check(True, f"BertQuestionAnswerer loaded the model and answered: {spans[:5]}")
  except (RuntimeError, ValueError) as e:
    check(False, f"BertQuestionAnswerer: {e}")
  print(f"{len(failures)} check(s) failed" if failures else "all checks passed")
  return 1 if failures else 0


if __name__ == "__main__":
  sys.exit(main())
