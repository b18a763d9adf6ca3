"""/ws authentication hook and Origin check: the seed's three ways to present credentials."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import websockets
from starlette.requests import HTTPConnection

from bevforge.domain import Actor
from tests.support.live import WsClient, custom_server, ws_client
from tests.support.server import LiveServer

TOKENS = {"good": Actor(user="brewer", station="kiosk", role="operator", nodes=frozenset({"HLT"})),
          "viewer": Actor(user="visitor", station="lan", role="viewer")}


async def verify(_conn: HTTPConnection, token: str) -> Actor | None:
    return TOKENS.get(token)


def auth(mode: str | None, origins: list[str] | None = None) -> Any:
    def adjust(doc: dict[str, Any]) -> None:
        doc["auth"] = {"allowed_origins": origins or []}
        if mode is not None:
            doc["auth"]["mode"] = mode
    return adjust


@asynccontextmanager
async def secured(tmp_path: Path, verifier: Any = verify) -> AsyncIterator[LiveServer]:
    async with custom_server(tmp_path, auth("required")) as server:
        assert server.server is not None
        if verifier is not None:
            server.server.config.app.state.token_verifier = verifier
        yield server


async def test_loopback_default_lets_everyone_in(server: LiveServer) -> None:
    assert server.runtime.config.auth.mode is None
    async with ws_client(server) as ws:
        assert ws.seen[0]["authenticated"] is True


async def test_token_in_the_query_string(tmp_path: Path) -> None:
    async with secured(tmp_path) as server, ws_client(server, "/ws?token=good") as ws:
        assert ws.seen[0]["authenticated"] is True
        assert (await ws.subscribe("telemetry", endpointIds=[10]))["subscriptions"] == 1


async def test_session_cookie(tmp_path: Path) -> None:
    async with (secured(tmp_path) as server,
                ws_client(server, additional_headers={"Cookie": "bevforge_session=good"}) as ws):
        assert ws.seen[0]["authenticated"] is True


async def test_auth_message_first(tmp_path: Path) -> None:
    async with secured(tmp_path) as server, ws_client(server) as ws:
        assert ws.seen[0]["authenticated"] is False
        ok = await ws.request({"type": "auth", "token": "good"}, "authenticated")
        assert ok["user"] == "brewer" and ok["role"] == "operator"
        # The actor's nodes limit what may be watched: endpoint 20 is in MLT, not HLT.
        error = await ws.request({"type": "subscribe", "channel": "telemetry", "endpointIds": [20]}, "error")
        assert error["code"] == "unknown_endpoint"
        assert (await ws.subscribe("telemetry", endpointIds=[10]))["subscriptions"] == 1


async def test_anything_before_auth_is_refused_and_closed(tmp_path: Path) -> None:
    async with secured(tmp_path) as server, ws_client(server) as ws:
        await ws.send({"type": "subscribe", "channel": "alarms"})
        code, reason = await ws.closed()
    assert code == 1008 and "authentication" in reason
    assert ws.seen[1]["code"] == "auth_required"


async def test_wrong_token_in_auth_message_is_closed(tmp_path: Path) -> None:
    async with secured(tmp_path) as server, ws_client(server) as ws:
        await ws.send({"type": "auth", "token": "forged"})
        code, _ = await ws.closed()
    assert code == 1008 and ws.seen[1]["code"] == "unauthorized"


async def test_wrong_token_in_the_query_is_refused_at_the_handshake(tmp_path: Path) -> None:
    async with secured(tmp_path) as server:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(server.ws_url + "?token=forged"):
                pass
    assert refused.value.response.status_code == 401
    assert json.loads(refused.value.response.body)["error"] == "unauthorized"


async def test_required_mode_without_a_user_store_refuses_every_token(tmp_path: Path) -> None:
    async with secured(tmp_path, verifier=None) as server:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(server.ws_url + "?token=good"):
                pass
    assert refused.value.response.status_code == 401


async def test_viewer_may_watch_but_not_command(tmp_path: Path) -> None:
    async with secured(tmp_path) as server, ws_client(server, "/ws?token=viewer") as ws:
        error = await ws.request({"type": "command", "endpointId": 12, "value": 50}, "error")
        assert error["code"] == "forbidden"
        assert (await ws.subscribe("alarms"))["subscriptions"] == 1


async def test_origin_not_on_the_allow_list_is_refused_before_accept(tmp_path: Path) -> None:
    async with custom_server(tmp_path, auth(None, ["http://brewhouse.local:8080"])) as server:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(server.ws_url, origin="http://evil.example"):  # type: ignore[arg-type]
                pass
        assert refused.value.response.status_code == 403
        assert json.loads(refused.value.response.body)["error"] == "forbidden_origin"
        async with ws_client(server, origin="http://brewhouse.local:8080") as ws:
            assert isinstance(ws, WsClient) and ws.seen[0]["type"] == "connected"
