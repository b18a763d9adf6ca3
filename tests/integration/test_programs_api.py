"""/api/os/programs over real HTTP, and the `programs` live channel on /ws (real WebSocket client) and SSE."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bevforge.auth import ROLES
from tests.integration.test_programs import with_programs
from tests.support.controllers import KETTLE, RIMS, controller_config, controller_runtime, wait_online
from tests.support.live import required, sse, ws_client
from tests.support.server import LiveServer, free_port


@asynccontextmanager
async def program_server(tmp_path: Path) -> AsyncIterator[tuple[LiveServer, dict[str, str]]]:
    def adjust(doc: dict[str, Any]) -> None:
        required()(doc)
        with_programs(doc)

    config = controller_config([dict(RIMS), dict(KETTLE)], adjust=adjust)
    live = LiveServer(controller_runtime(config, tmp_path / "bevforge.db"), free_port())
    await live.start()
    try:
        await wait_online(live.runtime)
        auth = live.runtime.auth
        tokens = {role: auth.create_token(f"{role}-token", role, None, "test")[1] for role in ROLES}
        tokens["bk-operator"] = auth.create_token("bk-only", "operator", ["BK"], "test")[1]
        tokens["mlt-operator"] = auth.create_token("mlt-only", "operator", ["MLT"], "test")[1]
        yield live, tokens
    finally:
        await live.stop()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[LiveServer, dict[str, str]]]:
    async with program_server(tmp_path) as served:
        yield served


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_units_templates_and_a_program_s_life_over_rest(server: tuple[LiveServer, dict[str, str]]) -> None:
    live, tokens = server
    http, operator = live.http, bearer(tokens["operator"])
    units = (await http.get("/api/os/programs", headers=bearer(tokens["viewer"]))).json()
    assert {u["unit"]: u["state"] for u in units} == {"brewhouse": "idle", "kettle": "idle"}
    templates = (await http.get("/api/os/programs/templates", headers=bearer(tokens["viewer"]))).json()
    mash = next(t for t in templates if t["id"] == "short_mash")
    assert mash["unit"] == "brewhouse" and mash["steps"][1] == {
        "type": "hold", "name": "Mash rest",
        "settings": {"controller": "mlt_rims", "target_c": 65.5, "minutes": 5, "band_c": 1}}
    started = await http.post("/api/os/programs/brewhouse/start", json={"templateId": "short_mash"}, headers=operator)
    assert started.status_code == 200, started.text
    frame = started.json()
    assert frame["type"] == "program" and frame["state"] == "running" and frame["step"]["name"] == "Strike"
    assert [s["type"] for s in frame["steps"]] == ["heat", "hold", "prompt"]
    for action, state in (("pause", "paused"), ("resume", "running"), ("skip", "running")):
        answer = await http.post(f"/api/os/programs/brewhouse/{action}", headers=operator)
        assert answer.status_code == 200 and answer.json()["state"] == state, answer.text
    longer = await http.post("/api/os/programs/brewhouse/extend", json={"minutes": 2}, headers=operator)
    assert longer.json()["step"]["remainingS"] == 420
    skipped = (await http.post("/api/os/programs/brewhouse/skip", headers=operator)).json()
    assert skipped["step"]["type"] == "prompt" and skipped["prompts"][0]["key"] == "confirm"
    wrong = await http.post("/api/os/programs/brewhouse/confirm", json={"step": 1, "key": "confirm"},
                            headers=operator)
    assert wrong.status_code == 409 and wrong.json()["field"] == "step"
    done = await http.post("/api/os/programs/brewhouse/confirm", json={"step": 2, "key": "confirm"},
                           headers=operator)
    assert done.json()["state"] == "completed"
    one = (await http.get("/api/os/programs/brewhouse", headers=bearer(tokens["viewer"]))).json()
    assert one["state"] == "completed" and one["templateId"] == "short_mash"


async def test_bad_requests_are_4xx_json_naming_the_field(server: tuple[LiveServer, dict[str, str]]) -> None:
    live, tokens = server
    http, operator = live.http, bearer(tokens["operator"])
    cases = [
        ("/api/os/programs/brewhouse/start", {"templateId": "nope"}, 422, "templateId"),
        ("/api/os/programs/brewhouse/start", {"templateId": "warm_up"}, 422, "templateId"),
        ("/api/os/programs/brewhouse/start", {}, 422, "templateId"),
        ("/api/os/programs/nowhere/start", {"templateId": "short_mash"}, 404, "unit"),
        ("/api/os/programs/brewhouse/pause", None, 409, "unit"),
        ("/api/os/programs/brewhouse/extend", {"minutes": "ten"}, 422, "minutes"),
        ("/api/os/programs/brewhouse/confirm", {"step": 0}, 422, "key"),
    ]
    for path, body, status, field in cases:
        answer = await http.post(path, json=body, headers=operator) if body is not None else \
            await http.post(path, headers=operator)
        assert answer.status_code == status, (path, body, answer.text)
        payload = answer.json()
        assert payload["field"] == field and payload["error"] and payload["message"], (path, payload)


async def test_viewers_may_look_but_not_run_and_the_node_rule_holds(server: tuple[LiveServer, dict[str, str]]) -> None:
    live, tokens = server
    http = live.http
    refused = await http.post("/api/os/programs/brewhouse/start", json={"templateId": "short_mash"},
                              headers=bearer(tokens["viewer"]))
    assert refused.status_code == 403
    bk = (await http.get("/api/os/programs", headers=bearer(tokens["bk-operator"]))).json()
    assert [u["unit"] for u in bk] == ["kettle"]  # the brewhouse unit here is the MLT's
    hidden = await http.get("/api/os/programs/brewhouse", headers=bearer(tokens["bk-operator"]))
    assert hidden.status_code == 404
    templates = (await http.get("/api/os/programs/templates", headers=bearer(tokens["bk-operator"]))).json()
    assert {t["unit"] for t in templates} == {"kettle"} and "warm_up" in {t["id"] for t in templates}


async def test_the_programs_channel_on_ws_and_sse(server: tuple[LiveServer, dict[str, str]]) -> None:
    live, tokens = server
    async with ws_client(live, f"/ws?token={tokens['viewer']}") as ws, \
            sse(live, "?channels=programs", bearer(tokens["bk-operator"])) as stream:
        ack = await ws.subscribe("programs")
        assert ack["channel"] == "programs"
        first = await ws.expect(lambda f: f["type"] == "program")
        second = await ws.expect(lambda f: f["type"] == "program" and f["unit"] != first["unit"])
        assert {first["unit"], second["unit"]} == {"brewhouse", "kettle"} and second["snapshot"] is True
        snapshot = await stream.expect(lambda e: e["event"] == "program")
        assert snapshot["data"]["unit"] == "kettle" and snapshot["data"]["snapshot"] is True
        operator = bearer(tokens["operator"])
        for unit, template in (("brewhouse", "short_mash"), ("kettle", "warm_up")):
            answer = await live.http.post(f"/api/os/programs/{unit}/start", json={"templateId": template},
                                          headers=operator)
            assert answer.status_code == 200, answer.text
        change = await ws.expect(lambda f: f["type"] == "program" and f["unit"] == "brewhouse"
                                 and f["state"] == "running")
        assert change["step"]["name"] == "Strike" and not change.get("snapshot")
        live_event = await stream.expect(lambda e: e["event"] == "program" and e["data"]["state"] == "running")
        assert live_event["data"]["unit"] == "kettle"  # the BK operator never gets the MLT's brewhouse
        await ws.send({"type": "subscribe", "channel": "programs", "endpointIds": [20]})
        assert (await ws.expect_type("error"))["field"] == "endpointIds"
        await ws.send({"type": "unsubscribe", "channel": "programs"})
        assert (await ws.expect_type("unsubscribed"))["channel"] == "programs"
