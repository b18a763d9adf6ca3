"""Start-up order (issue 16.9: a restart well inside the devices' 2-3 s comms watchdogs): main.py starts
the plant, so the drivers poll, before it imports and builds the web server and the HTTP app (done in a worker thread
meanwhile); the server answers the API and /ws before the screens (NiceGUI) are imported, and a page asked
for meanwhile waits for them; the plant stops however start-up ends."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import main
from bevforge import retention as retention_module
from bevforge.cli import parse_args
from bevforge.domain import Actor
from bevforge.runtime import Runtime
from tests.support.controllers import RIMS, controller_config
from tests.support.postgres import sqlite_only
from tests.support.server import brewhouse_config, build_runtime, free_port, wait_for


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


WAIT = {"id": "rest", "name": "Rest", "unit": "brewhouse", "steps": [{"type": "wait", "name": "Rest", "minutes": 60}]}


def with_a_brewhouse_program(doc: dict[str, Any]) -> None:
    doc["auth"] = {"mode": "none"}
    doc["programs"] = {"units": [{"id": "brewhouse", "name": "Brewhouse", "controllers": ["mlt_rims"]}],
                       "templates": [WAIT]}


class FakeScreens:
    """Stands in for the `ui` package main.py imports once it serves: mounts a page where NiceGUI mounts its
    own (the app's last route, "/") and holds the server main.py hands it, so the test can stop it."""

    def __init__(self) -> None:
        self.server: Any = None
        self.installed = False

    def install(self, app: FastAPI, _runtime: Runtime) -> None:
        async def page(_request: Request) -> PlainTextResponse:
            return PlainTextResponse("the screens")

        app.mount("/", Starlette(routes=[Route("/{path:path}", page)]))
        self.installed = True

    @asynccontextmanager
    async def started(self, server: Any) -> AsyncIterator[None]:
        self.server = server
        yield


async def test_the_resume_prompt_is_on_ws_before_the_screens_are_loaded_and_a_page_waits_for_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server answers the API and /ws while the screens are still being imported: a restarted panel's
    /ws clients have the paused program's resume prompt without waiting for NiceGUI; a page asked for
    meanwhile is served once the screens are mounted (not a 404), and a browser's page request gets the
    starting page at once, told when the screens are there."""
    config = controller_config([dict(RIMS)], adjust=with_a_brewhouse_program)
    db = tmp_path / "plant.db"
    before = build_runtime(config, db)
    await before.start()
    try:
        await before.programs.start_program(Actor(user="olga", role="operator", station="test"), "brewhouse", "rest")
    finally:
        await before.stop()

    runtime = build_runtime(config, db)
    loading, release = threading.Event(), threading.Event()
    screens = FakeScreens()

    def import_screens() -> FakeScreens:
        """Stands in for importing the screens, in serve()'s worker thread: held until the test has its answers."""
        loading.set()
        if not release.wait(60):
            raise AssertionError("never released")
        return screens

    monkeypatch.setattr(main, "_screens", import_screens)
    port = free_port()
    serving = asyncio.create_task(main.serve(runtime, parse_args(["--host", "127.0.0.1", "--port", str(port)]), []))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            await wait_for(loading.is_set, timeout=60)  # serving, and the screens' import under way
            assert (await http.get("/api/os/health")).status_code == 200
            page = asyncio.create_task(http.get("/programs"))
            async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
                await ws.send(json.dumps({"type": "subscribe", "channel": "programs"}))
                while True:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
                    if frame.get("type") == "program" and frame.get("unit") == "brewhouse":
                        break
            assert frame["state"] == "paused" and frame["resumeQuestion"] is True, frame
            assert "Resume" in frame["message"]
            assert not screens.installed and not page.done()  # the page waits for the screens
            # a browser asking for a page meanwhile gets the starting page, with the screens' restart watch
            starting = await http.get("/programs", headers={"accept": "text/html,*/*;q=0.8"})
            assert starting.status_code == 503 and "PANEL STARTING" in starting.text
            assert "'bf-restart-question'" in starting.text and "window.bevforgeStarting = true" in starting.text
            ready = asyncio.create_task(http.get("/programs", headers={"x-bevforge-screens": "wait"}))
            release.set()
            answer = await page
            assert answer.status_code == 200 and answer.text == "the screens"
            assert (await ready).status_code == 204  # the starting page reloads now
            assert (await http.get("/api/os/health")).status_code == 200  # the API's routes come first still
    finally:
        release.set()
        await wait_for(lambda: screens.server is not None or serving.done(), timeout=60)
        if screens.server is not None:
            screens.server.should_exit = True
        await asyncio.wait_for(serving, 60)


class ScreensBroken(Exception):
    """The screens failed to import (a broken install)."""


async def test_screens_that_fail_to_load_stop_the_server_and_the_plant(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The panel does not run on without its screens: start-up ends with their error, outputs put safe."""
    runtime = build_runtime(brewhouse_config(), tmp_path / "plant.db")

    def import_screens() -> object:
        raise ScreensBroken

    monkeypatch.setattr(main, "_screens", import_screens)
    port = free_port()
    with pytest.raises(ScreensBroken):
        await asyncio.wait_for(main.serve(runtime, parse_args(["--host", "127.0.0.1", "--port", str(port)]), []), 60)
    protocol = runtime.attachments["simulator"].protocol
    assert protocol is not None and not protocol.running  # the plant was stopped


@sqlite_only("the disk-space check is a local database file's (a PostgreSQL server watches its own disk)")
async def test_the_disk_is_checked_at_once_and_the_first_pruning_pass_waits_out_start_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Retention's first pass (a write per endpoint) does not compete with a restart's imports and first answers;
    the disk-space check (its alarm) does not wait."""
    monkeypatch.setattr(retention_module, "FIRST_PASS_AFTER_S", 0.5)
    runtime = build_runtime(brewhouse_config(), tmp_path / "plant.db")
    passes: list[tuple[float, float | None]] = []  # (when, the free space the disk check had seen by then)
    run_once = runtime.retention.run_once

    async def noted() -> None:
        passes.append((asyncio.get_running_loop().time(), runtime.retention.stats.free_mb))
        await run_once()

    monkeypatch.setattr(runtime.retention, "run_once", noted)
    started_at = asyncio.get_running_loop().time()
    await runtime.start()
    try:
        await wait_for(lambda: passes, timeout=30)
        first_at, free_mb = passes[0]
        assert free_mb is not None  # the disk was checked before the first pass, at start
        assert first_at - started_at >= 0.5  # the pass itself waited FIRST_PASS_AFTER_S
    finally:
        await runtime.stop()
