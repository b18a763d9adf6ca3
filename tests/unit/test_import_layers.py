"""The layers are contracts: import-linter's contracts hold and the core's import chains stay short.

`make test` runs `lint-imports` itself; this test runs it too, so a plain pytest run also fails on a
wrong import (the API or a screen reaching into the store's tables, a driver importing the API,
the core importing the screens or drivers, a cycle). The longest import chain inside bevforge/
(executed imports, `scripts/import_depth.py`) was 14 modules (app → … → domain) before the alarm,
command and store packages; it must stay shorter.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _import_depth_module():  # scripts/ is not a package: load the script by its path
    spec = importlib.util.spec_from_file_location("import_depth", ROOT / "scripts" / "import_depth.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_import_contracts_are_kept() -> None:
    script = "from importlinter.cli import lint_imports_command; lint_imports_command()"
    run = subprocess.run([sys.executable, "-c", script, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout


def test_longest_import_chain_is_shorter_than_before_the_split() -> None:
    chain = _import_depth_module().longest_chain("bevforge")
    print(f"{len(chain)} modules: " + " -> ".join(chain))
    assert len(chain) < 14, " -> ".join(chain)
