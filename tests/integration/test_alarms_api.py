"""Alarm routes over real HTTP: ack, shelve, service, limits, journal (JSON and CSV), statistics."""

from __future__ import annotations

import csv
import io

from bevforge.domain import Reading
from tests.support.server import LiveServer

HLT_TEMP = 10
RULE = "hlt_temperature_hihi"


async def hot(server: LiveServer) -> dict:
    await server.runtime.drivers["hlt_controller"].stop()  # the HLT temperature now comes from this test only
    server.runtime.plant.ingest([Reading(HLT_TEMP, 101.0)])  # as the controller's driver delivers it
    alarms = (await server.http.get("/api/os/alarms")).json()
    return next(a for a in alarms if a["ruleId"] == RULE)


async def test_ack_reaches_the_journal_with_user_and_comment(server: LiveServer) -> None:
    alarm = await hot(server)
    assert alarm["severity"] == "critical" and alarm["priority"] == "critical"
    r = await server.http.post(f"/api/os/alarms/{alarm['alarmId']}/ack", json={"comment": "heater off"})
    assert r.status_code == 200 and r.json()["state"] == "acknowledged"
    journal = (await server.http.get("/api/os/alarms/history", params={"alarmId": alarm["alarmId"]})).json()
    assert [e["event"] for e in journal] == ["acked", "raised"]
    assert journal[0]["comment"] == "heater off" and journal[0]["user"] == "anonymous"
    exported = await server.http.get("/api/os/alarms/history", params={"format": "csv", "ruleId": RULE})
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {r["event"] for r in rows} == {"raised", "acked"}


async def test_shelve_unshelve_and_service(server: LiveServer) -> None:
    await hot(server)
    r = await server.http.post(f"/api/os/alarms/definitions/{RULE}/shelve", json={"durationS": 900, "comment": "x"})
    assert r.status_code == 200 and r.json()["shelved"] == "timed" and r.json()["state"] == "shelved"
    summary = (await server.http.get("/api/os/alarms/summary")).json()
    assert summary["unacknowledged"]["critical"] == 0
    r = await server.http.post(f"/api/os/alarms/definitions/{RULE}/unshelve")
    assert r.json()["state"] == "unacknowledged"
    assert (await server.http.post(f"/api/os/alarms/definitions/{RULE}/unshelve")).status_code == 409
    r = await server.http.post(f"/api/os/alarms/definitions/{RULE}/out-of-service", json={"comment": "probe out"})
    assert r.json()["outOfService"] is True
    r = await server.http.post(f"/api/os/alarms/definitions/{RULE}/in-service")
    assert r.json()["outOfService"] is False
    bad = await server.http.post(f"/api/os/alarms/definitions/{RULE}/shelve", json={"durationS": -5})
    assert bad.status_code == 422 and bad.json()["field"] == "durationS"
    for duration in (24 * 3600, 0.001):  # issue 13.8: not one of the configured 15 min, 1 h, 8 h
        bad = await server.http.post(f"/api/os/alarms/definitions/{RULE}/shelve", json={"durationS": duration})
        assert bad.status_code == 422 and bad.json()["field"] == "durationS", bad.json()
        assert "900, 3600, 28800" in bad.json()["message"]
    assert (await server.http.post("/api/os/alarms/definitions/nope/shelve")).status_code == 404


async def test_change_limits_at_runtime(server: LiveServer) -> None:
    r = await server.http.patch(f"/api/os/alarms/definitions/{RULE}", json={"limit": 90, "deadband": 2})
    assert r.status_code == 200
    assert r.json()["limits"]["limit"] == 90 and r.json()["previous"]["limit"] == 99
    await server.runtime.drivers["hlt_controller"].stop()
    server.runtime.plant.ingest([Reading(HLT_TEMP, 95.0)])
    assert any(a["ruleId"] == RULE for a in (await server.http.get("/api/os/alarms")).json())
    assert (await server.http.patch(f"/api/os/alarms/definitions/{RULE}", json={})).status_code == 422
    assert (await server.http.patch(f"/api/os/alarms/definitions/{RULE}",
                                    json={"priority": "urgent"})).json()["field"] == "priority"


async def test_reset_of_unlatched_alarm_is_refused(server: LiveServer) -> None:
    alarm = await hot(server)
    r = await server.http.post(f"/api/os/alarms/{alarm['alarmId']}/reset")
    assert r.status_code == 409 and r.json()["error"] == "not_allowed_now"


async def test_statistics_and_definitions(server: LiveServer) -> None:
    await hot(server)
    stats = (await server.http.get("/api/os/alarms/stats")).json()
    assert stats["raisedLast24h"] >= 1
    assert RULE in [t["ruleId"] for t in stats["top10"]]
    assert "mlt_temperature_lo" not in [t["ruleId"] for t in stats["top10"]]  # suppressed: no alarm load
    assert "chattering" in stats and "staleAlarms" in stats
    definitions = {d["ruleId"]: d for d in (await server.http.get("/api/os/alarms/definitions")).json()}
    assert definitions[RULE]["state"] == "unacknowledged"
    assert definitions["mlt_temperature_lo"]["suppressed"] is True  # the MLT is empty
    one = (await server.http.get(f"/api/os/alarms/{definitions[RULE]['alarmId']}")).json()
    assert one["ruleId"] == RULE
