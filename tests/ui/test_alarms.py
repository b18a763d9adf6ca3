"""Alarms on screen: banner counts, the critical dialog on every screen, ack from a screen or the core."""

from __future__ import annotations

from nicegui.testing import User

from bevforge.domain import Actor, Reading
from tests.ui.support import online, runtime, shows, sim, until


def _overheat() -> None:
    """The simulated HLT is at 99.5 °C (above the critical 99 °C limit); the probe reports it."""
    sim().model.vessels["hlt"].temperature_c = 99.5
    runtime().plant.ingest([Reading(10, 99.5)])


async def test_banner_counts_unacknowledged_alarms_by_severity(user: User) -> None:
    await user.open("/")
    await online()
    await shows(user, "alarm-count-critical", "0 critical")
    await shows(user, "alarm-count-medium", "0 medium")
    user.find(marker="on-35").click()  # blocked START raises a medium (momentary) alarm
    await shows(user, "alarm-count-medium", "■ 1 MEDIUM")
    _overheat()
    await shows(user, "alarm-count-critical", "◆ 1 CRITICAL")
    await shows(user, "alarm-10", "◆ HIHI CRITICAL")


async def test_critical_alarm_dialog_on_every_screen_and_ack_clears_it_everywhere(user: User, create_user) -> None:
    await user.open("/")
    other = create_user()
    await other.open("/alarms")
    await online()
    _overheat()
    rt = runtime()
    alarm = await until(lambda: next((a for a in rt.alarms.standing() if a.severity.value == "critical"), None))
    for screen in (user, other):
        await shows(screen, f"critical-msg-{alarm.id}", "HLT temperature exceeded 99°C (99.5°C)")
    user.find(marker=f"critical-ack-{alarm.id}").click()
    for screen in (user, other):
        await screen.should_not_see(marker=f"critical-msg-{alarm.id}", retries=40)
        await shows(screen, "alarm-count-critical", "0 critical")
    acked = await rt.alarms.get(alarm.id)
    assert acked is not None and acked.acked and acked.acked_by == "anonymous"


async def test_ack_through_the_core_closes_the_dialog(user: User) -> None:
    """An ack from the REST API (which calls the same service) reaches the screen."""
    await user.open("/")
    await online()
    _overheat()
    rt = runtime()
    alarm = await until(lambda: next((a for a in rt.alarms.standing() if a.severity.value == "critical"), None))
    await shows(user, f"critical-msg-{alarm.id}", "HLT temperature")
    rt.alarms.ack(alarm.id, Actor(user="brewer", station="10.0.0.7"))
    await user.should_not_see(marker=f"critical-msg-{alarm.id}", retries=40)


async def test_alarm_page_lists_active_alarms_and_acks_with_a_note(user: User) -> None:
    await user.open("/")
    await online()
    user.find(marker="on-35").click()  # a blocked command: a medium alarm, returned to normal, unacknowledged
    rt = runtime()
    alarm = await until(lambda: next(iter(rt.alarms.standing()), None))
    await user.open("/alarms")
    await shows(user, f"ack-{alarm.id}", "ACK")
    await user.should_see("Command blocked: Pump 2 MLT → BK → ON")
    await shows(user, f"alarm-state-{alarm.id}", "CLEARED, NOT ACKNOWLEDGED")
    user.find(marker=f"ack-{alarm.id}").click()
    await user.should_see(marker="ask-note")
    user.find(marker="ask-note").type("V2 was closed on purpose")
    user.find(marker="ack-confirm").click()
    await user.should_not_see(marker=f"ack-{alarm.id}", retries=40)
    await user.should_see("No active alarms.", retries=40)
    closed = await rt.alarms.get(alarm.id)
    assert closed is not None and closed.acked_by == "anonymous" and closed.ack_comment == "V2 was closed on purpose"
    await until(lambda: any("ACKED" == r["event"] and r["comment"] == "V2 was closed on purpose"
                            and r["user"] == "anonymous" for r in _rows(user, "hist-table")))


def _rows(user: User, marker: str) -> list[dict]:
    return list(next(iter(user.find(marker=marker).elements)).rows)


async def test_a_refused_press_is_an_alert_on_every_screen_that_needs_no_ack(user: User, create_user) -> None:
    """Pump 1 without V1: refused, and shown to everyone on the header's alert line with its reason —
    but it is an alert (priority below low), so no count rises and nothing waits for an ACK."""
    await user.open("/")
    other = create_user()
    await other.open("/alarms")
    await online()
    user.find(marker="on-23").click()
    for screen in (user, other):
        await shows(screen, "message-line", "○ ALERT", "Command blocked: Pump 1", "V1")
        await shows(screen, "alarm-count-medium", "0 medium")
        await shows(screen, "alarm-count-low", "0 low")
    assert not [a for a in runtime().alarms.standing() if a.kind == "interlock_block"]
    user.find(marker="on-35").click()  # Pump 2's refusal is raised to a medium alarm by the config
    await shows(user, "alarm-count-medium", "■ 1 MEDIUM")


async def test_an_alarm_keeps_the_value_it_annunciated_with_and_shows_the_present_one_beside_it(user: User) -> None:
    await user.open("/alarms")
    await online()
    _overheat()
    rt = runtime()
    alarm = await until(lambda: next((a for a in rt.alarms.standing() if a.severity.value == "critical"), None))
    await user.should_see("HLT temperature exceeded 99°C (99.5°C)")
    sim().model.vessels["hlt"].temperature_c = 80.0  # cooled: the message keeps 99.5, "now" follows
    await shows(user, f"alarm-now-{alarm.id}", "now 80.0 °C", timeout=15)
    await user.should_see("HLT temperature exceeded 99°C (99.5°C)")
