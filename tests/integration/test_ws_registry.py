"""/ws message types come from one registry: `@handles(type, Schema)` is all a new message needs.

A test-only `echo` message is registered with its pydantic schema; a real WebSocket client then
gets its answer, and the schema's failures come back as the same error frames every other message
type gives (missing_field / invalid_field / unknown_field naming the field, unknown_type listing
the registered types). The connection stays open throughout.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bevforge.api.livefeed import reply
from bevforge.api.ws_protocol import HANDLERS, Frame, Protocol, handles
from tests.support.live import WsClient, ws_client
from tests.support.server import LiveServer


class EchoIn(Frame):
    text: str
    times: int = 1


@pytest.fixture
def echo() -> Iterator[None]:
    @handles("echo", EchoIn)
    async def _echo(protocol: Protocol, frame: EchoIn) -> None:
        protocol.out(reply({"type": "echo", "text": frame.text * frame.times}))

    try:
        yield
    finally:
        HANDLERS.pop("echo", None)


async def _error(ws: WsClient, message: dict[str, object]) -> dict[str, object]:
    await ws.send(message)
    return await ws.expect_type("error")


async def test_a_registered_message_type_is_answered_by_its_handler(server: LiveServer, echo: None) -> None:
    async with ws_client(server) as ws:
        answer = await ws.request({"type": "echo", "text": "hop", "times": 2}, "echo")
    assert answer == {"type": "echo", "text": "hophop"}


@pytest.mark.parametrize(("message", "code", "field"), [
    ({"type": "echo"}, "missing_field", "text"),
    ({"type": "echo", "text": 5}, "invalid_field", "text"),
    ({"type": "echo", "text": "hi", "times": "two"}, "invalid_field", "times"),
    ({"type": "echo", "text": "hi", "loud": True}, "unknown_field", "loud"),
])
async def test_a_frame_that_breaks_its_schema_gets_an_error_frame_naming_the_field(
        server: LiveServer, echo: None, message: dict[str, object], code: str, field: str) -> None:
    async with ws_client(server) as ws:
        error = await _error(ws, message)
        assert (error["code"], error["field"]) == (code, field)
        assert isinstance(error["message"], str) and field in error["message"]
        pong = await ws.request({"type": "ping"}, "pong")  # still open and answering
    assert pong["type"] == "pong"


async def test_an_unknown_type_is_an_error_frame_listing_the_registered_types(server: LiveServer, echo: None) -> None:
    async with ws_client(server) as ws:
        error = await _error(ws, {"type": "dance"})
    assert (error["code"], error["field"]) == ("unknown_type", "type")
    assert "echo" in str(error["message"]) and "subscribe" in str(error["message"])
