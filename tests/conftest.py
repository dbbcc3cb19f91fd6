"""Session-wide fixtures and the grouping of tests for pytest-xdist workers.

`pytest.ini` runs the suite on up to 4 pytest-xdist workers (`-n auto --maxprocesses=4
--dist loadgroup`). Two things keep that from building anything twice:
- the bundles that many test files read (`full_demo_bundle` here, `tiny_bundle` and
  `multi_bundle` in `tests/hub_export/conftest.py`, the SQuAD export of
  `tests/hub_export/squad/conftest.py`) are written once per run, whichever worker asks
  first (`testutil.build_once`), and only read afterwards;
- every other session-, package- or module-scoped fixture (but the cheap ones listed in
  `UNGROUPED`) keeps its users together:
  `pytest_collection_modifyitems` puts the test files that share such a fixture into
  one `xdist_group` (connected components over "file uses fixture"), and every test of
  a file into its file's group, so a worker that builds a fixture runs all its users.
Groups that hold slow tests are scheduled first, so the long ones start early.
"""

import collections
import contextlib
import io
import json

import pytest

from tests import testutil

# Fixtures that do not tie their users to one worker: written once through the disk
# (`testutil.build_once`), or cheap to build again in each worker. (The defining
# conftest's directory, fixture name.)
UNGROUPED = {
    ("tests", "full_demo_bundle"),
    ("tests/hub_export", "tiny_bundle"),
    ("tests/hub_export", "multi_bundle"),
    ("tests/hub_export/finetune", "bundle"),
    ("tests/hub_export/squad", "squad_export"),
    ("tests/hub_export/squad", "tiny_squad"),  # Restores the tiny checkpoint: seconds.
    ("tests/hub_export/squad", "fresh_windows"),  # 8 questions through the tiny model.
}
_GROUPING_SCOPES = ("session", "package", "module")


@pytest.fixture(scope="session")
def full_demo_bundle(tmp_path_factory):
  """The README's first command, `export_main.py --demo` (full 24-block English model,
  untrained), run once per test session.

  Returns a dict: `dir` (the bundle), `stdout` (what the command printed), `code` (its
  exit status).
  """
  import export_main  # pylint: disable=g-import-not-at-top

  def build(root):
    export_dir = str(root / "demo")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
      code = export_main.run_main(["export_main.py", "--demo", f"--export_dir={export_dir}"])
    return dict(dir=export_dir, stdout=out.getvalue(), code=code)

  return testutil.build_once(tmp_path_factory, "full_demo_bundle", build)


def _file_of(item) -> str:
  return item.nodeid.split("::")[0]


def _grouping_fixtures(item):
  """(baseid, name) of the scoped project fixtures `item` uses that tie it to a worker."""
  info = getattr(item, "_fixtureinfo", None)
  if info is None:
    return []
  found = []
  for name, defs in info.name2fixturedefs.items():
    definition = defs[-1]
    baseid = definition.baseid or ""
    if (definition.scope in _GROUPING_SCOPES and baseid.startswith("tests")
        and (baseid, name) not in UNGROUPED):
      found.append((baseid, name))
  return found


def xdist_groups(items) -> dict:
  """{test file: group name}: files sharing a scoped fixture (not `UNGROUPED`) share a
  group, named after the first of its files in collection order."""
  parent = {}

  def find(x):
    while parent.setdefault(x, x) != x:
      parent[x] = parent[parent[x]]
      x = parent[x]
    return x

  order = []
  for item in items:
    path = _file_of(item)
    if path not in parent:
      order.append(path)
    find(path)
    for fixture in _grouping_fixtures(item):
      parent[find(path)] = find(("fixture",) + fixture)
  first = {}
  for path in order:
    first.setdefault(find(path), path)
  return {path: first[find(path)] for path in order}


def pytest_collection_modifyitems(config, items):
  """Assigns each test its `xdist_group` and moves groups holding slow tests first."""
  if not config.pluginmanager.hasplugin("xdist"):
    return
  groups = xdist_groups(items)
  slow = {groups[_file_of(i)] for i in items if i.get_closest_marker("slow")}
  for item in items:
    item.add_marker(pytest.mark.xdist_group(groups[_file_of(item)]))
  rank = collections.OrderedDict()
  for item in items:
    rank.setdefault(groups[_file_of(item)], len(rank))
  items.sort(key=lambda i: (groups[_file_of(i)] not in slow, rank[groups[_file_of(i)]]))
  if config.getoption("verbose", 0) > 1:
    sizes = collections.Counter(groups[_file_of(i)] for i in items)
    print("xdist groups (tests):", json.dumps(sizes))
