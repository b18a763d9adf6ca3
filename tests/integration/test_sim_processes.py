"""The simulator in its own process, and the app as `python main.py`, both as subprocesses.

- Killing the app (kill -9: no clean shutdown, no safe-state writes) leaves the field devices
  unpolled; their comms watchdogs must de-energise the heater by themselves.
- End to end from main.py: HLT heater ON goes POST → Modbus write → readback → succeeded, and the
  HLT temperature read over Modbus rises.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pymodbus.client import AsyncModbusTcpClient

from drivers.sim.ports import use_simulator_ports
from tests.support.postgres import test_db_url
from tests.support.server import PLANT_FIXTURE, ROOT, config_document, free_port

pytestmark = pytest.mark.slow  # each test starts main.py and/or the simulator as processes: ~10 s each

HLT_HEATER, HLT_TEMPERATURE = 11, 10
HLT_CONTROLLER_UNIT, RUN_COIL = 1, 0x0814


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env["PYTHONPATH"] = str(ROOT)
    return env


async def spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, *args, cwd=ROOT, env=child_env(),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)


async def line_with(proc: asyncio.subprocess.Process, text: str, timeout: float = 20) -> str:
    assert proc.stdout is not None
    async with asyncio.timeout(timeout):
        while True:
            line = (await proc.stdout.readline()).decode()
            if not line:
                raise AssertionError(f"process ended before printing {text!r}")
            if text in line:
                return line


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def write_config(tmp_path: Path, modbus_port: int, **simulator: Any) -> Path:
    doc = config_document()
    use_simulator_ports(doc, modbus_port, str(tmp_path / "probe"))
    doc["simulator"].update(simulator)
    doc["store"] = {"flush_interval_s": 0.1}
    path = tmp_path / "plant.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


async def start_app(config: Path, tmp_path: Path) -> tuple[asyncio.subprocess.Process, httpx.AsyncClient]:
    port = free_port()
    app = await spawn("main.py", "--config", str(config), "--port", str(port), "--db", test_db_url(tmp_path / "a.db"))
    http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5)
    async with asyncio.timeout(30):
        while True:
            try:
                health = (await http.get("/api/os/health")).json()
                if all(d["online"] for d in health["drivers"]):
                    return app, http
            except httpx.TransportError:
                pass
            if app.returncode is not None:
                raise AssertionError("main.py exited during start-up")
            await asyncio.sleep(0.2)


async def command(http: httpx.AsyncClient, endpoint_id: int, value: Any) -> dict[str, Any]:
    r = await http.post("/api/os/command", json={"endpointId": endpoint_id, "value": value})
    assert r.status_code == 202, r.text
    async with asyncio.timeout(15):
        while True:
            body = (await http.get(f"/api/os/commands/{r.json()['commandId']}")).json()
            if body["status"] in ("succeeded", "failed", "blocked"):
                return body
            await asyncio.sleep(0.05)


@pytest.fixture
async def standalone_sim(tmp_path: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    port = free_port()
    sim = await spawn("-m", "drivers.sim", "--config", str(PLANT_FIXTURE), "--modbus-port", str(port),
                      "--probe-link", str(tmp_path / "probe"), "--watchdog-s", "1.5")
    await line_with(sim, "READY")
    try:
        yield sim, port
    finally:
        await stop(sim)


async def read_heater(port: int) -> bool:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    await client.connect()
    try:
        response = await client.read_coils(RUN_COIL, count=1, device_id=HLT_CONTROLLER_UNIT)
        return bool(response.bits[0])
    finally:
        client.close()


async def test_watchdog_de_energises_heater_when_the_app_is_killed(standalone_sim: tuple, tmp_path: Path) -> None:
    sim, port = standalone_sim
    app, http = await start_app(write_config(tmp_path, port, enabled=False), tmp_path)
    try:
        assert (await command(http, HLT_HEATER, True))["status"] == "succeeded"
        assert await read_heater(port) is True
        app.send_signal(signal.SIGKILL)  # no shutdown code runs: nothing commands the heater off
        await app.wait()
        await line_with(sim, "WATCHDOG hlt_controller")
        assert await read_heater(port) is False
    finally:
        await http.aclose()
        await stop(app)


async def test_main_py_heater_on_over_modbus_and_the_hlt_warms(tmp_path: Path) -> None:
    app, http = await start_app(write_config(tmp_path, free_port(), enabled=True, speedup=200), tmp_path)
    try:
        before = (await http.get(f"/api/os/endpoints/{HLT_TEMPERATURE}")).json()
        done = await command(http, HLT_HEATER, True)
        assert done["status"] == "succeeded", done
        assert done["actualValue"] is True and done["ackedAt"] is not None
        async with asyncio.timeout(20):
            while True:
                now = (await http.get(f"/api/os/endpoints/{HLT_TEMPERATURE}")).json()
                if now["quality"] == "good" and now["value"] > before["value"] + 1.0:
                    break
                await asyncio.sleep(0.2)
    finally:
        await http.aclose()
        await stop(app)


async def test_devices_record_the_polling_gap_across_a_sigterm_restart(standalone_sim: tuple, tmp_path: Path) -> None:
    """What bench/restart.py measures: the standalone simulator reports (SIGUSR1 → `POLLS`) each device's
    longest silence; across a restart it spans the old process's last poll and the new one's first.
    main.py still ends by the SIGTERM it was sent (as uvicorn.run did), after stopping the plant."""
    sim, port = standalone_sim
    config = write_config(tmp_path, port, enabled=False)
    app, http = await start_app(config, tmp_path)
    await http.aclose()
    sim.send_signal(signal.SIGUSR1)
    await line_with(sim, "POLLS ")  # counting starts afresh here
    app.send_signal(signal.SIGTERM)
    assert await app.wait() == -signal.SIGTERM
    app, http = await start_app(config, tmp_path)
    try:
        sim.send_signal(signal.SIGUSR1)
        polls = json.loads((await line_with(sim, "POLLS ")).split(" ", 1)[1])
        devices = {d["id"] for d in yaml.safe_load(config.read_text(encoding="utf-8"))["devices"]}
        assert devices <= set(polls)
        for device in devices:
            assert polls[device]["polls"] >= 1 and polls[device]["to"] > polls[device]["from"], (device, polls)
    finally:
        await http.aclose()
        await stop(app)
