"""`metadata_schema`: min_parser_version rules (metadata_version.cc) on hand-built trees.

The written flatbuffer is read back with `metadata_fbs_reader`, a reader written from
metadata_schema.fbs, independent of the writer under test.
"""

import dataclasses

from hub_export.squad import metadata_schema as ms
from tests.hub_export.squad import metadata_fbs_reader as fbs


def _tree(**subgraph_fields):
  t = ms.TensorMetadata(name="x")
  sg = ms.SubGraphMetadata(inputs=(t,), outputs=(t,))
  return ms.ModelMetadata(subgraph=dataclasses.replace(sg, **subgraph_fields))


def test_min_parser_version_rules():
  vocab = ms.AssociatedFile("v.txt", type=ms.ASSOCIATED_FILE_VOCABULARY)
  plain = ms.AssociatedFile("labels.txt")
  assert _tree().min_parser_version() == "1.0.0"
  assert _tree(associated_files=(plain,)).min_parser_version() == "1.0.0"
  assert _tree(associated_files=(vocab,)).min_parser_version() == "1.0.1"
  tensor = ms.TensorMetadata(name="x", associated_files=(vocab,))
  assert _tree(inputs=(tensor,)).min_parser_version() == "1.0.1"
  # A present (even empty) process-unit list is a 1.1.0 field.
  assert _tree(output_process_units=()).min_parser_version() == "1.1.0"
  assert _tree(input_process_units=(ms.BertTokenizer((vocab,)),)).min_parser_version() \
      == "1.1.0"
  # Read back: the written field equals the computed one.
  meta = fbs.read(_tree(associated_files=(vocab,)).to_bytes())
  assert meta["min_parser_version"] == "1.0.1"
  assert meta["subgraph_metadata"][0]["input_process_units"] is None
