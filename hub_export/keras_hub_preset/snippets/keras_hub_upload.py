import keras_hub

import hub_export.keras_hub_preset  # noqa: F401  (registers the MobileBERT classes)

BUNDLE = "path/to/bundle"

# Kaggle credentials: KAGGLE_USERNAME and KAGGLE_KEY, or ~/.kaggle/kaggle.json.
keras_hub.upload_preset("kaggle://your_username/mobilebert/keras/multi_cased_L-24_H-128",
                        BUNDLE + "/keras_hub")
