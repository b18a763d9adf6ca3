"""SIGHUP to a real `python main.py` process applies the edited config file live (docs/deployment.md:
systemd's `ExecReload=/bin/kill -HUP $MAINPID`); an invalid file is refused and the server goes on."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.process import ServerProcess

pytestmark = pytest.mark.slow


async def tile_title(http: httpx.AsyncClient, server: ServerProcess, tile_id: str) -> str:
    tiles = (await http.get(f"{server.base_url}/api/os/tiles")).json()
    return next(t["title"] for t in tiles if t["id"] == tile_id)


def edit(server: ServerProcess, change: Any) -> None:
    doc = yaml.safe_load(server.config.read_text(encoding="utf-8"))
    change(doc)
    server.config.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")


async def test_sighup_applies_the_edited_file_and_refuses_a_broken_one(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, {"mode": "none"})
    await server.start()
    try:
        assert server.process is not None
        pid = server.process.pid
        async with httpx.AsyncClient(timeout=5) as http:
            assert await tile_title(http, server, "bk") == "Boil kettle"
            drivers_before = (await http.get(f"{server.base_url}/api/os/health")).json()["drivers"]
            edit(server, lambda doc: next(t for t in doc["tiles"] if t["id"] == "bk").update(title="Kettle"))
            server.process.send_signal(signal.SIGHUP)
            for _ in range(200):  # the reload runs in the server's loop; ask until it shows (≤ 20 s guard)
                if await tile_title(http, server, "bk") == "Kettle":
                    break
                await asyncio.sleep(0.1)
            assert await tile_title(http, server, "bk") == "Kettle"
            assert server.process.poll() is None and server.process.pid == pid  # the same process went on
            health = (await http.get(f"{server.base_url}/api/os/health")).json()
            assert [d["online"] for d in health["drivers"]] == [d["online"] for d in drivers_before]

            edit(server, lambda doc: next(t for t in doc["tiles"] if t["id"] == "bk").update(endpoints=[9999]))
            server.process.send_signal(signal.SIGHUP)
            for _ in range(200):
                if "config reload refused" in server.log.read_text(encoding="utf-8", errors="replace"):
                    break
                await asyncio.sleep(0.1)
            log = server.log.read_text(encoding="utf-8", errors="replace")
            assert f"config reload refused: {server.config}:" in log
            assert "tiles[" in log and "9999" in log
            assert server.process.poll() is None
            assert await tile_title(http, server, "bk") == "Kettle"  # the last good config goes on
    finally:
        await server.stop()
