"""The shipped systemd units (deploy/systemd/) pass systemd's own check, `systemd-analyze verify`, with their
install paths pointed at this checkout: every key known, every command executable."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import ROOT

UNITS = ROOT / "deploy" / "systemd"
INSTALLED_PYTHON = "/opt/bevforge/app/.venv/bin/python"
INSTALLED_APP = "/opt/bevforge/app"


@pytest.mark.parametrize(("unit", "as_name"), [("bevforge-site.service", "bevforge-site.service"),
                                               ("bevforge-central@.service", "bevforge-central@5007.service")])
def test_a_shipped_unit_passes_systemd_analyze_verify(tmp_path: Path, unit: str, as_name: str) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        raise RuntimeError("systemd-analyze is missing: make test installs Debian's systemd (ensure-packages.sh)")
    text = (UNITS / unit).read_text(encoding="utf-8")
    assert INSTALLED_PYTHON in text and f"WorkingDirectory={INSTALLED_APP}" in text
    here = text.replace(INSTALLED_PYTHON, sys.executable).replace(f"WorkingDirectory={INSTALLED_APP}",
                                                                  f"WorkingDirectory={ROOT}")
    (tmp_path / as_name).write_text(here, encoding="utf-8")
    done = subprocess.run([analyze, "verify", f"./{as_name}"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr
