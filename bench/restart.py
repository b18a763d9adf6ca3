"""Restart and live reload of `python main.py`: how long the devices go unpolled (issue 16 point 9).

    python bench/restart.py [--runs 3]

A device's comms watchdog (docs/hardware.md: 2–3 s; the simulator's `simulator.watchdog_s`, 3 s in the
shipped config) drops its outputs to safe when nobody polls it for that long. This measures, on the
shipped config.yaml with its simulated brewhouse (moved to free ports):

- **restart**: SIGTERM to the running server → the new process answers `/api/os/health` with every
  device online (the gap in polling is at most this: the old process polls until it stops);
- **live reload**: `POST /api/os/config/reload` of a tile change (no device touched), and of a change
  to one device's settings (that device's driver restarts; time until it is online again).

Figures are wall-clock on whatever machine runs it; `make bench` shares the machine with its other
loads, so they are upper bounds, not a promise.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import Row, free_port  # noqa: E402
from drivers.sim.ports import use_simulator_ports  # noqa: E402

COMMAND = "python bench/restart.py"


class Server:
    """One data directory, config file and port, across restarts."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        doc = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
        use_simulator_ports(doc, free_port(), str(tmp / "probe"))
        doc["auth"] = {"mode": "none"}
        self.doc = doc
        self.config = tmp / "config.yaml"
        self.write(doc)
        self.proc: subprocess.Popen[bytes] | None = None

    def write(self, doc: dict[str, Any]) -> None:
        self.config.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")

    def spawn(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "main.py"), "--port", str(self.port), "--host", "127.0.0.1",
             "--data-dir", str(self.tmp), "--config", str(self.config), "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def online(self, timeout: float = 60.0) -> float:
        """Until /api/os/health answers with every device online; returns when it first answered at all."""
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
                    return answered
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise RuntimeError("devices not online in time")

    def stop(self) -> float:
        assert self.proc is not None
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        return time.monotonic() - t0

    def device_online(self, device_id: str) -> bool:
        health = httpx.get(f"{self.base}/api/os/health", timeout=1).json()
        return any(d["deviceId"] == device_id and d["online"] for d in health["drivers"])


def measure(runs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"stop": [], "restart": [], "serving": [], "reload_tile": [], "reload_device": []}
    with tempfile.TemporaryDirectory(prefix="bevforge-bench-restart-") as tmp:
        server = Server(Path(tmp))
        server.spawn()
        server.online()
        try:
            for _ in range(runs):
                t0 = time.monotonic()
                out["stop"].append(server.stop())
                spawned = time.monotonic()
                server.spawn()
                out["serving"].append(server.online() - spawned)
                out["restart"].append(time.monotonic() - t0)
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
            server.stop()
    return out


def rows(runs: int = 3) -> list[Row]:
    figures = measure(runs)
    watchdog = 3.0

    def shown(values: list[float]) -> str:
        return f"median {statistics.median(values):.2f} s, worst {max(values):.2f} s ({len(values)} runs)"

    return [
        Row("restart: SIGTERM → new process serving /api/os/health with every device online",
            shown(figures["restart"]) + f"; of which stop {statistics.median(figures['stop']):.2f} s and "
            f"new process to first health answer {statistics.median(figures['serving']):.2f} s (median)",
            f"< {watchdog:g} s (simulator.watchdog_s)", max(figures["restart"]) < watchdog, COMMAND),
        Row("live reload, no device changed: POST /api/os/config/reload answered", shown(figures["reload_tile"]),
            "< 1 s, no device unpolled", max(figures["reload_tile"]) < 1.0, COMMAND),
        Row("live reload, one device's settings changed: until that device is online again",
            shown(figures["reload_device"]), f"< {watchdog:g} s (its watchdog)",
            max(figures["reload_device"]) < watchdog, COMMAND),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print("| measure | result | target | met |")
    print("|---|---|---|---|")
    for row in rows(args.runs):
        print("| " + " | ".join(row.cells()[:4]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
