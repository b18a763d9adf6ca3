"""SSE stream caps (per holder and in total) and the cut-off of a stream that stops reading.

Real HTTP clients against a live server: httpx streams, and a raw socket that never reads. Caps are
small through config; every assertion is on answers and counts, never on elapsed time.
"""

from __future__ import annotations

import asyncio
import json
import socket
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from bevforge.api.stream_limits import stream_caps_of
from tests.support.live import GUARD_S, custom_server, ingest, realtime, sse
from tests.support.server import LiveServer, wait_for

FV1_TEMPERATURE = 50


def open_streams(server: LiveServer) -> int:
    assert server.server is not None
    return stream_caps_of(server.server.config.app).total  # type: ignore[arg-type]


async def refused(server: LiveServer) -> Any:
    async with server.http.stream("GET", "/api/os/events?channels=alarms") as response:
        body = await response.aread()
        return response.status_code, response.headers, body


async def test_streams_over_the_per_user_cap_are_refused_until_one_closes(tmp_path: Path) -> None:
    async with custom_server(tmp_path, realtime(max_sse_streams_per_user=2, max_sse_streams=10)) as server:
        async with AsyncExitStack() as streams:
            first = await streams.enter_async_context(sse(server, "?channels=alarms"))
            async with sse(server, "?channels=alarms"):
                status, headers, body = await refused(server)
                assert status == 429
                answer = json.loads(body)
                assert answer["error"] == "too_many_streams" and answer["limit"] == 2
                assert "2 live streams" in answer["message"]
                assert int(headers["retry-after"]) >= 1
            # Closing one frees its slot: the next stream is accepted and live.
            await wait_for(lambda: open_streams(server) == 1)
            async with sse(server, "?channels=alarms") as again:
                await ingest(server, FV1_TEMPERATURE, 30.0)
                raised = await again.expect(lambda e: e["event"] == "alarm")
                assert raised["data"]["event"] == "raised"
            await first.expect(lambda e: e["event"] == "alarm")  # the first one was never disturbed
        await wait_for(lambda: open_streams(server) == 0)


async def test_streams_over_the_total_cap_are_refused_with_503(tmp_path: Path) -> None:
    async with custom_server(tmp_path, realtime(max_sse_streams_per_user=5, max_sse_streams=2)) as server:
        async with sse(server, "?channels=alarms"), sse(server, "?channels=telemetry"):
            status, _, body = await refused(server)
            assert status == 503
            assert b'"error":"too_many_streams"' in body and b"server full" in body
        await wait_for(lambda: open_streams(server) == 0)
        async with sse(server, "?channels=alarms"):
            assert open_streams(server) == 1


def _loud_alarms(doc: dict[str, Any]) -> None:
    for rule in doc["alarms"]:
        if rule.get("endpoint") == FV1_TEMPERATURE:
            rule["message"] = "FV1 out of band {value:.1f}{unit} " + "!" * 30_000  # big frames fill buffers sooner
    doc.setdefault("realtime", {}).update(queue_limit=8, max_sse_streams_per_user=1)


async def test_a_stream_that_stops_reading_is_cut_off_and_its_slot_freed(tmp_path: Path) -> None:
    async with custom_server(tmp_path, _loud_alarms) as server:
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, ("127.0.0.1", server.port))
            await loop.sock_sendall(sock, b"GET /api/os/events?channels=alarms HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                          b"Accept: text/event-stream\r\n\r\n")
            head = await asyncio.wait_for(loop.sock_recv(sock, 200), GUARD_S)
            assert head.startswith(b"HTTP/1.1 200"), head
            await wait_for(lambda: open_streams(server) == 1)
            # The client reads nothing more; alarms pile up behind its full socket until it is cut off.
            for _ in range(500):
                await ingest(server, FV1_TEMPERATURE, 30.0, 10.0)
            # Cut off for its backlog, its stuck write is stopped and the slot given back.
            await wait_for(lambda: open_streams(server) == 0, timeout=GUARD_S)
            # Its slot is free again (the cap is one per station here): a reader is accepted.
            async with sse(server, "?channels=alarms") as reader:
                await ingest(server, FV1_TEMPERATURE, 30.0)
                await reader.expect(lambda e: e["event"] == "alarm" and e["data"]["event"] == "raised")
            # The stopped stream's connection ends: reading on finds the end of the stream.
            received = b""
            async with asyncio.timeout(GUARD_S):
                while chunk := await loop.sock_recv(sock, 65536):
                    received += chunk
            assert received, "nothing was in flight"
        finally:
            sock.close()
