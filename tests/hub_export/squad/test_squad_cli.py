"""`export_main.py --task=squad`: flag wiring and the early error path.

The squad/ artifacts themselves are tested through `export.export_squad` (the function
`options.SquadOptions.export` calls) in the other tests of this folder.
"""

import pytest
import os

import export_main
from tests import testutil

# End-to-end: builds bundles or runs exports/training (not in the fast run).
pytestmark = pytest.mark.slow


def test_task_squad_without_squad_file_fails_before_writing(tmp_path, capsys):
  src = str(tmp_path / "ckpt")
  testutil.write_checkpoint(src, testutil.tiny_config())
  code = export_main.run_main(["export_main.py", f"--checkpoint_dir={src}",
                               f"--export_dir={tmp_path / 'o'}", "--task=squad"])
  err = capsys.readouterr().err
  assert code == 1 and "--task=squad needs --squad_file" in err
  assert not os.path.exists(tmp_path / "o")
