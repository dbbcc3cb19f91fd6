saved_model_cli show --all --dir path/to/bundle/encoder
saved_model_cli show --all --dir path/to/bundle/preprocessor
#% if has_serving
saved_model_cli show --all --dir path/to/bundle/serving
#% endif
