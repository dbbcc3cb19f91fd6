"""XNLI fine-tuning of an exported bundle, through its exported modules only.

`python -m hub_export.finetune --help` lists the flags. Modules, in dependency order:
  data            strict NLI readers (XTREME, GLUE MNLI, prepared TFDS) and the training order
  config          FinetuneConfig (the settings, checked) and FinetuneError
  input_pipeline  sentence pairs -> encoder inputs through the bundle's preprocessor (tf.data)
  classifier      the Keras classifier and the verified serving classifier SavedModel
  results         per-language scores, results.json/.md, accuracy.png, eval summaries
  trainer         strategy, optimizer, training loop with exact resume; `run`
  cli             absl flags -> FinetuneConfig -> trainer.run

Importing this package imports nothing; `data` and `config` need no TensorFlow.
"""
