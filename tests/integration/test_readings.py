"""Readings from clients (issue 13.3, 13.6, 13.7): owners, values and times checked at the edge, rate per token.

Real parts: the simulated brewhouse behind real Modbus and serial drivers, a real HTTP server and a
real SQLite file. The attack of issue 13.3 is replayed as it was found: a client says the HLT level
switch is HIGH while the device says LOW, then an operator switches the heater on.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from bevforge.domain import DataType, InvalidValue, Quality, coerce_value
from bevforge.errors import TooManyRequests
from bevforge.ingest import RateLimiter
from tests.support.live import custom_server, ws_client
from tests.support.postgres import sqlite_only
from tests.support.server import LiveServer, fed_externally, wait_for

HLT_TEMP, HLT_HEATER, HLT_LEVEL, HLT_VOLUME, PUMP_1_FAULT, FV1_TEMP = 10, 11, 13, 14, 26, 50
INGEST = "/api/os/telemetry/ingest"


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[LiveServer]:
    """HLT volume (float, 0…100 L) and pump 1's fault code (int, no range) fed by a client."""
    async with custom_server(tmp_path, fed_externally(HLT_VOLUME, PUMP_1_FAULT)) as live:
        yield live


async def _hlt_drained(server: LiveServer) -> None:
    """The HLT below its level switch, as the I/O module reports it (the device's value: LOW)."""
    server.sim.model.vessels["hlt"].volume_l = 5.0
    state = server.runtime.plant.states[HLT_LEVEL]
    await wait_for(lambda: state.value is False and state.quality is Quality.GOOD)


async def test_a_client_cannot_say_the_level_is_high_and_the_heater_stays_blocked(server: LiveServer) -> None:
    await _hlt_drained(server)
    spoof = await server.http.post(INGEST, json={"endpointId": HLT_LEVEL, "value": True})
    assert spoof.status_code == 403
    assert spoof.json()["error"] == "not_ingestable" and spoof.json()["field"] == "endpointId"
    assert "brewhouse_io" in spoof.json()["message"]
    assert server.runtime.plant.states[HLT_LEVEL].value is False  # the device's value stands
    on = await server.http.post("/api/os/command", json={"endpointId": HLT_HEATER, "value": True})
    assert on.status_code == 409 and on.json()["status"] == "blocked"
    assert on.json()["reasons"][0]["id"] == "hlt_heater_needs_level"
    assert server.sim.model.vessels["hlt"].heater_enabled is False


async def test_a_spoofed_level_sent_together_with_heater_on_never_runs_the_heater(server: LiveServer) -> None:
    await _hlt_drained(server)
    sent_to_device = server.runtime.bus.subscribe(lambda e: e.type == "command_status"
                                                  and e.payload["status"] in ("sent", "acked", "succeeded"))
    for _ in range(5):  # the race of issue 13.3: ingested `true` and heater ON at once
        spoof, on = await asyncio.gather(
            server.http.post(INGEST, json={"readings": [{"endpointId": HLT_LEVEL, "value": True}]}),
            server.http.post("/api/os/command", json={"endpointId": HLT_HEATER, "value": True}))
        assert spoof.status_code == 403 and spoof.json()["field"] == "readings[0].endpointId"
        assert on.status_code == 409, on.text
    assert len(sent_to_device) == 0  # no heater command was ever sent to the controller
    commands = (await server.http.get("/api/os/commands", params={"endpointId": HLT_HEATER})).json()
    assert {c["status"] for c in commands} == {"blocked"}
    assert server.sim.model.vessels["hlt"].heater_enabled is False
    sent_to_device.close("done")


async def test_a_batch_with_one_device_owned_reading_stores_nothing(fed: LiveServer) -> None:
    ok = await fed.http.post(INGEST, json={"endpointId": HLT_VOLUME, "value": 40.0})
    assert ok.status_code == 200
    mixed = {"readings": [{"endpointId": HLT_VOLUME, "value": 41.0}, {"endpointId": HLT_TEMP, "value": 20.0}]}
    refused = await fed.http.post(INGEST, json=mixed)
    assert refused.status_code == 403 and refused.json()["field"] == "readings[1].endpointId"
    assert (await fed.http.get(f"/api/os/endpoints/{HLT_VOLUME}")).json()["value"] == 40.0


def _iso(ts: datetime) -> str:
    return ts.isoformat()


async def test_values_must_fit_the_endpoint_type(fed: LiveServer) -> None:
    cases: list[tuple[Any, Any, int]] = [
        (PUMP_1_FAULT, 1e300, 422),  # "whole", but no 64-bit register holds it (issue 13.6: answered 500)
        (PUMP_1_FAULT, 2**63, 422),
        (PUMP_1_FAULT, 2**63 - 1, 200),
        (PUMP_1_FAULT, -(2**63), 200),
        (HLT_VOLUME, -0.0, 200),
        (PUMP_1_FAULT, 7.0, 200),
    ]
    for endpoint_id, value, status in cases:
        body = {"readings": [{"endpointId": endpoint_id, "value": value}]}
        r = await fed.http.post(INGEST, json=body)
        assert r.status_code == status, (value, r.text)
        if status == 422:
            assert r.json()["field"] == "readings[0].value" and r.json()["error"] == "invalid_value"
    endpoints = await fed.http.get("/api/os/endpoints")
    assert endpoints.status_code == 200
    assert next(e for e in endpoints.json() if e["endpointId"] == PUMP_1_FAULT)["value"] == 7


async def test_timestamps_must_lie_near_the_server_clock(fed: LiveServer) -> None:
    now = datetime.now(UTC)
    cases = [
        ("0001-01-01T00:00:00+14:00", 422),  # issue 13.6: accepted, then GET /endpoints answered 500
        ("9999-12-31T23:59:59-14:00", 422),
        ("9999-12-31T23:59:59", 422),
        (_iso(now - timedelta(days=2)), 422),  # past the default day a buffered gateway may replay
        (_iso(now + timedelta(hours=1)), 422),  # past the default five minutes of clock skew
        (_iso(now - timedelta(hours=20)), 200),
        (_iso(now + timedelta(minutes=2)), 200),
        ((now - timedelta(seconds=5)).replace(tzinfo=None).isoformat(), 200),  # no zone: UTC
    ]
    for stamp, status in cases:
        r = await fed.http.post(INGEST, json={"readings": [
            {"endpointId": HLT_VOLUME, "value": 30.0},
            {"endpointId": HLT_VOLUME, "value": 31.0, "timestamp": stamp}]})
        assert r.status_code == status, (stamp, r.text)
        if status == 422:
            assert r.json()["field"] == "readings[1].timestamp" and r.json()["error"] == "invalid_timestamp"
    assert (await fed.http.get("/api/os/endpoints")).status_code == 200


async def test_the_time_window_is_configurable(tmp_path: Path) -> None:
    def adjust(doc: dict[str, Any]) -> None:
        fed_externally(HLT_VOLUME)(doc)
        doc["ingest"] = {"max_age_s": 30 * 86400, "max_ahead_s": 0}

    async with custom_server(tmp_path, adjust) as live:
        now = datetime.now(UTC)
        old = {"endpointId": HLT_VOLUME, "value": 1.0, "timestamp": _iso(now - timedelta(days=20))}
        ahead = {"endpointId": HLT_VOLUME, "value": 1.0, "timestamp": _iso(now + timedelta(seconds=60))}
        assert (await live.http.post(INGEST, json=old)).status_code == 200
        assert (await live.http.post(INGEST, json=ahead)).status_code == 422


async def test_poison_in_the_plant_state_never_breaks_a_read(server: LiveServer) -> None:
    rt = server.runtime
    await rt.drivers["pump1_vfd"].stop()  # pump 1's fault code and FV1's probe now hold only what this test put there
    await rt.drivers["cellar_probe"].stop()
    state = rt.plant.states[PUMP_1_FAULT]
    state.value = 10**30
    state.quality = Quality.GOOD
    state.source_time = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))
    fv1 = rt.plant.states[FV1_TEMP]
    fv1.value, fv1.quality = math.inf, Quality.GOOD
    for path in ("/api/os/endpoints", f"/api/os/endpoints/{PUMP_1_FAULT}", "/api/os/tiles"):
        r = await server.http.get(path)
        assert r.status_code == 200, (path, r.text)
    one = (await server.http.get(f"/api/os/endpoints/{PUMP_1_FAULT}")).json()
    assert one["value"] is None and one["lastValue"] is None and one["sourceTimestamp"] is None
    async with ws_client(server) as ws:  # a screen's snapshot of the same state
        await ws.send({"type": "subscribe", "channel": "telemetry", "endpointIds": [PUMP_1_FAULT, FV1_TEMP]})
        snapshot = [await ws.expect(lambda f: f["type"] == "telemetry") for _ in range(2)]
    assert [f["value"] for f in snapshot] == [None, None]


@sqlite_only("text and blobs in a REAL column are SQLite's dynamic typing; PostgreSQL's typed columns refuse them")
async def test_poison_in_the_history_file_never_breaks_a_read(server: LiveServer) -> None:
    rt = server.runtime
    await rt.history_writer.flush()
    now = time.time()
    rows = [(FV1_TEMP, "abc", "good", None, now - 3), (FV1_TEMP, b"\x00\xff", "good", None, now - 2),
            (FV1_TEMP, 1e308 * 10, "good", 1e300, now - 1), (FV1_TEMP, 12.5, "good", float("nan"), now)]
    with sqlite3.connect(rt.db.engine.url.database) as conn:  # as a hand edit or an old version would
        conn.executemany("INSERT INTO telemetry_readings (endpoint_id, value, quality, source_ts, server_ts) "
                         "VALUES (?, ?, ?, ?, ?)", rows)
        conn.execute("INSERT INTO telemetry_rollups (endpoint_id, minute_ts, minimum, average, maximum, samples) "
                     "VALUES (?, ?, ?, ?, ?, ?)", (FV1_TEMP, now - 86400 * 365, "x", 1e308 * 10, b"\x01", 3))
    await rt.drivers["cellar_probe"].stop()
    since = datetime.fromtimestamp(now - 10, UTC).isoformat()
    r = await server.http.get("/api/os/telemetry", params={"endpointId": FV1_TEMP, "since": since})
    assert r.status_code == 200, r.text
    values = [x["value"] for x in r.json()["readings"]]
    assert values.count(None) >= 3 and 12.5 in values
    old = await server.http.get("/api/os/telemetry", params={"endpointId": FV1_TEMP, "limit": 10000})
    assert old.status_code == 200, old.text
    until = datetime.fromtimestamp(now + 10, UTC)
    start = datetime.fromtimestamp(now - 86400 * 366, UTC)
    text = await rt.history_reader.export_csv(FV1_TEMP, "fv1_temperature", "°C", start, until)
    assert "12.5" in text
    buckets = await rt.history_reader.trend(FV1_TEMP, start, until, 100)
    assert len(buckets) >= 100


async def test_ingest_rate_is_limited_per_token(tmp_path: Path) -> None:
    def adjust(doc: dict[str, Any]) -> None:
        fed_externally(HLT_VOLUME)(doc)
        doc["auth"] = {"mode": "required"}
        doc["ingest"] = {"rate_per_s": 0.001, "burst": 10}  # no refill within the test

    async with custom_server(tmp_path, adjust) as live:
        rt = live.runtime
        first = {"Authorization": f"Bearer {rt.auth.create_token('gateway', 'technician', None, 'x')[1]}"}
        second = {"Authorization": f"Bearer {rt.auth.create_token('other', 'technician', None, 'x')[1]}"}
        batch = {"readings": [{"endpointId": HLT_VOLUME, "value": float(i)} for i in range(10)]}
        assert (await live.http.post(INGEST, json=batch, headers=first)).status_code == 200
        over = await live.http.post(INGEST, json={"endpointId": HLT_VOLUME, "value": 55.0}, headers=first)
        assert over.status_code == 429
        assert over.json()["error"] == "too_many_requests" and int(over.headers["retry-after"]) >= 1
        assert (await live.http.get(f"/api/os/endpoints/{HLT_VOLUME}", headers=first)).json()["value"] == 9.0
        assert (await live.http.post(INGEST, json={"endpointId": HLT_VOLUME, "value": 56.0},
                                     headers=second)).status_code == 200  # another token has its own bucket
        too_big = {"readings": [{"endpointId": HLT_VOLUME, "value": 1.0}] * 11}
        refused = await live.http.post(INGEST, json=too_big, headers=second)
        assert refused.status_code == 413 and refused.json()["field"] == "readings"


async def test_a_node_limited_token_ingests_only_its_nodes(tmp_path: Path) -> None:
    def adjust(doc: dict[str, Any]) -> None:
        fed_externally(HLT_VOLUME, FV1_TEMP)(doc)
        doc["auth"] = {"mode": "required"}

    async with custom_server(tmp_path, adjust) as live:
        fv1 = {"Authorization": f"Bearer {live.runtime.auth.create_token('fv1', 'technician', ['FV1'], 'x')[1]}"}
        assert (await live.http.post(INGEST, json={"endpointId": FV1_TEMP, "value": 18.0}, headers=fv1)).status_code \
            == 200
        batch = {"readings": [{"endpointId": FV1_TEMP, "value": 19.0}, {"endpointId": HLT_VOLUME, "value": 50.0}]}
        other = await live.http.post(INGEST, json=batch, headers=fv1)
        assert other.status_code == 422 and other.json()["error"] == "unknown_endpoint"
        assert other.json()["field"] == "readings[1].endpointId"
        assert live.runtime.plant.states[FV1_TEMP].value == 18.0 and live.runtime.plant.states[HLT_VOLUME].value is None


def test_the_bucket_refills_at_the_configured_rate() -> None:
    now = [100.0]
    limiter = RateLimiter(rate_per_s=10, burst=20, clock=lambda: now[0])
    limiter.take("token:a", 20)
    with pytest.raises(TooManyRequests) as refused:
        limiter.take("token:a", 5)
    assert refused.value.retry_after_s == pytest.approx(0.5)
    limiter.take("token:b", 20)  # each credential its own bucket
    now[0] += 0.5
    limiter.take("token:a", 5)
    with pytest.raises(TooManyRequests):
        limiter.take("token:a", 1)
    now[0] += 1000
    limiter.take("token:a", 20)  # refilled to the burst, never beyond
    with pytest.raises(TooManyRequests):
        limiter.take("token:a", 1)


def test_an_int_endpoint_takes_only_what_64_bits_hold() -> None:
    """The check REST ingest, commands and the drivers' own readings share (bevforge.domain.coerce_value)."""
    for bad in (1e300, 2**63, -(2**63) - 1, 1e19):
        with pytest.raises(InvalidValue):
            coerce_value(bad, DataType.INT)
    assert coerce_value(2**63 - 1, DataType.INT) == 2**63 - 1 and coerce_value(-1e18, DataType.INT) == -10**18
    with pytest.raises(InvalidValue):
        coerce_value(10**400, DataType.FLOAT)  # no float holds it
