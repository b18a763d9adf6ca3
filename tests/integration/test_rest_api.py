"""Every REST route of the seed over real HTTP against a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bevforge.domain import Reading
from tests.support.live import custom_server
from tests.support.server import LiveServer, fed_externally, wait_for

HLT_TEMP, HLT_HEATER, HLT_LEVEL, FV1_TEMP = 10, 11, 13, 50
GAUGE, SWITCH = 14, 32  # hlt_volume (0…100 L) and bk_level_high, fed by a client in `fed` below


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[LiveServer]:
    """The brewhouse with FV1's probe, the HLT volume and the BK level switch fed over the ingest API."""
    async with custom_server(tmp_path, fed_externally(FV1_TEMP, GAUGE, SWITCH)) as live:
        yield live


async def test_tiles_carry_current_values(server: LiveServer) -> None:
    tiles = (await server.http.get("/api/os/tiles")).json()
    assert [t["id"] for t in tiles][:2] == ["hlt", "mlt"]
    hlt = tiles[0]
    temp = next(e for e in hlt["endpoints"] if e["endpointId"] == HLT_TEMP)
    assert temp["unit"] == "°C" and temp["quality"] == "good" and isinstance(temp["value"], float)
    heater = next(e for e in hlt["endpoints"] if e["endpointId"] == HLT_HEATER)
    assert heater["writable"] is True and heater["dataType"] == "bool" and heater["critical"] is True


async def test_endpoints_list_and_one(server: LiveServer) -> None:
    listed = (await server.http.get("/api/os/endpoints")).json()
    assert {e["endpointId"] for e in listed} >= {10, 11, 12, 13, 30, 31, 50}
    one = (await server.http.get(f"/api/os/endpoints/{HLT_TEMP}")).json()
    assert one["name"] == "hlt_temperature"
    missing = await server.http.get("/api/os/endpoints/9999")
    assert missing.status_code == 404 and missing.json()["field"] == "endpoint_id"
    wrong = await server.http.get("/api/os/endpoints/abc")
    assert wrong.status_code == 422 and wrong.json()["field"] == "endpoint_id"


async def test_ingest_one_reading_updates_current_and_history(fed: LiveServer) -> None:
    server = fed
    r = await server.http.post("/api/os/telemetry/ingest", json={"endpointId": FV1_TEMP, "value": 19.25})
    assert r.status_code == 200 and r.json() == {"accepted": 1}
    one = (await server.http.get(f"/api/os/endpoints/{FV1_TEMP}")).json()
    assert one["value"] == 19.25
    history = (await server.http.get("/api/os/telemetry", params={"endpointId": FV1_TEMP, "limit": 5})).json()
    assert history["readings"][-1]["value"] == 19.25


async def test_ingest_batch_and_history_filters(fed: LiveServer) -> None:
    server = fed
    readings = [{"endpointId": FV1_TEMP, "value": 10.0 + i * 0.05} for i in range(500)]
    r = await server.http.post("/api/os/telemetry/ingest", json={"readings": readings})
    assert r.json() == {"accepted": 500}
    since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    history = (await server.http.get("/api/os/telemetry", params={"endpointId": FV1_TEMP, "since": since,
                                                                    "limit": 10000})).json()
    values = [x["value"] for x in history["readings"]]
    assert 500 <= len(values) and 10.0 in values and round(max(values), 2) == 34.95
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await server.http.get("/api/os/telemetry", params={"since": future})).json()["count"] == 0


async def test_ingest_errors_name_the_field(fed: LiveServer) -> None:
    server = fed
    cases = [
        ({"endpointId": 9999, "value": 1}, 422, "endpointId"),
        ({"endpointId": GAUGE, "value": "hot"}, 422, "value"),
        ({"endpointId": GAUGE, "value": 500}, 422, "value"),
        ({"endpointId": SWITCH, "value": 7}, 422, "value"),
        ({"endpointId": GAUGE}, 422, "value"),
        ({"endpointId": "14", "value": 1}, 422, "endpointId"),
        ({"endpointId": GAUGE, "value": 50, "timestamp": "yesterday"}, 422, "timestamp"),
        ({"endpointId": GAUGE, "value": 50, "colour": "red"}, 422, "colour"),
        ({"readings": [{"endpointId": GAUGE, "value": 50}, {"endpointId": GAUGE, "value": "x"}]}, 422,
         "readings[1].value"),
        ({"readings": "many"}, 422, "readings"),
        ({"endpointId": HLT_TEMP, "value": 50}, 403, "endpointId"),  # polled by its device: not a client's
    ]
    for body, status, field in cases:
        r = await server.http.post("/api/os/telemetry/ingest", json=body)
        assert (r.status_code, r.json().get("field")) == (status, field), body
        assert r.json()["message"]
    broken = await server.http.post("/api/os/telemetry/ingest", content=b"{not json",
                                     headers={"content-type": "application/json"})
    assert broken.status_code == 400 and broken.json()["error"] == "invalid_json"


async def test_a_body_over_the_size_cap_is_refused_as_json_naming_the_body(server: LiveServer) -> None:
    from bevforge.app import MAX_BODY_BYTES

    big = b'{"readings": [' + b'{"endpointId": 10, "value": 50},' * (MAX_BODY_BYTES // 30) + b"]}"
    declared = await server.http.post("/api/os/telemetry/ingest", content=big,
                                      headers={"content-type": "application/json"})
    assert declared.status_code == 413
    assert declared.json()["error"] == "too_large" and declared.json()["field"] == "body"

    async def chunks():  # no Content-Length: counted as it streams
        for start in range(0, len(big), 65536):
            yield big[start:start + 65536]

    streamed = await server.http.post("/api/os/telemetry/ingest", content=chunks(),
                                      headers={"content-type": "application/json"})
    assert streamed.status_code == 413 and streamed.json()["error"] == "too_large"
    assert (await server.http.get("/api/os/health")).status_code == 200


async def test_rejected_batch_loses_nothing_already_accepted(fed: LiveServer) -> None:
    server = fed
    await server.http.post("/api/os/telemetry/ingest", json={"endpointId": FV1_TEMP, "value": 11.0})
    bad = {"readings": [{"endpointId": FV1_TEMP, "value": 12.0}, {"endpointId": FV1_TEMP, "value": 999}]}
    assert (await server.http.post("/api/os/telemetry/ingest", json=bad)).status_code == 422
    assert (await server.http.get(f"/api/os/endpoints/{FV1_TEMP}")).json()["value"] == 11.0


async def test_command_request_errors(server: LiveServer) -> None:
    cases = [
        ({"endpointId": 9999, "value": True}, 404, "endpointId"),
        ({"endpointId": HLT_TEMP, "value": 50}, 422, "endpointId"),
        ({"endpointId": HLT_HEATER, "value": "on"}, 422, "value"),
        ({"endpointId": 12, "value": 150}, 422, "value"),
        ({"value": True}, 422, "endpointId"),
        ({"endpointId": HLT_HEATER, "value": True, "commandId": ""}, 422, "commandId"),
        ({"endpointId": HLT_HEATER, "value": True, "extra": 1}, 422, "extra"),
    ]
    for body, status, field in cases:
        r = await server.http.post("/api/os/command", json=body)
        assert (r.status_code, r.json().get("field")) == (status, field), body
    assert (await server.http.get("/api/os/commands/nope")).status_code == 404
    assert (await server.http.get("/api/os/commands", params={"status": "bogus"})).json()["field"] == "status"


async def test_a_command_body_is_read_only_as_json(server: LiveServer) -> None:
    """The declared body model: a text/plain, form or untyped body (what a page on another site can post
    without a preflight) is refused (415, by the OriginGuard) before it reaches the pipeline; a Bearer-token
    script's JSON with no Content-Type still works."""
    body = b'{"endpointId": %d, "value": true}' % HLT_HEATER
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        r = await server.http.post("/api/os/command", content=body, headers={"content-type": content_type})
        assert r.status_code == 415, content_type
        assert r.json()["error"] == "unsupported_media_type"
    assert (await server.http.post("/api/os/command", content=body)).status_code == 415
    _, token = server.runtime.auth.create_token("brewday-script", "operator", None, "test")
    bearer = {"authorization": f"Bearer {token}"}
    assert (await server.http.post("/api/os/command", content=body, headers=bearer)).status_code in (202, 409)
    assert len(await server.runtime.commands.query(HLT_HEATER, None, 10)) == 1  # only the JSON one arrived


async def test_threshold_alarm_raise_ack_and_clear(server: LiveServer) -> None:
    await server.runtime.drivers["hlt_controller"].stop()  # the HLT temperature now comes from this test only
    server.runtime.plant.ingest([Reading(HLT_TEMP, 101.0)])  # as the controller's driver delivers it
    alarms = (await server.http.get("/api/os/alarms")).json()
    alarm = next(a for a in alarms if a["ruleId"] == "hlt_temperature_hihi")
    assert alarm["severity"] == "critical" and alarm["state"] == "unacknowledged"
    assert "HLT temperature exceeded 99°C" in alarm["message"]
    acked = await server.http.post(f"/api/os/alarms/{alarm['alarmId']}/ack", json={"comment": "seen"})
    assert acked.json()["state"] == "acknowledged" and acked.json()["ackComment"] == "seen"
    server.runtime.plant.ingest([Reading(HLT_TEMP, 98.5)])
    assert (await server.http.get("/api/os/alarms", params={"state": "acknowledged"})).json()[0]["alarmId"] == \
        alarm["alarmId"]  # within the deadband: still active
    server.runtime.plant.ingest([Reading(HLT_TEMP, 90.0)])
    assert all(a["alarmId"] != alarm["alarmId"] for a in (await server.http.get("/api/os/alarms")).json())
    normal = (await server.http.get("/api/os/alarms", params={"state": "normal"})).json()
    assert any(a["alarmId"] == alarm["alarmId"] for a in normal)
    assert (await server.http.post("/api/os/alarms/424242/ack")).status_code == 404
    assert (await server.http.get("/api/os/alarms", params={"state": "weird"})).status_code == 422


async def test_interlocks_report_current_evaluation(server: LiveServer) -> None:
    rules = {r["id"]: r for r in (await server.http.get("/api/os/interlocks")).json()}
    assert rules["hlt_heater_needs_level"]["satisfied"] is True
    bk = rules["bk_heater_needs_level"]
    assert bk["satisfied"] is False and bk["applies"] is False
    assert any("bk_level_high" in c for c in bk["failedConditions"])


async def test_health(server: LiveServer) -> None:
    health = (await server.http.get("/api/os/health")).json()
    assert health["status"] == "ok" and health["uptimeS"] >= 0
    assert {d["deviceId"] for d in health["drivers"]} >= {"hlt_controller", "brewhouse_io"}
    assert all(d["online"] for d in health["drivers"])


async def test_stale_value_is_marked_not_live(server: LiveServer) -> None:
    server.sim.faults_for("cellar_probe").offline = True
    state = server.runtime.plant.states[FV1_TEMP]
    await wait_for(lambda: state.quality.value != "good", timeout=10)
    one = (await server.http.get(f"/api/os/endpoints/{FV1_TEMP}")).json()
    assert one["quality"] in ("uncertain", "bad")
    assert one["error"]


async def test_trend_views_saved_listed_and_deleted_and_markers_of_a_command(server: LiveServer) -> None:
    views = (await server.http.get("/api/os/trends/views")).json()
    assert {"key": "HLT", "name": "HLT", "pens": [HLT_TEMP, 12], "spanS": 3600.0, "scope": "vessel",
            "id": None} in views
    mine = await server.http.post("/api/os/trends/views", json={"name": "HLT fill", "pens": [HLT_TEMP, 14],
                                                                "spanS": 900})
    assert mine.status_code == 201 and mine.json()["scope"] == "mine" and mine.json()["pens"] == [HLT_TEMP, 14]
    shared = await server.http.post("/api/os/trends/views", json={"name": "Mash", "pens": [20], "shared": True})
    assert shared.status_code == 201 and shared.json()["scope"] == "shared" and shared.json()["spanS"] == 3600.0
    listed = [(v["name"], v["scope"]) for v in (await server.http.get("/api/os/trends/views")).json()
              if v["scope"] != "vessel"]
    assert listed == [("Mash", "shared"), ("HLT fill", "mine")]
    for body, status, field in (({"name": "x", "pens": [9999]}, 404, "pens"),
                                ({"name": "x", "pens": []}, 422, "pens"),
                                ({"name": "x", "pens": [10], "colour": "red"}, 422, "colour"),
                                ({"name": "", "pens": [10]}, 422, "name")):
        answer = await server.http.post("/api/os/trends/views", json=body)
        assert (answer.status_code, answer.json()["field"]) == (status, field), answer.text
    assert (await server.http.delete(f"/api/os/trends/views/{mine.json()['id']}")).json()["deleted"] is True
    gone = await server.http.delete(f"/api/os/trends/views/{mine.json()['id']}")
    assert gone.status_code == 404

    sent = await server.http.post("/api/os/command", json={"endpointId": 12, "value": 71.5})
    assert sent.status_code == 202
    markers = (await server.http.get("/api/os/trends/markers", params={"endpointId": [HLT_TEMP, 12]})).json()
    assert markers["count"] == 1
    [marker] = markers["markers"]
    assert marker["kind"] == "command" and marker["endpointId"] == 12 and marker["title"] == "71.5 °C"
    assert marker["text"].startswith("anonymous set HLT setpoint to 71.5 °C: ")
    assert marker["commandId"] == sent.json()["commandId"]
    unknown = await server.http.get("/api/os/trends/markers", params={"endpointId": 9999})
    assert unknown.status_code == 404 and unknown.json()["field"] == "endpointId"
    backwards = await server.http.get("/api/os/trends/markers", params={
        "endpointId": 12, "since": "2026-03-01T10:00:00Z", "until": "2026-03-01T09:00:00Z"})
    assert backwards.status_code == 422 and backwards.json()["field"] == "since"
    audited = (await server.http.get("/api/os/audit", params={"action": "trend.view."})).json()
    assert [(e["action"], e["target"]) for e in audited] == [("trend.view.save", "Mash")]
