"""The /alarms page flows: shelve (timed / one-shot by role) and unshelve, reset of a latched alarm,
out of service and back, runtime limits, the flood banner with first-out, statistics, journal CSV,
and the kiosk tone: SILENCE stops it without acknowledging."""

from __future__ import annotations

import csv
import io
import re

from nicegui.testing import User

from bevforge.alarms import Alarm
from bevforge.domain import Actor, Reading, Severity
from tests.ui.support import online, open_signed_in, rows, runtime, shows, sim, until, visible_markers


def _bk_high() -> int:
    """BK at 104 °C (high alarm above 103 °C), held there by the simulator too."""
    sim().model.vessels["bk"].temperature_c = 104.0
    runtime().plant.ingest([Reading(30, 104.0)])
    return 30


async def _alarm(rule_id: str) -> Alarm:
    return await until(lambda: next((a for a in runtime().alarms.standing() if a.rule_id == rule_id), None))


async def _bk_high_alarm() -> Alarm:
    """BK held over its high limit, and the standing alarm that raises: the tests' usual alarm."""
    _bk_high()
    return await _alarm("bk_temperature_hi")


async def test_operator_shelves_for_a_time_and_unshelves_which_reannunciates(auth_required, user: User) -> None:
    await open_signed_in(user, "olga", "operator", "/alarms")
    alarm = await _bk_high_alarm()
    await shows(user, f"alarm-state-{alarm.id}", "UNACKNOWLEDGED")
    user.find(marker=f"shelve-{alarm.id}").click()
    await user.should_see(marker="shelve-900")
    assert visible_markers(user, "shelve-") >= {"shelve-900", "shelve-3600", "shelve-28800"}
    await user.should_not_see(marker="shelve-oneshot")  # one-shot shelves are for technicians
    user.find(marker="ask-note").type("probe being cleaned")
    user.find(marker="shelve-900").click()
    await shows(user, "point-state-bk_temperature_hi", "SHELVED until")
    await user.should_not_see(marker=f"alarm-row-{alarm.id}", retries=40)
    await shows(user, "alarm-count-high", "0 high")  # shelved: not annunciated
    point = runtime().alarms.points["bk_temperature_hi"]
    assert point.state.shelf == "timed" and point.state.shelved_until is not None
    user.find(marker="unshelve-bk_temperature_hi").click()
    await shows(user, f"alarm-state-{alarm.id}", "UNACKNOWLEDGED")  # still active: it comes back, needing an ACK
    await shows(user, "alarm-count-high", "▲ 1 HIGH")
    entries = await runtime().audit.query(user="olga", action="alarm.")
    assert {"alarm.shelve", "alarm.unshelve"} <= {e["action"] for e in entries}
    await until(lambda: {"SHELVED", "UNSHELVED", "REANNUNCIATED"} <= {r["event"] for r in rows(user, "hist-table")
                                                                     if r["user"] in ("olga", "system")})


async def test_technician_may_shelve_one_shot_until_the_alarm_clears(auth_required, user: User) -> None:
    await open_signed_in(user, "tom", "technician", "/alarms")
    alarm = await _bk_high_alarm()
    await user.should_see(marker=f"shelve-{alarm.id}", retries=40)
    user.find(marker=f"shelve-{alarm.id}").click()
    await user.should_see(marker="shelve-oneshot")
    user.find(marker="shelve-oneshot").click()
    await shows(user, "point-state-bk_temperature_hi", "until it clears (one-shot)")
    sim().model.vessels["bk"].temperature_c = 60.0  # cooled: the alarm clears and the one-shot shelf ends
    runtime().plant.ingest([Reading(30, 60.0)])
    await until(lambda: runtime().alarms.points["bk_temperature_hi"].state.shelf is None)


async def test_latched_alarm_needs_reset_after_it_returns_to_normal(user: User) -> None:
    await user.open("/alarms")
    await online()
    faults = sim().faults_for("brewhouse_io")
    faults.offline = True  # the brewhouse I/O stops answering: its comms alarm latches
    alarm = await _alarm("comms:brewhouse_io")
    await shows(user, f"alarm-state-{alarm.id}", "UNACKNOWLEDGED")
    await user.should_not_see(marker=f"reset-{alarm.id}")  # no reset while still active
    faults.offline = False
    await shows(user, f"alarm-state-{alarm.id}", "LATCHED, NEEDS RESET", timeout=15)
    user.find(marker=f"reset-{alarm.id}").click()
    await user.should_not_see(marker=f"alarm-row-{alarm.id}", retries=40)
    closed = await runtime().alarms.get(alarm.id)
    assert closed is not None and closed.closed and closed.acked_by == "anonymous"


async def test_technician_takes_out_of_service_and_changes_limits(auth_required, user: User) -> None:
    rt = await open_signed_in(user, "tom", "technician", "/alarms")
    user.find(marker="def-oos-fv1_temperature_hi").click()
    await user.should_see(marker="oos-confirm")
    user.find(marker="ask-note").type("probe replaced")
    user.find(marker="oos-confirm").click()
    await shows(user, "point-state-fv1_temperature_hi", "OUT OF SERVICE")
    assert rt.alarms.points["fv1_temperature_hi"].state.out_of_service
    user.find(marker="rts-fv1_temperature_hi").click()
    await until(lambda: not rt.alarms.points["fv1_temperature_hi"].state.out_of_service)
    user.find(marker="def-limits-hlt_temperature_hihi").click()
    await user.should_see(marker="limits-limit")
    await shows(user, "limits-limit", "99 °C")
    await enter_on_keypad(user, "limits-limit", "9", "5")  # no keyboard needed: the keypad
    await shows(user, "limits-limit", "95 °C")
    user.find(marker="limits-deadband").click()
    await shows(user, "keypad-range", "range ≥ 0 °C")
    await user.should_not_see(marker="keypad-sign")  # a negative deadband cannot even be typed
    user.find(marker="keypad-cancel").click()
    await user.should_not_see(marker="keypad")
    await enter_on_keypad(user, "limits-deadband", "2")
    user.find(marker="limits-save").click()
    await shows(user, "def-point-state-hlt_temperature_hihi", "limit 95, deadband 2")
    assert rt.alarms.limits_of(rt.alarms.points["hlt_temperature_hihi"])["limit"] == 95.0
    await shows(user, "message-line", "limit 99.0 → 95.0")
    entries = await rt.audit.query(user="tom", action="alarm.")
    actions = {e["action"]: e for e in entries}
    assert {"alarm.remove_from_service", "alarm.return_to_service", "alarm.limits"} <= set(actions)
    assert actions["alarm.limits"]["old"]["limit"] == 99.0 and actions["alarm.limits"]["new"]["limit"] == 95.0


async def test_operator_has_no_service_or_limit_controls(auth_required, user: User) -> None:
    await open_signed_in(user, "olga", "operator", "/alarms")
    alarm = await _bk_high_alarm()
    await user.should_see(marker=f"ack-{alarm.id}")
    await user.should_see(marker=f"shelve-{alarm.id}")
    for marker in (f"oos-{alarm.id}", f"limits-{alarm.id}", "tab-definitions", "tab-statistics"):
        await user.should_not_see(marker=marker)


async def test_flood_banner_names_the_first_out_alarm(user: User) -> None:
    await user.open("/alarms")
    await online()
    rt = runtime()
    await user.should_not_see(marker="flood-banner")
    for i in range(11):  # the 11th new alarm within 10 minutes is a flood
        rt.alarms.raise_alarm(f"test_flood_{i}", "comms", Severity.LOW, f"Flood test alarm {i}")
    first = await _alarm("test_flood_0")
    text = await shows(user, "flood-first-out", "FIRST OUT", "Flood test alarm 0")
    assert "● LOW" in text  # priority in words and shape, not only colour
    await user.should_see(marker=f"first-out-{first.id}")
    assert rt.alarms.summary()["firstOutAlarmId"] == first.id


async def test_statistics_and_journal_export_for_a_technician(user: User) -> None:
    await user.open("/alarms")
    await online()
    alarm = await _bk_high_alarm()
    user.find(marker="stats-refresh").click()
    headline = await shows(user, "stats-headline", "alarms in 24 h")
    assert re.match(r"^\d+ alarms in 24 h", headline) and int(headline.split()[0]) >= 1
    await until(lambda: any(r["ruleId"] == "bk_temperature_hi" for r in rows(user, "stats-top10")))
    user.find(marker="hist-export").click()
    response = await user.download.next(timeout=5)
    table = list(csv.DictReader(io.StringIO(response.text)))
    raised = [r for r in table if r["alarmId"] == str(alarm.id) and r["event"] == "raised"]
    assert raised and raised[0]["priority"] == "high" and raised[0]["ruleId"] == "bk_temperature_hi"


def _tone_calls(user: User) -> list[str]:
    """The tone commands this screen sends to its browser (start('critical'), stop(), …)."""
    sent: list[str] = []
    assert user.client is not None
    outbox = user.client.outbox
    original = outbox.enqueue_message

    def spy(message_type, data, target_id):  # type: ignore[no-untyped-def]
        if message_type == "run_javascript":
            found = re.search(r"bevforgeTone\.(start|stop)\((.*?)\)", str(data.get("code", "")))
            if found:
                sent.append(f"{found.group(1)}({found.group(2)})")
        original(message_type, data, target_id)

    outbox.enqueue_message = spy  # type: ignore[method-assign]
    return sent


async def test_kiosk_tone_silence_stops_it_without_acknowledging(user: User) -> None:
    await user.open("/?kiosk=1")
    await online()
    sent = _tone_calls(user)
    await user.should_not_see(marker="annunciator", retries=40)
    sim().model.vessels["hlt"].temperature_c = 99.5
    runtime().plant.ingest([Reading(10, 99.5)])
    critical = await _alarm("hlt_temperature_hihi")
    await shows(user, "tone-state", "◆ CRITICAL ALARM TONE")
    await until(lambda: sent[-1:] == ["start('critical')"])
    user.find(marker="silence").click()
    await user.should_not_see(marker="annunciator", retries=40)
    await until(lambda: sent[-1:] == ["stop()"])
    assert not runtime().alarms.current[critical.id].acked  # silenced, still unacknowledged
    await shows(user, "alarm-count-critical", "◆ 1 CRITICAL")
    await user.should_see(marker=f"critical-ack-{critical.id}")  # the ACK is still to be done
    _bk_high()  # a NEW high alarm sounds again
    await shows(user, "tone-state", "▲ HIGH ALARM TONE")
    await until(lambda: sent[-1:] == ["start('high')"])
    high = await _alarm("bk_temperature_hi")
    runtime().alarms.ack(high.id, Actor(user="brewer", station="10.0.0.7"))  # acked at another station
    await user.should_not_see(marker="annunciator", retries=40)  # acknowledged: nothing left to sound here
    await until(lambda: sent[-1:] == ["stop()"])
    entries = await runtime().audit.query(action="alarm.silence")
    assert entries and entries[0]["user"] == "anonymous" and f"alarms {critical.id}" in entries[0]["detail"]


async def enter_on_keypad(user: User, marker: str, *keys: str) -> None:
    """Open the keypad from `marker`, tap `keys` and SET."""
    user.find(marker=marker).click()
    await user.should_see(marker="keypad")
    for key in (*keys, "set"):
        user.find(marker=f"keypad-{key}").click()
    await user.should_not_see(marker="keypad")
