"""Bench: N simulated NiceGUI clients on the Control Panel while the simulated brewhouse runs.

    python bench/ui_clients.py [--clients 20] [--seconds 30] [--no-browser]

Starts `python main.py` on a free port with a fresh SQLite file, puts the plant to work (V1 open,
pump 1 running, HLT heater on: volumes and temperatures move at the simulator's normal rates),
then opens N clients the way a browser does — GET / for the page and its client id, a Socket.IO
connection to /_nicegui_ws with that id, the handshake, the browser's 3 s `ack` and the
connection indicator's 1 s liveness ping — without rendering anything. Prints a Markdown table:
server CPU (% of one core) idle and with N clients, RSS per client, and the element updates per
second each client received. Targets: N = 20 within 30 % of one core and 5 MB RSS per client.
Then, in real Chromium (skip with --no-browser): how soon a second station shows a change made on
the first, and how soon a screen reports a frozen or stopped server (targets: < 1 s, ≤ 3 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import socketio

ROOT = Path(__file__).resolve().parents[1]
CPU_TARGET_PCT = 30.0
RSS_TARGET_MB = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SimClient:
    """One browser tab without a renderer: counts what the server pushes to it."""

    base_url: str
    messages: int = 0
    element_updates: int = 0
    pings_answered: int = 0
    sio: socketio.AsyncClient = field(default_factory=lambda: socketio.AsyncClient(reconnection=False))
    client_id: str = ""
    next_message_id: int = 0

    async def open(self, http: httpx.AsyncClient) -> None:
        html = (await http.get(self.base_url + "/")).text
        match = re.search(r"'client_id': '([0-9a-f-]+)'", html)
        if match is None:
            raise RuntimeError("no client id in the page")
        self.client_id = match.group(1)

        @self.sio.on("update")
        async def _update(data: dict) -> None:
            self.messages += 1
            self.next_message_id = int(data.get("_id", self.next_message_id)) + 1
            self.element_updates += sum(1 for key in data if key != "_id")

        @self.sio.on("*")
        async def _other(event: str, data: object = None) -> None:
            self.messages += 1

        query = f"client_id={self.client_id}&tab_id={uuid.uuid4()}&document_id={uuid.uuid4()}&next_message_id=0"
        await self.sio.connect(f"{self.base_url}?{query}", socketio_path="/_nicegui_ws/socket.io",
                               transports=["websocket"])
        ok = await self.sio.call("handshake", {"client_id": self.client_id, "tab_id": str(uuid.uuid4()),
                                               "document_id": str(uuid.uuid4()), "next_message_id": 0}, timeout=10)
        if not ok:
            raise RuntimeError("handshake refused")

    async def keep_alive(self) -> None:
        """What the page's scripts send: a liveness ping every second, an ack every three."""
        tick = 0
        while True:
            await asyncio.sleep(1.0)
            tick += 1
            if await self.sio.call("bevforge_ping", timeout=2):
                self.pings_answered += 1
            if tick % 3 == 0:
                await self.sio.emit("ack", {"client_id": self.client_id, "next_message_id": self.next_message_id})


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


async def measure(proc: psutil.Process, seconds: float) -> tuple[float, float]:
    """(CPU % of one core over the window, RSS MB at its end)."""
    start_cpu, start = cpu_seconds(proc), time.monotonic()
    await asyncio.sleep(seconds)
    cpu = (cpu_seconds(proc) - start_cpu) / (time.monotonic() - start) * 100
    return cpu, proc.memory_info().rss / 2**20


async def wait_ready(base_url: str, server: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(timeout=2) as http:
        for _ in range(300):
            if server.poll() is not None:
                raise RuntimeError("server exited")
            try:
                endpoints = (await http.get(base_url + "/api/os/endpoints")).json()
                if all(e["quality"] == "good" for e in endpoints):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("server not ready")


def start_server(port: int) -> subprocess.Popen[bytes]:
    """`python main.py` with the default config.yaml and a fresh database, as an operator starts it."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    return subprocess.Popen([sys.executable, "main.py", "--port", str(port), "--db", f"sqlite:///{tmp / 'b.db'}",
                             "--log-level", "warning"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=(tmp / "server.log").open("wb"))


async def run(server: subprocess.Popen[bytes], port: int, clients: int, seconds: float, browser: bool,
              rows: list[Any] | None = None) -> int:
    base_url = f"http://127.0.0.1:{port}"
    sims: list[SimClient] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        await wait_ready(base_url, server)
        proc = psutil.Process(server.pid)
        async with httpx.AsyncClient(timeout=10) as http:
            for endpoint_id, value in ((22, True), (23, True), (11, True)):
                await http.post(base_url + "/api/os/command", json={"endpointId": endpoint_id, "value": value})
                await asyncio.sleep(1.0)
            await asyncio.sleep(2.0)
            idle_cpu, idle_rss = await measure(proc, seconds)
            for _ in range(clients):
                sim = SimClient(base_url)
                await sim.open(http)
                sims.append(sim)
                tasks.append(asyncio.create_task(sim.keep_alive()))
            await asyncio.sleep(3.0)  # let the first full sync pass
            base = [s.element_updates for s in sims]
            busy_cpu, busy_rss = await measure(proc, seconds)
            rates = [(s.element_updates - b) / seconds for s, b in zip(sims, base, strict=True)]
            pings = [s.pings_answered for s in sims]
    finally:
        for task in tasks:
            task.cancel()
        for sim in sims:
            await sim.sio.disconnect()
    per_client_cpu = busy_cpu - idle_cpu
    per_client_rss = (busy_rss - idle_rss) / max(1, clients)
    print(f"### Control Panel with {clients} simulated NiceGUI clients ({seconds:g} s windows, simulator at 1×)\n")
    print("| measure | value | target |")
    print("|---|---|---|")
    print(f"| server CPU, no clients | {idle_cpu:.1f} % of one core | |")
    print(f"| server CPU, {clients} clients | {busy_cpu:.1f} % of one core | ≤ {CPU_TARGET_PCT:g} % |")
    print(f"| CPU added by the clients | {per_client_cpu:.1f} % ({per_client_cpu / max(1, clients):.2f} % each) | |")
    print(f"| server RSS, no clients → {clients} clients | {idle_rss:.0f} MB → {busy_rss:.0f} MB | |")
    print(f"| RSS per client | {per_client_rss:.2f} MB | ≤ {RSS_TARGET_MB:g} MB |")
    print(f"| element updates/s per client (mean, min–max) | {statistics.mean(rates):.1f} "
          f"({min(rates):.1f}–{max(rates):.1f}) | ≤ 5 per tile |")
    print(f"| liveness pings answered per client | {min(pings)}–{max(pings)} | |")
    ok = busy_cpu <= CPU_TARGET_PCT and per_client_rss <= RSS_TARGET_MB
    print(f"\nResult: {'within' if ok else 'OUTSIDE'} the targets.")
    if rows is not None:
        from bench.common import Row

        command = f"python bench/ui_clients.py --clients {clients} --seconds {seconds:g}"
        rows += [Row(f"Control Panel: server CPU with {clients} UI clients", f"{busy_cpu:.1f} % of one core",
                     f"≤ {CPU_TARGET_PCT:g} %", busy_cpu <= CPU_TARGET_PCT, command),
                 Row("Control Panel: RSS per UI client", f"{per_client_rss:.2f} MB", f"≤ {RSS_TARGET_MB:g} MB",
                     per_client_rss <= RSS_TARGET_MB, command)]
    if browser:
        await browser_figures(server, base_url, rows=rows)
    return 0 if ok else 1


CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


async def browser_figures(server: subprocess.Popen[bytes], base_url: str, repeats: int = 6,
                          rows: list[Any] | None = None) -> None:
    """In real Chromium: how soon a second station shows a change, and how soon a lost server shows.

    Ends by stopping the server (the last figure is the SIGTERM one).
    """
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        pages = []
        for _ in range(2):
            page = await (await browser.new_context()).new_page()
            await page.goto(base_url + "/")
            await page.wait_for_selector("#bf-connection[data-state=online]")
            pages.append(page)
        operator, other = pages
        sync_ms = []
        for i in range(repeats):
            want = "OPEN" if i % 2 == 0 else "CLOSED"
            button = '[data-testid="on-34"]' if want == "OPEN" else '[data-testid="off-34"]'
            await other.wait_for_function("w => document.querySelector('[data-testid=\"value-34\"]')"
                                          ".textContent !== w", arg=want)
            start = time.perf_counter()
            await operator.click(button)
            await other.wait_for_function("w => document.querySelector('[data-testid=\"value-34\"]')"
                                          ".textContent === w", arg=want)
            sync_ms.append((time.perf_counter() - start) * 1000)
        indicator = "#bf-connection"
        server.send_signal(signal.SIGSTOP)
        start = time.perf_counter()
        await other.wait_for_function(f"() => document.querySelector('{indicator}').dataset.state === 'offline'",
                                      timeout=30_000)
        frozen_s = time.perf_counter() - start
        server.send_signal(signal.SIGCONT)
        await other.wait_for_selector("#bf-connection[data-state=online]", timeout=30_000)
        server.terminate()
        start = time.perf_counter()
        await other.wait_for_function(f"() => document.querySelector('{indicator}').dataset.state === 'offline'",
                                      timeout=30_000)
        stopped_s = time.perf_counter() - start
        await browser.close()
    print("\n### In Chromium (two stations, default Control Panel)\n")
    print("| measure | value | target |")
    print("|---|---|---|")
    print(f"| press OPEN/CLOSE V2 on one station → the other shows it (device readback included), "
          f"median / max of {repeats} | {statistics.median(sync_ms):.0f} ms / {max(sync_ms):.0f} ms | < 1 s |")
    print(f"| server frozen (SIGSTOP, socket stays open) → screen shows it | {frozen_s:.1f} s | ≤ 3 s |")
    print(f"| server stopped (SIGTERM) → screen shows it | {stopped_s:.1f} s | ≤ 3 s |")
    if rows is not None:
        from bench.common import Row

        command = "python bench/ui_clients.py (Chromium part)"
        sync = f"{statistics.median(sync_ms):.0f} / {max(sync_ms):.0f} ms"
        rows += [Row("two stations: a press on one shows on the other (median / max)", sync, "< 1 s",
                     max(sync_ms) < 1000, command),
                 Row("server frozen → the screen shows it", f"{frozen_s:.1f} s", "≤ 3 s", frozen_s <= 3, command),
                 Row("server stopped → the screen shows it", f"{stopped_s:.1f} s", "≤ 3 s", stopped_s <= 3, command)]


def collect(clients: int = 20, seconds: float = 30.0, browser: bool = True) -> list[Any]:
    """The figures as bench.common.Row for bench/run_all.py (the tables are printed as well)."""
    sys.path.insert(0, str(ROOT))
    rows: list[Any] = []
    port = free_port()
    server = start_server(port)
    try:
        asyncio.run(run(server, port, clients, seconds, browser, rows))
    finally:
        server.terminate()
        server.wait(timeout=15)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium latency figures")
    args = parser.parse_args()
    port = free_port()
    server = start_server(port)
    try:
        return asyncio.run(run(server, port, args.clients, args.seconds, not args.no_browser))
    finally:
        server.terminate()
        server.wait(timeout=15)


if __name__ == "__main__":
    sys.exit(main())
