"""Restart and live reload of `python main.py`: how long the devices go unpolled (issue 16 point 9).

    python bench/restart.py [--runs 5]

A device's comms watchdog (docs/hardware.md: 2–3 s; the simulator's `simulator.watchdog_s`, 3 s in the
shipped config) drops its outputs to safe when nobody polls it for that long. The simulated brewhouse
runs in its own process here (`python -m drivers.sim`, on free ports) as real field devices do, and the
app (`python main.py`, shipped config.yaml with `simulator.enabled: false`, pointed at it) is restarted
with SIGTERM under it. Measured:

- **poll gap** (device-side, what the watchdog times): the simulator records every request that
  reaches each device; the longest time between two polls of any device with a comms watchdog (the
  Modbus devices) across the restart, and the same for the serial probe (no outputs, no watchdog);
- **stop**: SIGTERM → the old process has exited (it polls until its drivers stop, after the
  controllers have put their outputs safe), and SIGTERM → its last poll;
- **start**: exec of the new process → its first poll of any device, → every device polled, → its
  first `/api/os/health` answer, → health with every device online;
- **watchdog trips**: how many devices' watchdogs fired during the restarts (the target is none);
- **live reload**: `POST /api/os/config/reload` of a tile change (no device touched), and of a change
  to one device's settings (that device's driver restarts; time until it is online again).

The app's bytecode is cached (in the run's temporary folder) as a deployed service's is; the first
start, which compiles it, is not one of the measured restarts. Figures are wall-clock on whatever
machine runs it, with the CPU time the new process had used (on an idle machine about the wall
time); `make bench` shares the machine with its other loads, so they are upper bounds, not a promise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import Row, child_env, free_port, stop_process  # noqa: E402
from drivers.sim.ports import use_simulator_ports  # noqa: E402

COMMAND = "python bench/restart.py"
STEADY_S = 1.5  # polling left to run before a restart and after every device is online again


class Devices:
    """The simulated field devices in their own process (`python -m drivers.sim`): they outlive the app."""

    def __init__(self, config: Path, modbus_port: int, probe_link: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "drivers.sim", "--config", str(config), "--modbus-port", str(modbus_port),
             "--probe-link", probe_link], cwd=ROOT, env=child_env(), stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.watchdog_trips: list[str] = []
        threading.Thread(target=self._follow, daemon=True).start()
        self.expect("READY", 30)

    def _follow(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("WATCHDOG "):
                self.watchdog_trips.append(line.split()[1])
            self.lines.put(line.rstrip("\n"))

    def expect(self, prefix: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if line.startswith(prefix):
                return line

    def polls(self) -> dict[str, dict[str, Any]]:
        """Per device, the longest gap between two polls since the previous call (drivers/sim/polls.py)."""
        self.proc.send_signal(signal.SIGUSR1)
        return json.loads(self.expect("POLLS ").split(" ", 1)[1])

    def stop(self) -> None:
        stop_process(self.proc)


class Server:
    """One data directory, config file and port, across restarts."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        doc = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
        use_simulator_ports(doc, free_port(), str(tmp / "probe"))
        doc["simulator"]["enabled"] = False  # the devices are the separate simulator process
        doc["auth"] = {"mode": "none"}
        self.doc = doc
        self.config = tmp / "config.yaml"
        self.write(doc)
        self.proc: subprocess.Popen[bytes] | None = None

    def write(self, doc: dict[str, Any]) -> None:
        self.config.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")

    def spawn(self) -> float:
        """Start `python main.py`; returns when (time.monotonic()) it was started."""
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "main.py"), "--port", str(self.port), "--host", "127.0.0.1",
             "--data-dir", str(self.tmp), "--config", str(self.config), "--log-level", "warning"],
            cwd=ROOT, env=child_env(self.tmp / "pycache"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return started

    def cpu_at(self, moment: float) -> float:
        """CPU seconds the current process had used at `moment` (time.monotonic()), from the samples
        `sample_cpu` took: on an idle machine a start-up's wall time is about its CPU time."""
        before = [cpu for t, cpu in self.cpu_samples if t <= moment]
        return before[-1] if before else 0.0

    def sample_cpu(self, stop: threading.Event) -> None:
        assert self.proc is not None
        process = psutil.Process(self.proc.pid)
        self.cpu_samples: list[tuple[float, float]] = []
        with contextlib.suppress(psutil.Error):
            while not stop.is_set():
                times = process.cpu_times()
                self.cpu_samples.append((time.monotonic(), times.user + times.system))
                stop.wait(0.005)

    def online(self, timeout: float = 60.0) -> tuple[float, float]:
        """Until /api/os/health answers with every device online: (first answer, every device online)."""
        stop = threading.Event()
        sampler = threading.Thread(target=self.sample_cpu, args=(stop,), daemon=True)
        sampler.start()
        try:
            return self._online(timeout)
        finally:
            stop.set()
            sampler.join()

    def _online(self, timeout: float) -> tuple[float, float]:
        deadline = time.monotonic() + timeout
        answered: float | None = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                health = httpx.get(f"{self.base}/api/os/health", timeout=1).json()
                answered = answered or time.monotonic()
                if health.get("drivers") and all(d["online"] for d in health["drivers"]):
                    return answered, time.monotonic()
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
        raise RuntimeError("devices not online in time")

    def stop(self) -> float:
        """SIGTERM; returns when (time.monotonic()) the process had exited."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        return time.monotonic()

    def device_online(self, device_id: str) -> bool:
        health = httpx.get(f"{self.base}/api/os/health", timeout=1).json()
        return any(d["deviceId"] == device_id and d["online"] for d in health["drivers"])


FIGURES = ("gap", "gap_device", "gap_unwatched", "stop", "last_poll", "first_poll", "all_polled", "health",
           "online", "restart", "first_poll_cpu", "health_cpu", "reload_tile", "reload_device")


def measure(runs: int) -> tuple[dict[str, list[Any]], list[str]]:
    out: dict[str, list[Any]] = {name: [] for name in FIGURES}
    with tempfile.TemporaryDirectory(prefix="bevforge-bench-restart-") as tmp:
        server = Server(Path(tmp))
        sim = server.doc["simulator"]
        devices = Devices(server.config, sim["modbus_port"], sim["probe_link"])
        try:
            server.spawn()
            server.online()
            for _ in range(runs):
                time.sleep(STEADY_S)
                devices.polls()  # start counting afresh: the next report spans the restart
                term = time.monotonic()
                exited = server.stop()
                spawned = server.spawn()
                answered, online = server.online()
                time.sleep(STEADY_S)
                polls = devices.polls()
                # every Modbus device of the simulator has a comms watchdog; the probe (no outputs) has none
                watched = [d["id"] for d in server.doc["devices"] if d["driver"] == "modbus"]
                worst = max(watched, key=lambda d: polls[d]["longest_s"])
                out["gap"].append(polls[worst]["longest_s"])
                out["gap_device"].append(worst)
                out["gap_unwatched"].append(max(p["longest_s"] for d, p in polls.items() if d not in watched))
                out["stop"].append(exited - term)
                out["last_poll"].append(max(p["from"] for p in polls.values()) - term)
                out["first_poll"].append(min(p["to"] for p in polls.values()) - spawned)
                out["all_polled"].append(max(p["to"] for p in polls.values()) - spawned)
                out["health"].append(answered - spawned)
                out["first_poll_cpu"].append(server.cpu_at(min(p["to"] for p in polls.values())))
                out["health_cpu"].append(server.cpu_at(answered))
                out["online"].append(online - spawned)
                out["restart"].append(online - term)
            device = server.doc["devices"][0]
            for run in range(runs):
                doc = yaml.safe_load(server.config.read_text(encoding="utf-8"))
                doc["tiles"][0]["title"] = f"{server.doc['tiles'][0]['title']} {run}"
                server.write(doc)
                t0 = time.monotonic()
                answer = httpx.post(f"{server.base}/api/os/config/reload", timeout=30)
                out["reload_tile"].append(time.monotonic() - t0)
                assert answer.status_code == 200, answer.text
                doc["devices"][0].setdefault("settings", {})["timeout_s"] = 0.5 + 0.01 * (run + 1)
                server.write(doc)
                t0 = time.monotonic()
                answer = httpx.post(f"{server.base}/api/os/config/reload", timeout=30)
                assert answer.status_code == 200 and answer.json()["changes"]["devices"] == {
                    "changed": [device["id"]]}, answer.text
                while not server.device_online(device["id"]):
                    time.sleep(0.01)
                out["reload_device"].append(time.monotonic() - t0)
        finally:
            if server.proc is not None and server.proc.poll() is None:
                server.stop()
            devices.stop()
    return out, devices.watchdog_trips


def rows(runs: int = 5) -> list[Row]:
    load_before = os.getloadavg()[0]
    figures, trips = measure(runs)
    load = f"load average {load_before:.1f} → {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    watchdog = 3.0

    def shown(name: str) -> str:
        values = figures[name]
        return f"median {statistics.median(values):.2f} s, worst {max(values):.2f} s ({len(values)} runs)"

    gap_devices = sorted(set(figures["gap_device"]))
    return [
        Row("restart: longest gap between two polls of a device with a comms watchdog (every Modbus device; "
            "device-side, the watchdog's view)",
            shown("gap") + f"; longest on {', '.join(gap_devices)}; watchdog trips: {len(trips)}; {load}",
            "≤ 2 s, no watchdog trip", max(figures["gap"]) <= 2.0 and not trips, COMMAND),
        Row("restart: the same for the serial probe (no outputs, no watchdog; polled every 2 s)",
            shown("gap_unwatched"), "—", None, COMMAND),
        Row("restart, stop: SIGTERM → old process exited", shown("stop")
            + f"; its last poll {statistics.median(figures['last_poll']):.2f} s after SIGTERM (median)",
            f"< {watchdog:g} s", max(figures["stop"]) < watchdog, COMMAND),
        Row("restart, start: exec → first poll of a device", shown("first_poll")
            + f"; every device polled {statistics.median(figures['all_polled']):.2f} s (median); "
            f"CPU used by the first poll {statistics.median(figures['first_poll_cpu']):.2f} s (median)",
            "—", None, COMMAND),
        Row("restart, start: exec → health answered; → every device online",
            f"{statistics.median(figures['health']):.2f} s; {statistics.median(figures['online']):.2f} s "
            f"(median; worst {max(figures['online']):.2f} s); CPU used by the first health answer "
            f"{statistics.median(figures['health_cpu']):.2f} s (median)", "—", None, COMMAND),
        Row("restart: SIGTERM → new process with every device online", shown("restart"),
            f"< {watchdog:g} s (simulator.watchdog_s)", max(figures["restart"]) < watchdog, COMMAND),
        Row("live reload, no device changed: POST /api/os/config/reload answered", shown("reload_tile"),
            "< 1 s, no device unpolled", max(figures["reload_tile"]) < 1.0, COMMAND),
        Row("live reload, one device's settings changed: until that device is online again",
            shown("reload_device"), f"< {watchdog:g} s (its watchdog)",
            max(figures["reload_device"]) < watchdog, COMMAND),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print("| measure | result | target | met |")
    print("|---|---|---|---|")
    for row in rows(args.runs):
        print("| " + " | ".join(row.cells()[:4]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
