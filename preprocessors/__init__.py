"""Text preprocessing for the MobileBERT TF-Hub bundles.

Modules (one concern each):
  vocab           load/validate vocab.txt, infer casing (`load_vocab`,
                  `infer_do_lower_case`).
  unicode_tables  per-code-point tables of the original BERT BasicTokenizer
                  rules, computed from Python's unicodedata.
  utf8            UTF-8 decoding/encoding in ops that have TFLite kernels.
  tokenizer       `ParityBertTokenizer`: FullTokenizer-exact ids and byte
                  offsets in TensorFlow ops.
  packing         round-robin truncation and [CLS]/[SEP] packing;
                  `MAX_SEQ_LENGTH`.
  signatures      the one builder of the text -> encoder-inputs serving
                  functions (`serving_default`, `bert_pack_pair`), shared by
                  the SavedModel, the TFLite model and the text-serving model.
  probes          `PROBE_SENTENCES`, the hard probe set of the export checks.
  export          `build_preprocessor`, `save_preprocessor` (SavedModel).
  tflite          `convert_preprocessor_to_tflite` (no Flex ops),
                  `verify_tflite_preprocessor` (interpreter vs SavedModel).

README.md explains the design: how FullTokenizer parity is reached in TF ops,
and what is verified against what.

This package never imports `checkpoints` or `hub_export`.
"""
