"""Fan-out benchmark: ingest→/ws-client latency with N clients at R updates a second.

    python bench/fanout.py [--clients 1,10,100] [--rate 100] [--seconds 10] [--ws websockets-sansio,wsproto]

For every uvicorn WebSocket implementation and every N it starts the real server (`python main.py`
on a free port with a temporary database; for another implementation main.py runs unchanged except
for the `ws=` argument it hands uvicorn), connects N `/ws` clients in worker processes (subscribed to
every endpoint), POSTs one reading at a time to /api/os/telemetry/ingest at R/s and prints a
Markdown table. Each reading's value encodes a counter, so a client's receive time is matched with
the moment the POST started (CLOCK_MONOTONIC is one clock for every process on the machine).
Measured: delivered frames/s (the simulator's own telemetry included), p50/p99/max latency of the
ingested updates, whether every client got every update, server CPU (% of one core) and RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import socket
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
PROBE = 14  # hlt_volume (0…100 L): the bench owns it; the simulator polls it only hourly here
SCALE = 1000  # value = counter / SCALE
END = 99_999  # the counter that tells clients the run is over
LAUNCH = """
import runpy, sys, uvicorn
ws = sys.argv.pop(1)
run = uvicorn.run
uvicorn.run = lambda *a, **k: run(*a, **{**k, "ws": ws})
sys.argv[0] = "main.py"
runpy.run_path("main.py", run_name="__main__")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_config(directory: Path) -> Path:
    doc = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    for endpoint in doc["endpoints"]:
        if endpoint["id"] == PROBE:
            endpoint["poll_interval_s"] = 3600
    path = directory / "bench-config.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def start_server(ws: str, port: int, directory: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    args = ["--port", str(port), "--db", f"sqlite:///{directory / 'bench.db'}",
            "--config", str(bench_config(directory)), "--log-level", "warning"]
    command = [sys.executable, "main.py", *args] if ws == "websockets-sansio" else [
        sys.executable, "-c", LAUNCH, ws, *args]  # main.py as is, with another ws= for uvicorn
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read().decode() if process.stderr else ''}")
        with contextlib.suppress(httpx.HTTPError):
            health = httpx.get(f"http://127.0.0.1:{port}/api/os/health", timeout=1).json()
            if health["drivers"] and all(d.get("online", True) for d in health["drivers"]):
                return process
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("server did not start within 60 s")


# -- clients (run in worker processes) ------------------------------------------------------------

async def _client(url: str, ready: asyncio.Event, counts: list[int]) -> dict[int, int]:
    received: dict[int, int] = {}
    probe = f'"endpointId":{PROBE},'.encode()
    async with websockets.connect(url, max_size=2**20) as ws:
        await ws.send(orjson.dumps({"type": "subscribe", "channel": "telemetry"}).decode())
        while orjson.loads(await ws.recv())["type"] != "subscribed":
            pass
        ready.set()
        while True:
            try:
                text = await asyncio.wait_for(ws.recv(decode=False), 10)
            except TimeoutError:
                return received
            now = time.monotonic_ns()
            counts[0] += 1
            if probe in text:
                frame = orjson.loads(text)
                if frame.get("snapshot"):
                    continue
                counter = round(frame["value"] * SCALE)
                if counter == END:
                    return received
                received.setdefault(counter, now)


async def _clients(url: str, n: int, ready: Any, results: Any) -> None:
    counts = [0]
    events = [asyncio.Event() for _ in range(n)]
    tasks = [asyncio.create_task(_client(url, e, counts)) for e in events]
    await asyncio.gather(*(e.wait() for e in events))
    ready.release()
    received = await asyncio.gather(*tasks)
    results.put((received, counts[0]))


def worker(url: str, n: int, ready: Any, results: Any) -> None:
    asyncio.run(_clients(url, n, ready, results))


# -- one run ----------------------------------------------------------------------------------------

class Ingest:
    """A bare keep-alive HTTP/1.1 client: the send time is taken as the request hits the socket,
    so the load generator's own overhead (an HTTP library's, ~1-3 ms here) is not counted."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def __aenter__(self) -> Ingest:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def __aexit__(self, *_: object) -> None:
        self.writer.close()

    async def post(self, value: float) -> int:
        body = orjson.dumps({"endpointId": PROBE, "value": value})
        head = (f"POST /api/os/telemetry/ingest HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        sent = time.monotonic_ns()
        self.writer.write(head + body)
        header = await self.reader.readuntil(b"\r\n\r\n")
        status = int(header.split(b" ", 2)[1])
        length = next(int(line.split(b":", 1)[1]) for line in header.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        await self.reader.readexactly(length)
        if status != 200:
            raise RuntimeError(f"ingest answered {status}")
        return sent


async def ingest(port: int, rate: float, seconds: float) -> dict[int, int]:
    sent: dict[int, int] = {}
    async with Ingest(port) as http:
        start = time.monotonic()
        total = int(rate * seconds)
        for counter in range(1, total + 1):
            delay = start + counter / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[counter] = await http.post(counter / SCALE)
        await asyncio.sleep(0.5)
        await http.post(END / SCALE)
    return sent


def run(ws: str, n: int, rate: float, seconds: float, workers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bevforge-bench-") as tmp:
        port = free_port()
        server = start_server(ws, port, Path(tmp))
        try:
            proc = psutil.Process(server.pid)
            ctx = mp.get_context("spawn")
            ready, results = ctx.Semaphore(0), ctx.Queue()
            shares = [n // workers + (1 if i < n % workers else 0) for i in range(min(workers, n))]
            procs = [ctx.Process(target=worker, args=(f"ws://127.0.0.1:{port}/ws", k, ready, results))
                     for k in shares]
            for p in procs:
                p.start()
            for _ in procs:
                ready.acquire(timeout=60)
            proc.cpu_percent()
            t0 = time.monotonic()
            sent = asyncio.run(ingest(port, rate, seconds))
            elapsed = time.monotonic() - t0
            cpu = proc.cpu_percent()
            rss = proc.memory_info().rss
            collected = [results.get(timeout=60) for _ in procs]
            for p in procs:
                p.join(timeout=30)
        finally:
            server.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(timeout=10)
            if server.poll() is None:
                server.kill()
    latencies: list[float] = []
    complete = 0
    frames = 0
    clients = 0
    for received_list, count in collected:
        frames += count
        for received in received_list:
            clients += 1
            complete += all(c in received for c in sent)
            latencies.extend((received[c] - sent[c]) / 1e6 for c in sent if c in received)
    latencies.sort()
    expected = len(sent) * n
    return {
        "ws": ws, "n": n, "rate": rate, "frames_per_s": frames / elapsed, "updates": len(sent),
        "delivered": f"{len(latencies)}/{expected}", "complete": f"{complete}/{clients}",
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else float("nan"),
        "max": latencies[-1] if latencies else float("nan"),
        "cpu": cpu, "rss": rss / 2**20,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="1,10,100")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--ws", default="websockets-sansio,wsproto")
    parser.add_argument("--workers", type=int, default=2, help="client processes (the load generator is a 3rd)")
    args = parser.parse_args()
    rows = []
    for ws in args.ws.split(","):
        for n in (int(x) for x in args.clients.split(",")):
            row = run(ws, n, args.rate, args.seconds, args.workers)
            rows.append(row)
            print(f"  {ws} N={n}: p99 {row['p99']:.1f} ms, {row['complete']} complete", file=sys.stderr)
    print(f"\nFan-out, R = {args.rate:g} updates/s for {args.seconds:g} s, {os.cpu_count()} cores "
          f"(server, clients and load generator on one machine)\n")
    print("| uvicorn ws | N clients | delivered frames/s | updates received | clients complete "
          "| p50 ms | p99 ms | max ms | server CPU % | server RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['ws']} | {r['n']} | {r['frames_per_s']:.0f} | {r['delivered']} | {r['complete']} "
              f"| {r['p50']:.2f} | {r['p99']:.2f} | {r['max']:.2f} | {r['cpu']:.0f} | {r['rss']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
