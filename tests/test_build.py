"""BUILD is correct by construction: every test has a target that runs it, every source a library.

Bazel cannot run here (no network for its toolchains), so this test reads BUILD as the
Starlark it is (a subset of Python syntax) and checks what `bazel test //...` relies on:
- every `tests/**/test_*.py` has exactly one `py_test`, whose entry point is the shared
  `tools/pytest_main.py` and whose `args` name exactly its own file, so the target runs
  pytest on that file and fails when a test fails (the entry point is tested below);
- every `.py` file of a library package is in exactly one `py_library`, and every file a
  target names exists;
- every project module a file imports (at any depth of the file) is in its own target or
  in a direct dependency, and the core library depends on no task library;
- slow tests (`pytest.mark.slow`) are `size = "large"`; the test data of `../shared/data`
  reaches the tests through `:testutil`'s `data`.
"""

import ast
import glob
import os
import subprocess
import sys
import textwrap

import pytest

from tests import testutil

REPO = testutil.REPO
ENTRY = "tools/pytest_main.py"
LIBRARY_DIRS = ("checkpoints", "preprocessors", "hub_export", "publish")
PROJECT_ROOTS = set(LIBRARY_DIRS) | {"tests", "export_main"}
CORE = "hub_export"
TASK_LIBRARIES = ("hub_export_finetune", "hub_export_keras_hub_preset", "hub_export_squad")


def _literal(node):
  """A Starlark expression of BUILD as a Python value (lists, strings, glob, ...)."""
  if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "glob":
    patterns = _literal(node.args[0])
    return sorted({os.path.relpath(p, REPO) for pattern in patterns
                   for p in glob.glob(os.path.join(REPO, pattern), recursive=True)
                   if os.path.isfile(p)})
  if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
    return _literal(node.left) + _literal(node.right)
  return ast.literal_eval(node)


def _targets():
  with open(os.path.join(REPO, "BUILD"), encoding="utf-8") as f:
    tree = ast.parse(f.read(), "BUILD")
  targets = {}
  for stmt in tree.body:
    if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)):
      continue
    call = stmt.value
    rule = call.func.id
    if rule not in ("py_library", "py_test", "py_binary"):
      continue
    attrs = {kw.arg: _literal(kw.value) for kw in call.keywords}
    assert attrs["name"] not in targets, f"target {attrs['name']} defined twice"
    targets[attrs["name"]] = dict(attrs, rule=rule)
  return targets


TARGETS = _targets()


def _tracked_py(pattern):
  return sorted(os.path.relpath(p, REPO)
                for p in glob.glob(os.path.join(REPO, pattern), recursive=True)
                if "__pycache__" not in p)


def _module_file(module: str):
  """The repository file of a dotted project module name, or None."""
  path = os.path.join(*module.split("."))
  for candidate in (path + ".py", os.path.join(path, "__init__.py")):
    if os.path.isfile(os.path.join(REPO, candidate)):
      return candidate
  return None


def _project_imports(path: str) -> set:
  """Files of the project that `path` imports, anywhere in the file."""
  with open(os.path.join(REPO, path), encoding="utf-8") as f:
    tree = ast.parse(f.read(), path)
  names = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names.update(a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      names.add(node.module)
      names.update(f"{node.module}.{a.name}" for a in node.names)
  files = {_module_file(n) for n in names if n.split(".")[0] in PROJECT_ROOTS}
  return {f for f in files if f and f != path}


def _owner():
  owner = {}
  for name, t in TARGETS.items():
    for src in t.get("srcs", []):
      if src != ENTRY:
        owner.setdefault(src, []).append(name)
  return owner


OWNER = _owner()


def test_every_test_file_has_one_target_that_runs_it():
  test_files = _tracked_py("tests/**/test_*.py")
  assert test_files, "no test files found"
  problems = []
  for path in test_files:
    targets = [n for n in OWNER.get(path, []) if TARGETS[n]["rule"] == "py_test"]
    if len(targets) != 1:
      problems.append(f"{path}: {len(targets)} py_test targets {targets}")
      continue
    t = TARGETS[targets[0]]
    if t.get("main") != ENTRY or ENTRY not in t["srcs"]:
      problems.append(f"{targets[0]}: main must be {ENTRY} (in srcs), got {t.get('main')}")
    if t.get("args") != [f"$(rootpath {path})"]:
      problems.append(f"{targets[0]}: args must be ['$(rootpath {path})'], got "
                      f"{t.get('args')}")
    if ":pytest_main" not in t.get("deps", []):
      problems.append(f"{targets[0]}: must depend on :pytest_main")
  assert not problems, "\n".join(problems)


def test_every_library_source_is_in_exactly_one_library():
  problems = []
  for d in LIBRARY_DIRS:
    for path in _tracked_py(f"{d}/**/*.py"):
      libs = [n for n in OWNER.get(path, []) if TARGETS[n]["rule"] == "py_library"]
      if len(libs) != 1:
        problems.append(f"{path}: in {len(libs)} py_library targets {libs}")
  for name, t in TARGETS.items():
    for f in t.get("srcs", []) + [x for x in t.get("data", []) if not x.startswith("@")]:
      if not os.path.isfile(os.path.join(REPO, f)):
        problems.append(f"{name}: {f} does not exist")
  assert not problems, "\n".join(problems)


def test_every_project_import_is_a_direct_dependency():
  problems = []
  for name, t in TARGETS.items():
    mine = set(t.get("srcs", []))
    reachable = mine | {s for d in t.get("deps", []) if d.startswith(":")
                        for s in TARGETS[d[1:]].get("srcs", [])}
    for src in mine:
      if not src.endswith(".py"):
        continue
      for imported in sorted(_project_imports(src) - reachable):
        problems.append(f"{name}: {src} imports {imported}, which is in none of its deps "
                        f"(add :{OWNER.get(imported, ['?'])[0]})")
  assert not problems, "\n".join(problems)


def test_core_library_depends_on_no_task():
  deps = TARGETS[CORE]["deps"]
  assert not [d for d in deps if d.lstrip(":") in TASK_LIBRARIES], deps
  core_files = TARGETS[CORE]["srcs"]
  assert not [f for f in core_files if f.startswith(("hub_export/squad/",
                                                     "hub_export/finetune/",
                                                     "hub_export/keras_hub_preset/"))]


def test_slow_tests_are_large_and_data_reaches_the_tests():
  problems = []
  for path in _tracked_py("tests/**/test_*.py"):
    with open(os.path.join(REPO, path), encoding="utf-8") as f:
      slow = "pytest.mark.slow" in f.read()
    for name in OWNER.get(path, []):
      if slow and TARGETS[name].get("size") != "large":
        problems.append(f"{name}: has slow tests, must be size = \"large\"")
  assert not problems, "\n".join(problems)
  assert "@shared_data//:data" in TARGETS["testutil"].get("data", [])


def _run_entry(tmp_path, body):
  test = tmp_path / "test_probe.py"
  test.write_text(textwrap.dedent(body))
  return subprocess.run([sys.executable, os.path.join(REPO, ENTRY), str(test)],
                        cwd=tmp_path, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("body,status", [
    ("def test_ok():\n  assert 1 + 1 == 2\n", 0),
    ("def test_broken():\n  assert 1 + 1 == 3\n", 1),
    ("def helper():\n  return 1\n", 1),  # no test collected: must fail too
], ids=["passing", "failing", "no_tests"])
def test_entry_point_fails_when_its_file_fails(tmp_path, body, status):
  result = _run_entry(tmp_path, body)
  assert result.returncode == status, result.stdout + result.stderr


def test_entry_point_refuses_a_missing_file(tmp_path):
  result = subprocess.run([sys.executable, os.path.join(REPO, ENTRY),
                           str(tmp_path / "absent_test.py")], capture_output=True, text=True,
                          timeout=60)
  assert result.returncode == 2 and "no such test file" in result.stderr
