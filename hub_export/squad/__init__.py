"""The SQuAD 1.1 mobile package of a bundle (`squad/`); the design note is README.md."""
