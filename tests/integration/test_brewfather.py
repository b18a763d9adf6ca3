"""The Brewfather custom-stream push against a real local receiver, on a ManualClock (issue 18 point 5):
one post per stream per 15 minutes with Brewfather's fields, stale values never sent, a failed post
retried and counted, the stream URL (its secret id) never shown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bevforge.clock import ManualClock
from bevforge.domain import utcnow
from bevforge.integrations.brewfather import BrewfatherPush
from bevforge.runtime import Runtime
from drivers import driver_factories
from tests.integration.test_hydrometers import INTERVAL_S, ISPINDEL_TOKEN, hydrometers, ispindel_body, ispindel_url
from tests.support.postgres import test_db_url
from tests.support.server import LiveServer, brewhouse_config, free_port, wait_for

SECRET_ID = "s3cr3tStreamId9xq"


class Receiver:
    """A stand-in for Brewfather's stream endpoint: records each post; answers `fail_next` with 503."""

    def __init__(self) -> None:
        self.posts: asyncio.Queue[tuple[dict[str, str], dict[str, Any]]] = asyncio.Queue()
        self.fail_next = 0
        self.hang: asyncio.Event | None = None  # set: the next post waits for it (Brewfather not answering)
        self.port = free_port()
        app = Starlette(routes=[Route("/stream", self.stream, methods=["POST"])])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.url = f"http://127.0.0.1:{self.port}/stream?id={SECRET_ID}"

    async def stream(self, request: Request) -> JSONResponse:
        if self.hang is not None:
            await self.hang.wait()
        if self.fail_next:
            self.fail_next -= 1
            return JSONResponse({"result": "busy"}, status_code=503)
        await self.posts.put((dict(request.query_params), await request.json()))
        return JSONResponse({"result": "success"})

    async def next_post(self) -> tuple[dict[str, str], dict[str, Any]]:
        async with asyncio.timeout(10):
            return await self.posts.get()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    task = asyncio.create_task(receiver.server.serve())
    await wait_for(lambda: receiver.server.started)
    try:
        yield receiver
    finally:
        receiver.server.should_exit = True
        await task


@pytest.fixture
async def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> AsyncIterator[LiveServer]:
    monkeypatch.setenv("BF_TEST_ISPINDEL_TOKEN", ISPINDEL_TOKEN)
    monkeypatch.setenv("BF_TEST_BREWFATHER_URL", receiver.url)
    token_file = tmp_path / "tilt.token"
    token_file.write_text("tilt-token-0d8e3b6a51c4", encoding="utf-8")

    def adjust(doc: dict[str, Any]) -> None:
        doc["_tilt_token_file"] = str(token_file)
        hydrometers(doc)
        doc["brewfather"] = {"url_env": "BF_TEST_BREWFATHER_URL", "timeout_s": 1.0, "streams": [
            {"name": "FV1", "temperature": 901, "gravity": 900, "beer": "Pale Ale", "comment": "BevForge"},
            {"name": "FV2", "gravity": 910},  # its Tilt never posts: nothing good to send, never posted
        ]}

    config = brewhouse_config(adjust)
    clock = ManualClock()
    factories, sim = driver_factories(config, clock=clock)
    runtime = Runtime(config, test_db_url(tmp_path / "bf.db"), factories, clock=clock)
    runtime.attachments["simulator"] = sim
    live = LiveServer(runtime, free_port())
    await live.start()
    try:
        yield live
    finally:
        await live.stop()


async def step(server: LiveServer, seconds: float) -> None:
    """Move process time on, then let a post the push started reach its answer."""
    clock = server.runtime.clock
    assert isinstance(clock, ManualClock)
    await clock.advance(seconds)
    push = server.runtime.brewfather
    assert push is not None
    await wait_for(lambda: not push.posting)


async def test_one_post_per_fifteen_minutes_with_brewfathers_fields(server: LiveServer, receiver: Receiver,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    push = server.runtime.brewfather
    assert isinstance(push, BrewfatherPush)
    await step(server, 0)
    assert push.attempts == {} and push.skipped == 2  # nothing good yet: no post, nothing counted against the limit
    assert (await server.http.post(ispindel_url(), json=ispindel_body())).status_code == 200
    await step(server, 60)  # the retry after the skip finds the values
    query, body = await receiver.next_post()
    assert query == {"id": SECRET_ID}
    assert body == {"name": "FV1", "temp": pytest.approx(68.0), "temp_unit": "F",
                    "gravity": pytest.approx(11.92, abs=0.05), "gravity_unit": "P", "beer": "Pale Ale",
                    "comment": "BevForge"}
    # the next 14 minutes, minute by minute: fresh readings keep coming, no post goes
    for _ in range(14):
        assert (await server.http.post(ispindel_url(), json=ispindel_body(gravity=1.046))).status_code == 200
        await step(server, 60)
    assert push.attempts == {"FV1": 1} and receiver.posts.empty()
    await step(server, 60)  # 15 minutes after the first
    _, body = await receiver.next_post()
    assert body["gravity"] == pytest.approx(11.43, abs=0.05)
    assert push.attempts == {"FV1": 2} and push.posts == 2
    # FV2's Tilt never posted: it was tried every retry and never sent
    assert "FV2" not in push.attempts
    health = (await server.http.get("/api/os/health")).json()["brewfather"]
    assert health["posts"] == 2 and health["failures"] == 0
    shown = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore")))
    assert SECRET_ID not in shown and SECRET_ID not in str(health)


async def test_stale_values_are_not_sent_and_failures_are_retried(server: LiveServer, receiver: Receiver,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    push = server.runtime.brewfather
    assert isinstance(push, BrewfatherPush)
    assert (await server.http.post(ispindel_url(), json=ispindel_body())).status_code == 200
    await step(server, 60)
    await receiver.next_post()
    # the hydrometer falls silent: its values go stale, and a stale value is never sent
    server.runtime.plant.sweep_stale(utcnow() + timedelta(seconds=3 * INTERVAL_S + 1))
    skipped = push.skipped
    await step(server, INTERVAL_S)
    assert push.attempts == {"FV1": 1} and push.skipped > skipped and receiver.posts.empty()
    # it posts again, Brewfather is busy once: the failure is counted and logged, and retried after retry_s
    assert (await server.http.post(ispindel_url(), json=ispindel_body(gravity=1.030))).status_code == 200
    receiver.fail_next = 1
    with caplog.at_level(logging.WARNING, logger="bevforge.integrations.brewfather"):
        await step(server, 60)
    assert push.failures == 1 and push.last_error == "HTTP 503"
    assert "post failed (HTTP 503)" in caplog.text and SECRET_ID not in caplog.text
    await step(server, 60)
    _, body = await receiver.next_post()
    assert body["gravity"] == pytest.approx(7.6, abs=0.05) and push.posts == 2 and push.last_error is None


async def test_an_unreachable_stream_delays_nothing(server: LiveServer, receiver: Receiver,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Brewfather gone (a closed port): the post fails, is counted, and readings still arrive at once."""
    monkeypatch.setenv("BF_TEST_BREWFATHER_URL", f"http://127.0.0.1:{free_port()}/stream?id={SECRET_ID}")
    push = server.runtime.brewfather
    assert isinstance(push, BrewfatherPush)
    assert (await server.http.post(ispindel_url(), json=ispindel_body())).status_code == 200
    await step(server, 60)
    assert push.failures == 1 and SECRET_ID not in (push.last_error or "") and push.posts == 0
    assert (await server.http.post(ispindel_url(), json=ispindel_body(gravity=1.020))).status_code == 200
    assert server.runtime.plant.states[900].value == pytest.approx(5.1, abs=0.05)


async def test_a_stream_that_never_answers_holds_up_nothing(server: LiveServer, receiver: Receiver) -> None:
    """Brewfather accepts the connection and never answers: while the post waits, hydrometer posts and the
    plant go on; the post then fails on its time limit and is counted."""
    push = server.runtime.brewfather
    assert isinstance(push, BrewfatherPush)
    receiver.hang = asyncio.Event()
    assert (await server.http.post(ispindel_url(), json=ispindel_body())).status_code == 200
    clock = server.runtime.clock
    assert isinstance(clock, ManualClock)
    await clock.advance(60)
    assert push.posting  # on the wire, unanswered
    answer = await server.http.post(ispindel_url(), json=ispindel_body(gravity=1.020))
    assert answer.status_code == 200 and server.runtime.plant.states[900].value == pytest.approx(5.1, abs=0.05)
    await wait_for(lambda: not push.posting, timeout=10)
    assert push.failures == 1 and push.last_error == "no answer within 1 s"
    receiver.hang.set()
