"""The `controllers` live channel on /ws (real WebSocket client) and SSE: snapshot, changes, the node rule."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.controllers import controller_server
from tests.support.live import sse, ws_client
from tests.support.server import LiveServer


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[LiveServer, dict[str, str]]]:
    async with controller_server(tmp_path, {"bk-operator": "BK"}) as served:
        yield served


async def test_ws_controllers_channel_gives_a_snapshot_then_changes(server: tuple[LiveServer, dict[str, str]]) -> None:
    live, tokens = server
    async with ws_client(live, f"/ws?token={tokens['viewer']}") as ws:
        ack = await ws.subscribe("controllers")
        assert ack["channel"] == "controllers"
        first = {(await ws.expect(lambda f: f["type"] == "controller"))["id"] for _ in range(1)}
        second = await ws.expect(lambda f: f["type"] == "controller" and f["id"] not in first)
        assert {*first, second["id"]} == {"mlt_rims", "bk_element"}
        assert second.get("snapshot") is True
        answer = await live.http.post("/api/os/controllers/mlt_rims/mode", json={"mode": "manual"},
                                      headers={"Authorization": f"Bearer {tokens['operator']}"})
        assert answer.status_code == 200
        change = await ws.expect(lambda f: f["type"] == "controller" and f["id"] == "mlt_rims"
                                 and f["mode"] == "manual")
        assert change["state"] == "manual" and "seq" in change and not change.get("snapshot")
        await ws.send({"type": "unsubscribe", "channel": "controllers"})
        assert (await ws.expect_type("unsubscribed"))["channel"] == "controllers"


async def test_ws_refuses_ids_on_the_controllers_channel(server: tuple[LiveServer, dict[str, str]]) -> None:
    live, tokens = server
    async with ws_client(live, f"/ws?token={tokens['viewer']}") as ws:
        await ws.send({"type": "subscribe", "channel": "controllers", "endpointIds": [20]})
        error = await ws.expect_type("error")
        assert error["field"] == "endpointIds"


async def test_a_node_limited_user_sees_only_its_node_s_controllers_on_ws_and_sse(
        server: tuple[LiveServer, dict[str, str]]) -> None:
    live, tokens = server
    token = tokens["bk-operator"]
    headers = {"Authorization": f"Bearer {token}"}
    async with ws_client(live, f"/ws?token={token}") as ws, sse(live, "?channels=controllers", headers) as stream:
        await ws.subscribe("controllers")
        snapshot = await stream.expect(lambda e: e["event"] == "controller")
        assert snapshot["data"]["id"] == "bk_element" and snapshot["data"]["snapshot"] is True
        admin = {"Authorization": f"Bearer {tokens['admin']}"}
        for cid in ("mlt_rims", "bk_element"):  # a change on each node; only BK's may reach this user
            assert (await live.http.post(f"/api/os/controllers/{cid}/mode", json={"mode": "manual"},
                                         headers=admin)).status_code == 200
        seen_ws = await ws.expect(lambda f: f["type"] == "controller" and f["mode"] == "manual")
        assert seen_ws["id"] == "bk_element"
        seen_sse = await stream.expect(lambda e: e["event"] == "controller" and e["data"]["mode"] == "manual")
        assert seen_sse["data"]["id"] == "bk_element"
        assert all(f.get("id") != "mlt_rims" for f in ws.seen if f["type"] == "controller")
        rest = (await live.http.get("/api/os/controllers", headers=headers)).json()
        assert [c["id"] for c in rest] == ["bk_element"]


async def test_sse_refuses_an_unknown_channel_but_knows_controllers(server: tuple[LiveServer, dict[str, str]]) -> None:
    live, tokens = server
    headers = {"Authorization": f"Bearer {tokens['viewer']}"}
    bad = await live.http.get("/api/os/events?channels=controllerz", headers=headers)
    assert bad.status_code == 422 and bad.json()["field"] == "channels"
    assert "controllers" in bad.json()["message"]
