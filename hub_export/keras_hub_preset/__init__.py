"""MobileBERT for Keras 3 on every backend, as keras-hub classes and presets.

Importing this package registers the classes with Keras (package "mobilebert"), after
which keras-hub's own entry points load a preset this tool wrote (the bundle's
`keras_hub/`): `keras_hub.models.Backbone.from_preset(path)`,
`keras_hub.models.TextClassifier.from_preset(path, num_classes=3)`,
`keras_hub.models.MaskedLM.from_preset(path)`, `keras_hub.tokenizers.Tokenizer.
from_preset(path)`.

Modules:
  layers      NoNorm, trigram embedding, bottleneck block, MLM head in Keras 3 ops.
  backbone    `MobileBertBackbone` (keras-hub `Backbone`).
  tokenizer   `MobileBertTokenizer` (FullTokenizer-exact), `MobileBertPacker`.
  models      the text-classifier and masked-LM preprocessors and tasks.
  weights     the strict by-name transfer from the converted model.
  export      writes and verifies a preset from a bundle's checkpoint (TensorFlow).
  options     `KerasHubOptions`, the bundle task of `export_main.py --keras_hub`.
"""

from hub_export.keras_hub_preset.backbone import MobileBertBackbone
from hub_export.keras_hub_preset.models import (MobileBertMaskedLM,
                                                MobileBertMaskedLMPreprocessor,
                                                MobileBertTextClassifier,
                                                MobileBertTextClassifierPreprocessor)
from hub_export.keras_hub_preset.tokenizer import MobileBertTokenizer

__all__ = ["MobileBertBackbone", "MobileBertMaskedLM", "MobileBertMaskedLMPreprocessor",
           "MobileBertTextClassifier", "MobileBertTextClassifierPreprocessor",
           "MobileBertTokenizer"]
