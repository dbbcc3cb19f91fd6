"""`--archive`: TF Hub compressed archives of the SavedModels, loaded over HTTP by hub.load."""

import functools
import hashlib
import http.server
import json
import os
import tarfile
import threading

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub

from hub_export import archive
from tests import testutil

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow


def test_archives_are_listed_in_manifest_and_match_the_directories(multi_bundle):
  d = multi_bundle["dir"]
  manifest = json.load(open(os.path.join(d, "manifest.json")))
  assert sorted(manifest["archives"]) == ["encoder", "preprocessor", "serving"]
  for name, entry in manifest["archives"].items():
    path = os.path.join(d, f"{name}.tar.gz")
    assert entry["file"] == f"{name}.tar.gz" and entry["bytes"] == os.path.getsize(path)
    assert entry["sha256"] == hashlib.sha256(open(path, "rb").read()).hexdigest()
    on_disk = sorted(os.path.relpath(os.path.join(r, f), os.path.join(d, name))
                     for r, _, files in os.walk(os.path.join(d, name)) for f in files)
    with tarfile.open(path, "r:gz") as tar:
      members = tar.getmembers()
    # TF Hub's layout: the SavedModel's files at the archive root, no "./" or folder.
    assert sorted(m.name for m in members if m.isfile()) == on_disk
    assert "saved_model.pb" in on_disk and entry["members"] == len(on_disk)
    assert all(m.uid == 0 and m.uname == "" for m in members)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
  def log_message(self, *args):  # pylint: disable=arguments-differ
    del args


def test_hub_load_over_http_matches_the_directory(multi_bundle, tmp_path, monkeypatch):
  """Serves the bundle over HTTP as TF Hub's compressed hosting does; hub.load resolves it."""
  handler = functools.partial(_QuietHandler, directory=multi_bundle["dir"])
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "cache"))
  monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
  monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
  try:
    url = f"http://127.0.0.1:{server.server_port}/encoder.tar.gz"
    remote = hub.load(url)
    local = hub.load(os.path.join(multi_bundle["dir"], "encoder"))
    inputs = {k: tf.constant(v) for k, v in testutil.encoder_inputs(119547).items()}
    np.testing.assert_array_equal(remote(inputs)["pooled_output"], local(inputs)["pooled_output"])
    assert hub.resolve(url).startswith(str(tmp_path / "cache"))
  finally:
    server.shutdown()
    server.server_close()


def test_write_archive_fails_on_a_non_savedmodel_and_an_existing_target(tmp_path):
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match=r"not a SavedModel directory \(no saved_model.pb\)"):
    archive.write_archive(str(tmp_path / "empty"), str(tmp_path / "x.tar.gz"))
  sm = tmp_path / "sm"
  sm.mkdir()
  (sm / "saved_model.pb").write_bytes(b"\x00")
  (tmp_path / "x.tar.gz").write_bytes(b"")
  with pytest.raises(FileExistsError, match="already exists"):
    archive.write_archive(str(sm), str(tmp_path / "x.tar.gz"))
  os.symlink(str(sm / "saved_model.pb"), str(sm / "link"))
  with pytest.raises(ValueError, match="symlink or special file"):
    archive.write_archive(str(sm), str(tmp_path / "y.tar.gz"))
  assert not os.path.exists(tmp_path / "y.tar.gz")
