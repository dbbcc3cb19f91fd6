"""The fine-tuned NLI classifier on the phone: `.tflite` files that take the two strings.

Modules:
  weights.py   the fine-tuned classifier's weights under canonical names (`NliWeights`)
  forward.py   `NliForward`: the classifier written out op by op for the converters
  convert.py   the float and int8 `.tflite` conversions (tokenizer, packing, network),
               one `classify_<S>` signature per packed length and `tokenize`
  runner.py    running a file in LiteRT's interpreter (`NliTfliteClassifier`), choosing
               the signature per pair
  export.py    `write_verified`: converts, writes and verifies both files beside the
               SavedModel classifier
  card.py      the files' model-card section (`on_device.md`, templates/)
  evaluate.py  `python -m hub_export.finetune.mobile.evaluate`: every variant on XNLI
"""
