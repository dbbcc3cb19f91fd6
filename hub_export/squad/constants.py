"""The SQuAD package's fixed numbers and names; imports nothing (cheap for `options`).

MLPerf Mobile I/O (mlcommons/mobile_models, `v0_7/tflite/mobilebert_*_384*.tflite`):
inputs `input_ids`, `input_mask`, `segment_ids`, int32 [1, 384], in that order; outputs
`end_logits` then `start_logits`, float32 [1, 384].

Window and decoding defaults are MLPerf Mobile's, which are google-research BERT /
MobileBERT `run_squad.py`'s flags: max_seq_length 384, doc_stride 128,
max_query_length 64, n_best_size 20, max_answer_length 30.
"""

MAX_SEQ_LENGTH = 384
DOC_STRIDE = 128
MAX_QUERY_LENGTH = 64
N_BEST_SIZE = 20
MAX_ANSWER_LENGTH = 30

INPUT_NAMES = ("input_ids", "input_mask", "segment_ids")
OUTPUT_NAMES = ("end_logits", "start_logits")

# The additive attention mask of padding keys in the quantized variants of a bundle in the
# "model_garden" masking mode (the "original" mode adds -6 in float and int8 alike; see
# `forward.additive_mask_value`). A masked key gets probability <= exp(QUANT_MASK_VALUE +
# max score spread); with -64 that is below 1.6e-28 * e^spread, far under int8 softmax's
# output step (1/256), while the tensor of masked scores keeps a range of (scores' range +
# 64) instead of (scores' range + 1e4 .. 1e9), which would leave all real scores on one or
# two int8 steps (the collapse of quantized BERTs).
QUANT_MASK_VALUE = -64.0

# squad/squad_manifest.json: I/O, op counts, checks and fidelity figures of every file.
MANIFEST = "squad_manifest.json"
