"""Live config reload (issue 16 point 9) over a real runtime, the real Modbus simulator and real clients.

The server is started from a config *file* (as main.py does), the test edits that file and asks for a
reload: through `POST /api/os/config/reload`, or (tests/integration/test_config_reload_sighup.py) SIGHUP.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

import drivers
from bevforge.config import load_config
from bevforge.runtime import Runtime
from tests.support.controllers import BK_ELEMENT, KETTLE, MLT_ELEMENT, RIMS, with_controllers
from tests.support.live import ingest, sse, ws_client
from tests.support.postgres import test_db_url
from tests.support.server import (
    LiveServer,
    brewhouse_document,
    free_port,
    wait_for,
    wait_for_command,
    write_plant,
)

V1 = 22  # hlt_out_valve on brewhouse_io (simulator valve v1)
FV2_GLYCOL = 61  # fv2_glycol_valve on cellar_io


class Plant:
    """A live server built from a config file the test may edit."""

    def __init__(self, server: LiveServer, path: Path, doc: dict[str, Any]) -> None:
        self.server = server
        self.path = path
        self.doc = doc

    @property
    def runtime(self) -> Runtime:
        return self.server.runtime

    def edit(self, change: Callable[[dict[str, Any]], None]) -> None:
        doc = copy.deepcopy(self.doc)
        change(doc)
        write_plant(self.path, doc)

    async def reload(self, headers: dict[str, str] | None = None) -> Any:
        return await self.server.http.post("/api/os/config/reload", headers=headers or {})

    async def command(self, endpoint_id: int, value: Any) -> dict[str, Any]:
        r = await self.server.http.post("/api/os/command", json={"endpointId": endpoint_id, "value": value})
        assert r.status_code == 202, r.text
        return await wait_for_command(self.server, r.json()["commandId"])


async def start_plant(tmp_path: Path, adjust: Callable[[dict[str, Any]], None] | None = None) -> Plant:
    doc = brewhouse_document(adjust)
    path = write_plant(tmp_path / "config.yaml", doc)
    config = load_config(path, drivers.check)
    factories, sim = drivers.driver_factories(config)
    runtime = Runtime(config, test_db_url(tmp_path / "bevforge.db"), factories, config_path=str(path),
                      config_check=drivers.check)
    runtime.attachments["simulator"] = sim
    server = LiveServer(runtime, free_port())
    await server.start()
    await wait_for(lambda: all(runtime.plant.device_online.values()))
    return Plant(server, path, doc)


@pytest.fixture
async def plant(tmp_path: Path) -> AsyncIterator[Plant]:
    live = await start_plant(tmp_path)
    try:
        yield live
    finally:
        await live.server.stop()


def remove_endpoint(eid: int) -> Callable[[dict[str, Any]], None]:
    """The endpoint, and every tile entry, interlock (and the alarms wording it), mimic symbol and pipe
    that names it."""
    def change(doc: dict[str, Any]) -> None:
        doc["endpoints"] = [e for e in doc["endpoints"] if e["id"] != eid]
        for tile in doc["tiles"]:
            tile["endpoints"] = [e for e in tile["endpoints"] if e != eid]
        doc["tiles"] = [t for t in doc["tiles"] if t["endpoints"]]
        doc["interlocks"] = [r for r in doc["interlocks"] if r["target"] != eid
                             and all(c["endpoint"] != eid for c in r["requires"])]
        kept = {r["id"] for r in doc["interlocks"]}
        doc["alarms"] = [a for a in doc.get("alarms", []) if a.get("endpoint") != eid
                         and (a.get("interlock") is None or a["interlock"] in kept)]
        layout = doc.get("layout")
        if layout:
            gone = {s["id"] for s in layout["symbols"] if eid in (s.get(k) for k in (
                "endpoint", "temperature", "setpoint", "volume", "level"))}
            layout["symbols"] = [s for s in layout["symbols"] if s["id"] not in gone]
            layout["pipes"] = [p for p in layout.get("pipes", []) if not gone & {p["from"], p["to"], p.get("pump"),
                                                                                 *p.get("valves", [])}]
    return change


async def test_valid_change_applied_and_an_untouched_output_stays_untouched(plant: Plant) -> None:
    rt = plant.runtime
    assert (await plant.command(V1, True))["status"] == "succeeded"
    io_driver, hlt_driver, bk_driver = rt.drivers["brewhouse_io"], rt.drivers["hlt_controller"], \
        rt.drivers["bk_controller"]
    commands_before = len(await rt.commands.query(None, None, 1000))

    def change(doc: dict[str, Any]) -> None:
        next(t for t in doc["tiles"] if t["id"] == "bk")["title"] = "Kettle"
        next(d for d in doc["devices"] if d["id"] == "bk_controller")["settings"]["timeout_s"] = 0.6

    plant.edit(change)
    r = await plant.reload()
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["status"] == "applied"
    assert answer["changes"] == {"devices": {"changed": ["bk_controller"]}, "tiles": {"changed": ["bk"]}}
    assert len(answer["configHash"]) == 64 and answer["commands"] == []
    # unchanged devices: the same driver objects, still polling; the changed one restarted
    assert rt.drivers["brewhouse_io"] is io_driver and rt.drivers["hlt_controller"] is hlt_driver
    assert rt.drivers["bk_controller"] is not bk_driver
    await wait_for(lambda: rt.drivers["bk_controller"].online)
    # the open valve was not commanded and is still open
    assert len(await rt.commands.query(None, None, 1000)) == commands_before
    assert plant.server.sim.model.valves["v1"] is True
    seq = rt.plant.states[V1].seq
    await wait_for(lambda: rt.plant.states[V1].seq > seq)  # still polled after the reload
    assert rt.plant.states[V1].value is True
    tiles = (await plant.server.http.get("/api/os/tiles")).json()
    assert next(t for t in tiles if t["id"] == "bk")["title"] == "Kettle"
    rows = (await plant.server.http.get("/api/os/audit", params={"action": "config.reload"})).json()
    assert any(row["action"] == "config.reload" and row["result"] == "applied"
               and answer["configHash"] in (row.get("detail") or "") for row in rows), rows


async def test_invalid_change_refused_with_file_line_and_the_plant_unchanged(plant: Plant) -> None:
    rt = plant.runtime
    config, drivers_before = rt.config, dict(rt.drivers)

    def change(doc: dict[str, Any]) -> None:
        next(e for e in doc["endpoints"] if e["id"] == 10)["name"] = "Bad Name"
        next(t for t in doc["tiles"] if t["id"] == "bk")["title"] = "Kettle"

    plant.edit(change)
    r = await plant.reload()
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "config_invalid"
    assert body["field"] == "endpoints[0].name"
    assert any(p.startswith(f"{plant.path}:") and ": endpoints[0].name: " in p for p in body["problems"]), body
    line = int(body["problems"][0].removeprefix(f"{plant.path}:").split(":")[0])
    assert "Bad Name" in plant.path.read_text(encoding="utf-8").splitlines()[line - 1]
    assert rt.config is config and rt.drivers == drivers_before
    assert all(rt.drivers[d] is drivers_before[d] for d in drivers_before)
    tiles = (await plant.server.http.get("/api/os/tiles")).json()
    assert next(t for t in tiles if t["id"] == "bk")["title"] == "Boil kettle"
    assert rt.reloader.last is not None and rt.reloader.last["status"] == "refused"


async def test_a_key_that_needs_a_restart_is_refused_by_name(plant: Plant) -> None:
    rt = plant.runtime
    config = rt.config

    def change(doc: dict[str, Any]) -> None:
        doc["simulator"]["watchdog_s"] = 2.5
        next(t for t in doc["tiles"] if t["id"] == "bk")["title"] = "Kettle"

    plant.edit(change)
    r = await plant.reload()
    assert r.status_code == 409, r.text
    assert r.json()["error"] == "needs_restart"
    assert r.json()["field"] == "simulator.watchdog_s"
    assert "needs a restart: simulator.watchdog_s changed" in r.json()["message"]
    assert rt.config is config


async def test_removed_output_is_commanded_to_its_safe_value_first(plant: Plant) -> None:
    rt = plant.runtime
    assert (await plant.command(V1, True))["status"] == "succeeded"
    assert plant.server.sim.model.valves["v1"] is True
    cellar = rt.drivers["cellar_io"]
    plant.edit(remove_endpoint(V1))
    r = await plant.reload()
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["changes"]["endpoints"] == {"removed": [V1]}
    assert answer["changes"]["devices"] == {"changed": ["brewhouse_io"]}
    [sent] = answer["commands"]
    assert sent["endpointId"] == V1 and sent["status"] == "succeeded"
    command = await rt.commands.find(sent["commandId"])
    assert command is not None and command.origin == "reload" and command.user == "system"
    assert command.requested_value is False
    assert plant.server.sim.model.valves["v1"] is False
    assert V1 not in rt.plant.endpoints and V1 not in rt.plant.states
    assert rt.drivers["cellar_io"] is cellar
    await wait_for(lambda: rt.drivers["brewhouse_io"].online)
    assert (await plant.server.http.get(f"/api/os/endpoints/{V1}")).status_code == 404


async def test_ws_subscription_to_a_removed_endpoint_ends_with_a_notice(plant: Plant) -> None:
    async with ws_client(plant.server) as ws:
        answer = await ws.subscribe("telemetry", endpointIds=[FV2_GLYCOL, 10])
        assert answer["subscriptions"] == 2
        plant.edit(remove_endpoint(FV2_GLYCOL))
        r = await plant.reload()
        assert r.status_code == 200, r.text
        notice = await ws.expect_type("config")
        assert notice["event"] == "reloaded" and notice["removedEndpointIds"] == [FV2_GLYCOL]
        assert notice["configHash"] == r.json()["configHash"]
        # the subscription to the removed endpoint is gone; the other one goes on
        assert (await ws.subscribe("telemetry", endpointIds=[20]))["subscriptions"] == 2
        await ingest(plant.server, 10, 55.5)
        await ws.expect(lambda f: f["type"] == "telemetry" and f["endpointId"] == 10 and f["value"] == 55.5)
        assert not any(f["type"] == "telemetry" and f["endpointId"] == FV2_GLYCOL and not f.get("snapshot")
                       for f in ws.seen[ws.seen.index(notice):])


async def test_unchanged_file_changes_nothing(plant: Plant) -> None:
    rt = plant.runtime
    config = rt.config
    r = await plant.reload()
    assert r.status_code == 200 and r.json()["status"] == "unchanged"
    assert rt.config is config


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[tuple[Plant, dict[str, str]]]:
    live = await start_plant(tmp_path, lambda doc: doc.update(auth={"mode": "required"}))
    try:
        tokens = {role: live.runtime.auth.create_token(f"{role}-token", role, None, "test")[1]
                  for role in ("viewer", "operator", "technician")}
        yield live, tokens
    finally:
        await live.server.stop()


async def test_only_technicians_and_above_may_reload(secured: tuple[Plant, dict[str, str]]) -> None:
    plant, tokens = secured
    config = plant.runtime.config
    plant.edit(lambda doc: next(t for t in doc["tiles"] if t["id"] == "bk").update(title="Kettle"))
    assert (await plant.reload()).status_code == 401
    for role in ("viewer", "operator"):
        r = await plant.reload({"Authorization": f"Bearer {tokens[role]}"})
        assert r.status_code == 403, (role, r.text)
        assert plant.runtime.config is config
    r = await plant.reload({"Authorization": f"Bearer {tokens['technician']}"})
    assert r.status_code == 200, r.text
    assert plant.runtime.config is not config


async def test_sse_subscription_to_a_removed_endpoint_ends_with_a_notice(plant: Plant) -> None:
    async with sse(plant.server, f"?channels=telemetry&endpointIds={FV2_GLYCOL},10") as stream:
        await stream.next()  # the snapshot has begun: the stream is subscribed
        plant.edit(remove_endpoint(FV2_GLYCOL))
        r = await plant.reload()
        assert r.status_code == 200, r.text
        while (event := await stream.next())["event"] != "config":
            pass
        assert event["data"]["removedEndpointIds"] == [FV2_GLYCOL]
        assert event["data"]["configHash"] == r.json()["configHash"]
        await ingest(plant.server, 10, 55.5)  # the other subscription goes on
        while (event := await stream.next())["data"].get("value") != 55.5:
            assert event["data"].get("endpointId") != FV2_GLYCOL


async def test_alarms_and_interlocks_are_replaced_and_unchanged_alarms_keep_their_state(plant: Plant) -> None:
    rt = plant.runtime
    await ingest(plant.server, 10, 100.0)  # HLT over its HIHI limit: a standing critical alarm
    hihi = rt.alarms.points["hlt_temperature_hihi"]
    occurrence = hihi.occurrence
    assert occurrence is not None
    blocked = await plant.server.http.post("/api/os/command", json={"endpointId": 23, "value": True})
    assert blocked.status_code == 409  # Pump 1 needs V1 open

    def change(doc: dict[str, Any]) -> None:
        next(a for a in doc["alarms"] if a["id"] == "bk_temperature_hi")["limit"] = 104
        doc["alarms"] = [a for a in doc["alarms"] if a["id"] != "fv1_temperature_rate"]
        doc["alarms"].append({"id": "hlt_volume_lo", "kind": "LO", "endpoint": 14, "limit": 5})
        doc["interlocks"] = [r for r in doc["interlocks"] if r["id"] != "pump_1_needs_open_valve"]

    plant.edit(change)
    r = await plant.reload()
    assert r.status_code == 200, r.text
    assert r.json()["changes"] == {
        "interlocks": {"removed": ["pump_1_needs_open_valve"]},
        "alarms": {"added": ["hlt_volume_lo"], "removed": ["fv1_temperature_rate"], "changed": ["bk_temperature_hi"]}}
    assert rt.alarms.points["hlt_temperature_hihi"] is hihi and hihi.occurrence is occurrence
    assert rt.alarms.current[occurrence.id] is occurrence  # still standing: it still needs its ACK
    assert rt.alarms.points["bk_temperature_hi"].rule.limit == 104  # type: ignore[union-attr]
    assert "fv1_temperature_rate" not in rt.alarms.points and "hlt_volume_lo" in rt.alarms.points
    assert (await plant.command(23, True))["status"] == "succeeded"  # the interlock is gone


async def test_controllers_unchanged_go_on_changed_restart_removed_go_safe(tmp_path: Path) -> None:
    def no_level_interlock(doc: dict[str, Any]) -> None:
        doc["interlocks"] = [r for r in doc["interlocks"] if r["id"] != "mlt_element_needs_level"]
        doc["controllers"][1]["output"] = 41  # the kettle loop on a coil of its own, not the power budget
        doc["endpoints"].append({"id": 41, "name": "bk_element_2", "node": "BK", "device": "brewhouse_io",
                                 "kind": "heater", "data_type": "bool", "writable": True, "safe_value": False,
                                 "poll_interval_s": 0.05, "address": {"table": "coil", "address": 3}})
        doc["endpoints"] = [e for e in doc["endpoints"] if e["id"] != BK_ELEMENT]

    live = await start_plant(tmp_path, with_controllers([dict(RIMS), dict(KETTLE)], adjust=no_level_interlock))
    try:
        rt, http = live.runtime, live.server.http
        assert (await http.post("/api/os/controllers/mlt_rims/mode", json={"mode": "manual"})).status_code == 200
        assert (await http.post("/api/os/controllers/mlt_rims/output", json={"value": 100})).status_code == 200
        await wait_for(lambda: rt.plant.states[MLT_ELEMENT].value is True, timeout=10)
        kettle_loop, kettle_task = rt.controllers.loops["bk_element"], rt.controllers._tasks["bk_element"]

        def change(doc: dict[str, Any]) -> None:
            doc["controllers"] = [c for c in doc["controllers"] if c["id"] != "mlt_rims"]
            next(t for t in doc["tiles"] if t["id"] == "hlt")["title"] = "HLT"

        live.edit(change)
        r = await live.reload()
        assert r.status_code == 200, r.text
        assert r.json()["changes"]["controllers"] == {"removed": ["mlt_rims"]}
        assert "mlt_rims" not in rt.controllers.loops and "mlt_rims" not in rt.controllers._tasks
        await wait_for(lambda: rt.plant.states[MLT_ELEMENT].value is False)  # its element put safe as it stopped
        safe = [c for c in await rt.commands.query(MLT_ELEMENT, None, 100) if c.requested_value is False]
        assert safe and safe[0].user == "controller:mlt_rims" and safe[0].status.value == "succeeded"
        assert rt.controllers.loops["bk_element"] is kettle_loop and rt.controllers._tasks["bk_element"] is kettle_task

        def retune(doc: dict[str, Any]) -> None:
            change(doc)
            next(c for c in doc["controllers"] if c["id"] == "bk_element")["tuning"]["kp"] = 50

        live.edit(retune)
        r = await live.reload()
        assert r.status_code == 200, r.text
        assert r.json()["changes"] == {"controllers": {"changed": ["bk_element"]}}
        loop = rt.controllers.loops["bk_element"]
        assert loop is not kettle_loop and loop.tuning["kp"] == 50
        assert kettle_task.done()  # the old loop's task ended; the rebuilt loop runs in a new one
        assert rt.controllers._tasks["bk_element"] is not kettle_task
        assert not rt.controllers._tasks["bk_element"].done()
    finally:
        await live.server.stop()


async def test_a_change_to_an_endpoint_a_running_controller_uses_is_refused(tmp_path: Path) -> None:
    live = await start_plant(tmp_path, with_controllers())
    try:
        rt = live.runtime
        config, task = rt.config, rt.controllers._tasks["mlt_rims"]
        live.edit(lambda doc: next(e for e in doc["endpoints"] if e["id"] == MLT_ELEMENT).update(label="RIMS"))
        r = await live.reload()
        assert r.status_code == 409 and r.json()["error"] == "needs_restart", r.text
        assert r.json()["field"] == f"endpoints[id={MLT_ELEMENT}] (used by controller mlt_rims)"
        assert rt.config is config and rt.controllers._tasks["mlt_rims"] is task and not task.done()
    finally:
        await live.server.stop()


async def test_a_removed_output_that_cannot_go_safe_refuses_the_whole_reload(plant: Plant) -> None:
    rt = plant.runtime
    assert (await plant.command(V1, True))["status"] == "succeeded"
    config, io_driver = rt.config, rt.drivers["brewhouse_io"]
    plant.server.sim.faults_for("brewhouse_io").reject_writes = "exception 04: slave device failure"

    def change(doc: dict[str, Any]) -> None:
        remove_endpoint(V1)(doc)
        next(t for t in doc["tiles"] if t["id"] == "bk")["title"] = "Kettle"

    plant.edit(change)
    r = await plant.reload()
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["error"] == "reload_failed" and body["commands"][0]["status"] == "failed"
    # nothing else changed: the old config, the same driver, the endpoint still there and still polled
    assert rt.config is config and rt.drivers["brewhouse_io"] is io_driver
    assert V1 in rt.plant.endpoints
    tiles = (await plant.server.http.get("/api/os/tiles")).json()
    assert next(t for t in tiles if t["id"] == "bk")["title"] == "Boil kettle"
