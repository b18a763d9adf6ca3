"""/ws limits from config.realtime: connections, message rate, subscriptions, heartbeat, slow clients.

Intervals are shortened through config; every assertion is on behaviour (frames, close codes,
queue sizes), never on elapsed time.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest
import websockets

from bevforge.api.ws import Connection, hub_of
from tests.support.live import WsClient, custom_server, ingest, realtime, ws_client
from tests.support.server import LiveServer, fed_externally, wait_for

FV1_TEMPERATURE, HLT_VOLUME = 50, 14


def connection(server: LiveServer, client: WsClient) -> Connection:
    assert server.server is not None
    return hub_of(server.server.config.app).connections[client.seen[0]["clientId"]]


async def test_connection_over_the_limit_is_refused_with_1013(tmp_path: Path) -> None:
    async with custom_server(tmp_path, realtime(max_connections=3)) as server:
        async with ws_client(server), ws_client(server), ws_client(server) as third:
            async with websockets.connect(server.ws_url) as fourth:
                with pytest.raises(websockets.ConnectionClosed) as refused:
                    await fourth.recv()
            assert refused.value.rcvd is not None and refused.value.rcvd.code == 1013
            assert "3 connections" in refused.value.rcvd.reason
            assert (await third.request({"type": "ping"}, "pong"))["type"] == "pong"
        hub = hub_of(server.server.config.app)  # type: ignore[union-attr]
        await wait_for(lambda: hub.reserved == 0)
        async with ws_client(server) as again:  # a freed slot can be used again
            assert (await again.request({"type": "ping"}, "pong"))["type"] == "pong"


async def test_messages_over_the_rate_are_answered_with_errors_and_ignored(tmp_path: Path) -> None:
    # One message per two seconds, burst of one, never closed for it: the burst below is refused.
    async with (custom_server(tmp_path, realtime(max_messages_per_s=0.5, abuse_strikes=100)) as server,
                ws_client(server) as ws):
        for _ in range(4):
            await ws.send({"type": "ping"})
        answers = [await ws.recv() for _ in range(4)]
    assert [a["type"] for a in answers] == ["pong", "error", "error", "error"]
    assert {a.get("code") for a in answers[1:]} == {"rate_limited"}


async def test_sustained_abuse_is_closed_with_1008(tmp_path: Path) -> None:
    async with (custom_server(tmp_path, realtime(max_messages_per_s=0.5, abuse_strikes=3)) as server,
                ws_client(server) as ws):
        for _ in range(6):
            await ws.send({"type": "ping"})
        code, reason = await ws.closed()
    assert code == 1008 and "abuse" in reason
    assert [f["type"] for f in ws.seen[1:]] == ["pong", "error", "error"]


async def test_fifty_subscriptions_per_connection(server: LiveServer) -> None:
    assert server.runtime.config.realtime.max_subscriptions == 50
    async with ws_client(server) as ws:
        ids = [str(uuid.uuid4()) for _ in range(49)]
        assert (await ws.subscribe("commands", commandIds=ids))["subscriptions"] == 49
        assert (await ws.subscribe("alarms"))["subscriptions"] == 50
        error = await ws.request({"type": "subscribe", "channel": "telemetry", "endpointIds": [HLT_VOLUME]}, "error")
        assert error["code"] == "too_many_subscriptions" and error["limit"] == 50
        error = await ws.request({"type": "subscribe", "channel": "commands"}, "error")
        assert error["code"] == "too_many_subscriptions"
        # Subscribing again to what is already held takes no new slot.
        assert (await ws.subscribe("commands", commandIds=ids[:3]))["subscriptions"] == 50
        freed = await ws.request({"type": "unsubscribe", "channel": "commands", "commandIds": ids[:10]},
                                 "unsubscribed")
        assert freed["subscriptions"] == 40
        assert (await ws.subscribe("telemetry", endpointIds=[HLT_VOLUME]))["subscriptions"] == 41


async def test_server_pings_and_closes_a_silent_connection(tmp_path: Path) -> None:
    async with custom_server(tmp_path, realtime(ping_interval_s=0.1, idle_timeout_s=0.5)) as server:
        async with ws_client(server) as lively:
            # Answering the server's pings keeps a connection open well past the idle timeout.
            for _ in range(10):
                ping = await lively.expect_type("ping")
                assert ping["timestamp"].endswith("Z")
                await lively.send({"type": "pong"})
            assert (await lively.request({"type": "ping"}, "pong"))["type"] == "pong"
            # Then silence: the server closes it.
            code, reason = await lively.closed()
    assert code == 1001 and "idle" in reason
    assert sum(f["type"] == "ping" for f in lively.seen) > 10


def _long_alarm_message(doc: dict[str, Any]) -> None:
    for rule in doc["alarms"]:
        if rule.get("endpoint") == FV1_TEMPERATURE:
            rule["message"] = "FV1 out of band {value:.1f}{unit} " + "!" * 30_000  # big frames fill buffers sooner
    doc.setdefault("realtime", {})["queue_limit"] = 8


async def _slow_client(server: LiveServer) -> Any:
    """A client whose socket is tiny and who stops reading: TCP back-pressure reaches the server."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
    return websockets.connect(server.ws_url, sock=sock, max_queue=1, compression=None)


async def test_a_client_that_stops_reading_is_cut_off_without_delaying_another(tmp_path: Path) -> None:
    async with custom_server(tmp_path, _long_alarm_message) as server:
        async with await _slow_client(server) as raw_slow, ws_client(server) as fast:
            slow = WsClient(raw_slow)
            assert (await slow.recv())["type"] == "connected"
            await slow.subscribe("alarms")
            await fast.subscribe("alarms")
            slow_conn, fast_conn = connection(server, slow), connection(server, fast)
            limit = server.runtime.config.realtime.queue_limit
            raised = 0
            # The slow client reads nothing from here on.
            for _ in range(2000):
                await ingest(server, FV1_TEMPERATURE, 30.0, 10.0)  # raise, then clear: two alarm frames
                raised += 1
                await fast.expect(lambda f: f["type"] == "alarm" and f["event"] == "cleared")
                if slow_conn.subscriber.closed_reason is not None:
                    break
            assert slow_conn.subscriber.closed_reason is not None, "the slow client was never cut off"
            assert "too slow" in slow_conn.subscriber.closed_reason
            # Its backlog never grew past the limit: memory stays bounded, whatever the client does.
            assert slow_conn.subscriber.high_water <= limit
            # The reader kept up and received every frame, in order, without being cut off.
            assert fast_conn.subscriber.closed_reason is None
            # (a flood of raises also marks its first-out alarm: an annotation, not a transition)
            events = [f["event"] for f in fast.seen if f["type"] == "alarm" and f["event"] != "first_out"]
            assert events == ["raised", "cleared"] * raised
            hub = hub_of(server.server.config.app)  # type: ignore[union-attr]
            await wait_for(lambda: slow_conn.client_id not in hub.connections, timeout=15)
            assert (await fast.request({"type": "ping"}, "pong"))["type"] == "pong"
            # Reading again, the slow client gets what was already in flight, then the end.
            with pytest.raises(websockets.ConnectionClosed) as ended:
                while True:
                    await slow.recv()
            assert ended.value.rcvd is None or ended.value.rcvd.code == 1013
            # ... and what it got has no gap: critical frames are cut off, never dropped.
            got = [f["event"] for f in slow.seen if f["type"] == "alarm" and f["event"] != "first_out"]
            assert got == (["raised", "cleared"] * raised)[:len(got)]


async def test_a_burst_of_readings_never_cuts_off_a_viewer_that_keeps_up(tmp_path: Path) -> None:
    # One technician's script posts two batches of 1,200 readings at once, each flipping FV1 in and
    # out of its band: 2,400 alarm transitions of its HI rule land faster than a socket can carry them.
    # (FV1's probe is fed by that script here: a device-polled point refuses client readings.)
    async with custom_server(tmp_path, fed_externally(FV1_TEMPERATURE)) as server, ws_client(server) as viewer:
        await viewer.subscribe("alarms")

        async def read_promptly() -> list[str]:
            transitions: list[str] = []
            while len(transitions) < 2400:
                frame = await viewer.expect(lambda f: f["type"] == "alarm" and f["event"] != "first_out"
                                            and f["ruleId"] == "fv1_temperature_hi")
                transitions.append(frame["event"])
            return transitions

        reader = asyncio.create_task(read_promptly())
        batch = [{"endpointId": FV1_TEMPERATURE, "value": v} for v in (30.0, 10.0) * 600]
        answers = await asyncio.gather(*(server.http.post("/api/os/telemetry/ingest", json={"readings": batch},
                                                          timeout=120) for _ in range(2)))
        assert [a.status_code for a in answers] == [200, 200]
        # The viewer stays connected and receives every alarm frame, in order.
        assert await reader == ["raised", "cleared"] * 1200
        assert connection(server, viewer).subscriber.closed_reason is None
        assert (await viewer.request({"type": "ping"}, "pong"))["type"] == "pong"
