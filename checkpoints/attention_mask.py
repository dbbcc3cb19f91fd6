"""The masking modes of padded attention keys, shared by every model of the project.

Pure Python (no TensorFlow), so that the Keras 3 layers of `hub_export.keras_hub_preset`
and the options modules read the same table as `checkpoints.model`.
"""

# How padded keys are masked in self-attention (`build_model(attention_mask=...)`):
# "original": google-research `mobilebert/modeling.py`, `attention_layer` (the revision
#   with quantization-aware training): scores * mask + (1 - mask) * -6, then softmax over
#   all keys, so a padded key keeps weight e^-6 relative to a zero score, and the output
#   at real positions depends on how much padding there is.
# "model_garden": tf_keras `MultiHeadAttention`'s masked softmax (adds -1e9 to masked
#   scores): padded keys get zero weight, as in Model Garden's `MobileBERTEncoder`, HF's
#   `MobileBertModel` and the published TF-Hub modules.
ATTENTION_MASKS = ("original", "model_garden")
DEFAULT_ATTENTION_MASK = "original"
# What each mode means for padded inputs, in one sentence (manifest.json, model card).
ATTENTION_MASK_MEANINGS = {
    "original": "as google-research mobilebert/modeling.py: masked attention scores are "
                "set to -6 and the softmax runs over every key, so padded keys keep a weight "
                "of about e^-6 and outputs at real positions depend on the amount of padding",
    "model_garden": "as Model Garden's MobileBERTEncoder and the published TF-Hub modules: "
                    "padded keys get zero attention weight, so outputs at real positions do "
                    "not depend on the amount of padding",
}
ORIGINAL_MASKED_SCORE = -6.0  # modeling.py: "hard-code the to-be-masked-out part have -6"
