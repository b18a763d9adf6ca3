"""Fixtures shared by the suites: a live server over the default (simulated) brewhouse."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.server import LiveServer, brewhouse_config, build_runtime, free_port


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    """The default brewhouse on a real HTTP server with a real SQLite file in tmp_path."""
    live = LiveServer(build_runtime(brewhouse_config(), tmp_path / "bevforge.db"), free_port())
    await live.start()
    await _wait_online(live)
    try:
        yield live
    finally:
        await live.stop()


async def _wait_online(live: LiveServer) -> None:
    from tests.support.server import wait_for

    await wait_for(lambda: all(live.runtime.plant.device_online.values()))
