"""Fixtures for the fast screen tests: NiceGUI's User runs main.py against a fresh SQLite file.

main.py is executed by the `user` fixture as `__main__` and builds its runtime from the environment,
so each test gets its own config file (short timeouts) and database in tmp_path.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from drivers.sim.ports import use_simulator_ports
from tests.support.server import config_document, free_port


def ui_test_config() -> dict:
    """The default brewhouse with short command timeouts, its simulator on a free port and a fresh pty
    path; the cellar devices never time out by themselves, so a test can age their values
    deliberately (stale, then bad)."""
    doc = config_document()
    use_simulator_ports(doc, free_port(), str(Path(tempfile.mkdtemp(prefix="bevforge-ui-sim-")) / "probe"))
    doc["commands"] = {"readback_timeout_s": 1.0, "write_timeout_s": 2.0, "expiry_s": 10}
    doc["store"] = {"flush_interval_s": 0.05}
    for device in doc["devices"]:
        device["comms_timeout_s"] = 60.0 if device["id"].startswith("cellar") else 1.0
    return doc


@pytest.fixture(autouse=True)
def bevforge_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(ui_test_config(), allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("BEVFORGE_CONFIG", str(config))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'bevforge.db'}")
    monkeypatch.setenv("BEVFORGE_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["main.py"])  # main.py parses its own argv, not pytest's
    yield tmp_path
