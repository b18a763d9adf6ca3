"""Control loops (issue 14): the panel's own PID loops on the simulated brewhouse, driven as a user would.

    python bench/control.py [--speed 40] [--jitter-seconds 60] [--clients 100]

Each run starts the real server (`python main.py`, a config derived from config.yaml: the simulator on a
free port and a temporary probe link, `simulator.speedup` = --speed, polling every 0.1 s so a sample is
4 simulated seconds apart at 40×) and drives it only through REST (`/api/os/command`,
`/api/os/controllers/...`) while a `/ws` client records the `controllers` and `telemetry` frames
(a socket the server closes is reopened and said on stderr; `realtime.max_connections` is raised to
200 so the jitter run's 100 readers and the recorder all fit).

- Heat-up: Pump 1 moves the HLT's 60 L of 15 °C liquor into the mash tun, then the MLT RIMS loop
  (`mlt_rims`, the 5.5 kW element on an SSR, output 40) heats it to 72 °C. The shipped 1 °C/min
  setpoint ramp is raised to 100 °C/min over REST (a strike-water heat-up, not a mash step).
  Full power's time is computed from the simulator's physics (drivers/sim/model.py).
- Cold addition: a second server pumps 50 L into the MLT, holds 66 °C, then pumps the HLT's last
  10 L (its temperature is read from the HLT probe and printed) into the mash. The simulator's
  `add_liquid` hook is in-process only; a transfer through Pump 1 is the same physics
  (`Vessel.mix_in`) reached through the public API.
- FV1: `fv1_temperature` (glycol valve 51, heating pad 53) holds 18 °C in the first server; the valve's
  edges are counted from the `controllers` frames (`outputs`, the value last sent).
- Jitter: a third server at speed 1 with `--clients` /ws clients (bench/fanout.py's readers) subscribed
  to telemetry; the tick times are the `controller` frames' timestamps of `mlt_rims` in manual (its
  loop ticks every second: `period_s / 10` capped at 1 s, and every tick publishes).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import websockets
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, AppProcess, Row, free_port, table
from drivers.sim.model import STEEL_HEAT_CAPACITY, WATER_HEAT_CAPACITY, Brewhouse
from drivers.sim.ports import use_simulator_ports

HLT_TEMP, MLT_TEMP, MLT_VOLUME, HLT_VOLUME = 10, 20, 21, 14
V1, PUMP1, PUMP1_SPEED = 22, 23, 24
GLYCOL_VALVE = "51"
WATCHED = [HLT_TEMP, MLT_TEMP, MLT_VOLUME, HLT_VOLUME]


def bench_config(directory: Path, speed: float, poll_s: float = 0.1) -> Path:
    """config.yaml on a free simulator port and a temp probe link, the process clock at `speed`."""
    doc = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    use_simulator_ports(doc, free_port(), str(directory / "sim-probe"))
    doc["simulator"]["speedup"] = speed
    doc.setdefault("realtime", {})["max_connections"] = 200  # the jitter run's 100 readers and the recorder
    for endpoint in doc["endpoints"]:
        if "device" in endpoint:
            endpoint["poll_interval_s"] = min(float(endpoint.get("poll_interval_s", poll_s)), poll_s)
            endpoint["stale_after_s"] = 3.0  # real seconds: a slow poll on a busy machine is not an input fault
    path = directory / "bench-config.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def full_power_s(volume_l: float, start_c: float, target_c: float, vessel: str = "mlt") -> float:
    """Seconds for the vessel's element at 100 % to bring its probe from start to target (liquid
    heat-up with the wall and the losses to ambient, then the probe's dead time and lag)."""
    house = Brewhouse.default()
    v = house.vessels[vessel]
    capacity = volume_l * WATER_HEAT_CAPACITY + v.wall_kg * STEEL_HEAT_CAPACITY
    t, temp, step = 0.0, start_c, 0.01
    while temp < target_c:
        temp += (v.element_w - v.loss_w_per_k * (temp - house.ambient_c)) / capacity * step
        t += step
    return t + v.probe.dead_time_s + v.probe.time_constant_s


class Recorder:
    """One /ws client: the `controllers` channel and the watched endpoints' telemetry, each frame
    stamped with its simulated receive time (real seconds since the start × speed)."""

    def __init__(self, port: int, speed: float) -> None:
        self.url = f"ws://127.0.0.1:{port}/ws"
        self.speed = speed
        self.t0 = time.monotonic()
        self.controllers: dict[str, list[tuple[float, dict[str, Any]]]] = {}
        self.values: dict[int, list[tuple[float, float]]] = {}
        self.task: asyncio.Task[None] | None = None
        self.closes: list[str] = []

    def now(self) -> float:
        return (time.monotonic() - self.t0) * self.speed

    async def start(self) -> None:
        ready = asyncio.get_running_loop().create_future()
        self.task = asyncio.create_task(self._run(ready))
        await ready

    async def _run(self, ready: asyncio.Future[None]) -> None:
        """Record until cancelled; a socket the server closes (e.g. 1013, fell behind) is reopened and
        counted in `reconnects` (its gap is at most a few frames)."""
        while True:
            try:
                await self._session(ready)
            except (OSError, websockets.ConnectionClosed) as exc:
                self.closes.append(repr(exc))
            if not ready.done():
                raise RuntimeError(f"the /ws recorder could not subscribe: {self.closes[-1]}")
            print(f"bench/control.py: /ws reopened after: {self.closes[-1]}", file=sys.stderr, flush=True)
            await asyncio.sleep(0.1)

    async def _session(self, ready: asyncio.Future[None]) -> None:
        async with websockets.connect(self.url, max_size=None, ping_interval=None) as ws:
            await ws.send(json.dumps({"type": "subscribe", "channel": "controllers"}))
            await ws.send(json.dumps({"type": "subscribe", "channel": "telemetry", "endpointIds": WATCHED}))
            subscribed = 0
            async for raw in ws:
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind == "subscribed":
                    subscribed += 1
                    if subscribed == 2 and not ready.done():
                        ready.set_result(None)
                elif kind == "controller":
                    self.controllers.setdefault(frame["id"], []).append((self.now(), frame))
                elif kind == "telemetry" and isinstance(frame.get("value"), int | float):
                    self.values.setdefault(frame["endpointId"], []).append((self.now(), float(frame["value"])))
            self.closes.append(f"closed by the server: {ws.close_code} {ws.close_reason}")

    def last(self, endpoint: int) -> float | None:
        series = self.values.get(endpoint)
        return series[-1][1] if series else None

    async def until(self, test: Callable[[], bool], sim_timeout_s: float) -> None:
        deadline = self.now() + sim_timeout_s
        while not test():
            if self.task is not None and self.task.done():  # the socket closed: say why, do not wait on
                raise RuntimeError(f"the /ws recorder stopped: {self.task.exception()!r}")
            if self.now() > deadline:
                raise TimeoutError(f"not reached within {sim_timeout_s:.0f} simulated s")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def command(http: httpx.AsyncClient, endpoint: int, value: bool | float) -> None:
    r = await http.post("/api/os/command", json={"endpointId": endpoint, "value": value})
    r.raise_for_status()


async def controller(http: httpx.AsyncClient, cid: str, action: str, body: dict[str, Any]) -> None:
    r = await http.post(f"/api/os/controllers/{cid}/{action}", json=body)
    r.raise_for_status()


async def transfer(http: httpx.AsyncClient, rec: Recorder, litres: float) -> None:
    """Pump 1 from the HLT into the MLT until the MLT's volume has grown by `litres` (a user at the screen)."""
    await rec.until(lambda: rec.last(MLT_VOLUME) is not None, 120)
    target = (rec.last(MLT_VOLUME) or 0.0) + litres - 0.2
    await command(http, PUMP1_SPEED, 100)
    await command(http, V1, True)
    await asyncio.sleep(0.5)
    await command(http, PUMP1, True)
    await rec.until(lambda: (rec.last(MLT_VOLUME) or 0.0) >= target or rec.last(HLT_VOLUME) == 0.0, 1200)
    await command(http, PUMP1, False)
    await command(http, V1, False)


def pv_series(rec: Recorder) -> list[tuple[float, float]]:
    return rec.values.get(MLT_TEMP, [])


async def heat_up(app: AppProcess, speed: float, out: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=app.base_url, timeout=20) as http:
        rec = Recorder(app.port, speed)
        await rec.start()
        try:
            await controller(http, "fv1_temperature", "setpoint", {"value": 18})
            await controller(http, "fv1_temperature", "mode", {"mode": "auto"})
            fv_from = rec.now()
            await transfer(http, rec, 60.0)
            await asyncio.sleep(1.0)
            out["volume"] = rec.last(MLT_VOLUME)
            out["start_c"] = rec.last(MLT_TEMP)
            await controller(http, "mlt_rims", "tuning", {"rampCPerMin": 100})
            await controller(http, "mlt_rims", "setpoint", {"value": 72})
            t0 = rec.now()
            await controller(http, "mlt_rims", "mode", {"mode": "auto"})
            await rec.until(lambda: (rec.last(MLT_TEMP) or 0) >= 71.8, 4 * 3600)
            reached = rec.now()
            await asyncio.sleep(30 * 60 / speed)
            end = rec.now()
            await controller(http, "mlt_rims", "mode", {"mode": "off"})
            pv = [(t, v) for t, v in pv_series(rec) if t >= reached and t <= end]
            out["time_s"] = reached - t0
            out["overshoot"] = max(v for _, v in pv) - 72.0
            out["hold_dev"] = max(abs(v - 72.0) for _, v in pv)
            out["hold_s"] = end - reached
            # FV1 over the whole run, after its first 10 simulated minutes of settling
            fv = [(t, f) for t, f in rec.controllers.get("fv1_temperature", []) if t >= fv_from]
            out["fv_dev"] = max(abs(f["pv"] - 18.0) for t, f in fv if t >= fv_from + 600 and f["pv"] is not None)
            out["fv_s"] = end - fv_from - 600
            edges, last = [], None
            for _, f in fv:  # the server's clock (simulated time) stamps each frame
                t = datetime.fromisoformat(f["timestamp"]).timestamp()
                state = f["outputs"].get(GLYCOL_VALVE)
                if state is not None and state != last:
                    if last is not None:
                        edges.append((t, state))
                    last = state
            out["fv_edges"] = edges
        finally:
            await rec.stop()


async def cold_addition(app: AppProcess, speed: float, out: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=app.base_url, timeout=20) as http:
        rec = Recorder(app.port, speed)
        await rec.start()
        try:
            await transfer(http, rec, 50.0)
            await controller(http, "mlt_rims", "tuning", {"rampCPerMin": 100})
            await controller(http, "mlt_rims", "setpoint", {"value": 66})
            await controller(http, "mlt_rims", "mode", {"mode": "auto"})
            await rec.until(lambda: (rec.last(MLT_TEMP) or 0) >= 65.8, 4 * 3600)
            await asyncio.sleep(10 * 60 / speed)  # settle in the band
            before = rec.last(MLT_VOLUME) or 0.0
            out["add_c"] = rec.last(HLT_TEMP)
            t_add = rec.now()
            await transfer(http, rec, 10.0)
            out["added_l"] = (rec.last(MLT_VOLUME) or 0.0) - before
            await asyncio.sleep(20 * 60 / speed)
            end = rec.now()
            await controller(http, "mlt_rims", "mode", {"mode": "off"})
            pv = [(t, v) for t, v in pv_series(rec) if t_add <= t <= end]
            out["min_c"] = min(v for _, v in pv)
            out["max_c"] = max(v for _, v in pv)
            outside = [t for t, v in pv if abs(v - 66.0) > 0.3]
            out["recover_s"] = (outside[-1] - t_add) if outside else 0.0
            out["left_band"] = bool(outside)
            out["window_s"] = end - t_add
        finally:
            await rec.stop()


def run_simulated(speed: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """The heat-up (with FV1) and the cold addition, each on its own server, side by side."""
    results: tuple[dict[str, Any], dict[str, Any]] = ({}, {})

    def one(fn: Callable[..., Any], out: dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory(prefix="bevforge-bench-control-") as directory, \
                AppProcess(config=bench_config(Path(directory), speed)) as app:
            asyncio.run(fn(app, speed, out))

    with ThreadPoolExecutor(2) as pool:
        for f in [pool.submit(one, heat_up, results[0]), pool.submit(one, cold_addition, results[1])]:
            f.result()
    return results


async def jitter(app: AppProcess, seconds: float) -> list[float]:
    """Intervals (s) between `mlt_rims` frames' timestamps with the loop in manual at 0 %: one per tick."""
    async with httpx.AsyncClient(base_url=app.base_url, timeout=20) as http:
        rec = Recorder(app.port, 1.0)
        await rec.start()
        try:
            await controller(http, "mlt_rims", "mode", {"mode": "manual"})
            await controller(http, "mlt_rims", "output", {"value": 0})
            await asyncio.sleep(2.0)
            start = len(rec.controllers.get("mlt_rims", []))
            await asyncio.sleep(seconds)
            frames = rec.controllers["mlt_rims"][start:]
        finally:
            await rec.stop()
    stamps = [datetime.fromisoformat(f["timestamp"]).timestamp() for _, f in frames]
    return [b - a for a, b in itertools.pairwise(stamps)]


def run_jitter(seconds: float, clients: int) -> tuple[list[float], int]:
    from bench.fanout import worker

    with tempfile.TemporaryDirectory(prefix="bevforge-bench-control-") as directory, \
            AppProcess(config=bench_config(Path(directory), 1.0, poll_s=0.5)) as app:
        ctx = mp.get_context("spawn")
        ready, results = ctx.Semaphore(0), ctx.Queue()
        workers = [ctx.Process(target=worker, args=(app.port, n, ready, results), daemon=True)
                   for n in (clients // 2, clients - clients // 2) if n]
        for w in workers:
            w.start()
        for _ in workers:
            if not ready.acquire(timeout=60):
                raise RuntimeError("the /ws clients did not connect")
        try:
            intervals = asyncio.run(jitter(app, seconds))
        finally:
            for w in workers:
                w.terminate()
                w.join(5)
    return intervals, clients


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def rows(speed: float = 40.0, jitter_seconds: float = 60.0, clients: int = 100) -> list[Row]:
    command = f"python bench/control.py --speed {speed:g} --jitter-seconds {jitter_seconds:g} --clients {clients}"
    heat, mash = run_simulated(speed)
    intervals, n = run_jitter(jitter_seconds, clients)
    full = full_power_s(heat["volume"], heat["start_c"], 71.8)
    slower = heat["time_s"] / full - 1.0
    edges = heat["fv_edges"]
    on_times = [b[0] - a[0] for a, b in itertools.pairwise(edges) if a[1] is True]
    off_times = [b[0] - a[0] for a, b in itertools.pairwise(edges) if a[1] is False]
    cycles = [b[0] - a[0] for a, b in zip(edges, edges[2:], strict=False)]
    shortest = min(on_times + off_times) if on_times + off_times else None
    jit = [abs(i - 1.0) * 1000 for i in intervals]
    vessel = f"MLT {heat['volume']:.1f} L (pumped from the HLT), `mlt_rims` PID → 5.5 kW SSR element (40)"
    return [
        Row(f"heat-up {heat['start_c']:.1f} → 72 °C, {vessel}: overshoot",
            f"{heat['overshoot']:+.2f} °C", "≤ 0.5 °C", heat["overshoot"] <= 0.5, command),
        Row(f"heat-up then hold at 72 °C for {heat['hold_s'] / 60:.0f} simulated min: largest deviation",
            f"{heat['hold_dev']:.2f} °C", "± 0.2 °C", heat["hold_dev"] <= 0.2, command),
        Row("heat-up: time to 71.8 °C vs full power's (simulator physics + probe dead time and lag)",
            f"{heat['time_s'] / 60:.1f} min vs {full / 60:.1f} min ({slower:+.0%})", "within 15 %",
            slower <= 0.15, command),
        Row(f"mash tun at 66 °C (50 L), cold addition of {mash['added_l']:.1f} L at {mash['add_c']:.1f} °C "
            f"(Pump 1 from the HLT): PV range after it",
            f"{mash['min_c']:.2f} … {mash['max_c']:.2f} °C", "66 ± 0.3 °C",
            mash["min_c"] >= 65.7 and mash["max_c"] <= 66.3, command),
        Row("mash tun: back in band (last sample outside ± 0.3 °C) after the addition started",
            f"{mash['recover_s'] / 60:.1f} simulated min", "≤ 5 simulated min", mash["recover_s"] <= 300, command),
        Row(f"FV1 at 18 °C, {heat['fv_s'] / 60:.0f} simulated min after 10 min settling: largest deviation",
            f"{heat['fv_dev']:.2f} °C", "± 0.3 °C", heat["fv_dev"] <= 0.3, command),
        Row("FV1 glycol valve (51): edges; shortest on/off time; shortest full cycle",
            f"{len(edges)} edges; " + ("no switching" if shortest is None else f"{shortest:.0f} s")
            + ("" if not cycles else f"; {min(cycles):.0f} s"),
            "no on/off shorter than min_on_s/min_off_s 10 s", shortest is None or shortest >= 10, command),
        Row(f"control tick jitter, `mlt_rims` at speed 1 (1 s tick), {n} /ws clients receiving, "
            f"{len(intervals)} intervals", f"p99 {p99(jit):.1f} ms, max {max(jit):.1f} ms, "
            f"mean interval {statistics.fmean(intervals):.4f} s", "p99 ≤ 50 ms", p99(jit) <= 50, command),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--speed", type=float, default=40.0)
    parser.add_argument("--jitter-seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=100)
    args = parser.parse_args()
    started = time.monotonic()
    produced = rows(args.speed, args.jitter_seconds, args.clients)
    print(table(["measure", "result", "target", "met"], [[r.measure, r.result, r.target, r.cells()[3]]
                                                          for r in produced]))
    print(f"\n{(time.monotonic() - started) / 60:.1f} min wall")


if __name__ == "__main__":
    main()
