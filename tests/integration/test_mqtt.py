"""MQTT end to end: a real Mosquitto on loopback, the fixture brewhouse on real Modbus, real MQTT clients.

The broker runs with a password file and the ACL docs/mqtt.md shows (tests/support/mosquitto.py).
`Watcher` is a dashboard: it subscribes to the site's tree and keeps what arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bevforge.domain import Severity
from bevforge.runtime import Runtime
from tests.support.mosquitto import ROOT, Cable, Mosquitto, Watcher
from tests.support.server import brewhouse_config, build_runtime, wait_for, wait_for_command

USERS = {"bevforge": "plant-secret-1", "alice": "alice-pw", "victor": "victor-pw", "mallory": "mallory-pw",
         "tess": "tess-pw"}
# alice operates every node; victor only looks; tess is a technician; mallory has a broker login but no BevForge role
MQTT_USERS = {"alice": {"role": "operator"}, "victor": {"role": "viewer"}, "tess": {"role": "technician"}}

HLT_SETPOINT_TOPIC = f"{ROOT}/HLT/hlt_setpoint"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    mosquitto = Mosquitto(tmp_path_factory.mktemp("mosquitto"), USERS)
    mosquitto.start()
    try:
        yield mosquitto
    finally:
        mosquitto.stop()


def with_mqtt(broker: Mosquitto, **overrides: Any) -> Any:
    def adjust(doc: dict[str, Any]) -> None:
        doc["mqtt"] = broker.settings(users=MQTT_USERS, **overrides)
    return adjust


async def start_plant(tmp_path: Path, adjust: Any) -> Runtime:
    runtime = build_runtime(brewhouse_config(adjust), tmp_path / "bevforge.db")
    await runtime.start()
    await wait_for(lambda: all(runtime.plant.device_online.values()), timeout=15)
    return runtime


@pytest.fixture
async def plant(tmp_path: Path, broker: Mosquitto) -> AsyncIterator[Runtime]:
    runtime = await start_plant(tmp_path, with_mqtt(broker))
    try:
        await wait_for(lambda: runtime.mqtt is not None and runtime.mqtt.connected, timeout=10)
        yield runtime
    finally:
        await runtime.stop()


async def test_a_new_subscriber_gets_every_endpoints_retained_state_and_the_site_online(
        plant: Runtime, broker: Mosquitto) -> None:
    temperature = plant.plant.states[10]
    await wait_for(lambda: plant.mqtt is not None and plant.mqtt.published >= len(plant.config.endpoints))
    async with Watcher(broker, "alice") as dash:  # subscribes after the plant published: retained copies
        _, body, message = await dash.wait_for(lambda t, b, m: t == f"{ROOT}/HLT/hlt_temperature/state")
        assert message.retain
        assert body["endpointId"] == 10 and body["unit"] == "°C" and body["quality"] == "good"
        assert isinstance(body["value"], float) and abs(body["value"] - temperature.value) < 5
        assert body["timestamp"].endswith("Z")
        _, status, message = await dash.wait_for(lambda t, b, m: t == f"{ROOT}/status")
        assert message.retain and status["status"] == "online" and status["site"] == plant.config.site.name
        for endpoint in plant.config.endpoints:  # one retained state topic per endpoint of the site
            await dash.wait_for(lambda t, b, m, e=endpoint: t == f"{ROOT}/{e.node}/{e.name}/state")


async def test_a_value_change_is_published(plant: Runtime, broker: Mosquitto) -> None:
    async with Watcher(broker, "alice", f"{HLT_SETPOINT_TOPIC}/state") as dash:
        await dash.wait_for(lambda t, b, m: True)  # the retained copy
        await plant.commands.submit(12, 61.5)
        _, body, message = await dash.wait_for(lambda t, b, m: b["value"] == 61.5)
        assert not message.retain  # a live message to a subscriber already there
        assert body["quality"] == "good" and body["endpointId"] == 12
    async with Watcher(broker, "alice", f"{HLT_SETPOINT_TOPIC}/state") as late:
        _, body, message = await late.wait_for(lambda t, b, m: True)
        assert message.retain and body["value"] == 61.5  # the broker keeps the latest for the next one


async def test_a_device_that_stops_answering_is_published_stale_then_bad_never_as_good(
        plant: Runtime, broker: Mosquitto) -> None:
    async with Watcher(broker, "alice", f"{ROOT}/HLT/hlt_temperature/state") as dash:
        await dash.wait_for(lambda t, b, m: b["quality"] == "good")
        seen = len(dash.messages)
        plant.attachments["simulator"].faults_for("hlt_controller").offline = True
        _, body, _ = await dash.wait_for(lambda t, b, m: b["quality"] == "bad", timeout=20, start=seen)
        assert body["error"]
        qualities = [m.payload for m in dash.messages[seen:]]
        assert all(b'"quality":"good"' not in q for q in qualities)  # once it went quiet, never shown as live
    async with Watcher(broker, "alice", f"{ROOT}/HLT/hlt_temperature/state") as late:
        _, body, message = await late.wait_for(lambda t, b, m: True)
        assert message.retain and body["quality"] == "bad"  # what a newcomer is told, too


async def test_health_shows_the_link(plant: Runtime, broker: Mosquitto) -> None:
    health = plant.health()["mqtt"]
    assert health["connected"] is True and health["broker"] == f"127.0.0.1:{broker.port}"
    assert health["root"] == ROOT and health["lastError"] is None
    assert USERS["bevforge"] not in str(plant.health())  # the password is never shown


async def test_an_alarm_is_retained_while_it_stands_and_removed_when_it_is_over(
        plant: Runtime, broker: Mosquitto) -> None:
    sim = plant.attachments["simulator"]
    async with Watcher(broker, "alice", f"{ROOT}/alarms/+") as dash:
        sim.faults_for("hlt_controller").offline = True  # its comms alarm is raised
        topic, raised, _ = await dash.wait_for(
            lambda t, b, m: not m.retain and b and b["kind"] == "comms" and b["active"], timeout=20)
        alarm_id = raised["alarmId"]
        assert topic == f"{ROOT}/alarms/{alarm_id}" and raised["event"] == "raised"
        async with Watcher(broker, "alice", topic) as late:  # a dashboard that opens now is told too
            _, body, message = await late.wait_for(lambda t, b, m: True)
            assert message.retain and body["alarmId"] == alarm_id and body["active"]
        sim.faults_for("hlt_controller").offline = False  # back: no longer active, still waiting for an ACK
        await dash.wait_for(lambda t, b, m: t == topic and b and not b["active"], timeout=20)
        async with Watcher(broker, "alice", topic) as late:
            _, body, message = await late.wait_for(lambda t, b, m: True)
            assert message.retain and body["active"] is False and body["acked"] is False
        seen = len(dash.messages)
        plant.alarms.ack(alarm_id, plant_actor())
        await dash.wait_for(lambda t, b, m: t == topic and b and b["acked"], start=seen)
        _, _, message = await dash.wait_for(lambda t, b, m: t == topic and b is None, start=seen)
        assert message.payload == b""  # the empty retained message: the broker forgets the topic


async def test_every_command_transition_is_published_on_its_topic(plant: Runtime, broker: Mosquitto) -> None:
    async with Watcher(broker, "alice", f"{ROOT}/commands/+") as dash:
        await plant.commands.submit(12, 62.0, "panel-press-1")
        statuses: list[str] = []
        while not statuses or statuses[-1] not in ("succeeded", "failed"):
            topic, body, message = await dash.wait_for(lambda t, b, m: True, start=len(statuses))
            assert topic == f"{ROOT}/commands/panel-press-1" and not message.retain
            statuses.append(body["status"])
        assert statuses == ["queued", "sent", "acked", "succeeded"]
        assert body["requestedValue"] == 62.0 and body["actualValue"] == 62.0 and body["endpointId"] == 12


def plant_actor() -> Any:
    from bevforge.domain import Actor

    return Actor(user="ops", role="operator")


async def test_a_retained_alarm_left_from_before_is_removed_when_the_site_connects(
        tmp_path: Path, broker: Mosquitto) -> None:
    leftover = f"{ROOT}/alarms/424242"  # an alarm that ended while the site was stopped
    async with Watcher(broker, "bevforge", leftover) as old_site:
        await old_site.client.publish(leftover, b'{"alarmId": 424242, "active": true}', qos=1, retain=True)
        await old_site.wait_for(lambda t, b, m: b is not None)
        runtime = await start_plant(tmp_path, with_mqtt(broker))
        try:
            _, _, message = await old_site.wait_for(lambda t, b, m: b is None, timeout=15)
            assert message.payload == b""
        finally:
            await runtime.stop()


# -- commands in -----------------------------------------------------------------------------------

def set_topic(user: str, node: str, endpoint: str) -> str:
    return f"{ROOT}/cmd/{user}/{node}/{endpoint}/set"


async def follow_command(dash: Watcher, command_id: str) -> list[dict[str, Any]]:
    """Every transition of one command as published, up to its final one."""
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1]["status"] not in ("succeeded", "failed", "blocked"):
        _, body, _ = await dash.wait_for(lambda t, b, m: t == f"{ROOT}/commands/{command_id}",
                                         start=dash.position if frames else 0)
        frames.append(body)
    return frames


async def test_an_mqtt_command_runs_the_pipeline_to_the_device_and_reports_each_step(
        plant: Runtime, broker: Mosquitto) -> None:
    sim = plant.attachments["simulator"]
    async with Watcher(broker, "alice", f"{ROOT}/commands/+") as dash:
        await dash.publish(set_topic("alice", "HLT", "hlt_setpoint"), {"value": 63.5, "requestId": "mq-1"})
        frames = await follow_command(dash, "mq-1")
    assert [f["status"] for f in frames] == ["queued", "sent", "acked", "succeeded"]
    assert all(f["requestId"] == "mq-1" and f["user"] == "mqtt:alice" and f["origin"] == "mqtt" for f in frames)
    assert frames[-1]["actualValue"] == 63.5
    assert sim.model.vessels["hlt"].setpoint_c == 63.5  # it reached the (simulated) controller over Modbus
    audit = await plant.audit.query(user="mqtt:alice")
    assert {a["action"] for a in audit} >= {"command.request", "command.result"}
    assert all(a["commandId"] == "mq-1" and a["station"] == "mqtt" for a in audit)


async def test_a_bare_value_is_a_command_too(plant: Runtime, broker: Mosquitto) -> None:
    async with Watcher(broker, "alice", f"{ROOT}/commands/+") as dash:
        await dash.publish(set_topic("alice", "HLT", "hlt_setpoint"), "64")
        _, body, _ = await dash.wait_for(lambda t, b, m: b["status"] == "succeeded")
    assert body["actualValue"] == 64.0 and body["user"] == "mqtt:alice" and "requestId" not in body


async def test_an_interlocked_mqtt_command_is_reported_blocked_with_the_reason_and_never_reaches_the_device(
        plant: Runtime, broker: Mosquitto) -> None:
    sim = plant.attachments["simulator"]
    await wait_for(lambda: plant.plant.states[32].value is False)  # the BK is empty: its heater's interlock holds
    async with Watcher(broker, "alice", f"{ROOT}/commands/+") as dash:
        await dash.publish(set_topic("alice", "BK", "bk_heater"), {"value": True, "requestId": "mq-bk"})
        _, body, _ = await dash.wait_for(lambda t, b, m: t.endswith("/mq-bk"))
    assert body["status"] == "blocked" and body["requestId"] == "mq-bk"
    assert body["reasons"][0]["id"] == "bk_heater_needs_level" and "BK level is HIGH" in body["reasons"][0]["reason"]
    assert sim.model.vessels["bk"].heater_enabled is False
    assert (await plant.commands.find("mq-bk")).status.value == "blocked"


async def errors_of(dash: Watcher, user: str, start: int = 0) -> dict[str, Any]:
    _, body, _ = await dash.wait_for(lambda t, b, m: t == f"{ROOT}/cmd/{user}/error", start=start)
    return body


async def test_a_user_without_the_role_or_not_listed_is_refused_and_nothing_is_sent(
        plant: Runtime, broker: Mosquitto) -> None:
    sim = plant.attachments["simulator"]
    before = sim.model.vessels["hlt"].setpoint_c
    async with Watcher(broker, "victor", f"{ROOT}/cmd/victor/error") as victor:
        await victor.publish(set_topic("victor", "HLT", "hlt_setpoint"), {"value": 70, "requestId": "v-1"})
        refused = await errors_of(victor, "victor")
    assert refused["code"] == "forbidden" and "viewer" in refused["message"] and refused["requestId"] == "v-1"
    async with Watcher(broker, "mallory", f"{ROOT}/cmd/mallory/error") as mallory:
        # the broker's ACL drops a message under someone else's name; under her own she is unknown
        await mallory.publish(set_topic("alice", "HLT", "hlt_setpoint"), {"value": 71, "requestId": "m-1"})
        await mallory.publish(set_topic("mallory", "HLT", "hlt_setpoint"), {"value": 72, "requestId": "m-2"})
        refused = await errors_of(mallory, "mallory")
    assert refused["code"] == "forbidden" and "not in mqtt.users" in refused["message"]
    assert await plant.commands.find("v-1") is None and await plant.commands.find("m-2") is None
    assert await plant.commands.find("m-1") is None  # published before m-2 on the same session: dropped
    assert sim.model.vessels["hlt"].setpoint_c == before


async def test_an_alarm_is_acknowledged_over_mqtt_by_an_operator_only_and_journaled_as_that_user(
        plant: Runtime, broker: Mosquitto) -> None:
    alarm = plant.alarms.raise_alarm("test:mqtt-ack", "process", Severity.HIGH, "HLT too hot", node="HLT")
    ack_topic = f"{ROOT}/cmd/victor/alarms/{alarm.id}/ack"
    async with Watcher(broker, "victor", f"{ROOT}/cmd/victor/error") as victor:
        await victor.publish(ack_topic, {"comment": "looks fine"})
        refused = await errors_of(victor, "victor")
    assert refused["code"] == "forbidden" and refused["topic"] == ack_topic
    assert plant.alarms.current[alarm.id].acked_by is None
    async with Watcher(broker, "alice", f"{ROOT}/cmd/alice/error") as alice:
        await alice.publish(f"{ROOT}/cmd/alice/alarms/{alarm.id}/ack", {"colour": "red"})
        assert (await errors_of(alice, "alice"))["field"] == "payload"
        await alice.publish(f"{ROOT}/cmd/alice/alarms/{alarm.id}/ack", {"comment": "on my way"})
        await wait_for(lambda: plant.alarms.current[alarm.id].acked_by is not None, timeout=10)
    acked = plant.alarms.current[alarm.id]
    assert (acked.acked_by, acked.ack_comment) == ("mqtt:alice", "on my way")


def alarm_topic(user: str, alarm_id: int, action: str) -> str:
    return f"{ROOT}/cmd/{user}/alarms/{alarm_id}/{action}"


async def test_an_alarm_is_shelved_and_unshelved_over_mqtt_with_the_rest_roles_and_journaled_as_that_user(
        plant: Runtime, broker: Mosquitto) -> None:
    alarm = plant.alarms.raise_alarm("test:mqtt-shelve", "process", Severity.HIGH, "HLT too hot", node="HLT")
    point = plant.alarms.points["test:mqtt-shelve"]
    async with Watcher(broker, "alice", f"{ROOT}/cmd/alice/error") as alice:
        # a one-shot shelf needs a technician, as on REST; an operator picks one of the role's durations
        await alice.publish(alarm_topic("alice", alarm.id, "shelve"), {"comment": "for good"})
        refused = await errors_of(alice, "alice")
        assert refused["code"] == "forbidden" and "technician" in refused["message"]
        await alice.publish(alarm_topic("alice", alarm.id, "shelve"), {"durationS": 900, "comment": "sensor swap"})
        await wait_for(lambda: point.state.shelf == "timed", timeout=10)
        # out of service needs a technician
        await alice.publish(alarm_topic("alice", alarm.id, "out-of-service"), {})
        refused = await errors_of(alice, "alice", alice.position)
        assert refused["code"] == "forbidden" and refused["topic"].endswith("/out-of-service")
        await alice.publish(alarm_topic("alice", alarm.id, "unshelve"), {"comment": "swapped"})
        await wait_for(lambda: point.state.shelf is None, timeout=10)
    assert point.state.active and not point.state.acked  # still abnormal: it annunciates again
    async with Watcher(broker, "tess", f"{ROOT}/cmd/tess/error") as tess:
        await tess.publish(alarm_topic("tess", alarm.id, "out-of-service"), {"comment": "probe out"})
        await wait_for(lambda: point.state.out_of_service, timeout=10)
        await tess.publish(alarm_topic("tess", alarm.id, "in-service"), {})
        await wait_for(lambda: not point.state.out_of_service, timeout=10)
    audit = await plant.audit.query(user="mqtt:alice")
    assert [a["action"] for a in audit if a["target"] == "test:mqtt-shelve"] == ["alarm.unshelve", "alarm.shelve"]
    journal = await plant.alarms.journal(alarm_id=alarm.id)
    assert {(e["event"], e["user"]) for e in journal} >= {("shelved", "mqtt:alice"), ("unshelved", "mqtt:alice"),
                                                          ("out_of_service", "mqtt:tess"), ("in_service", "mqtt:tess")}


async def test_a_latched_alarm_is_reset_over_mqtt_once_it_returned_to_normal(plant: Runtime, broker: Mosquitto) -> None:
    # a comms alarm of the brewhouse I/O latches (tests/fixtures/plant.yaml: brewhouse_io_comms)
    alarm = plant.alarms.raise_alarm("test:mqtt-latched", "comms", Severity.HIGH, "I/O lost", ref="brewhouse_io")
    async with Watcher(broker, "alice", f"{ROOT}/cmd/alice/error") as alice:
        await alice.publish(alarm_topic("alice", alarm.id, "reset"), {})  # still active: the site refuses it
        refused = await errors_of(alice, "alice")
        assert refused["code"] == "not_allowed_now" and "still active" in refused["message"]
        plant.alarms.clear("test:mqtt-latched")
        assert plant.alarms.current[alarm.id].state == "latched"
        await alice.publish(alarm_topic("alice", alarm.id, "reset"), {"comment": "I/O back"})
        await wait_for(lambda: alarm.id not in plant.alarms.current, timeout=10)
    journal = await plant.alarms.journal(alarm_id=alarm.id, event="reset")
    assert [(e["user"], e["comment"]) for e in journal] == [("mqtt:alice", "I/O back")]


async def test_an_alarm_action_from_a_viewer_or_with_a_bad_body_is_refused_naming_the_field(
        plant: Runtime, broker: Mosquitto) -> None:
    alarm = plant.alarms.raise_alarm("test:mqtt-refused", "process", Severity.HIGH, "BK dry", node="BK")
    point = plant.alarms.points["test:mqtt-refused"]
    async with Watcher(broker, "victor", f"{ROOT}/cmd/victor/error") as victor:
        await victor.publish(alarm_topic("victor", alarm.id, "shelve"), {"durationS": 900})
        refused = await errors_of(victor, "victor")
    assert refused["code"] == "forbidden" and "viewer" in refused["message"]
    async with Watcher(broker, "alice", f"{ROOT}/cmd/alice/error") as alice:
        cases = [
            ("shelve", {"durationS": -5}, "invalid_request", "durationS"),
            ("shelve", {"durationS": "an hour"}, "invalid_request", "durationS"),
            ("shelve", {"durationS": 1234}, "invalid_value", "durationS"),  # not one of the operator's durations
            ("shelve", {"duration": 900}, "invalid_request", "duration"),
            ("unshelve", {"durationS": 900}, "invalid_request", "durationS"),  # an unshelve takes only a comment
            ("reset", {"comment": "x" * 501}, "invalid_request", "comment"),
            ("shelve", b"[900]", "invalid_request", "payload"),
            ("shelve", b"{not json", "invalid_json", "payload"),
        ]
        for action, payload, code, field in cases:
            start = len(alice.messages)
            await alice.publish(alarm_topic("alice", alarm.id, action), payload)
            body = await errors_of(alice, "alice", start)
            assert (body["code"], body["field"]) == (code, field), (payload, body)
        start = len(alice.messages)
        await alice.publish(alarm_topic("alice", 999999, "unshelve"), {})
        assert (await errors_of(alice, "alice", start))["field"] == "alarmId"
    assert point.state.shelf is None and plant.mqtt is not None and plant.mqtt.connected


async def test_bad_messages_are_answered_on_the_users_error_topic(plant: Runtime, broker: Mosquitto) -> None:
    async with Watcher(broker, "alice", f"{ROOT}/cmd/alice/error") as dash:
        cases = [
            (set_topic("alice", "HLT", "hlt_setpoint"), {"valu": 1}, "invalid_request", "valu"),
            (set_topic("alice", "HLT", "hlt_setpoint"), {"requestId": "x"}, "missing_field", "value"),
            (set_topic("alice", "HLT", "hlt_setpoint"), b"warm please", "invalid_value", "value"),
            (set_topic("alice", "HLT", "hlt_setpoint"), {"value": 150}, "out_of_range", "value"),
            (set_topic("alice", "HLT", "no_such_thing"), {"value": 1}, "unknown_endpoint", "topic"),
            (set_topic("alice", "BK", "hlt_setpoint"), {"value": 1}, "unknown_endpoint", "topic"),
            (set_topic("alice", "HLT", "hlt_temperature"), {"value": 1}, "not_writable", "endpointId"),
        ]
        for topic, payload, code, field in cases:
            start = len(dash.messages)
            await dash.publish(topic, payload)
            body = await errors_of(dash, "alice", start)
            assert (body["code"], body["field"]) == (code, field), (payload, body)
            assert body["type"] == "error" and body["topic"] == topic
    assert plant.mqtt is not None and plant.mqtt.inbox.refused >= len(cases)
    assert plant.mqtt.connected  # never a crash: the link is still up


async def test_a_user_over_the_command_burst_is_refused_and_nothing_more_is_sent(
        tmp_path: Path, broker: Mosquitto) -> None:
    runtime = await start_plant(tmp_path, with_mqtt(broker, commands_per_s=0.001, commands_burst=2))
    try:
        await wait_for(lambda: runtime.mqtt is not None and runtime.mqtt.connected, timeout=10)
        async with Watcher(broker, "alice", f"{ROOT}/cmd/alice/error") as dash:
            for n in range(3):
                await dash.publish(set_topic("alice", "HLT", "hlt_setpoint"), {"value": 60 + n, "requestId": f"r{n}"})
            body = await errors_of(dash, "alice")
        assert body["code"] == "too_many_requests" and body["requestId"] == "r2"
        assert "MQTT command rate" in body["message"]
        assert await runtime.commands.find("r1") is not None and await runtime.commands.find("r2") is None
    finally:
        await runtime.stop()


# -- the broker away, and TLS -------------------------------------------------------------------------

class BlackHole:
    """A listener on the broker's port that accepts connections and never answers: a hung broker."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.server: asyncio.Server | None = None
        self.accepted = asyncio.Event()
        self.writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> BlackHole:
        async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.writers.append(writer)
            self.accepted.set()
            await reader.read()  # never a CONNACK

        self.server = await asyncio.start_server(swallow, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()


async def press(runtime: Runtime, endpoint_id: int, value: Any) -> str:
    """An operator's command, as the panel sends it; its final status."""
    sub = runtime.bus.subscribe(lambda e: e.type == "command_status", name="test-press")
    try:
        command, _ = await runtime.commands.submit(endpoint_id, value, actor=plant_actor(), origin="panel")
        async with asyncio.timeout(10):
            while not (found := await runtime.commands.find(command.id)).status.is_final:
                await sub.get()
    finally:
        sub.close("done")
    return found.status.value


async def test_a_broker_outage_never_stops_control_or_alarms_and_the_return_republishes_everything(
        tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker", USERS)
    broker.start()
    runtime = await start_plant(tmp_path, with_mqtt(broker))
    sim = runtime.attachments["simulator"]
    try:
        bridge = runtime.mqtt
        assert bridge is not None
        await wait_for(lambda: bridge.connected, timeout=10)
        await broker.stop_async()  # the broker goes away: refused connections
        await wait_for(lambda: not bridge.connected, timeout=15)
        health = runtime.health()["mqtt"]
        assert health["connected"] is False and health["lastError"]
        ingested = runtime.plant.readings_ingested
        assert await press(runtime, 12, 66.0) == "succeeded"  # commands go on
        async with BlackHole(broker.port) as hole:  # now a broker that hangs: still nothing waits on it
            await hole.accepted.wait()
            assert await press(runtime, 12, 67.0) == "succeeded"
            sim.faults_for("bk_controller").offline = True  # alarms go on: its comms alarm is raised
            await wait_for(lambda: any(a.kind == "comms" and a.active for a in runtime.alarms.current.values()),
                           timeout=20)
            assert runtime.plant.readings_ingested > ingested  # and the poll loop never paused
            assert not bridge.connected
        await broker.start_async()  # back (an empty broker: it kept nothing, persistence is off)
        await wait_for(lambda: bridge.connected, timeout=20)
        async with Watcher(broker, "alice") as dash:
            _, body, message = await dash.wait_for(lambda t, b, m: t == f"{HLT_SETPOINT_TOPIC}/state")
            assert message.retain and body["value"] == 67.0  # the state now, not the state before the outage
            _, body, message = await dash.wait_for(
                lambda t, b, m: t.startswith(f"{ROOT}/alarms/") and b and b["kind"] == "comms")
            assert message.retain and body["active"]  # the alarm raised while the broker was away
            _, body, _ = await dash.wait_for(lambda t, b, m: t == f"{ROOT}/status")
            assert body["status"] == "online"
            _, body, _ = await dash.wait_for(lambda t, b, m: t == f"{ROOT}/BK/bk_temperature/state")
            assert body["quality"] != "good"  # its device is still silent: never shown as live
            await runtime.stop()  # a clean stop says goodbye (retained)
            _, body, _ = await dash.wait_for(lambda t, b, m: t == f"{ROOT}/status" and b["status"] == "offline")
            assert body["reason"] == "stopped"
        assert bridge.connects == 2
    finally:
        await runtime.stop()
        broker.stop()


async def test_the_will_says_offline_when_the_link_drops_and_the_site_comes_back_online(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker", USERS)
    broker.start()
    try:
        async with Cable(broker.port) as cable:
            runtime = await start_plant(tmp_path, with_mqtt(broker, port=cable.port))
            try:
                bridge = runtime.mqtt
                assert bridge is not None
                async with Watcher(broker, "alice", f"{ROOT}/status") as dash:
                    await wait_for(lambda: bridge.connected, timeout=10)
                    await dash.wait_for(lambda t, b, m: b["status"] == "online")
                    cable.cut()  # the site's link drops without a goodbye
                    _, body, _ = await dash.wait_for(lambda t, b, m: b["status"] == "offline", timeout=20)
                    assert body["reason"] == "connection lost"  # published by the broker: the Last Will
                    await dash.wait_for(lambda t, b, m: b["status"] == "online", timeout=20, start=dash.position)
                    await wait_for(lambda: bridge.connected and bridge.connects == 2, timeout=10)
            finally:
                await runtime.stop()
    finally:
        broker.stop()


async def test_tls_with_the_sites_ca_connects_and_a_wrong_ca_is_refused(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker", USERS, tls=True)
    broker.start()
    assert broker.ca is not None
    try:
        runtime = await start_plant(tmp_path / "a", with_mqtt(
            broker, port=broker.tls_port, host="localhost", tls={"ca_file": str(broker.ca.ca_file)}))
        try:
            await wait_for(lambda: runtime.mqtt is not None and runtime.mqtt.connected, timeout=15)
            assert runtime.health()["mqtt"]["tls"] is True
            async with Watcher(broker, "alice", f"{HLT_SETPOINT_TOPIC}/state") as dash:
                _, _, message = await dash.wait_for(lambda t, b, m: True)
                assert message.retain
        finally:
            await runtime.stop()
        from tests.support.mosquitto import make_ca

        stranger = make_ca(tmp_path / "stranger")  # a CA that did not sign the broker's certificate
        runtime = await start_plant(tmp_path / "b", with_mqtt(
            broker, port=broker.tls_port, host="localhost", tls={"ca_file": str(stranger.ca_file)}))
        try:
            bridge = runtime.mqtt
            assert bridge is not None
            await wait_for(lambda: bridge.last_error is not None, timeout=15)
            assert not bridge.connected and "certificate" in bridge.last_error.lower()
            assert await press(runtime, 12, 65.0) == "succeeded"  # the plant does not care
        finally:
            await runtime.stop()
    finally:
        broker.stop()


async def test_a_retained_command_runs_once_and_is_never_run_again_at_a_reconnect(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker", USERS)
    broker.start()
    topic = set_topic("alice", "HLT", "hlt_setpoint")
    try:
        async with Cable(broker.port) as cable:
            runtime = await start_plant(tmp_path, with_mqtt(broker, port=cable.port))
            try:
                bridge = runtime.mqtt
                assert bridge is not None
                await wait_for(lambda: bridge.connected, timeout=10)
                async with Watcher(broker, "alice", f"{ROOT}/cmd/alice/#") as dash:
                    assert dash.client is not None
                    await dash.client.publish(topic, b'{"value": 66, "requestId": "kept"}', qos=1, retain=True)
                    await dash.wait_for(lambda t, b, m: t == topic and b is None)  # emptied after it was taken
                    await wait_for(lambda: runtime.plant.states[12].value == 66.0, timeout=10)  # ran once
                    # published with the retain flag while the site is away: refused when it is back, not run
                    cable.unplugged = True
                    cable.cut()
                    await wait_for(lambda: not bridge.connected, timeout=10)
                    await dash.client.publish(topic, b'{"value": 67, "requestId": "late"}', qos=1, retain=True)
                    cable.unplugged = False
                    body = await errors_of(dash, "alice")
                    assert body["code"] == "invalid_request" and body["field"] == "retain"
                assert await runtime.commands.find("late") is None and runtime.plant.states[12].value == 66.0
            finally:
                await runtime.stop()
    finally:
        broker.stop()


async def test_with_no_broker_at_all_health_says_so_over_http_and_the_plant_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.mosquitto import free_port
    from tests.support.server import LiveServer
    from tests.support.server import free_port as http_port

    nowhere = free_port()  # nothing listens here
    monkeypatch.setenv("BEVFORGE_TEST_MQTT_PASSWORD", "unused")

    def adjust(doc: dict[str, Any]) -> None:
        doc["mqtt"] = {"host": "127.0.0.1", "port": nowhere, "site": "test", "username": "bevforge",
                       "password_env": "BEVFORGE_TEST_MQTT_PASSWORD", "reconnect_min_s": 0.1}

    live = LiveServer(build_runtime(brewhouse_config(adjust), tmp_path / "bevforge.db"), http_port())
    await live.start()
    try:
        await wait_for(lambda: all(live.runtime.plant.device_online.values()), timeout=15)
        await wait_for(lambda: live.runtime.mqtt is not None and live.runtime.mqtt.last_error is not None)
        health = (await live.http.get("/api/os/health")).json()["mqtt"]
        assert health["connected"] is False and "refused" in health["lastError"].lower()
        assert health["broker"] == f"127.0.0.1:{nowhere}" and "unused" not in str(health)
        r = await live.http.post("/api/os/command", json={"endpointId": 12, "value": 61.0})
        assert (await wait_for_command(live, r.json()["commandId"]))["status"] == "succeeded"
    finally:
        await live.stop()
