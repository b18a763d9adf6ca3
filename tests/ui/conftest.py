"""Fixtures for the fast screen tests: NiceGUI's User runs main.py against a fresh SQLite file.

main.py is executed by the `user` fixture as `__main__` and builds its runtime from the environment,
so each test gets its own config file (short timeouts) and database in tmp_path.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from drivers.sim.ports import use_simulator_ports
from tests.support.server import config_document, free_port, migrated_sqlite


def ui_test_config() -> dict:
    """The fixture brewhouse (tests/fixtures/plant.yaml) with short command timeouts, its simulator on a
    free port and a fresh pty path; the cellar devices never time out by themselves, so a test can age
    their values deliberately (stale, then bad)."""
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
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{migrated_sqlite(tmp_path / 'bevforge.db')}")
    monkeypatch.setenv("BEVFORGE_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["main.py"])  # main.py parses its own argv, not pytest's
    yield tmp_path
    forget_finished_screens()


def forget_finished_screens() -> None:
    """Drop the test's pages from the screens' registries once its simulation has ended.

    A page leaves them when NiceGUI deletes its client, which a user simulation never does: each test's
    pages, and through them its whole runtime, stayed alive for the rest of the worker, and every garbage
    collection walked them (NiceGUI's user fixture runs two per test: seconds each late in a run)."""
    from nicegui import Client, ui
    from nicegui.functions.download import download
    from nicegui.functions.navigate import Navigate
    from nicegui.functions.notify import notify

    from ui import feedback, session

    for client in list(Client.instances.values()):
        client.remove_all_elements()  # a dialog's canary element kept its finalizer, and all, alive
    feedback._lines.clear()
    session._seats.clear()
    Client.instances.clear()
    # a finished User puts itself back as ui.navigate (and notify, download) whenever any attribute of
    # it is read, even by an isinstance check; reset them as NiceGUI's user_simulation does on exit
    ui.navigate = Navigate()
    ui.notify = notify
    ui.download = download


def write_config(path: Path, adjust: Callable[[dict], None]) -> None:
    doc = ui_test_config()
    adjust(doc)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")


@pytest.fixture
def auth_required(bevforge_env: Path) -> Path:
    """auth.mode: required — every screen needs a signed-in user (list it before `user`)."""
    write_config(bevforge_env / "config.yaml", lambda doc: doc.update(auth={"mode": "required"}))
    return bevforge_env


@pytest.fixture
def kiosk_station(bevforge_env: Path) -> Path:
    """auth required, and this machine (127.0.0.1) is a kiosk signed in as the operator 'kiosk'."""
    write_config(bevforge_env / "config.yaml", lambda doc: doc.update(
        auth={"mode": "required", "stations": [{"address": "127.0.0.1", "user": "kiosk"}]}))
    return bevforge_env
