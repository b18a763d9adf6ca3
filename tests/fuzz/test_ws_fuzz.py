"""A WebSocket fuzzer: random and malformed frames (hypothesis) on one real /ws connection.

Every frame is followed by a `ping`; the server must answer each bad frame with an error frame
(code + message, never `internal_error`), answer the ping with a pong (it is still serving this
connection), and stay up for new connections and HTTP at the end.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.support.server import ThreadedServer, brewhouse_config, build_runtime

READ_TIMEOUT_S = 10  # only stops a broken run from hanging; nothing is asserted on time


def _parsed(frame: str | bytes) -> Any:
    try:
        return json.loads(frame) if isinstance(frame, str) else None
    except ValueError:
        return None


class Client:
    """One /ws connection, reopened if the server closed it (a close is checked, then tolerated)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ws: ClientConnection | None = None
        self.closes: list[tuple[int | None, str | None]] = []
        self.stack = ExitStack()

    def socket(self) -> ClientConnection:
        if self.ws is None:
            self.ws = self.stack.enter_context(connect(self.url, open_timeout=READ_TIMEOUT_S, max_size=2**22))
            hello = json.loads(self.ws.recv(timeout=READ_TIMEOUT_S))
            assert hello["type"] == "connected" and hello["authenticated"] is True, hello
        return self.ws

    def exchange(self, frame: str | bytes) -> list[dict[str, Any]]:
        """Send `frame` then a ping; return every frame received up to the pong."""
        ws = self.socket()
        try:
            ws.send(frame)
            ws.send(json.dumps({"type": "ping"}))
            pongs = 1 + (_parsed(frame) == {"type": "ping"})  # a fuzzed ping gets its own pong
            received = []
            while True:
                raw = ws.recv(timeout=READ_TIMEOUT_S)
                assert isinstance(raw, str), "the server sends text frames only"
                message = json.loads(raw)
                assert isinstance(message, dict) and isinstance(message.get("type"), str), message
                if message["type"] == "pong":
                    pongs -= 1
                    if not pongs:
                        return received
                    continue
                received.append(message)
        except ConnectionClosed as closed:
            self.closes.append((closed.rcvd.code if closed.rcvd else None, closed.rcvd.reason if closed.rcvd else None))
            self.ws = None
            return [{"type": "closed", "code": self.closes[-1][0]}]

    def close(self) -> None:
        self.stack.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    def generous(doc: dict[str, Any]) -> None:  # the fuzzer sends fast: rate limits are tested elsewhere
        doc["realtime"] = {"max_messages_per_s": 100000, "abuse_strikes": 100000, "max_message_bytes": 4096}

    db = Path(tmp_path_factory.mktemp("ws-fuzz")) / "bevforge.db"
    with ThreadedServer(build_runtime(brewhouse_config(generous), db)) as live:
        yield live


@pytest.fixture(scope="module")
def client(server: ThreadedServer) -> Iterator[Client]:
    c = Client(f"ws://127.0.0.1:{server.port}/ws")
    yield c
    c.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=16),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=10,
)
types = st.sampled_from(["ping", "pong", "auth", "subscribe", "unsubscribe", "command"]) | st.text(max_size=10)
keys = st.sampled_from(["type", "channel", "endpointIds", "commandIds", "endpointId", "value", "commandId", "token"])
channels = st.sampled_from(["telemetry", "commands", "alarms"]) | json_values
plausible = st.fixed_dictionaries({"type": types}, optional={
    "channel": channels, "endpointIds": st.lists(st.integers(-5, 80) | json_values, max_size=5) | json_values,
    "commandIds": st.lists(st.text(max_size=70), max_size=3) | json_values,
    "endpointId": st.integers(-5, 80) | json_values, "value": json_values, "commandId": json_values,
}) | st.dictionaries(keys | st.text(max_size=8), json_values, max_size=5)
malformed_text = st.text(max_size=200) | st.binary(max_size=100).map(lambda b: b.decode("latin-1")) \
    | st.sampled_from(["{", "[]", "null", "1", '"ping"', '{"type":', '{"type": null}', "{}" * 300, "x" * 5000])


def is_well_formed(frame: str | bytes) -> bool:
    """A frame the protocol could honour: a JSON object whose type is a known message."""
    message = _parsed(frame)
    return isinstance(message, dict) and message.get("type") in ("ping", "pong", "subscribe", "unsubscribe",
                                                                 "command")


def check_answer(frame: str | bytes, received: list[dict[str, Any]]) -> None:
    for message in received:
        assert message["type"] != "closed", f"the server closed the connection on {frame!r}"
        if message["type"] == "error":
            assert isinstance(message.get("code"), str) and isinstance(message.get("message"), str), message
            assert message["code"] != "internal_error", f"{frame!r} hit a server bug: {message}"
            assert "Traceback" not in message["message"]
    if not is_well_formed(frame):
        assert any(m["type"] == "error" for m in received), f"no error frame for {frame!r}: {received}"


@pytest.mark.slow  # 400 generated frames over a real socket: ~12 s
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=plausible)
def test_random_messages_get_answers_or_error_frames(client: Client, message: dict[str, Any]) -> None:
    frame = json.dumps(message)
    check_answer(frame, client.exchange(frame))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=malformed_text | st.binary(max_size=200))
def test_malformed_frames_get_error_frames(client: Client, frame: str | bytes) -> None:
    check_answer(frame, client.exchange(frame))


def test_server_still_serves_after_the_fuzzing(server: ThreadedServer, client: Client) -> None:
    assert client.closes == []
    fresh = Client(f"ws://127.0.0.1:{server.port}/ws")
    try:
        assert fresh.exchange(json.dumps({"type": "ping"})) == []
    finally:
        fresh.close()
    assert httpx.get(f"{server.base_url}/api/os/health", timeout=10).json()["status"] == "ok"
