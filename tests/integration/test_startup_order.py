"""Start-up order (issue 16.9: a restart well inside the devices' 2-3 s comms watchdogs): main.py starts
the plant, so the drivers poll, before it imports and builds the web server, the HTTP app and the
screens (about half of start-up, done in a worker thread meanwhile); the plant stops however start-up ends."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import main
from bevforge.cli import parse_args
from tests.support.server import brewhouse_config, build_runtime


class AppBuilt(Exception):
    """Ends serve() where the web server would start."""


async def test_every_device_is_polled_before_the_web_app_is_built(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = build_runtime(brewhouse_config(), tmp_path / "plant.db")
    waited = threading.Event()  # never set: a wait that does not hold the GIL, so the event loop runs

    def http_app(_runtime: object) -> object:
        """Stands in for building the app, in serve()'s worker thread: the event loop polls meanwhile."""
        for _ in range(3000):  # up to 30 s
            if runtime.drivers and all(d.status()["online"] for d in runtime.drivers.values()):
                raise AppBuilt
            waited.wait(0.01)
        raise AssertionError("the devices were not all polled while the web app was being built")

    monkeypatch.setattr(main, "_http_app", http_app)
    with pytest.raises(AppBuilt):
        await main.serve(runtime, parse_args([]), [])
    protocol = runtime.attachments["simulator"].protocol
    assert protocol is not None and not protocol.running  # the plant was stopped: the drivers released the simulator
