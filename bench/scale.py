"""How cost grows (issue 17): the server's CPU and memory against the number of endpoints it polls.

    python bench/scale.py [--sizes 100,1000,5000] [--warmup 20] [--seconds 30]

For each size, a plant of N endpoints is written (100 holding registers per Modbus device, so 1, 10
and 50 devices; 10 nodes; a tile per device) and `python main.py` polls every endpoint once a
second over Modbus TCP from simulated devices served by a SEPARATE process (this script with
`--serve-devices`), so the figures are the server's alone. The devices change a tenth of their
registers every second (a random walk), so readings flow through ingest, history, alarms and the
bus as they would in a plant. After the warm-up, the server's CPU (user + system, as % of one
core) and resident memory are read over the measuring window, and the health endpoint must show
every device online and polling.

Targets (issue 17): at 5,000 endpoints the server stays under one core; its memory grows no faster
than linearly (the memory each endpoint adds from 1,000 to 5,000 is no more than it added from 100 to
1,000, with 20 % slack for allocator steps).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import Row, free_port, stop_process, table  # noqa: E402

POINTS_PER_DEVICE = 100
NODES = 10
CHANGING = 0.1  # share of registers that change every second
CORE_TARGET_PCT = 100.0
LINEAR_SLACK = 1.2
COMMAND = "python bench/scale.py"
SCRAPES = 20  # /metrics scrapes timed per size (Prometheus scrapes every 15-60 s: a cost per scrape, not a rate)


def plant_document(endpoints: int, port: int) -> dict[str, Any]:
    """A plant of `endpoints` temperatures on ceil(endpoints / 100) Modbus devices, polled at 1 Hz."""
    devices = math.ceil(endpoints / POINTS_PER_DEVICE)
    doc: dict[str, Any] = {
        "site": {"name": f"Scale bench ({endpoints} endpoints)"},
        "nodes": [{"id": f"N{n}", "name": f"Cellar {n}"} for n in range(NODES)],
        "devices": [{"id": f"io_{u}", "driver": "modbus",
                     "settings": {"host": "127.0.0.1", "port": port, "device_id": u, "timeout_s": 1.0}}
                    for u in range(1, devices + 1)],
        "endpoints": [],
        "tiles": [],
        "auth": {"mode": "none"},
        "simulator": {"enabled": False},
    }
    for i in range(endpoints):
        unit, register = divmod(i, POINTS_PER_DEVICE)
        doc["endpoints"].append({
            "id": i + 1, "name": f"probe_{unit + 1}_{register}", "node": f"N{unit % NODES}",
            "device": f"io_{unit + 1}", "kind": "temperature", "unit": "°C", "poll_interval_s": 1.0,
            "address": {"table": "holding", "address": register, "type": "int16", "scale": 0.1}})
    for unit in range(devices):
        first = unit * POINTS_PER_DEVICE + 1
        doc["tiles"].append({"id": f"io_{unit + 1}", "title": f"I/O {unit + 1}", "node": f"N{unit % NODES}",
                             "endpoints": list(range(first, min(first + 4, endpoints + 1)))})
    return doc


async def serve_devices(devices: int, port: int) -> None:
    """The devices' process: `devices` Modbus units on one TCP port, a tenth of each unit's registers
    walking every second."""
    from tests.support.fieldbus import memory_device, server_for

    stores, maps = [], []
    for unit in range(1, devices + 1):
        device_map, store = memory_device(f"io_{unit}", unit, holding=range(POINTS_PER_DEVICE), coils=())
        for key in store:
            store[key] = 180 + random.randint(-20, 20)  # 18.0 °C ± 2
        maps.append(device_map)
        stores.append(store)
    server, _ = server_for(maps)
    await server.start_tcp("127.0.0.1", port)
    print("serving", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    changing = max(1, int(POINTS_PER_DEVICE * CHANGING))
    while not stop.is_set():
        for store in stores:
            for key in random.sample(list(store), changing):
                store[key] = max(0, min(1000, int(store[key]) + random.choice((-1, 1))))
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except TimeoutError:
            pass
    await server.stop()


def measure(endpoints: int, warmup_s: float, seconds: float) -> dict[str, float]:
    """One size: start the devices and the server, warm up, then read CPU and memory over `seconds`."""
    devices = math.ceil(endpoints / POINTS_PER_DEVICE)
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    device_port, http_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="bevforge-bench-scale-") as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(yaml.safe_dump(plant_document(endpoints, device_port), allow_unicode=True), encoding="utf-8")
        field = subprocess.Popen(
            [sys.executable, __file__, "--serve-devices", str(devices), "--port", str(device_port)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        server = None
        try:
            assert field.stdout is not None and field.stdout.readline().strip() == "serving"
            server = subprocess.Popen(
                [sys.executable, str(ROOT / "main.py"), "--port", str(http_port), "--host", "127.0.0.1",
                 "--data-dir", tmp, "--config", str(config), "--log-level", "warning"],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            base = f"http://127.0.0.1:{http_port}"
            health = _wait_online(base, server, devices)
            time.sleep(warmup_s)
            ps = psutil.Process(server.pid)
            before, started = ps.cpu_times(), time.monotonic()
            time.sleep(seconds)
            after, elapsed = ps.cpu_times(), time.monotonic() - started
            rss = ps.memory_info().rss
            health = httpx.get(f"{base}/api/os/health", timeout=5).json()
            online = sum(1 for d in health.get("drivers", []) if d.get("online"))
            cpu = (after.user + after.system - before.user - before.system) / elapsed * 100
            scrape_ms, scrape_kb, health_ms = _scrape_cost(base)
            return {"endpoints": endpoints, "devices": devices, "online": online, "cpu_pct": cpu,
                    "rss_mb": rss / 2**20, "scrape_ms": scrape_ms, "scrape_kb": scrape_kb, "health_ms": health_ms}
        finally:
            if server is not None:
                stop_process(server)
            stop_process(field)


def _scrape_cost(base: str) -> tuple[float, float, float]:
    """`GET /metrics` as Prometheus would send it, after the CPU window (so it is not in that figure):
    the median answer time of SCRAPES scrapes in a row while the plant polls, the body's size, and for
    comparison the median answer time of as many `GET /api/os/health` (the event loop's own queueing
    behind the poll, which any request waits through)."""
    def median_ms(client: httpx.Client, path: str) -> tuple[float, int]:
        times, size = [], 0
        for _ in range(SCRAPES):
            started = time.perf_counter()
            answer = client.get(path)
            times.append(time.perf_counter() - started)
            answer.raise_for_status()
            size = len(answer.content)
        return statistics.median(times) * 1000, size

    with httpx.Client(base_url=base, timeout=10) as client:
        scrape_ms, size = median_ms(client, "/metrics")
        health_ms, _ = median_ms(client, "/api/os/health")
    return scrape_ms, size / 1024, health_ms


def _wait_online(base: str, server: subprocess.Popen[bytes], devices: int, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            err = server.stderr.read().decode() if server.stderr else ""
            raise RuntimeError(f"server exited with {server.returncode}: {err[-500:]}")
        try:
            health = httpx.get(f"{base}/api/os/health", timeout=2).json()
            if sum(1 for d in health.get("drivers", []) if d.get("online")) >= devices:
                return health
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"not every one of the {devices} devices came online within {timeout:g} s")


def rows(sizes: tuple[int, ...] = (100, 1000, 5000), warmup_s: float = 20.0, seconds: float = 30.0) -> list[Row]:
    results = [measure(n, warmup_s, seconds) for n in sizes]
    out: list[Row] = []
    for r in results:
        out.append(Row(f"{r['endpoints']:,} endpoints polled at 1 Hz ({r['devices']:.0f} Modbus devices, "
                       f"{r['online']:.0f} online): server CPU and memory",
                       f"{r['cpu_pct']:.0f} % of one core, {r['rss_mb']:.0f} MB resident",
                       f"< {CORE_TARGET_PCT:g} % of one core" if r["endpoints"] >= 5000 else "",
                       (r["cpu_pct"] < CORE_TARGET_PCT and r["online"] >= r["devices"])
                       if r["endpoints"] >= 5000 else None, COMMAND))
    for r in results:
        out.append(Row(f"GET /metrics at {r['endpoints']:,} endpoints ({r['devices']:.0f} devices), median of "
                       f"{SCRAPES} scrapes (GET /api/os/health beside it)",
                       f"{r['scrape_ms']:.1f} ms, {r['scrape_kb']:.0f} KB (health {r['health_ms']:.1f} ms)", "", None,
                       COMMAND))
    if len(results) >= 3:
        small, middle, large = results[0], results[1], results[-1]
        first = (middle["rss_mb"] - small["rss_mb"]) / (middle["endpoints"] - small["endpoints"]) * 1024
        then = (large["rss_mb"] - middle["rss_mb"]) / (large["endpoints"] - middle["endpoints"]) * 1024
        out.append(Row(f"memory per endpoint added: {small['endpoints']:,} → {middle['endpoints']:,} against "
                       f"{middle['endpoints']:,} → {large['endpoints']:,}",
                       f"{first:.1f} KB then {then:.1f} KB per endpoint",
                       f"second ≤ first × {LINEAR_SLACK:g} (no faster than linear)",
                       then <= max(first, 0.0) * LINEAR_SLACK, COMMAND))
        growth = (large["cpu_pct"] - small["cpu_pct"]) / (large["endpoints"] - small["endpoints"]) * 1000
        out.append(Row("CPU per 1,000 endpoints added", f"{growth:.1f} % of one core", "", None, COMMAND))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000", help="endpoint counts, comma separated")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds polled before measuring")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds measured per size")
    parser.add_argument("--serve-devices", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_devices:
        asyncio.run(serve_devices(args.serve_devices, args.port))
        return 0
    produced = rows(tuple(int(s) for s in args.sizes.split(",")), args.warmup, args.seconds)
    print(table(["measure", "result", "target", "met"], [r.cells()[:4] for r in produced]))
    return 0 if all(r.met is not False for r in produced) else 1


if __name__ == "__main__":
    sys.exit(main())
