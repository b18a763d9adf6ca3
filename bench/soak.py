"""Soak: N minutes at nominal load; does anything grow that should not?

    python bench/soak.py [--minutes 30] [--ws-clients 50] [--ui-clients 10] [--sample-s 60]

Starts `python main.py` (default config.yaml, the simulated brewhouse at its normal poll rates, a
fresh SQLite file), puts the plant to work (V1 open, pump 1 running, HLT heater on), sends a
command every 5 s, and keeps 50 /ws clients subscribed to all telemetry and 10 simulated NiceGUI
clients (bench/ui_clients.py) on the Control Panel. Every sample it prints RSS, open file
descriptors, the server's asyncio task count (GET /api/os/health `tasks`) and the database size.
Target: RSS and task count flat — under 10 % growth from the first sample after warm-up to the end.
Not run in CI (30 minutes); `make bench` runs a 2-minute form.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import AppProcess, Row
from bench.ui_clients import SimClient

GROWTH_TARGET = 0.10


@dataclass
class Sample:
    minute: float
    rss_mb: float
    fds: int
    tasks: int
    db_mb: float
    ws_frames: int
    ui_updates: int
    commands: int


class Load:
    """The clients and the operator: counts what they receive, never stops on one failure."""

    def __init__(self, app: AppProcess) -> None:
        self.app = app
        self.ws_frames = 0
        self.ws_reconnects = 0
        self.ui_errors = 0
        self.commands = 0
        self.sims: list[SimClient] = []

    async def ws_client(self) -> None:
        url = f"ws://127.0.0.1:{self.app.port}/ws"
        while True:
            try:
                async with websockets.connect(url, open_timeout=20, max_queue=None) as ws:
                    await ws.send(json.dumps({"type": "subscribe", "channel": "telemetry"}))
                    async for _ in ws:
                        self.ws_frames += 1
            except (OSError, websockets.WebSocketException, TimeoutError):
                self.ws_reconnects += 1
                await asyncio.sleep(1)

    async def ui_client(self, http: httpx.AsyncClient) -> None:
        sim = SimClient(self.app.base_url)
        await sim.open(http)
        self.sims.append(sim)
        while True:
            try:
                await sim.keep_alive()
            except (TimeoutError, OSError, Exception):  # a late ping answer must not end the client
                self.ui_errors += 1

    async def operator(self, http: httpx.AsyncClient) -> None:
        for endpoint_id, value in ((22, True), (23, True), (11, True)):
            await http.post("/api/os/command", json={"endpointId": endpoint_id, "value": value})
            await asyncio.sleep(1.0)
        on = False
        while True:
            on = not on
            r = await http.post("/api/os/command", json={"endpointId": 34, "value": on})
            self.commands += r.status_code == 202
            await asyncio.sleep(5.0)


def db_size_mb(app: AppProcess) -> float:
    base = Path(app.tmp.name) / "bevforge.db"
    return sum(p.stat().st_size for p in (base, base.with_name("bevforge.db-wal")) if p.exists()) / 2**20


async def soak(minutes: float, ws_clients: int, ui_clients: int, sample_s: float, out=print) -> list[Sample]:
    samples: list[Sample] = []
    with AppProcess() as app:
        load = Load(app)
        async with httpx.AsyncClient(base_url=app.base_url, timeout=30) as http:
            tasks = [asyncio.create_task(load.operator(http))]
            tasks += [asyncio.create_task(load.ws_client()) for _ in range(ws_clients)]
            tasks += [asyncio.create_task(load.ui_client(http)) for _ in range(ui_clients)]
            out(f"Soak: {minutes:g} min, {ws_clients} /ws clients, {ui_clients} UI clients, sample every "
                f"{sample_s:g} s\n")
            out("| minute | RSS MB | open fds | asyncio tasks | DB MB | /ws frames | UI updates | commands |")
            out("|---:|---:|---:|---:|---:|---:|---:|---:|")
            started = time.monotonic()
            end = started + minutes * 60
            next_at = started + sample_s
            try:
                while True:
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                    health = (await http.get("/api/os/health")).json()
                    sample = Sample(round((time.monotonic() - started) / 60, 2), app.ps.memory_info().rss / 2**20,
                                    app.ps.num_fds(), int(health["tasks"]), db_size_mb(app), load.ws_frames,
                                    sum(s.element_updates for s in load.sims), load.commands)
                    samples.append(sample)
                    out(f"| {sample.minute:.1f} | {sample.rss_mb:.1f} | {sample.fds} | {sample.tasks} "
                        f"| {sample.db_mb:.2f} | {sample.ws_frames} | {sample.ui_updates} | {sample.commands} |")
                    if time.monotonic() >= end - 1:
                        break
                    next_at += sample_s
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                for sim in load.sims:
                    await sim.sio.disconnect()
        out(f"\n/ws reconnects: {load.ws_reconnects}, UI client errors: {load.ui_errors}")
    return samples


def growth(samples: list[Sample], attr: str) -> float:
    """Growth from the first sample (the end of warm-up) to the last, as a fraction."""
    first, last = getattr(samples[0], attr), getattr(samples[-1], attr)
    return (last - first) / first if first else 0.0


def rows(minutes: float = 2, ws_clients: int = 50, ui_clients: int = 10, sample_s: float = 30,
         out=print) -> list[Row]:
    samples = asyncio.run(soak(minutes, ws_clients, ui_clients, sample_s, out))
    command = f"python bench/soak.py --minutes {minutes:g} --sample-s {sample_s:g}"
    rss, tasks = growth(samples, "rss_mb"), growth(samples, "tasks")
    first, last = samples[0], samples[-1]
    return [
        Row(f"soak {minutes:g} min, {ws_clients} /ws + {ui_clients} UI clients: RSS after warm-up → end",
            f"{first.rss_mb:.0f} → {last.rss_mb:.0f} MB ({rss:+.1%})", "< 10 % growth", rss < GROWTH_TARGET, command),
        Row("soak: asyncio tasks after warm-up → end", f"{first.tasks} → {last.tasks} ({tasks:+.1%})",
            "< 10 % growth", tasks < GROWTH_TARGET, command),
        Row("soak: open file descriptors after warm-up → end", f"{first.fds} → {last.fds}", "", None, command),
        Row("soak: database size after warm-up → end", f"{first.db_mb:.1f} → {last.db_mb:.1f} MB", "", None, command),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--ws-clients", type=int, default=50)
    parser.add_argument("--ui-clients", type=int, default=10)
    parser.add_argument("--sample-s", type=float, default=60.0, help="seconds between samples (default a minute)")
    args = parser.parse_args()
    result = rows(args.minutes, args.ws_clients, args.ui_clients, args.sample_s,
                  out=lambda line: print(line, flush=True))
    print("\n| measure | result | target | verdict |\n|---|---|---|---|")
    for row in result:
        print("| " + " | ".join(row.cells()[:4]) + " |")
    return 0 if all(r.met is not False for r in result) else 1


if __name__ == "__main__":
    sys.exit(main())
