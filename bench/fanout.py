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
import base64
import contextlib
import json
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
import uvloop
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROBE = 14  # hlt_volume (0…100 L): the bench feeds it; no driver polls it here
SCALE = 1000  # value = counter / SCALE
END = 99_999  # the counter that tells clients the run is over
LAUNCH = """
import json, runpy, sys, uvicorn
overrides = json.loads(sys.argv.pop(1))
run = uvicorn.run
uvicorn.run = lambda *a, **k: run(*a, **{**k, **overrides})
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
        if endpoint["id"] == PROBE:  # fed by the bench over the ingest API (source: external), never polled
            endpoint.pop("device")
            endpoint.pop("address")
            endpoint["source"] = "external"
            endpoint["poll_interval_s"] = 3600  # its stale time: no stale flip between bench updates
    doc["ingest"] = {"rate_per_s": 1e9}  # the bench measures fan-out, not the per-credential rate limit
    path = directory / "bench-config.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def start_server(ws: str, port: int, directory: Path, overrides: dict[str, Any]) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    args = ["--port", str(port), "--db", f"sqlite:///{directory / 'bench.db'}",
            "--config", str(bench_config(directory)), "--log-level", "warning"]
    if ws == "main.py" and not overrides:
        command = [sys.executable, "main.py", *args]
    else:  # main.py as is, with other arguments for uvicorn.run
        settings = {**overrides, **({} if ws == "main.py" else {"ws": ws})}
        command = [sys.executable, "-c", LAUNCH, json.dumps(settings), *args]
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
# A client here is a bare WebSocket reader: it does the upgrade handshake, sends its subscribe frame
# and then scans the byte stream for the probe's frames with bytes.find, without decoding frames one
# by one in Python. A hundred `websockets` clients in two processes could not keep up with 10 000
# frames/s on this 2-core machine, so their own queueing would have been measured, not the server.
# Each reader is an asyncio.Protocol on uvloop: the scan runs in the transport's callback, with no
# task to wake per chunk (as stream readers, 100 clients took ~85 % of the machine's two cores;
# as callbacks ~25 %, leaving the cores to the server the bench is about).
# (The protocol itself is tested with the real `websockets` library in tests/integration.)

MARK = f'"endpointId":{PROBE},"value":'.encode()


# The server's keepalive ping (the websockets library's: 4 random bytes, unmasked from a server). A reader
# must answer it with a pong carrying the same bytes, or the server closes it (1011 "keepalive ping
# timeout") after ping interval + timeout — ~40 s: runs longer than that (bench/control.py's 60 s jitter
# window) would lose their readers. 0x89 0x04 never occurs in the JSON text or a frame length here.
PING = b"\x89\x04"


def _masked_frame(opcode: int, payload: bytes) -> bytes:
    assert len(payload) < 126
    mask = os.urandom(4)
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _masked_text_frame(text: str) -> bytes:
    return _masked_frame(0x1, text.encode())


class _Reader(asyncio.Protocol):
    """One bare /ws client as a transport callback: no task wakes up per chunk, so a hundred of them
    in two processes cost the machine little and the server's latency is what gets measured."""

    def __init__(self, port: int, counts: list[int]) -> None:
        self.port = port
        self.counts = counts
        self.ready = asyncio.get_running_loop().create_future()
        self.done = asyncio.get_running_loop().create_future()
        self.received: dict[int, int] = {}
        self.stage = "handshake"
        self.buffer = b""
        self.tail = b""
        self.ping_tail = b""  # a ping split across two chunks is still seen

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport  # uvloop's transport is not an asyncio.Transport subclass
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                        .encode())

    def data_received(self, chunk: bytes) -> None:
        now = time.monotonic_ns()
        if self.stage != "live":
            self._setup(chunk)
            return
        self.counts[0] += chunk.count(b'{"type":')
        self._answer_pings(chunk)
        data = self.tail + chunk
        at = data.find(MARK)
        while at != -1:
            stop = data.find(b",", at + len(MARK))
            close = data.find(b"}", at)  # the end of this frame's JSON (telemetry has no nesting)
            if stop == -1 or close == -1:
                break  # the frame continues in the next chunk
            raw = data[at + len(MARK):stop]
            if raw == b"null":  # the snapshot of a fed point that has no reading yet
                at = data.find(MARK, stop)
                continue
            counter = round(float(raw) * SCALE)
            if data.find(b'"snapshot"', stop, close) == -1:
                if counter == END:
                    self._finish()
                    return
                self.received.setdefault(counter, now)
            at = data.find(MARK, stop)
        self.tail = data[at:] if at != -1 else data[-len(MARK):]

    def _answer_pings(self, chunk: bytes) -> None:
        data = self.ping_tail + chunk
        at = data.find(PING)
        while at != -1 and at + 6 <= len(data):
            self.transport.write(_masked_frame(0xA, data[at + 2:at + 6]))  # pong with the ping's bytes
            at = data.find(PING, at + 6)
        # keep an unfinished ping (or the bytes that might start one) for the next chunk
        self.ping_tail = data[at:] if at != -1 else data[-1:]

    def _setup(self, chunk: bytes) -> None:
        self.buffer += chunk
        if self.stage == "handshake" and b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            if b" 101 " not in head.split(b"\r\n", 1)[0]:
                self.ready.set_exception(RuntimeError(f"handshake refused: {head[:80]!r}"))
                return
            self.stage = "subscribing"
            self.transport.write(_masked_text_frame('{"type":"subscribe","channel":"telemetry"}'))
        if self.stage == "subscribing" and b'"type":"subscribed"' in self.buffer:
            self.stage = "live"
            self.buffer = b""
            self.ready.set_result(None)

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def _clients(port: int, n: int, ready: Any, results: Any) -> None:
    loop = asyncio.get_running_loop()
    counts = [0]
    readers = []
    for _ in range(n):
        _, reader = await loop.create_connection(lambda: _Reader(port, counts), "127.0.0.1", port)
        readers.append(reader)
    await asyncio.gather(*(r.ready for r in readers))
    ready.release()
    # The server's END frame closes each reader; a reader that never gets it gives up after 10 s of
    # silence (the ingest window is known to the caller, who counts what is missing).
    while not all(r.done.done() for r in readers):
        before = sum(len(r.received) for r in readers)
        await asyncio.wait([r.done for r in readers if not r.done.done()], timeout=10)
        if sum(len(r.received) for r in readers) == before:
            break
    for r in readers:
        r.transport.close()
    results.put(([r.received for r in readers], counts[0]))


def worker(port: int, n: int, ready: Any, results: Any) -> None:
    uvloop.run(_clients(port, n, ready, results))


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


def run(ws: str, n: int, rate: float, seconds: float, workers: int, overrides: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bevforge-bench-") as tmp:
        port = free_port()
        server = start_server(ws, port, Path(tmp), overrides)
        try:
            proc = psutil.Process(server.pid)
            ctx = mp.get_context("spawn")
            ready, results = ctx.Semaphore(0), ctx.Queue()
            shares = [n // workers + (1 if i < n % workers else 0) for i in range(min(workers, n))]
            procs = [ctx.Process(target=worker, args=(port, k, ready, results))
                     for k in shares]
            for p in procs:
                p.start()
            for _ in procs:
                ready.acquire(timeout=60)
            proc.cpu_percent()
            sent = asyncio.run(ingest(port, rate, seconds))
            elapsed = (max(sent.values()) - min(sent.values())) / 1e9 + 1 / rate  # the ingest window
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
        "ws": ws, "n": n, "rate": len(sent) / elapsed, "frames_per_s": frames / elapsed, "updates": len(sent),
        "delivered": f"{len(latencies)}/{expected}", "complete": f"{complete}/{clients}",
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else float("nan"),
        "max": latencies[-1] if latencies else float("nan"),
        "cpu": cpu, "rss": rss / 2**20,
    }


def rows(seconds: float = 10.0, rate: float = 100.0, workers: int = 2) -> list[Any]:
    """The seed's two targets, for bench/run_all.py: N = 1 (p99 ≤ 5 ms), N = 100 (p99 ≤ 25 ms, all complete)."""
    sys.path.insert(0, str(ROOT))
    from bench.common import Row

    out = []
    for n, target_ms in ((1, 5.0), (100, 25.0)):
        r = run("main.py", n, rate, seconds, workers, {})
        done, clients = (int(x) for x in r["complete"].split("/"))
        command = f"python bench/fanout.py --clients {n} --rate {rate:g} --seconds {seconds:g} --ws main.py"
        out.append(Row(f"/ws fan-out ingest→client latency, N = {n}, R = {r['rate']:.0f}/s (p50 / p99)",
                       f"{r['p50']:.1f} / {r['p99']:.1f} ms, {r['complete']} clients got every update",
                       f"p99 ≤ {target_ms:g} ms" + (", every update" if n > 1 else ""),
                       r["p99"] <= target_ms and done == clients, command))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="1,10,100")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--ws", default="main.py,websockets-sansio,wsproto",
                        help="uvicorn ws= implementations; main.py = whatever main.py uses")
    parser.add_argument("--uvicorn", default="{}", help='extra uvicorn.run arguments as JSON, '
                        'e.g. \'{"ws_per_message_deflate": false}\'')
    parser.add_argument("--workers", type=int, default=2, help="client processes (the load generator is a 3rd)")
    args = parser.parse_args()
    rows = []
    for ws in args.ws.split(","):
        for n in (int(x) for x in args.clients.split(",")):
            row = run(ws, n, args.rate, args.seconds, args.workers, json.loads(args.uvicorn))
            rows.append(row)
            print(f"  {ws} N={n}: p99 {row['p99']:.1f} ms, {row['complete']} complete", file=sys.stderr)
    print(f"\nFan-out, R = {args.rate:g} updates/s for {args.seconds:g} s, {os.cpu_count()} cores "
          f"(server, clients and load generator on one machine), uvicorn extras {args.uvicorn}\n")
    print("| uvicorn ws | N clients | achieved R /s | delivered frames/s | updates received | clients complete "
          "| p50 ms | p99 ms | max ms | server CPU % | server RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['ws']} | {r['n']} | {r['rate']:.0f} | {r['frames_per_s']:.0f} | {r['delivered']} "
              f"| {r['complete']} "
              f"| {r['p50']:.2f} | {r['p99']:.2f} | {r['max']:.2f} | {r['cpu']:.0f} | {r['rss']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
