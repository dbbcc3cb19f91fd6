"""`.tar.gz` archives of the bundle's SavedModels, in TF Hub's compressed-model layout.

TF Hub's compressed hosting (tfhub.dev `?tf-hub-format=compressed`, Kaggle Models, any
HTTP server) serves a SavedModel as one gzipped tar whose members are the SavedModel's
own files at the archive root: `saved_model.pb`, `variables/variables.index`,
`assets/vocab.txt` (tensorflow_hub's `compressed_module_resolver` extracts them into
the cache directory; tfhub.dev's validator rejects other layouts). `hub.load(URL)` of
such an archive served over HTTP(S) resolves to the SavedModel directory.
"""

import hashlib
import os
import tarfile

# gzip level 6 (gzip's own default): 9 is several times slower for ~1% less on float32.
COMPRESS_LEVEL = 6


def write_archive(saved_model_dir: str, archive_path: str) -> dict:
  """Writes `saved_model_dir` as a TF-Hub-style `.tar.gz` and checks it by reading it back.

  Members are the directory's files and subdirectories relative to its root (no
  top-level folder, no "./"), sorted, with owner 0/0 and no user names, so the archive
  depends only on the files' contents, modes and times.

  Args:
    saved_model_dir: a SavedModel directory (has `saved_model.pb`).
    archive_path: the `.tar.gz` to create; must not exist.

  Returns:
    {"file": basename, "bytes": size of the archive, "sha256": its hex digest,
     "members": number of files}.

  Raises:
    ValueError: `saved_model_dir` has no saved_model.pb, holds a symlink or other
      special file (TF Hub's resolver extracts only files and directories), or the
      archive read back differs from the directory.
    FileExistsError: `archive_path` exists.
  """
  if not os.path.isfile(os.path.join(saved_model_dir, "saved_model.pb")):
    raise ValueError(f"{saved_model_dir} is not a SavedModel directory (no saved_model.pb);"
                     " pass the encoder/ or preprocessor/ directory of a bundle")
  if os.path.lexists(archive_path):
    raise FileExistsError(f"{archive_path} already exists; remove it or choose another path")
  entries = _entries(saved_model_dir)
  with tarfile.open(archive_path, "w:gz", compresslevel=COMPRESS_LEVEL,
                    format=tarfile.PAX_FORMAT) as tar:
    for rel, is_dir in entries:
      tar.add(os.path.join(saved_model_dir, rel), arcname=rel, recursive=False,
              filter=_normalize)
  expected = {rel: (None if is_dir else os.path.getsize(os.path.join(saved_model_dir, rel)))
              for rel, is_dir in entries}
  _check_archive(archive_path, expected)
  digest = hashlib.sha256()
  with open(archive_path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return {"file": os.path.basename(archive_path), "bytes": os.path.getsize(archive_path),
          "sha256": digest.hexdigest(),
          "members": sum(1 for _, is_dir in entries if not is_dir)}


def _entries(root: str) -> list:
  """(relative path, is_dir) of everything below `root`, sorted; rejects special files."""
  entries = []
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames.sort()
    for name in sorted(dirnames) + sorted(filenames):
      path = os.path.join(dirpath, name)
      rel = os.path.relpath(path, root)
      if os.path.islink(path) or not (os.path.isfile(path) or os.path.isdir(path)):
        raise ValueError(f"{path} is a symlink or special file; TF Hub archives hold only "
                         "regular files and directories")
      entries.append((rel, os.path.isdir(path)))
  return sorted(entries)


def _normalize(info: tarfile.TarInfo) -> tarfile.TarInfo:
  info.uid = info.gid = 0
  info.uname = info.gname = ""
  return info


def _check_archive(archive_path: str, expected: dict) -> None:
  """Reads the whole archive (gzip CRC included) and compares names and sizes."""
  found = {}
  with tarfile.open(archive_path, "r:gz") as tar:
    for info in tar:
      if info.isfile():
        data = tar.extractfile(info)
        while data.read(1 << 20):
          pass
        found[info.name] = info.size
      else:
        found[info.name] = None
  if found != expected:
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    raise ValueError(f"archive {archive_path} read back differs from the directory: "
                     f"missing {missing[:5]}, unexpected {extra[:5]}, sizes differ for "
                     f"{sorted(k for k in set(found) & set(expected) if found[k] != expected[k])[:5]}")
