"""publish.atomic_directory: the destination is the old directory or the new one, never half."""

import os

import pytest

import publish


def _leftovers(parent):
  return sorted(n for n in os.listdir(parent) if publish.TMP_INFIX in n or
                publish.OLD_INFIX in n)


def test_publishes_what_the_block_wrote(tmp_path):
  dest = tmp_path / "out"
  with publish.atomic_directory(str(dest)) as work:
    assert os.path.dirname(work) == str(tmp_path) and not os.listdir(work)
    assert not dest.exists()  # nothing at the destination before the block ends
    (tmp_path / os.path.basename(work) / "a.txt").write_text("new")
  assert (dest / "a.txt").read_text() == "new"
  assert _leftovers(tmp_path) == []


def test_a_failure_leaves_nothing_and_keeps_the_old_directory(tmp_path):
  dest = tmp_path / "out"
  dest.mkdir()
  (dest / "a.txt").write_text("old")
  with pytest.raises(RuntimeError, match="boom"):
    with publish.atomic_directory(str(dest), overwrite=True) as work:
      open(os.path.join(work, "a.txt"), "w").write("half")
      raise RuntimeError("boom")
  assert (dest / "a.txt").read_text() == "old"
  assert _leftovers(tmp_path) == []


def test_overwrite_replaces_only_when_allowed(tmp_path):
  dest = tmp_path / "out"
  dest.mkdir()
  (dest / "a.txt").write_text("old")
  with pytest.raises(FileExistsError, match=r"out already exists; pass a new directory"):
    with publish.atomic_directory(str(dest)):
      pass
  with publish.atomic_directory(str(dest), overwrite=True) as work:
    open(os.path.join(work, "b.txt"), "w").write("new")
  assert sorted(os.listdir(dest)) == ["b.txt"]
  assert _leftovers(tmp_path) == []


def test_replaceable_can_refuse_before_any_work(tmp_path):
  dest = tmp_path / "home"
  dest.mkdir()

  def refuse(path):
    raise ValueError(f"{path} is not mine")

  with pytest.raises(ValueError, match="is not mine"):
    with publish.atomic_directory(str(dest), overwrite=True, replaceable=refuse):
      pytest.fail("the block must not run")
  assert _leftovers(tmp_path) == []


def test_a_destination_that_appears_meanwhile_is_not_replaced(tmp_path):
  dest = tmp_path / "out"
  with pytest.raises(FileExistsError):
    with publish.atomic_directory(str(dest)):
      dest.mkdir()
      (dest / "theirs.txt").write_text("theirs")
  assert (dest / "theirs.txt").read_text() == "theirs"
  assert _leftovers(tmp_path) == []


def test_unwritable_parent_is_a_publish_error_naming_the_path(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("")
  with pytest.raises(publish.PublishError, match=r"cannot write beside .*a_file/out") as e:
    with publish.atomic_directory(str(blocker / "out")):
      pass
  assert e.value.reason
