"""Sites and a central panel (issue 17): a change on a site → a `/ws` client of the centre, and the centre's cost
against the number of sites.

    python bench/sites.py [--sites 1,3,10] [--samples 200] [--warmup 10] [--seconds 20]

For each count, what `make run-sites` starts (scripts/run_sites.py): Mosquitto with passwords and the ACL,
that many sites (each the shipped config.yaml with its own simulated brewhouse, polled over Modbus and serial,
publishing on MQTT) and a central panel made by `python main.py sites central-config`. One endpoint of the
first site (hlt_volume) is fed over its ingest API instead of polled; a `/ws` client of the centre subscribed
to it times each value from the POST at the site to its frame at the centre (site ingest → bus → MQTT →
broker → the centre's site driver → its plant → its `/ws`). Then the centre's CPU (as % of one core) and
resident memory are read over a window while every site runs. All on one 2-core machine.

Target (issue 17): a change on a site reaches a browser on the centre within p99 ≤ 50 ms on loopback (judged
with one site; the larger counts are reported).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import websockets
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from run_sites import PASSWORD_ENV, broker_files, site_file  # noqa: E402

from bench.common import Row, free_port, stop_process, table  # noqa: E402
from bevforge.central import ID_BLOCK, central_document  # noqa: E402
from bevforge.config import parse_config  # noqa: E402

PROBE = 14  # hlt_volume in the shipped config: fed over the first site's ingest API during the bench
P99_TARGET_MS = 50.0
COMMAND = "python bench/sites.py"


def _feed_probe(path: Path) -> None:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    for endpoint in doc["endpoints"]:
        if endpoint["id"] == PROBE:
            endpoint.pop("device", None)
            endpoint.pop("address", None)
            endpoint["source"] = "external"
            endpoint["poll_interval_s"] = 3600  # its stale time: never stale between the bench's values
    doc["ingest"] = {"rate_per_s": 1e9}
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")


class Sites:
    """A broker, `count` sites and a centre, each a process; stopped in reverse order."""

    def __init__(self, folder: Path, count: int) -> None:
        self.names = [f"site{i}" for i in range(1, count + 1)]
        self.broker_port = free_port()
        passwords = {name: secrets.token_urlsafe(12) for name in (*self.names, "central")}
        conf = broker_files(folder / "broker", self.broker_port, passwords)
        self.site_ports = {name: free_port() for name in self.names}
        files = []
        for name in self.names:
            path = site_file(folder / name, name, self.broker_port, free_port())
            if name == self.names[0]:
                _feed_probe(path)
            files.append(path)
        made = [(str(p), parse_config(p.read_text(encoding="utf-8"), str(p))) for p in files]
        self.endpoints_per_site = len(made[0][1].endpoints)
        centre_doc = central_document(made, {"host": "127.0.0.1", "port": self.broker_port, "site": "central",
                                             "username": "central", "password_env": PASSWORD_ENV})
        centre_doc["realtime"] = {"idle_timeout_s": 7200}  # the bench's client only listens
        centre = folder / "central" / "config.yaml"
        centre.parent.mkdir(parents=True, exist_ok=True)
        centre.write_text(yaml.safe_dump(centre_doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
        self.centre_port = free_port()
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
        self.processes: list[subprocess.Popen[bytes]] = [subprocess.Popen(
            [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)]
        for name, path in zip(self.names, files, strict=True):
            self.processes.append(self._panel(path, self.site_ports[name], folder / name, env, passwords[name]))
        self.centre = self._panel(centre, self.centre_port, centre.parent, env, passwords["central"])
        self.processes.append(self.centre)

    @staticmethod
    def _panel(config: Path, port: int, folder: Path, env: dict[str, str], password: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--config", str(config), "--port", str(port),
                                 "--host", "127.0.0.1", "--data-dir", str(folder), "--log-level", "warning"],
                                cwd=ROOT, env=env | {PASSWORD_ENV: password}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    def wait_online(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"{process.args[:3]} exited with {process.returncode}")
            try:
                drivers = httpx.get(f"http://127.0.0.1:{self.centre_port}/api/os/health", timeout=2).json()["drivers"]
                if len(drivers) == len(self.names) and all(d["online"] for d in drivers):
                    return
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the centre did not show its {len(self.names)} sites online within {timeout:g} s")

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop_process(process)


async def latency(sites: Sites, samples: int, rate: float = 20.0) -> list[float]:
    """Milliseconds from each POST at the first site to its frame on the centre's /ws."""
    target = ID_BLOCK + PROBE
    sent: dict[float, int] = {}
    got: dict[float, int] = {}
    async with websockets.connect(f"ws://127.0.0.1:{sites.centre_port}/ws", max_size=None) as ws:
        await ws.send(orjson.dumps({"type": "subscribe", "channel": "telemetry", "endpointIds": [target]}).decode())

        async def receive() -> None:
            while len(got) < samples:
                frame = orjson.loads(await ws.recv())
                if frame.get("type") == "telemetry" and frame.get("endpointId") == target and not frame.get("snapshot"):
                    value = frame.get("value")
                    if value in sent and value not in got:
                        got[value] = time.monotonic_ns()

        listener = asyncio.create_task(receive())
        url = f"http://127.0.0.1:{sites.site_ports[sites.names[0]]}/api/os/telemetry/ingest"
        async with httpx.AsyncClient(timeout=5) as http:
            start = time.monotonic()
            for counter in range(1, samples + 1):
                delay = start + counter / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                value = round(10 + counter / 1000, 3)
                sent[value] = time.monotonic_ns()
                answer = await http.post(url, json={"endpointId": PROBE, "value": value})
                answer.raise_for_status()
        try:
            await asyncio.wait_for(listener, 15)
        except TimeoutError:
            listener.cancel()
    return sorted((got[v] - sent[v]) / 1e6 for v in got)


def measure(count: int, samples: int, warmup_s: float, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bevforge-bench-sites-") as tmp:
        sites = Sites(Path(tmp), count)
        try:
            sites.wait_online()
            time.sleep(warmup_s)
            delays = asyncio.run(latency(sites, samples))
            centre = psutil.Process(sites.centre.pid)
            before, started = centre.cpu_times(), time.monotonic()
            time.sleep(seconds)
            after, elapsed = centre.cpu_times(), time.monotonic() - started
            cpu = (after.user + after.system - before.user - before.system) / elapsed * 100
            return {"sites": count, "per_site": sites.endpoints_per_site, "samples": samples,
                    "received": len(delays), "delays": delays, "cpu_pct": cpu,
                    "rss_mb": centre.memory_info().rss / 2**20}
        finally:
            sites.stop()


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def rows(counts: tuple[int, ...] = (1, 3, 10), samples: int = 200, warmup_s: float = 10.0,
         seconds: float = 20.0) -> list[Row]:
    out: list[Row] = []
    for count in counts:
        r = measure(count, samples, warmup_s, seconds)
        d = r["delays"]
        judged = count == 1
        out.append(Row(f"a change on a site → the centre's /ws client, {count} site(s) running: p50 / p99 / max",
                       f"{statistics.median(d) if d else float('nan'):.1f} / {_pct(d, 0.99):.1f} / "
                       f"{max(d) if d else float('nan'):.1f} ms ({r['received']}/{r['samples']} arrived)",
                       f"p99 ≤ {P99_TARGET_MS:g} ms" if judged else "",
                       (r["received"] == r["samples"] and _pct(d, 0.99) <= P99_TARGET_MS) if judged else None,
                       COMMAND))
        out.append(Row(f"central panel with {count} site(s) ({r['per_site']} endpoints each, every site polling "
                       "its simulated brewhouse): CPU and memory",
                       f"{r['cpu_pct']:.0f} % of one core, {r['rss_mb']:.0f} MB resident", "", None, COMMAND))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", default="1,3,10", help="site counts, comma separated")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    produced = rows(tuple(int(s) for s in args.sites.split(",")), args.samples, args.warmup, args.seconds)
    print(table(["measure", "result", "target", "met"], [r.cells()[:4] for r in produced]))
    return 0 if all(r.met is not False for r in produced) else 1


if __name__ == "__main__":
    sys.exit(main())
