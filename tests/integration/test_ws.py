"""/ws with real `websockets` clients against the real server: the seed's protocol, frame by frame."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

from tests.support.live import Frame, WsClient, custom_server, ingest, realtime, ws_client
from tests.support.server import LiveServer, wait_for_command

HLT_SETPOINT, HLT_VOLUME, MLT_TEMPERATURE, FV1_TEMPERATURE, V1, PUMP_1 = 12, 14, 20, 50, 22, 23


def telemetry_of(endpoint_id: int, value: float | None = None) -> Callable[[Frame], bool]:
    return lambda f: (f["type"] == "telemetry" and f["endpointId"] == endpoint_id
                      and not f.get("snapshot") and (value is None or f["value"] == value))


async def test_connected_frame_carries_a_client_id(server: LiveServer) -> None:
    async with ws_client(server) as first, ws_client(server) as second:
        ids = [c.seen[0]["clientId"] for c in (first, second)]
    assert all(isinstance(i, str) and i for i in ids)
    assert ids[0] != ids[1]


async def test_subscribe_sends_the_present_value_then_ingested_values(server: LiveServer) -> None:
    await ingest(server, HLT_VOLUME, 41.5)
    async with ws_client(server) as ws:
        ack = await ws.subscribe("telemetry", endpointIds=[HLT_VOLUME])
        assert ack == {"type": "subscribed", "channel": "telemetry", "endpointIds": [HLT_VOLUME], "subscriptions": 1}
        before = len(ws.seen)
        snapshot = await ws.expect(lambda f: f["type"] == "telemetry" and f.get("snapshot") is True)
        assert snapshot["endpointId"] == HLT_VOLUME and snapshot["quality"] == "good"
        # on a loaded machine a live frame published as the subscription started may come just before the
        # snapshot (the snapshot is read after it: never older); nothing else does
        early = ws.seen[before:-1]
        assert all(f["type"] == "telemetry" and f["endpointId"] == HLT_VOLUME for f in early), early
        await ingest(server, HLT_VOLUME, 42.125)
        frame = await ws.expect(telemetry_of(HLT_VOLUME, 42.125))
    assert set(frame) >= {"type", "endpointId", "value", "timestamp", "quality", "unit", "seq"}
    assert isinstance(frame["timestamp"], str) and frame["timestamp"].endswith("Z")
    assert set(snapshot) - {"snapshot"} == set(frame) - {"error"}


async def test_an_endpoint_not_subscribed_sends_nothing(server: LiveServer) -> None:
    async with ws_client(server) as ws:
        await ws.subscribe("telemetry", endpointIds=[HLT_VOLUME])
        await ingest(server, MLT_TEMPERATURE, 33.0)  # published first: would arrive first
        await ingest(server, HLT_VOLUME, 43.25)
        await ws.expect(telemetry_of(HLT_VOLUME, 43.25))
    assert {f["endpointId"] for f in ws.seen if f["type"] == "telemetry"} == {HLT_VOLUME}


async def test_unsubscribe_stops_one_endpoint_and_keeps_the_other(server: LiveServer) -> None:
    async with ws_client(server) as ws:
        await ws.subscribe("telemetry", endpointIds=[HLT_VOLUME, MLT_TEMPERATURE])
        ack = await ws.request({"type": "unsubscribe", "channel": "telemetry", "endpointIds": [MLT_TEMPERATURE]},
                               "unsubscribed")
        assert ack["subscriptions"] == 1
        mark = len(ws.seen)
        await ingest(server, MLT_TEMPERATURE, 34.0)
        await ingest(server, HLT_VOLUME, 44.5)
        await ws.expect(telemetry_of(HLT_VOLUME, 44.5))
    assert all(f.get("endpointId") != MLT_TEMPERATURE for f in ws.seen[mark:])


async def test_unsubscribe_without_ids_ends_the_whole_channel_and_every_id(server: LiveServer) -> None:
    async with ws_client(server) as ws:
        await ws.subscribe("telemetry")
        await ws.subscribe("telemetry", endpointIds=[HLT_VOLUME])
        await ws.subscribe("commands")
        assert (await ws.subscribe("commands", commandIds=[str(uuid.uuid4())]))["subscriptions"] == 4
        ack = await ws.request({"type": "unsubscribe", "channel": "telemetry"}, "unsubscribed")
        assert ack == {"type": "unsubscribed", "channel": "telemetry", "subscriptions": 2}
        ack = await ws.request({"type": "unsubscribe", "channel": "commands"}, "unsubscribed")
        assert ack == {"type": "unsubscribed", "channel": "commands", "subscriptions": 0}
        mark = len(ws.seen)
        await ingest(server, HLT_VOLUME, 46.5)  # its frame would be written before this returns
        await ws.request({"type": "ping"}, "pong")
    assert [f["type"] for f in ws.seen[mark:]] == ["pong"]


async def test_subscribing_to_telemetry_without_ids_means_every_endpoint(server: LiveServer) -> None:
    async with ws_client(server) as ws:
        ack = await ws.subscribe("telemetry")
        assert ack["subscriptions"] == 1
        snapshot = [await ws.recv() for _ in server.runtime.config.endpoints]
        assert {f["endpointId"] for f in snapshot} == {e.id for e in server.runtime.config.endpoints}
        await ingest(server, MLT_TEMPERATURE, 35.5)
        await ws.expect(telemetry_of(MLT_TEMPERATURE, 35.5))


async def test_every_command_transition_arrives_in_order(server: LiveServer) -> None:
    async with ws_client(server) as ws:
        await ws.subscribe("commands")
        r = await server.http.post("/api/os/command", json={"endpointId": HLT_SETPOINT, "value": 64.5})
        command_id = r.json()["commandId"]
        statuses = []
        while not statuses or statuses[-1] not in ("succeeded", "failed"):
            frame = await ws.expect(lambda f: f["type"] == "command_status" and f["commandId"] == command_id)
            statuses.append(frame["status"])
    assert statuses == ["queued", "sent", "acked", "succeeded"]
    assert frame["actualValue"] == 64.5 and frame["completedAt"].endswith("Z")


async def test_blocked_and_failed_commands_are_pushed_too(server: LiveServer) -> None:
    async with ws_client(server) as ws:
        await ws.subscribe("commands")
        r = await server.http.post("/api/os/command", json={"endpointId": PUMP_1, "value": True})
        assert r.status_code == 409
        blocked = await ws.expect(lambda f: f.get("commandId") == r.json()["commandId"])
        assert blocked["status"] == "blocked" and blocked["reasons"]
        server.sim.faults_for("hlt_controller").reject_writes = "exception 04"
        r = await server.http.post("/api/os/command", json={"endpointId": HLT_SETPOINT, "value": 61})
        statuses = []
        while not statuses or statuses[-1] != "failed":
            statuses.append((await ws.expect(lambda f: f.get("commandId") == r.json()["commandId"]))["status"])
    assert statuses == ["queued", "sent", "failed"]


async def test_subscribing_to_a_finished_command_sends_its_final_status(server: LiveServer) -> None:
    r = await server.http.post("/api/os/command", json={"endpointId": HLT_SETPOINT, "value": 63})
    command_id = r.json()["commandId"]
    await wait_for_command(server, command_id)
    async with ws_client(server) as ws:
        ack = await ws.subscribe("commands", commandIds=[command_id])
        assert ack["commandIds"] == [command_id]
        final = await ws.expect_type("command_status")
        assert final["status"] == "succeeded" and final["commandId"] == command_id and final["snapshot"] is True
        # A finished command frees its subscription slot.
        pong = await ws.request({"type": "ping"}, "pong")
        assert pong["type"] == "pong"
        again = await ws.subscribe("alarms")
        assert again["subscriptions"] == 1


async def test_subscribing_to_command_ids_follows_only_those(server: LiveServer) -> None:
    mine = str(uuid.uuid4())
    async with ws_client(server) as ws:
        await ws.subscribe("commands", commandIds=[mine])
        other = await server.http.post("/api/os/command", json={"endpointId": HLT_SETPOINT, "value": 62})
        await wait_for_command(server, other.json()["commandId"])
        await server.http.post("/api/os/command", json={"endpointId": HLT_SETPOINT, "value": 62.5, "commandId": mine})
        final = await ws.expect(lambda f: f["type"] == "command_status" and f["status"] == "succeeded")
    assert final["commandId"] == mine
    assert {f["commandId"] for f in ws.seen if f["type"] == "command_status"} == {mine}


async def test_command_over_ws_runs_the_same_pipeline_and_answers_with_statuses(server: LiveServer) -> None:
    async with ws_client(server) as ws:
        await ws.send({"type": "command", "endpointId": HLT_SETPOINT, "value": 65, "commandId": "ws-cmd-1"})
        statuses = []
        while not statuses or statuses[-1] not in ("succeeded", "failed"):
            statuses.append((await ws.expect_type("command_status"))["status"])
        assert statuses == ["queued", "sent", "acked", "succeeded"]
        stored = (await server.http.get("/api/os/commands/ws-cmd-1")).json()
        assert stored["origin"] == "ws" and stored["status"] == "succeeded" and stored["actualValue"] == 65
        # Sending the same commandId again is idempotent: its standing status, no second write.
        await ws.send({"type": "command", "endpointId": HLT_SETPOINT, "value": 65, "commandId": "ws-cmd-1"})
        again = await ws.expect_type("command_status")
        assert again["status"] == "succeeded" and again["snapshot"] is True
        # An interlock blocks a command from /ws exactly as it does over REST.
        await ws.send({"type": "command", "endpointId": PUMP_1, "value": True})
        blocked = await ws.expect_type("command_status")
        assert blocked["status"] == "blocked" and "V1" in blocked["error"]
        # Rejected requests come back as error frames naming the field.
        await ws.send({"type": "command", "endpointId": HLT_SETPOINT, "value": 500, "commandId": "ws-cmd-2"})
        error = await ws.expect_type("error")
        assert error["code"] == "out_of_range" and error["field"] == "value" and error["commandId"] == "ws-cmd-2"
    assert server.sim.model.pumps["pump1"].running is False


async def test_alarm_raise_and_ack_are_pushed(server: LiveServer) -> None:
    async with ws_client(server) as ws:
        await ws.subscribe("alarms")
        await ingest(server, FV1_TEMPERATURE, 30.0)  # above the 24 °C band
        raised = await ws.expect(lambda f: f["type"] == "alarm" and f["event"] == "raised")
        assert set(raised) >= {"alarmId", "severity", "message", "timestamp"}
        assert raised["severity"] == "medium" and "FV1" in raised["message"]
        r = await server.http.post(f"/api/os/alarms/{raised['alarmId']}/ack", json={"comment": "seen"})
        assert r.status_code == 200
        acked = await ws.expect(lambda f: f["type"] == "alarm" and f["event"] == "acked")
    assert acked["alarmId"] == raised["alarmId"] and acked["acked"] is True


async def test_late_alarm_subscriber_sees_standing_alarms(server: LiveServer) -> None:
    await ingest(server, FV1_TEMPERATURE, 31.0)
    async with ws_client(server) as ws:
        await ws.subscribe("alarms")
        standing = await ws.expect_type("alarm")
    assert standing["event"] == "standing" and standing["snapshot"] is True and "FV1" in standing["message"]


async def test_unsubscribed_alarms_are_not_pushed(server: LiveServer) -> None:
    async with ws_client(server) as ws:
        await ws.subscribe("alarms")
        await ws.request({"type": "unsubscribe", "channel": "alarms"}, "unsubscribed")
        since = len(ws.seen)  # the subscription's snapshot (alarms standing then, e.g. a stale probe) came before
        await ws.subscribe("telemetry", endpointIds=[HLT_VOLUME])
        await ingest(server, FV1_TEMPERATURE, 32.0)
        await ingest(server, HLT_VOLUME, 45.75)
        await ws.expect(telemetry_of(HLT_VOLUME, 45.75))
    assert not [f for f in ws.seen[since:] if f["type"] == "alarm"]


async def test_ping_is_answered_with_pong(server: LiveServer) -> None:
    async with ws_client(server) as ws:
        pong = await ws.request({"type": "ping"}, "pong")
    assert pong["type"] == "pong"


async def test_two_clients_see_the_same_command_statuses(server: LiveServer) -> None:
    async with ws_client(server) as a, ws_client(server) as b:
        await a.subscribe("commands")
        await b.subscribe("commands")
        r = await server.http.post("/api/os/command", json={"endpointId": HLT_SETPOINT, "value": 60.5})
        command_id = r.json()["commandId"]
        seen = []
        for client in (a, b):
            frames: list[dict] = []
            while not frames or frames[-1]["status"] not in ("succeeded", "failed"):
                frames.append(await client.expect(lambda f: f.get("commandId") == command_id))
            seen.append(frames)
    assert [f["status"] for f in seen[0]] == ["queued", "sent", "acked", "succeeded"]
    assert seen[0] == seen[1]  # same frames, same sequence numbers


async def _error(ws: WsClient, message: object) -> dict:
    await ws.send(message if isinstance(message, str | bytes) else json.dumps(message))
    return await ws.expect_type("error")


async def test_every_bad_frame_gets_an_error_and_the_connection_stays_open(tmp_path: Path) -> None:
    cases: list[tuple[object, str, str | None]] = [
        ("{not json", "invalid_json", None),
        ("[1, 2]", "invalid_message", None),
        (b"\x00\x01", "invalid_message", None),
        ({"channel": "alarms"}, "missing_field", "type"),
        ({"type": 7}, "invalid_field", "type"),
        ({"type": "dance"}, "unknown_type", "type"),
        ({"type": "subscribe"}, "missing_field", "channel"),
        ({"type": "subscribe", "channel": "weather"}, "unknown_channel", "channel"),
        ({"type": "subscribe", "channel": ["alarms"]}, "unknown_channel", "channel"),
        ({"type": "subscribe", "channel": "telemetry", "endpointIds": [10, 999]}, "unknown_endpoint", "endpointIds"),
        ({"type": "subscribe", "channel": "telemetry", "endpointIds": "10"}, "invalid_field", "endpointIds"),
        ({"type": "subscribe", "channel": "telemetry", "endpointIds": [True]}, "invalid_field", "endpointIds"),
        ({"type": "subscribe", "channel": "telemetry", "endpointIds": []}, "invalid_field", "endpointIds"),
        ({"type": "subscribe", "channel": "commands", "commandIds": [1]}, "invalid_field", "commandIds"),
        ({"type": "subscribe", "channel": "alarms", "endpointIds": [10]}, "unknown_field", "endpointIds"),
        ({"type": "subscribe", "channel": "telemetry", "endpointID": [10]}, "unknown_field", "endpointID"),
        ({"type": "unsubscribe", "channel": "telemetry", "endpointIds": [999]}, "unknown_endpoint", "endpointIds"),
        ({"type": "command", "value": 1}, "missing_field", "endpointId"),
        ({"type": "command", "endpointId": "12", "value": 1}, "invalid_endpoint_id", "endpointId"),
        ({"type": "command", "endpointId": 999, "value": 1}, "unknown_endpoint", "endpointId"),
        ({"type": "command", "endpointId": 10, "value": 1}, "not_writable", "endpointId"),
        ({"type": "command", "endpointId": 12, "value": "hot"}, "invalid_value", "value"),
        ({"type": "command", "endpointId": 12, "value": 50, "commandId": 5}, "invalid_command_id", "commandId"),
        ({"type": "auth", "token": "x"}, "already_authenticated", None),
        ("x" * 70_000, "too_large", None),
    ]
    # Many frames in a row: lift the rate limit, which has its own test.
    async with custom_server(tmp_path, realtime(max_messages_per_s=1000)) as server, ws_client(server) as ws:
        for message, code, field in cases:
            error = await _error(ws, message)
            assert error["code"] == code, (message, error)
            assert isinstance(error["message"], str) and error["message"]
            assert error.get("field") == field, (message, error)
        pong = await ws.request({"type": "ping"}, "pong")
        assert pong["type"] == "pong"
        ack = await ws.subscribe("telemetry", endpointIds=[HLT_VOLUME])
        assert ack["subscriptions"] == 1  # none of the bad subscribes left anything behind
