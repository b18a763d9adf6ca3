"""Role × route matrix, generated from the app's own route table.

Every REST route declares the role it needs (`x-required-role`); every route is tried as
anonymous, viewer, operator, technician and admin, and must answer 401/403 exactly when the caller
is below the declared role. Bodies are empty so that an allowed mutating call stops at validation
(422/404) instead of changing anything. /ws actions and a node-limited user are checked too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bevforge.api.security import PUBLIC, ROLE_KEY
from bevforge.auth import ROLE_RANK, ROLES
from tests.support.live import custom_server, ws_client
from tests.support.server import LiveServer

PATH_VALUES = {"endpoint_id": "10", "command_id": "no-such-command", "alarm_id": "999999",
               "rule_id": "hlt_temperature_hihi", "username": "nobody", "token_id": "no-such-token"}


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
