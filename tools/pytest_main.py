"""The entry point of every `py_test` in BUILD: runs pytest on the files it is given.

  py_test(name = "x_test", srcs = ["tools/pytest_main.py", "tests/x/test_x.py"],
          main = "tools/pytest_main.py", args = ["$(rootpath tests/x/test_x.py)"], ...)

Exits with pytest's status, so `bazel test` fails when a test fails, and treats
"no tests collected" (pytest's exit code 5) as a failure: a target that runs no test
must not pass. The repository's pytest.ini (markers, warnings filters) applies.
"""

import os
import sys

import pytest

NO_TESTS_COLLECTED = 5


def main(argv) -> int:
  """Runs pytest on `argv` (test file paths, then any pytest options); returns its status.

  Raises:
    SystemExit: with status 2 and a usage line if no test file is named or a named file
      does not exist.
  """
  files = [a for a in argv if not a.startswith("-")]
  if not files:
    print("usage: pytest_main.py TEST_FILE [...] [pytest options]", file=sys.stderr)
    return 2
  missing = [f for f in files if not os.path.isfile(f)]
  if missing:
    print(f"pytest_main.py: no such test file {missing}; the target's args must name its "
          "own srcs ($(rootpath ...))", file=sys.stderr)
    return 2
  status = int(pytest.main(["-q", "-n", "0", *argv]))  # One file: no xdist workers.
  if status == NO_TESTS_COLLECTED:
    print(f"pytest_main.py: {files} collected no test; a target that runs no test fails",
          file=sys.stderr)
    return 1
  return status


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
