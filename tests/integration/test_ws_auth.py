"""/ws authentication and authorisation with real users and tokens: the seed's three ways to
present credentials, the grace period, Origin, node limits and revocation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import websockets

from bevforge.domain import Reading
from tests.support.live import WsClient, custom_server, ws_client
from tests.support.server import LiveServer, wait_for


def auth(mode: str | None, origins: list[str] | None = None, grace: float = 5.0) -> Any:
    def adjust(doc: dict[str, Any]) -> None:
        doc["auth"] = {"allowed_origins": origins or [], "ws_auth_grace_s": grace}
        if mode is not None:
            doc["auth"]["mode"] = mode
    return adjust


class Secured:
    def __init__(self, server: LiveServer) -> None:
        self.server = server
        a = server.runtime.auth
        a.add_user("brewer", "brewer-pass-1", "operator", ["HLT"])
        a.add_user("visitor", "visitor-pass-1", "viewer", None)
        self.operator_token = a.create_token("hlt-panel", "operator", ["HLT"], "test")[1]
        self.viewer_token = a.create_token("dashboard", "viewer", None, "test")[1]
        self.cookie, _ = a.login("brewer", "brewer-pass-1", "127.0.0.1")


@asynccontextmanager
async def secured(tmp_path: Path, grace: float = 5.0) -> AsyncIterator[Secured]:
    async with custom_server(tmp_path, auth("required", grace=grace)) as server:
        yield Secured(server)


async def test_loopback_default_lets_everyone_in(server: LiveServer) -> None:
    assert server.runtime.config.auth.mode is None
    async with ws_client(server) as ws:
        assert ws.seen[0]["authenticated"] is True


async def test_token_in_the_query_string(tmp_path: Path) -> None:
    async with secured(tmp_path) as s, ws_client(s.server, f"/ws?token={s.operator_token}") as ws:
        assert ws.seen[0]["authenticated"] is True
        assert (await ws.subscribe("telemetry", endpointIds=[10]))["subscriptions"] == 1


async def test_session_cookie(tmp_path: Path) -> None:
    async with (secured(tmp_path) as s,
                ws_client(s.server, additional_headers={"Cookie": f"bevforge_session={s.cookie}"}) as ws):
        assert ws.seen[0]["authenticated"] is True


async def test_auth_message_first_and_node_limits(tmp_path: Path) -> None:
    async with secured(tmp_path) as s, ws_client(s.server) as ws:
        assert ws.seen[0]["authenticated"] is False
        ok = await ws.request({"type": "auth", "token": s.operator_token}, "authenticated")
        assert ok["role"] == "operator"
        # The token is limited to HLT: endpoint 20 is in the MLT, so it does not exist for it.
        error = await ws.request({"type": "subscribe", "channel": "telemetry", "endpointIds": [20]}, "error")
        assert error["code"] == "unknown_endpoint"
        assert (await ws.subscribe("telemetry", endpointIds=[10]))["subscriptions"] == 1


async def test_alarms_of_other_nodes_are_never_delivered(tmp_path: Path) -> None:
    async with secured(tmp_path) as s, ws_client(s.server, f"/ws?token={s.operator_token}") as ws:
        await ws.subscribe("alarms")
        rt = s.server.runtime
        s.server.sim.faults_for("bk_controller").offline = True
        s.server.sim.faults_for("hlt_controller").offline = True
        await wait_for(lambda: all(rt.alarms.is_active(f"comms:{d}") for d in ("hlt_controller", "bk_controller")))
        rt.plant.ingest([Reading(30, 104.0)])  # their polls fail: these values stay
        assert rt.alarms.is_active("bk_temperature_hi")
        rt.plant.ingest([Reading(10, 101.0)])
        await ws.expect(lambda f: f["type"] == "alarm" and f["ruleId"] == "hlt_temperature_hihi")
        received = {f["ruleId"] for f in ws.seen if f["type"] == "alarm"}
        # the HLT controller's comms alarm (node null: a device alarm) is the HLT's; the BK's never arrive
        assert received == {"comms:hlt_controller", "hlt_temperature_hihi"}
        rest = await s.server.http.get("/api/os/alarms", headers={"Authorization": f"Bearer {s.operator_token}"})
        assert {a["ruleId"] for a in rest.json()} == received  # and REST says the same


async def test_no_credentials_closed_after_the_grace_period(tmp_path: Path) -> None:
    async with secured(tmp_path, grace=0.3) as s, ws_client(s.server) as ws:
        code, reason = await ws.closed()
    assert code == 1008 and "authentication" in reason


async def test_anything_before_auth_is_refused_and_closed(tmp_path: Path) -> None:
    async with secured(tmp_path) as s, ws_client(s.server) as ws:
        await ws.send({"type": "subscribe", "channel": "alarms"})
        code, reason = await ws.closed()
    assert code == 1008 and "authentication" in reason
    assert ws.seen[1]["code"] == "auth_required"


async def test_wrong_token_in_auth_message_is_closed(tmp_path: Path) -> None:
    async with secured(tmp_path) as s, ws_client(s.server) as ws:
        await ws.send({"type": "auth", "token": "forged"})
        code, _ = await ws.closed()
    assert code == 1008 and ws.seen[1]["code"] == "unauthorized"


async def test_wrong_token_in_the_query_is_refused_at_the_handshake(tmp_path: Path) -> None:
    async with secured(tmp_path) as s:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(s.server.ws_url + "?token=forged"):
                pass
    assert refused.value.response.status_code == 401
    assert json.loads(refused.value.response.body)["error"] == "unauthorized"


async def test_viewer_may_watch_but_not_command(tmp_path: Path) -> None:
    async with secured(tmp_path) as s, ws_client(s.server, f"/ws?token={s.viewer_token}") as ws:
        error = await ws.request({"type": "command", "endpointId": 12, "value": 50}, "error")
        assert error["code"] == "forbidden"
        assert (await ws.subscribe("alarms"))["subscriptions"] == 1


async def test_revoking_the_token_closes_its_socket(tmp_path: Path) -> None:
    async with secured(tmp_path) as s, ws_client(s.server, f"/ws?token={s.viewer_token}") as ws:
        token_id = s.viewer_token.split("_")[1]
        assert s.server.runtime.auth.revoke_token(token_id)
        code, reason = await ws.closed()
    assert code == 1008 and "revoked" in reason


async def test_logout_closes_the_session_sockets(tmp_path: Path) -> None:
    async with (secured(tmp_path) as s,
                ws_client(s.server, additional_headers={"Cookie": f"bevforge_session={s.cookie}"}) as ws):
        r = await s.server.http.post("/api/os/auth/logout", cookies={"bevforge_session": s.cookie},
                                     headers={"origin": s.server.base_url})
        assert r.status_code == 200
        code, reason = await ws.closed()
    assert code == 1008 and "signed out" in reason


async def test_origin_not_on_the_allow_list_is_refused_before_accept(tmp_path: Path) -> None:
    async with custom_server(tmp_path, auth(None, ["http://brewhouse.local:8080"])) as server:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(server.ws_url, origin="http://evil.example"):  # type: ignore[arg-type]
                pass
        assert refused.value.response.status_code == 403
        assert json.loads(refused.value.response.body)["error"] == "forbidden_origin"
        async with ws_client(server, origin="http://brewhouse.local:8080") as ws:
            assert isinstance(ws, WsClient) and ws.seen[0]["type"] == "connected"
