"""GET /api/os/events with a real httpx streaming client: filters, snapshot, Last-Event-ID resume."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.live import custom_server, ingest, realtime, sse
from tests.support.server import LiveServer, wait_for_command

HLT_SETPOINT, HLT_VOLUME, MLT_TEMPERATURE, FV1_TEMPERATURE = 12, 14, 20, 50


def live_value(endpoint_id: int, value: float) -> Callable[[dict[str, Any]], bool]:
    return lambda e: (e["event"] == "telemetry" and e["data"]["endpointId"] == endpoint_id
                      and e["data"]["value"] == value and not e["data"].get("snapshot"))


async def test_stream_starts_with_a_snapshot_then_live_values_with_ids(server: LiveServer) -> None:
    async with sse(server, f"?channels=telemetry&endpointIds={HLT_VOLUME}") as stream:
        snapshot = await stream.next()
        assert snapshot["event"] == "telemetry" and snapshot["data"]["snapshot"] is True
        assert snapshot["data"]["endpointId"] == HLT_VOLUME
        await ingest(server, HLT_VOLUME, 51.5)
        event = await stream.expect(live_value(HLT_VOLUME, 51.5))
    assert int(event["id"]) == event["data"]["seq"] > int(snapshot["id"]) - 1
    assert set(event["data"]) >= {"type", "endpointId", "value", "timestamp", "quality"}


async def test_filters_by_endpoint_and_channel(server: LiveServer) -> None:
    seen: list[dict] = []
    async with sse(server, f"?channels=telemetry&endpointIds={HLT_VOLUME},{MLT_TEMPERATURE}") as stream:
        await ingest(server, FV1_TEMPERATURE, 30.0)  # another endpoint, and an alarm: neither wanted
        r = await server.http.post("/api/os/command", json={"endpointId": HLT_SETPOINT, "value": 61})
        await wait_for_command(server, r.json()["commandId"])
        await ingest(server, MLT_TEMPERATURE, 36.5)
        await ingest(server, HLT_VOLUME, 52.5)
        await stream.expect(live_value(HLT_VOLUME, 52.5), seen)
    assert {e["event"] for e in seen} == {"telemetry"}
    assert {e["data"]["endpointId"] for e in seen} == {HLT_VOLUME, MLT_TEMPERATURE}
    assert any(e["data"]["endpointId"] == MLT_TEMPERATURE and e["data"]["value"] == 36.5 for e in seen)


async def test_alarms_and_commands_channels(server: LiveServer) -> None:
    seen: list[dict] = []
    async with sse(server, "?channels=alarms,commands") as stream:
        await ingest(server, FV1_TEMPERATURE, 30.0)
        raised = await stream.expect(lambda e: e["event"] == "alarm", seen)
        assert raised["data"]["event"] == "raised" and "FV1" in raised["data"]["message"]
        r = await server.http.post("/api/os/command", json={"endpointId": HLT_SETPOINT, "value": 61.5})
        command_id = r.json()["commandId"]
        await stream.expect(lambda e: e["event"] == "command_status" and e["data"]["status"] == "succeeded", seen)
    statuses = [e["data"]["status"] for e in seen if e["event"] == "command_status"]
    assert statuses == ["queued", "sent", "acked", "succeeded"]
    assert {e["data"]["commandId"] for e in seen if e["event"] == "command_status"} == {command_id}
    assert "telemetry" not in {e["event"] for e in seen}


async def test_last_event_id_resumes_without_a_gap(server: LiveServer) -> None:
    query = f"?channels=telemetry&endpointIds={HLT_VOLUME}"
    async with sse(server, query) as stream:
        await ingest(server, HLT_VOLUME, 53.0)
        last = await stream.expect(live_value(HLT_VOLUME, 53.0))
    for value in (53.25, 53.5, 53.75):  # published while the client was away
        await ingest(server, HLT_VOLUME, value)
    await ingest(server, MLT_TEMPERATURE, 37.0)
    seen: list[dict] = []
    async with sse(server, query, headers={"Last-Event-ID": last["id"]}) as stream:
        await stream.expect(live_value(HLT_VOLUME, 53.75), seen)
    assert not any(e["data"].get("snapshot") for e in seen)  # a replay, not a snapshot
    replayed = [e["data"]["value"] for e in seen if e["data"]["endpointId"] == HLT_VOLUME]
    assert replayed[-3:] == [53.25, 53.5, 53.75]
    ids = [int(e["id"]) for e in seen]
    assert ids == sorted(ids) and ids[0] > int(last["id"])
    assert all(e["data"]["endpointId"] == HLT_VOLUME for e in seen)


async def test_gap_older_than_the_buffer_resyncs_with_a_snapshot(tmp_path: Path) -> None:
    async with custom_server(tmp_path, realtime(sse_buffer=10)) as server:
        for i in range(12):
            await ingest(server, HLT_VOLUME, 60 + i)
        async with sse(server, f"?channels=telemetry&endpointIds={HLT_VOLUME}", headers={"Last-Event-ID": "1"}
                       ) as stream:
            resync = await stream.next()
            snapshot = await stream.next()
        # An id from a server run that got further (restart) is treated the same way.
        async with sse(server, "?channels=telemetry&endpointIds=14&lastEventId=999999999") as stream:
            again = await stream.next()
    assert resync["event"] == "resync" and "no longer buffered" in resync["data"]["reason"]
    assert snapshot["data"]["snapshot"] is True and snapshot["data"]["endpointId"] == HLT_VOLUME
    assert again["event"] == "resync"


async def test_quiet_stream_gets_comment_keep_alives_and_stays_open(tmp_path: Path) -> None:
    """A keep-alive is only worth sending on a stream that goes on: after it, the same stream still
    delivers the next event (a stream that simply ended would fail here, not pass)."""
    async with (custom_server(tmp_path, realtime(sse_keepalive_s=0.05)) as server,
                sse(server, "?channels=commands") as stream):
        await stream.comment("keep-alive")
        await stream.comment("keep-alive")  # the stream stayed quiet, and open, for a second interval
        r = await server.http.post("/api/os/command", json={"endpointId": HLT_SETPOINT, "value": 62})
        command_id = r.json()["commandId"]
        queued = await stream.expect(lambda e: e["event"] == "command_status" and e["data"]["commandId"] == command_id)
    assert queued["data"]["status"] == "queued"
    assert stream.comments.count("keep-alive") >= 2


async def test_bad_filters_are_refused_with_the_error_format(server: LiveServer) -> None:
    cases = [("?channels=weather", "unknown_channel", "channels"),
             ("?endpointIds=14,999", "unknown_endpoint", "endpointIds"),
             ("?endpointIds=abc", "invalid_endpoint_id", "endpointIds")]
    for query, code, field in cases:
        r = await server.http.get("/api/os/events" + query)
        assert r.status_code == 422
        assert r.json()["error"] == code and r.json()["field"] == field
    r = await server.http.get("/api/os/events", headers={"Last-Event-ID": "yesterday"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_last_event_id"
