"""Role × route matrix, generated from the app's own route table.

Every REST route declares the role it needs (`x-required-role`); every route is tried as
anonymous, viewer, operator, technician and admin, and must answer 401/403 exactly when the caller
is below the declared role. Bodies are empty so that an allowed mutating call stops at validation
(422/404) instead of changing anything. /ws actions and a node-limited user are checked too, and
the transport dimension: each actor sees the same endpoints, alarms and events on REST, /ws and SSE
(the screens: tests/ui/test_auth_screens.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bevforge.api.security import PUBLIC, ROLE_KEY
from bevforge.auth import ROLE_RANK, ROLES
from bevforge.domain import Reading, Severity
from tests.support.live import SseStream, WsClient, custom_server, sse, ws_client
from tests.support.server import LiveServer, wait_for

PATH_VALUES = {"endpoint_id": "10", "command_id": "no-such-command", "alarm_id": "999999",
               "rule_id": "hlt_temperature_hihi", "username": "nobody", "token_id": "no-such-token",
               "controller_id": "no-such-controller", "view_id": "999999", "unit": "no-such-unit",
               "draft_id": "999999", "batch_id": "999999"}


def required(doc: dict[str, Any]) -> None:
    doc["auth"] = {"mode": "required"}


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[tuple[LiveServer, dict[str, str]]]:
    async with custom_server(tmp_path, required) as server:
        tokens = {role: server.runtime.auth.create_token(f"{role}-token", role, None, "test")[1] for role in ROLES}
        tokens["hlt-operator"] = server.runtime.auth.create_token("hlt-only", "operator", ["HLT"], "test")[1]
        yield server, tokens


def routes(server: LiveServer) -> list[tuple[str, str, str]]:
    """(method, path, role) for every operation of the app's route table, as its OpenAPI states it."""
    app = server.server.config.app  # type: ignore[union-attr]
    out = []
    for template, operations in app.openapi()["paths"].items():
        path = template
        for name, value in PATH_VALUES.items():
            path = path.replace("{" + name + "}", value)
        for method, operation in operations.items():
            role = operation.get(ROLE_KEY)
            assert role is not None, f"{method.upper()} {template} declares no role"
            out.append((method.upper(), path, role))
    return out


async def call(server: LiveServer, method: str, path: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if path == "/api/os/events":
        async with server.http.stream("GET", path, headers=headers) as response:
            return response.status_code
    kwargs: dict[str, Any] = {"headers": headers, "follow_redirects": False}
    if method in ("POST", "PATCH", "PUT", "DELETE"):
        # a timed shelf (operator) rather than a one-shot one (technician): invalid, so nothing changes
        kwargs["json"] = {"durationS": -1} if path.endswith("/shelve") else {}
    return (await server.http.request(method, path, **kwargs)).status_code


async def test_every_route_answers_exactly_by_role(secured: tuple[LiveServer, dict[str, str]]) -> None:
    server, tokens = secured
    table = routes(server)
    assert len(table) >= 30
    for method, path, role in table:
        if path in ("/api/os/auth/logout", "/setup"):
            continue  # would end the test's own sessions / needs loopback-only first run: tested elsewhere
        for caller in (None, *ROLES):
            status = await call(server, method, path, tokens[caller] if caller else None)
            if path.startswith("/api/hydrometers/"):
                # a hydrometer's token is in its path: no user's session or API token opens it
                assert status == 401, f"{method} {path} as {caller or 'anonymous'} → {status}"
                continue
            if role == PUBLIC:
                allowed = True
            else:
                allowed = caller is not None and ROLE_RANK[caller] >= ROLE_RANK[role]
            where = f"{method} {path} (needs {role}) as {caller or 'anonymous'} → {status}"
            if allowed:
                assert status not in (401, 403), where
            else:
                assert status == (401 if caller is None else 403), where
                assert status < 500, where


async def test_node_limited_user_sees_only_its_nodes(secured: tuple[LiveServer, dict[str, str]]) -> None:
    server, tokens = secured
    h = {"Authorization": f"Bearer {tokens['hlt-operator']}"}
    tiles = (await server.http.get("/api/os/tiles", headers=h)).json()
    assert {t["node"] for t in tiles} == {"HLT"}
    assert {e["node"] for e in (await server.http.get("/api/os/endpoints", headers=h)).json()} == {"HLT"}
    assert (await server.http.get("/api/os/endpoints/20", headers=h)).status_code == 404
    assert (await server.http.post("/api/os/command", headers=h, json={"endpointId": 22, "value": True})).status_code \
        == 404
    r = await server.http.post("/api/os/command", headers=h, json={"endpointId": 12, "value": 70})
    assert r.status_code == 202
    history = (await server.http.get("/api/os/telemetry", headers=h, params={"limit": 10000})).json()
    assert {x["endpointId"] for x in history["readings"]} <= {10, 11, 12, 13, 14}
    assert (await server.http.get("/api/os/telemetry", headers=h, params={"endpointId": 50})).status_code == 404


@pytest.mark.parametrize(("role", "may_command"), [("viewer", False), ("operator", True), ("technician", True),
                                                   ("admin", True)])
async def test_ws_actions_by_role(secured: tuple[LiveServer, dict[str, str]], role: str, may_command: bool) -> None:
    server, tokens = secured
    async with ws_client(server, f"/ws?token={tokens[role]}") as ws:
        assert (await ws.subscribe("alarms"))["type"] == "subscribed"
        await ws.send({"type": "command", "endpointId": 12, "value": 66})
        answer = await ws.expect(lambda f: f["type"] in ("command_status", "error"))
        if may_command:
            assert answer["type"] == "command_status" and answer["status"] == "queued"
        else:
            assert answer["type"] == "error" and answer["code"] == "forbidden"


# -- the transport dimension: every actor sees the same set on REST, /ws and SSE ---------------------

HLT_ENDPOINTS = {10, 11, 12, 13, 14}
EVERY_ALARM = {"comms:hlt_controller", "comms:bk_controller", "hlt_temperature_hihi", "bk_temperature_hi",
               "store:test"}
HLT_ALARMS = {"comms:hlt_controller", "hlt_temperature_hihi"}  # the HLT controller's own comms alarm is theirs
MARKER = "blocked:marker"  # the alert of a command to the offline HLT controller: an HLT event, published last
ACTORS = (None, "viewer", "operator", "technician", "admin", "hlt-operator")


OTHER_NODES_ALARMS = {"comms:bk_controller", "bk_temperature_hi", "store:test"}  # never the HLT operator's


def expected(server: LiveServer, caller: str | None) -> tuple[set[int], set[str]]:
    """(endpoints, alarms at least) an actor sees: nothing unsigned, the HLT's for the HLT operator, else all.

    At least: a poll that fails before its device is declared offline may add a `stale:` alarm.
    """
    if caller is None:
        return set(), set()
    if caller == "hlt-operator":
        return HLT_ENDPOINTS, HLT_ALARMS | {MARKER}
    return set(server.runtime.plant.endpoints), EVERY_ALARM | {MARKER}


async def force_alarms(server: LiveServer) -> None:
    """Two device alarms (HLT and BK controllers offline), a process alarm on each, a system alarm."""
    rt = server.runtime
    server.sim.faults_for("hlt_controller").offline = True
    server.sim.faults_for("bk_controller").offline = True
    await wait_for(lambda: all(rt.alarms.is_active(f"comms:{d}") for d in ("hlt_controller", "bk_controller")))
    rt.plant.ingest([Reading(10, 101.0), Reading(30, 104.0)])  # their polls fail: these values stay
    rt.alarms.raise_alarm("store:test", "store", Severity.HIGH, "test: the store cannot be written")
    await wait_for(lambda: all(rt.alarms.is_active(key) for key in EVERY_ALARM))


async def rest_view(server: LiveServer, token: str | None) -> tuple[set[int], set[str]] | int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    endpoints = await server.http.get("/api/os/endpoints", headers=headers)
    alarms = await server.http.get("/api/os/alarms", headers=headers)
    if endpoints.status_code != 200 or alarms.status_code != 200:
        return endpoints.status_code
    return {e["endpointId"] for e in endpoints.json()}, {a["ruleId"] for a in alarms.json()}


async def test_every_transport_shows_each_actor_the_same_endpoints_alarms_and_events(
        secured: tuple[LiveServer, dict[str, str]]) -> None:
    server, tokens = secured
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    async with contextlib.AsyncExitStack() as stack:
        sockets: dict[str, WsClient] = {}
        streams: dict[str, SseStream] = {}
        for caller in ACTORS[1:]:
            ws = sockets[caller] = await stack.enter_async_context(ws_client(server, f"/ws?token={tokens[caller]}"))
            for channel in ("telemetry", "alarms", "commands"):
                await ws.subscribe(channel)
            streams[caller] = await stack.enter_async_context(
                sse(server, "?channels=telemetry,alarms,commands", {"Authorization": f"Bearer {tokens[caller]}"}))
        await force_alarms(server)
        # a command every signed-in actor may see, blocked (its device is offline) with an alarm: once that
        # alarm arrived, so did every earlier event
        marker = (await server.http.post("/api/os/command", headers=admin,
                                         json={"endpointId": 12, "value": 64, "commandId": "marker"})).json()
        assert marker["status"] == "blocked"
        is_marker = {"ws": lambda f: f["type"] == "alarm" and f["ruleId"] == MARKER,
                     "sse": lambda e: e["event"] == "alarm" and e["data"]["ruleId"] == MARKER}
        for caller in ACTORS:
            endpoints, alarms = expected(server, caller)
            rest = await rest_view(server, tokens[caller] if caller else None)
            if caller is None:
                assert rest == 401  # nothing of the plant for a stranger; /ws and SSE below
                continue
            assert not isinstance(rest, int), (caller, rest)
            assert rest[0] == endpoints, caller
            assert rest[1] >= alarms - {MARKER}, caller
            assert MARKER not in rest[1], caller  # an alert: pushed to who may see it, never left standing
            if caller == "hlt-operator":
                assert not rest[1] & OTHER_NODES_ALARMS
                nodes = {a.rule_id: a.node for a in server.runtime.alarms.standing()}
                assert all(key == "comms:hlt_controller" or nodes[key] == "HLT" for key in rest[1])
            ws = sockets[caller]
            await ws.expect(is_marker["ws"])
            ws_alarms = {f["ruleId"] for f in ws.seen if f["type"] == "alarm"}
            while rest[1] - ws_alarms:  # published before REST answered: on its way
                late = rest[1] - ws_alarms
                ws_alarms.add((await ws.expect(lambda f, late=late: f["type"] == "alarm" and f["ruleId"] in late))
                              ["ruleId"])
            seen_ws = [f for f in ws.seen if f["type"] in ("telemetry", "alarm", "command_status")]
            # every visible endpoint's snapshot (or the newer live value it coalesced into), nothing else
            assert {f["endpointId"] for f in seen_ws if f["type"] == "telemetry"} == endpoints, caller
            assert {f["endpointId"] for f in seen_ws if f["type"] != "alarm"} <= endpoints, caller
            assert ws_alarms == rest[1] | {MARKER}, caller
            seen_sse: list[dict[str, Any]] = []
            await streams[caller].expect(is_marker["sse"], seen_sse)
            sse_alarms = {e["data"]["ruleId"] for e in seen_sse if e["event"] == "alarm"}
            while rest[1] - sse_alarms:
                late = rest[1] - sse_alarms
                sse_alarms.add((await streams[caller].expect(
                    lambda e, late=late: e["event"] == "alarm" and e["data"]["ruleId"] in late, seen_sse))
                    ["data"]["ruleId"])
            data = [e["data"] for e in seen_sse if e["event"] in ("telemetry", "alarm", "command_status")]
            assert {d["endpointId"] for d in data if d["type"] == "telemetry"} == endpoints, caller
            assert {d["endpointId"] for d in data if d["type"] != "alarm"} <= endpoints, caller
            assert sse_alarms == rest[1] | {MARKER}, caller
    # the stranger: SSE refuses, /ws shows nothing and closes
    async with server.http.stream("GET", "/api/os/events") as refused:
        assert refused.status_code == 401
    async with ws_client(server) as ws:
        assert ws.seen[0]["authenticated"] is False
        await ws.send({"type": "subscribe", "channel": "alarms"})
        code, _reason = await ws.closed()
    assert code == 1008
    assert not [f for f in ws.seen if f["type"] in ("telemetry", "alarm", "command_status")]
