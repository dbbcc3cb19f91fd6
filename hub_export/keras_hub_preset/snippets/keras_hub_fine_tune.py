import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # or "torch" or "tensorflow"; before keras

import keras
import keras_hub
import numpy as np

import hub_export.keras_hub_preset  # noqa: F401  (registers the MobileBERT classes)

BUNDLE = "path/to/bundle"
PRESET = BUNDLE + "/keras_hub"

# The backbone and the exact (FullTokenizer) preprocessor, as keras-hub loads any preset.
backbone = keras_hub.models.Backbone.from_preset(PRESET)
preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(PRESET)
features = preprocessor(x=(["The cat sat on the mat."], ["A cat is sitting."]))
print(backbone(features)["pooled_output"].shape)  # (1, hidden_dim)

# The masked LM with the checkpoint's pre-training head: the [MASK] at position 4.
masked_lm = keras_hub.models.MaskedLM.from_preset(PRESET)
mask = masked_lm.preprocessor.tokenizer.mask_token_id
inputs = {k: keras.ops.convert_to_numpy(v).copy() for k, v in features.items()}
inputs["token_ids"][0, 4] = mask
logits = masked_lm({**inputs, "mask_positions": np.array([[4]], "int32")})
print(logits.shape)  # (1, 1, vocabulary_size)

# Sentence-pair classification (XNLI: entailment, neutral, contradiction), fine-tuned.
classifier = keras_hub.models.TextClassifier.from_preset(PRESET, num_classes=3)
premises = ["The cat sat on the mat.", "It is raining in Paris."]
hypotheses = ["A cat is sitting.", "The sun is shining in Paris."]
classifier.fit(x=(premises, hypotheses), y=np.array([0, 2]), batch_size=2, epochs=1)
classifier.save_to_preset("my_mobilebert_classifier")
print(keras_hub.models.TextClassifier.from_preset("my_mobilebert_classifier").predict(
    (premises, hypotheses), verbose=0).shape)  # (2, 3)
