"""The MQTT bridge's pure parts: the topic tree and the outbox's bounds (no broker needed)."""

from __future__ import annotations

from bevforge.bus import EventBus
from bevforge.mqtt import topics
from bevforge.mqtt.outbox import Outbox
from tests.support.server import brewhouse_config

ROOT = "bevforge/test"


def test_a_command_id_never_opens_levels_or_acts_as_a_wildcard() -> None:
    assert topics.command(ROOT, "a/b+c#d%") == f"{ROOT}/commands/a%2Fb%2Bc%23d%25"
    assert topics.command(ROOT, "plain-id") == f"{ROOT}/commands/plain-id"


def test_set_topics_are_taken_apart_and_anything_else_is_not() -> None:
    parsed = topics.parse_set(ROOT, f"{ROOT}/cmd/alice/HLT/hlt_setpoint/set")
    assert parsed == topics.SetTopic("alice", "HLT", "hlt_setpoint")
    for other in (f"{ROOT}/cmd/alice/HLT/set", f"{ROOT}/cmd/alice/HLT/x/y/set", f"{ROOT}/cmd//HLT/x/set",
                  f"{ROOT}/HLT/hlt_setpoint/set", "bevforge/other/cmd/alice/HLT/x/set"):
        assert topics.parse_set(ROOT, other) is None, other
    assert topics.user_of(ROOT, f"{ROOT}/cmd/alice/HLT/set") == "alice"


def test_alarm_action_topics_are_taken_apart_and_anything_else_is_not() -> None:
    for action in ("ack", "shelve", "unshelve", "reset", "out-of-service", "in-service"):
        topic = topics.alarm_action(ROOT, "central", 17, action)
        assert topic == f"{ROOT}/cmd/central/alarms/17/{action}"
        assert topics.parse_alarm_action(ROOT, topic) == ("central", 17, action)
    for other in (f"{ROOT}/cmd/central/alarms/17/delete", f"{ROOT}/cmd/central/alarms/x/shelve",
                  f"{ROOT}/cmd//alarms/17/shelve", f"{ROOT}/cmd/central/HLT/17/shelve",
                  f"{ROOT}/cmd/central/alarms/17/set", "bevforge/other/cmd/central/alarms/17/shelve"):
        assert topics.parse_alarm_action(ROOT, other) is None, other
    # one subscription per action: a set topic on a node named `alarms` is not taken for an alarm action
    assert f"{ROOT}/cmd/+/alarms/+/+" not in topics.alarm_action_subscriptions(ROOT)
    assert topics.alarm_ack(ROOT, "central", 3) == topics.alarm_action(ROOT, "central", 3, "ack")


def test_the_outbox_keeps_one_state_per_endpoint_and_a_bounded_command_queue() -> None:
    config = brewhouse_config()
    bus = EventBus()
    outbox = Outbox(ROOT, lambda: config, limit=10)
    for value in range(1000):  # a broker gone for a while: 1000 readings of one endpoint
        outbox.add(bus.publish("telemetry", {"type": "telemetry", "endpointId": 10, "value": value}, key=10,
                               node="HLT"))
    for n in range(25):
        outbox.add(bus.publish("command_status", {"type": "command_status", "commandId": f"c{n}",
                                                  "status": "queued"}))
    assert len(outbox) == 1 + 10 and outbox.dropped == 15
    sent = []
    while len(outbox):
        sent += outbox.pop()
    assert [m.topic for m in sent[:10]] == [f"{ROOT}/commands/c{n}" for n in range(15, 25)]  # the newest kept
    assert sent[-1].topic == f"{ROOT}/HLT/hlt_temperature/state" and sent[-1].retain
    assert b'"value":999' in sent[-1].payload  # only the latest value waited
