"""The Control Panel in NiceGUI's simulated browser: tiles, quality, commands and their feedback."""

from __future__ import annotations

import uuid
from datetime import timedelta

from nicegui.nicegui import _on_handshake
from nicegui.testing import User

from bevforge import messages
from bevforge.bus import TELEMETRY
from bevforge.domain import Actor, CommandStatus, EndpointState, Quality, Reading, utcnow
from tests.ui.support import online, runtime, shows, sim, until


async def test_tiles_show_every_kind_in_words_with_units(user: User) -> None:
    await user.open("/")
    await online()
    await shows(user, "value-10", "°C", absent=("?",))  # temperature with unit
    await shows(user, "value-12", "75.0 °C")  # setpoint
    await shows(user, "value-11", "OFF")  # heater
    await shows(user, "value-13", "HIGH")  # level switch (HLT holds 60 L)
    await shows(user, "value-14", "60.0 L")  # volume
    await shows(user, "value-22", "CLOSED")  # valve
    await shows(user, "value-23", "STOPPED")  # pump
    await shows(user, "value-24", "%")  # pump speed
    await shows(user, "quality-10", "LIVE")
    for marker in ("on-23", "off-23"):
        await user.should_see(marker=marker)
    assert "START" in _button(user, "on-23") and "STOP" in _button(user, "off-23")
    assert "OPEN" in _button(user, "on-22") and "CLOSE" in _button(user, "off-22")
    assert "ON" in _button(user, "on-11") and "OFF" in _button(user, "off-11")
    await user.should_see(marker="entry-12")  # setpoint entry
    await user.should_not_see(marker="on-10")  # a probe has no controls
    await user.should_see(marker="node-HLT")
    await user.should_see(marker="tile-transfer_1")


def _button(user: User, marker: str) -> str:
    element = next(iter(user.find(marker=marker).elements))
    return str(element.props.get("label", ""))


async def test_stale_then_bad_values_are_never_shown_as_live(user: User) -> None:
    await user.open("/")
    await online()
    rt = runtime()
    await shows(user, "quality-50", "LIVE")
    await rt.drivers["cellar_probe"].stop()  # the FV1 probe's readings stop arriving (no comms verdict yet)
    later = utcnow() + timedelta(seconds=7)  # FV1 temperature is stale after 6 s (3 × 2 s poll)
    await until(lambda: rt.plant.states[50].server_time is not None)
    rt.plant.sweep_stale(later)
    assert rt.plant.states[50].quality is Quality.UNCERTAIN
    value = await shows(user, "value-50", "?", "°C")
    assert value.startswith("? ")
    await shows(user, "quality-50", "STALE")
    await shows(user, "detail-50", "stale")
    rt.plant.sweep_stale(utcnow() + timedelta(seconds=30))
    assert rt.plant.states[50].quality is Quality.BAD
    await shows(user, "value-50", "?", absent=("°C",))
    await shows(user, "quality-50", "BAD", absent=("STALE",))
    await shows(user, "quality-10", "LIVE")  # the brewhouse is unaffected


async def test_command_shows_pending_then_confirmed_without_optimistic_state(user: User) -> None:
    await user.open("/")
    await online()
    sim().faults_for("brewhouse_io").write_delay_s = 0.8
    user.find(marker="on-22").click()  # OPEN V1
    pending = await shows(user, "command-22", "OPEN pending")
    assert "by anonymous" in pending
    assert "CLOSED" in (await shows(user, "value-22", "CLOSED"))  # nothing changes before the readback
    await shows(user, "value-22", "OPEN", absent=("?",))
    await user.should_not_see(marker="command-22", retries=40)
    await shows(user, "message-line", "V1 HLT → MLT: OPEN confirmed by the device")
    commands = await runtime().commands.query(22, None, 10)
    assert [c.status for c in commands] == [CommandStatus.SUCCEEDED]
    assert commands[0].origin == "ui" and commands[0].station == "127.0.0.1"


async def test_failed_command_shows_the_reason_on_the_tile_and_in_a_toast(user: User) -> None:
    await user.open("/")
    await online()
    sim().faults_for("cellar_io").reject_writes = "glycol valve actuator fault"
    user.find(marker="on-51").click()  # OPEN FV1 glycol valve
    await shows(user, "command-51", "FAILED", "device failure")  # the device answers Modbus exception 04
    toast = "FV1 glycol valve: OPEN FAILED: device error: exception 04 (device failure)"
    await shows(user, "message-line", toast)
    await shows(user, "value-51", "CLOSED")


async def test_blocked_command_shows_which_interlock_and_why(user: User) -> None:
    await user.open("/")
    await online()
    user.find(marker="on-35").click()  # START pump 2 with V2 closed
    text = await shows(user, "command-35", "BLOCKED")
    assert "Pump 2 may run only with V2 open (no dead-heading)" in text
    assert "mlt_out_valve == true (is false)" in text
    await shows(user, "message-line", "BLOCKED")
    await shows(user, "value-35", "STOPPED")


async def test_critical_output_asks_with_current_and_target_state(user: User) -> None:
    await user.open("/")
    await online()
    rt = runtime()
    user.find(marker="on-11").click()  # HLT heater ON (critical)
    change = await shows(user, "confirm-change", "OFF → ON")
    assert change == "OFF → ON"
    user.find(marker="confirm-cancel").click()
    await user.should_not_see(marker="confirm-change")
    assert await rt.commands.query(11, None, 10) == []  # cancelled: nothing was sent
    user.find(marker="on-11").click()
    await shows(user, "confirm-change", "OFF → ON")
    user.find(marker="confirm-ok").click()
    await shows(user, "value-11", "ON", absent=("OFF",))
    commands = await rt.commands.query(11, None, 10)
    assert [c.status for c in commands] == [CommandStatus.SUCCEEDED]
    user.find(marker="off-11").click()  # back to its safe value: sent at once, no question
    await shows(user, "value-11", "OFF", absent=("ON",))
    await user.should_not_see(marker="confirm-change")
    assert [c.requested_value for c in await rt.commands.query(11, None, 10)] == [False, True]


async def test_blocked_critical_command_after_confirmation(user: User) -> None:
    await user.open("/")
    await online()
    user.find(marker="on-31").click()  # BK heater ON with the kettle empty
    await shows(user, "confirm-change", "OFF → ON")
    user.find(marker="confirm-ok").click()
    text = await shows(user, "command-31", "BLOCKED")
    assert "BK heater may be ON only while BK level is HIGH" in text
    assert "bk_level_high == true (is false)" in text


async def test_setpoint_entry_is_checked_against_the_range(user: User) -> None:
    await user.open("/")
    await online()
    await shows(user, "value-12", "75.0 °C")
    user.find(marker="entry-12").click()  # the keypad (tests/ui/test_keypad.py has the details)
    await user.should_see(marker="keypad")
    for key in "120":
        user.find(marker=f"keypad-{key}").click()
    await shows(user, "keypad-reason", "max 99 °C")
    user.find(marker="keypad-set").click()  # disabled: nothing happens
    assert await runtime().commands.query(12, None, 10) == []
    user.find(marker="keypad-clear").click()
    for key in ("6", "6", "dot", "5", "set"):
        user.find(marker=f"keypad-{key}").click()
    await shows(user, "value-12", "66.5 °C")


async def test_other_screen_sees_the_command_and_its_result(user: User, create_user) -> None:
    await user.open("/")
    other = create_user()
    await other.open("/")
    await online()
    user.find(marker="on-22").click()
    await shows(other, "value-22", "OPEN", absent=("?",))
    await shows(user, "value-22", "OPEN", absent=("?",))


async def test_subscription_follows_the_socket_and_a_reconnect_resyncs(user: User) -> None:
    await user.open("/")
    await online()
    rt = runtime()
    client = user.client
    assert client is not None

    def screens() -> int:
        return sum(1 for s in rt.bus._subscribers if s.name.startswith("ui:"))

    await until(lambda: screens() == 1)
    rt.plant.ingest([Reading(10, 99.5)])  # a critical alarm while the screen watches
    await shows(user, "alarm-count-critical", "◆ 1 CRITICAL")
    socket_id = next(iter(client._socket_to_document_id))
    client.handle_disconnect(socket_id)  # the browser went away
    assert screens() == 0
    acked = [a.id for a in rt.alarms.standing()]
    for alarm_id in acked:  # acknowledged elsewhere while this screen is away: that event never reaches it
        rt.alarms.ack(alarm_id, Actor(user="brewer"))
    await _on_handshake(f"test-{uuid.uuid4()}", {"client_id": client.id, "tab_id": user.tab_id,
                                                  "document_id": str(uuid.uuid4())})
    assert screens() == 1
    await shows(user, "alarm-count-critical", "0 critical")  # redrawn from the present state
    for alarm_id in acked:
        await user.should_not_see(marker=f"critical-msg-{alarm_id}")
    client.delete()
    assert screens() == 0


async def test_kiosk_mode_from_the_query(user: User) -> None:
    await user.open("/?kiosk=1")
    await user.should_see("FULL SCREEN")
    await user.open("/")
    await user.should_not_see("FULL SCREEN")


async def test_a_tile_shows_the_value_it_was_pushed_not_a_reread_of_the_plant(user: User) -> None:
    """The frame is what the screen was told; the plant may already hold another value by the
    time the view applies it (issue 12.5). A frame whose value differs from `plant.states` must
    show its own value."""
    await user.open("/")
    await online()
    rt = runtime()
    await shows(user, "value-14", "60.0 L")
    endpoint = rt.plant.endpoints[14]
    pushed = EndpointState(14, value=42.5, quality=Quality.GOOD, server_time=utcnow(), error=None)
    rt.bus.publish(TELEMETRY, messages.telemetry(endpoint, pushed), key=14, node=endpoint.node)
    assert rt.plant.states[14].value == 60.0
    await shows(user, "value-14", "42.5 L")


async def test_a_tripped_output_shows_its_trip_reason_on_its_line_until_reset(user: User) -> None:
    """The BK heater runs with the kettle full; the kettle drains: the interlock trips the heater OFF and
    its line says TRIPPED and why — not a bare OFF — until the trip alarm is acknowledged (reset)."""
    await user.open("/")
    await online()
    rt = runtime()
    kettle = sim().model.vessels["bk"]
    kettle.volume_l = 60.0
    await until(lambda: rt.plant.states[32].value is True)  # level HIGH: the heater may run
    await rt.commands.submit(31, True, actor=Actor(user="olga", role="operator"))
    await shows(user, "value-31", "ON")
    await user.should_not_see(marker="trip-31")
    kettle.volume_l = 0.0  # drained: level LOW while the heater runs
    await shows(user, "value-31", "OFF")
    await shows(user, "trip-31", "TRIPPED", "BK heater may be ON only while BK level is HIGH")
    alarm = await until(lambda: next((a for a in rt.alarms.standing() if a.kind == "interlock_trip"
                                      and not a.active), None))
    await shows(user, "trip-31", "ACK the alarm to reset")
    rt.alarms.ack(alarm.id, Actor(user="olga", role="operator"))
    await user.should_not_see(marker="trip-31", retries=40)
