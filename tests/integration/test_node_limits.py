"""Node limits on every route that used to leak (issue 13.5): a user limited to the HLT reads, feeds
and follows nothing of the other nodes — summary, statistics, audit (JSON and CSV), interlocks,
ingest and a reused commandId — while the HLT's own device alarm reaches them everywhere."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bevforge.domain import Reading
from tests.support.live import custom_server, ws_client
from tests.support.server import LiveServer, fed_externally, wait_for, wait_for_command

HLT_TEMPERATURE, HLT_SETPOINT, HLT_VOLUME = 10, 12, 14
MLT_TEMPERATURE, HLT_OUT_VALVE = 20, 22  # both in the MLT node
BK_TEMPERATURE, BK_VOLUME = 30, 33
HLT_ENDPOINTS = {10, 11, 12, 13, 14}


def required_with_cross_node_rule(doc: dict[str, Any]) -> None:
    doc["auth"] = {"mode": "required"}
    fed_externally(HLT_VOLUME, BK_VOLUME)(doc)  # readings a client may send (bevforge/ingest.py: owners)
    # an HLT output guarded by a condition on another node's endpoint (the MLT temperature)
    doc["interlocks"].append({"id": "hlt_heater_needs_cool_mash", "target": 11,
                              "requires": [{"endpoint": MLT_TEMPERATURE, "op": ">", "value": 1000}],
                              "reason": "test: a condition that never holds, so its words are listed"})


class Plant:
    def __init__(self, server: LiveServer) -> None:
        self.server = server
        auth = server.runtime.auth
        self.admin = {"Authorization": f"Bearer {auth.create_token('admin', 'admin', None, 'test')[1]}"}
        self.hlt_tech = {"Authorization": f"Bearer {auth.create_token('hlt-tech', 'technician', ['HLT'], 'test')[1]}"}
        self.hlt_operator_token = auth.create_token("hlt-op", "operator", ["HLT"], "test")[1]
        self.hlt_operator = {"Authorization": f"Bearer {self.hlt_operator_token}"}

    async def raise_hlt_and_bk_alarms(self) -> None:
        """A critical HLT alarm and a high BK one (their controllers offline, so no poll overwrites them)."""
        rt = self.server.runtime
        self.server.sim.faults_for("hlt_controller").offline = True
        self.server.sim.faults_for("bk_controller").offline = True
        await wait_for(lambda: rt.alarms.is_active("comms:hlt_controller")
                       and rt.alarms.is_active("comms:bk_controller"))
        rt.plant.ingest([Reading(HLT_TEMPERATURE, 101.0), Reading(BK_TEMPERATURE, 104.0)])
        await wait_for(lambda: rt.alarms.is_active("hlt_temperature_hihi")
                       and rt.alarms.is_active("bk_temperature_hi"))


@pytest.fixture
async def plant(tmp_path: Path) -> AsyncIterator[Plant]:
    async with custom_server(tmp_path, required_with_cross_node_rule) as server:
        yield Plant(server)


async def test_alarm_summary_counts_only_their_nodes(plant: Plant) -> None:
    await plant.raise_hlt_and_bk_alarms()
    http = plant.server.http
    everything = (await http.get("/api/os/alarms/summary", headers=plant.admin)).json()
    mine = (await http.get("/api/os/alarms/summary", headers=plant.hlt_operator)).json()
    listed = (await http.get("/api/os/alarms", headers=plant.hlt_operator)).json()
    assert everything["standing"] == 4  # two comms alarms, HLT HIHI, BK HI
    assert mine["standing"] == len(listed) == 2  # the HLT controller offline, the HLT HIHI
    assert mine["unacknowledged"]["high"] == 1  # comms:hlt_controller, not the BK's HI and comms
    assert mine["unacknowledged"]["critical"] == 1


async def test_alarm_statistics_only_their_nodes(plant: Plant) -> None:
    await plant.raise_hlt_and_bk_alarms()
    stats = (await plant.server.http.get("/api/os/alarms/stats", headers=plant.hlt_tech)).json()
    rules = {row["ruleId"] for row in stats["top10"]}
    assert rules == {"hlt_temperature_hihi", "comms:hlt_controller"}
    assert stats["raisedLast24h"] == 2
    everything = (await plant.server.http.get("/api/os/alarms/stats", headers=plant.admin)).json()
    assert {"bk_temperature_hi", "comms:bk_controller"} <= {row["ruleId"] for row in everything["top10"]}


async def test_audit_journal_json_and_csv_only_their_nodes(plant: Plant) -> None:
    http = plant.server.http
    mlt = await http.post("/api/os/command", headers=plant.admin, json={"endpointId": HLT_OUT_VALVE, "value": True})
    hlt = await http.post("/api/os/command", headers=plant.admin, json={"endpointId": HLT_SETPOINT, "value": 61})
    for answer in (mlt, hlt):
        await wait_for_command(plant.server, answer.json()["commandId"])
    await http.post("/api/os/users", headers=plant.admin,
                    json={"username": "sigrid", "password": "sigrid-pass-1", "role": "viewer"})
    everything = (await http.get("/api/os/audit", headers=plant.admin)).json()
    assert {"hlt_out_valve", "hlt_setpoint", "sigrid"} <= {e["target"] for e in everything}
    mine = (await http.get("/api/os/audit", headers=plant.hlt_tech)).json()
    assert {e["target"] for e in mine} == {"hlt_setpoint"}  # the command request and its result
    assert {e["commandId"] for e in mine} == {hlt.json()["commandId"]}
    exported = (await http.get("/api/os/audit", headers=plant.hlt_tech, params={"format": "csv"})).text
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert rows and {r["target"] for r in rows} == {"hlt_setpoint"}
    assert "hlt_out_valve" not in exported and "sigrid" not in exported


async def test_interlocks_only_on_their_outputs_and_no_other_nodes_values(plant: Plant) -> None:
    http = plant.server.http
    everything = (await http.get("/api/os/interlocks", headers=plant.admin)).json()
    assert {r["id"] for r in everything} >= {"bk_heater_needs_level", "pump_1_needs_open_valve"}
    shown = next(r for r in everything if r["id"] == "hlt_heater_needs_cool_mash")
    assert "(is " in shown["requires"][0] and "hidden" not in shown["requires"][0]  # the admin sees the value
    mine = (await http.get("/api/os/interlocks", headers=plant.hlt_operator)).json()
    assert {r["id"] for r in mine} == {"hlt_heater_needs_level", "hlt_heater_needs_cool_mash"}
    cross = next(r for r in mine if r["id"] == "hlt_heater_needs_cool_mash")
    hidden = "mlt_temperature > 1000 °C (is hidden: not on your nodes)"
    assert cross["requires"] == [hidden] and cross["failedConditions"] == [hidden]
    assert cross["satisfied"] is False  # the verdict itself is the same for everyone
    own = next(r for r in mine if r["id"] == "hlt_heater_needs_level")
    assert "hidden" not in own["requires"][0]  # the HLT level switch is theirs: its value is shown


async def test_ingest_for_another_nodes_endpoint_looks_unknown(plant: Plant) -> None:
    http = plant.server.http
    batch = {"readings": [{"endpointId": HLT_VOLUME, "value": 40.0}, {"endpointId": BK_VOLUME, "value": 40.0}]}
    r = await http.post("/api/os/telemetry/ingest", headers=plant.hlt_tech, json=batch)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "unknown_endpoint" and r.json()["field"] == "readings[1].endpointId"
    single = await http.post("/api/os/telemetry/ingest", headers=plant.hlt_tech,
                             json={"endpointId": BK_VOLUME, "value": 40.0})
    assert single.status_code == 422 and single.json()["field"] == "endpointId"
    assert single.json() == {**single.json(), "error": "unknown_endpoint"}  # the same answer as for no endpoint
    assert plant.server.runtime.plant.states[BK_VOLUME].value != 40.0  # nothing of the batch went in


async def test_reused_command_id_of_another_node_is_never_answered_with_that_command(plant: Plant) -> None:
    http = plant.server.http
    theirs = await http.post("/api/os/command", headers=plant.admin,
                             json={"endpointId": HLT_OUT_VALVE, "value": True, "commandId": "mlt-valve-open-1"})
    assert theirs.status_code == 202
    await wait_for_command(plant.server, "mlt-valve-open-1")
    r = await http.post("/api/os/command", headers=plant.hlt_operator,
                        json={"endpointId": HLT_SETPOINT, "value": 60, "commandId": "mlt-valve-open-1"})
    assert r.status_code == 409, r.text
    assert r.json()["error"] == "command_id_in_use" and r.json()["field"] == "commandId"
    assert "hlt_out_valve" not in r.text and str(HLT_OUT_VALVE) not in r.text
    async with ws_client(plant.server, f"/ws?token={plant.hlt_operator_token}") as ws:
        await ws.subscribe("commands")
        error = await ws.request({"type": "command", "endpointId": HLT_SETPOINT, "value": 60,
                                  "commandId": "mlt-valve-open-1"}, "error")
        assert error["code"] == "command_id_in_use"
        mine = await ws.request({"type": "command", "endpointId": HLT_SETPOINT, "value": 60,
                                 "commandId": "hlt-1"}, "command_status")  # a marker: everything before it arrived
        assert mine["commandId"] == "hlt-1"
    assert not [f for f in ws.seen if f.get("commandId") == "mlt-valve-open-1" and f["type"] == "command_status"]
    # the owner still gets their command back by its id
    again = await http.post("/api/os/command", headers=plant.admin,
                            json={"endpointId": HLT_OUT_VALVE, "value": True, "commandId": "mlt-valve-open-1"})
    assert again.status_code == 200 and again.json()["endpointId"] == HLT_OUT_VALVE


async def test_alarm_journal_json_and_csv_hold_their_device_alarm_and_nothing_else(plant: Plant) -> None:
    await plant.raise_hlt_and_bk_alarms()
    http = plant.server.http
    journal = (await http.get("/api/os/alarms/history", headers=plant.hlt_operator)).json()
    assert {e["ruleId"] for e in journal} == {"comms:hlt_controller", "hlt_temperature_hihi"}
    exported = (await http.get("/api/os/alarms/history", headers=plant.hlt_operator, params={"format": "csv"})).text
    assert {r["ruleId"] for r in csv.DictReader(io.StringIO(exported))} == {"comms:hlt_controller",
                                                                            "hlt_temperature_hihi"}
    everything = (await http.get("/api/os/alarms/history", headers=plant.admin)).json()
    assert {"comms:bk_controller", "bk_temperature_hi"} <= {e["ruleId"] for e in everything}
