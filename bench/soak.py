"""Soak: N minutes at nominal load; does anything grow that should not?

    python bench/soak.py [--minutes 30] [--warmup-minutes M] [--ws-clients 50] [--ui-clients 10] [--sample-s 60]
    make soak                      # the 2-hour run (SOAK_MINUTES=120; override: make soak SOAK_MINUTES=20)

Starts `python main.py` (default config.yaml, the simulated brewhouse at its normal poll rates, a
fresh SQLite file), puts the plant to work (V1 open, pump 1 running, HLT heater on), sends a
command every 5 s, and keeps 50 /ws clients subscribed to all telemetry (they answer the server's
`ping`; 5 of them also reconnect every minute, so whatever a connection leaves behind shows) and 10
simulated NiceGUI clients (bench/ui_clients.py) on the Control Panel. Every sample it prints RSS,
open file descriptors, the server's asyncio task count (GET /api/os/health `tasks`; `-1` when the
answer was late) and the database size.

Target: RSS and task count flat after warm-up — the highest sample after the warm-up (a quarter
of the run, at most 15 minutes: caches and the bus's resume buffer fill) is under 10 % above the
first sample after it. Not run in CI; `make bench` runs a 2-minute form, `make soak` the 2-hour one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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
CHURNING_CLIENTS = 5  # of the /ws clients, these reconnect every CHURN_S
CHURN_S = 60.0


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
        self.ws_churned = 0
        self.ui_errors = 0
        self.health_failures = 0
        self.command_failures = 0
        self.commands = 0
        self.sims: list[SimClient] = []

    async def ws_client(self, churn: bool = False) -> None:
        url = f"ws://127.0.0.1:{self.app.port}/ws"
        while True:
            try:
                async with websockets.connect(url, open_timeout=20, max_queue=None) as ws:
                    await ws.send(json.dumps({"type": "subscribe", "channel": "telemetry"}))
                    async with asyncio.timeout(CHURN_S if churn else None):
                        async for text in ws:
                            self.ws_frames += 1
                            if '"type":"ping"' in text:  # the server's heartbeat: answer like a real client
                                await ws.send('{"type":"pong"}')
            except TimeoutError:
                if churn:
                    self.ws_churned += 1
                    continue
                self.ws_reconnects += 1
                await asyncio.sleep(1)
            except (OSError, websockets.WebSocketException):
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
            try:
                r = await http.post("/api/os/command", json={"endpointId": 34, "value": on})
                self.commands += r.status_code == 202
            except httpx.HTTPError:  # a late answer must not end the operator
                self.command_failures += 1
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
            tasks += [asyncio.create_task(load.ws_client(churn=i < CHURNING_CLIENTS)) for i in range(ws_clients)]
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
                    try:
                        tasks_now = int((await http.get("/api/os/health")).json()["tasks"])
                    except (httpx.HTTPError, ValueError, KeyError):  # a slow answer must not end a 2-hour run
                        tasks_now, load.health_failures = -1, load.health_failures + 1
                    sample = Sample(round((time.monotonic() - started) / 60, 2), app.ps.memory_info().rss / 2**20,
                                    app.ps.num_fds(), tasks_now, db_size_mb(app), load.ws_frames,
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
        out(f"\n/ws reconnects after a drop: {load.ws_reconnects}, planned /ws reconnects: {load.ws_churned}, "
            f"UI client errors: {load.ui_errors}, late health answers: {load.health_failures}, "
            f"failed command requests: {load.command_failures}")
    return samples


def default_warmup(minutes: float) -> float:
    return min(15.0, minutes / 4)


def after_warmup(samples: list[Sample], warmup_minutes: float) -> list[Sample]:
    """The samples from the first one at or after the warm-up on (all of them if the run was shorter)."""
    later = [s for s in samples if s.minute >= warmup_minutes]
    return later or samples


def growth(samples: list[Sample], attr: str) -> float:
    """Growth from the first sample (the end of warm-up) to the highest after it, as a fraction.

    The highest, not the last: memory that rose and fell back is not flat either. Samples with no
    answer (-1) are skipped.
    """
    values = [getattr(s, attr) for s in samples if getattr(s, attr) >= 0]
    if not values or not values[0]:
        return 0.0
    return (max(values) - values[0]) / values[0]


def rows(minutes: float = 2, ws_clients: int = 50, ui_clients: int = 10, sample_s: float = 30,
         out=print, warmup_minutes: float | None = None) -> list[Row]:
    warmup = default_warmup(minutes) if warmup_minutes is None else warmup_minutes
    samples = asyncio.run(soak(minutes, ws_clients, ui_clients, sample_s, out))
    command = f"python bench/soak.py --minutes {minutes:g} --sample-s {sample_s:g}"
    judged = after_warmup(samples, warmup)
    rss, tasks = growth(judged, "rss_mb"), growth(judged, "tasks")
    first, last = judged[0], judged[-1]
    peak = max(s.rss_mb for s in judged)
    return [
        Row(f"soak {minutes:g} min, {ws_clients} /ws + {ui_clients} UI clients: RSS from the end of warm-up "
            f"(minute {first.minute:g}) → highest after it → end",
            f"{first.rss_mb:.1f} → {peak:.1f} → {last.rss_mb:.1f} MB ({rss:+.1%})", "< 10 % growth",
            rss < GROWTH_TARGET, command),
        Row("soak: asyncio tasks after warm-up → end", f"{first.tasks} → {last.tasks} ({tasks:+.1%} at the highest)",
            "< 10 % growth", tasks < GROWTH_TARGET, command),
        Row("soak: open file descriptors after warm-up → end", f"{first.fds} → {last.fds}", "", None, command),
        Row("soak: database size after warm-up → end", f"{first.db_mb:.1f} → {last.db_mb:.1f} MB", "", None, command),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", 30)))
    parser.add_argument("--warmup-minutes", type=float, default=None,
                        help="judge growth from the first sample after this (default a quarter of the run, "
                        "at most 15)")
    parser.add_argument("--ws-clients", type=int, default=50)
    parser.add_argument("--ui-clients", type=int, default=10)
    parser.add_argument("--sample-s", type=float, default=60.0, help="seconds between samples (default a minute)")
    args = parser.parse_args()
    result = rows(args.minutes, args.ws_clients, args.ui_clients, args.sample_s,
                  out=lambda line: print(line, flush=True), warmup_minutes=args.warmup_minutes)
    print("\n| measure | result | target | verdict |\n|---|---|---|---|")
    for row in result:
        print("| " + " | ".join(row.cells()[:4]) + " |")
    flat = result[0].met
    print(f"\nRSS flat after warm-up within {GROWTH_TARGET:.0%}: {'met' if flat else 'NOT met'}")
    return 0 if all(r.met is not False for r in result) else 1


if __name__ == "__main__":
    sys.exit(main())
