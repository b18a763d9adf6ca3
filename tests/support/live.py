"""Real /ws and SSE clients for the tests: read frames until the one you are waiting for.

The timeouts here only stop a broken test from hanging; no test asserts on time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

from bevforge.domain import Reading
from tests.support.server import LiveServer, brewhouse_config, build_runtime, free_port, wait_for

Frame = dict[str, Any]
GUARD_S = 10.0


class WsClient:
    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.seen: list[Frame] = []

    async def send(self, message: Frame | str | bytes) -> None:
        await self.connection.send(message if isinstance(message, str | bytes) else json.dumps(message))

    async def recv(self) -> Frame:
        async with asyncio.timeout(GUARD_S):
            frame = json.loads(await self.connection.recv())
        self.seen.append(frame)
        return frame

    async def expect(self, predicate: Callable[[Frame], bool]) -> Frame:
        """The next frame matching `predicate`; frames before it stay in `self.seen`."""
        while True:
            frame = await self.recv()
            if predicate(frame):
                return frame

    async def expect_type(self, kind: str) -> Frame:
        return await self.expect(lambda f: f["type"] == kind)

    async def request(self, message: Frame, answer: str) -> Frame:
        await self.send(message)
        return await self.expect_type(answer)

    async def subscribe(self, channel: str, **ids: Any) -> Frame:
        return await self.request({"type": "subscribe", "channel": channel, **ids}, "subscribed")

    async def closed(self) -> tuple[int, str]:
        """Read until the server closes; return its close code and reason."""
        try:
            while True:
                await self.recv()
        except websockets.ConnectionClosed as exc:
            assert exc.rcvd is not None, "closed without a close frame"
            return exc.rcvd.code, exc.rcvd.reason


@asynccontextmanager
async def ws_client(server: LiveServer, path: str = "/ws", **options: Any) -> AsyncIterator[WsClient]:
    """A connected client that has already read its `connected` frame."""
    async with websockets.connect(server.ws_url.removesuffix("/ws") + path, open_timeout=GUARD_S,
                                  **options) as connection:
        client = WsClient(connection)
        first = await client.recv()
        assert first["type"] == "connected", first
        yield client


@asynccontextmanager
async def custom_server(tmp_path: Path, adjust: Callable[[dict[str, Any]], None]) -> AsyncIterator[LiveServer]:
    """A live server over the default brewhouse with `adjust` applied to its config document."""
    live = LiveServer(build_runtime(brewhouse_config(adjust), tmp_path / "custom.db"), free_port())
    await live.start()
    await wait_for(lambda: all(live.runtime.plant.device_online.values()))
    try:
        yield live
    finally:
        await live.stop()


def realtime(**settings: Any) -> Callable[[dict[str, Any]], None]:
    def adjust(doc: dict[str, Any]) -> None:
        doc.setdefault("realtime", {}).update(settings)
    return adjust


def required(**extra: Any) -> Callable[[dict[str, Any]], None]:
    """A config adjustment: sign-in required (`auth.mode: required`), with any other auth settings."""
    def adjust(doc: dict[str, Any]) -> None:
        doc["auth"] = {"mode": "required", **extra}
    return adjust


async def ingest(server: LiveServer, endpoint_id: int, *values: Any) -> None:
    """Readings of a device-polled endpoint, delivered as its driver delivers them (to the plant).

    The REST ingest API refuses device-owned endpoints (one owner per reading); the tests of that
    API use endpoints with `source: external` (tests.support.server.fed_externally).
    """
    server.runtime.plant.ingest([Reading(endpoint_id, value) for value in values])
    await asyncio.sleep(0)  # as the REST answer did: let the woken consumers write their frames


class SseStream:
    """Parses a text/event-stream into {id, event, data} dicts (and keep-alive comments)."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()
        self.comments: list[str] = []

    async def next(self) -> dict[str, Any]:
        event: dict[str, Any] = {}
        async with asyncio.timeout(GUARD_S):
            async for line in self.lines:
                if line == "":
                    if "data" in event:
                        event["data"] = json.loads(event["data"])
                        return event
                    event = {}
                elif line.startswith(":"):
                    self.comments.append(line[1:].strip())
                else:
                    key, _, value = line.partition(":")
                    event[key] = value.removeprefix(" ")
        raise AssertionError("stream ended")

    async def comment(self, text: str) -> None:
        """Read on until the comment line `: text`; fails if the stream ends first. For a quiet stream:
        the lines of an event read on the way are not kept."""
        async with asyncio.timeout(GUARD_S):
            async for line in self.lines:
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                    if self.comments[-1] == text:
                        return
        raise AssertionError("stream ended")

    async def expect(self, predicate: Callable[[dict[str, Any]], bool], seen: list[dict[str, Any]] | None = None
                     ) -> dict[str, Any]:
        while True:
            event = await self.next()
            if seen is not None:
                seen.append(event)
            if predicate(event):
                return event


@asynccontextmanager
async def sse(server: LiveServer, query: str = "", headers: dict[str, str] | None = None
              ) -> AsyncIterator[SseStream]:
    async with server.http.stream("GET", "/api/os/events" + query, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield SseStream(response)
