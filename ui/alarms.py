"""Alarms on every screen: the header counts, the flood banner and the critical-alarm dialog.

Everything here is derived from the core's alarm list (`runtime.alarms`) whenever an alarm event
arrives, never kept as screen state, so an ack made on one screen or through the REST API clears the
dialog and the counts on every screen alike. A node-limited user sees only alarms of their nodes.
Colour marks priority, and each priority also has its shape and its word (ISA-101: colour is never
the only cue).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from nicegui import ui
from nicegui.client import Client

from bevforge.alarms import Alarm
from bevforge.domain import Actor, Severity
from bevforge.runtime import Runtime
from ui import session
from ui.alarm_actions import ack_now
from ui.controls import tag
from ui.theme import SEVERITY_COLOURS, SEVERITY_ORDER, SEVERITY_SHAPES

FLOOD_RECHECK_S = 10.0  # a flood also ends by time passing, without an alarm event

STATE_WORDS = {"unacknowledged": "UNACKNOWLEDGED", "acknowledged": "ACKNOWLEDGED",
               "rtn_unacknowledged": "CLEARED, NOT ACKNOWLEDGED", "normal": "NORMAL",
               "latched": "LATCHED, NEEDS RESET", "shelved": "SHELVED", "suppressed": "SUPPRESSED BY DESIGN",
               "out_of_service": "OUT OF SERVICE"}


def visible(runtime: Runtime, actor: Actor) -> list[Alarm]:
    """The open alarms this user may see (newest first)."""
    return runtime.alarms.standing(actor)


def unacknowledged(runtime: Runtime, actor: Actor) -> list[Alarm]:
    return [a for a in visible(runtime, actor) if not a.acked and a.point.annunciated]


def severity_chip(severity: str) -> ui.label:
    colour = SEVERITY_COLOURS[severity]
    return ui.label(f"{SEVERITY_SHAPES[severity]} {severity.upper()}").classes("bf-badge").style(
        f"background:{colour};color:#fff;border-color:{colour}")


def local_time(ts: datetime | None) -> str:
    if ts is None:
        return ""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone().strftime("%H:%M:%S")


class AlarmViewSink:
    """A LiveView sink that only cares about alarms: any alarm event redraws it from the service.

    Telemetry and command events pass by; the alarm screens read the alarm service's own state, so
    one `resync` serves both a pushed alarm and a reconnect.
    """

    def telemetry(self, frames: dict[int, dict[str, Any]]) -> None:
        pass

    def command(self, payload: dict[str, Any]) -> None:
        pass

    def alarms(self, payloads: list[dict[str, Any]]) -> None:
        self.resync()

    def resync(self) -> None:
        raise NotImplementedError


class AlarmBanner(AlarmViewSink):
    """Header counts of unacknowledged alarms by priority; a tap opens the alarm list."""

    def __init__(self, runtime: Runtime, actor: Actor, suffix: str = "") -> None:
        self.runtime = runtime
        self.actor = actor
        self.counts: dict[str, ui.label] = {}
        with tag(ui.row().classes("bf-alarm-banner items-center gap-1 cursor-pointer"), "alarm-banner") as row:
            row.on("click", lambda: ui.navigate.to("/alarms" + suffix))
            ui.label("UNACK ALARMS").classes("bf-alarm-title")
            for severity in SEVERITY_ORDER:
                self.counts[severity] = tag(ui.label("").classes("bf-alarm-count"), f"alarm-count-{severity}")

    def resync(self) -> None:
        tally = dict.fromkeys(SEVERITY_ORDER, 0)
        for alarm in unacknowledged(self.runtime, self.actor):
            tally[alarm.severity.value] += 1
        for severity, label in self.counts.items():
            n = tally[severity]
            text = f"{SEVERITY_SHAPES[severity]} {n} {severity.upper()}" if n else f"0 {severity}"
            if label.text == text:
                continue
            label.text = text
            if n:
                label.classes(remove="bf-alarm-count-zero").style(f"background:{SEVERITY_COLOURS[severity]}")
            else:
                label.classes(add="bf-alarm-count-zero").style(remove=f"background:{SEVERITY_COLOURS[severity]}")


class FloodBanner(AlarmViewSink):
    """More than 10 new alarms in 10 minutes: say so, and name the first-out alarm to deal with first."""

    def __init__(self, runtime: Runtime, actor: Actor, suffix: str = "") -> None:
        self.runtime = runtime
        self.actor = actor
        with tag(ui.row().classes("bf-flood w-full items-center gap-3 cursor-pointer"), "flood-banner") as self.box:
            self.box.on("click", lambda: ui.navigate.to("/alarms" + suffix))
            ui.label("▲▲ ALARM FLOOD").classes("font-bold")
            self.text = tag(ui.label(""), "flood-first-out")
        self.box.set_visibility(False)
        ui.timer(FLOOD_RECHECK_S, self.resync)

    def resync(self) -> None:
        summary = self.runtime.alarms.summary(self.actor)
        if not summary["flood"]:
            if self.box.visible:
                self.box.set_visibility(False)
            return
        first = self.runtime.alarms.current.get(summary["firstOutAlarmId"] or -1)
        text = "more than 10 new alarms in 10 minutes."
        if first is not None:  # the summary names a first-out alarm only to whom may see it
            text += (f" FIRST OUT: {SEVERITY_SHAPES[first.severity.value]} {first.severity.value.upper()} "
                     f"{first.message} (raised {local_time(first.raised_at)}) — start there.")
        if self.text.text != text:
            self.text.text = text
        if not self.box.visible:
            self.box.set_visibility(True)


class CriticalAlarmDialog(AlarmViewSink):
    """Opens on every screen while a critical alarm is unacknowledged; closes when all are acked.

    A viewer may not acknowledge: their dialog has CLOSE instead, which hides it on that screen
    until another critical alarm comes in.
    """

    def __init__(self, runtime: Runtime, client: Client, actor: Actor, annunciator: Any = None) -> None:
        self.runtime = runtime
        self.client = client
        self.actor = actor
        self.may_ack = session.may(actor, "operator")
        self.shown: tuple[int, ...] = ()
        self.dismissed: set[int] = set()
        with ui.dialog().props("persistent") as self.dialog, \
                tag(ui.card().classes("bf-alarm-dialog"), "critical-dialog"):
            with ui.row().classes("items-center"):
                severity_chip("critical")
                ui.label("CRITICAL ALARM").classes("text-2xl font-bold")
            self.body = ui.column().classes("w-full gap-2")
            with ui.row().classes("w-full justify-end gap-2"):
                if annunciator is not None:  # the kiosk's tone: silence it here without acknowledging
                    annunciator.mirror("critical-silence")
                if not self.may_ack:
                    tag(ui.button("CLOSE", on_click=self._dismiss).classes("bf-btn"), "critical-close")

    def _dismiss(self) -> None:
        self.dismissed.update(self.shown)
        self.dialog.close()

    def resync(self) -> None:
        critical = [a for a in unacknowledged(self.runtime, self.actor) if a.severity is Severity.CRITICAL]
        ids = tuple(a.id for a in critical)
        if ids != self.shown:
            self.shown = ids
            self.body.clear()
            with self.body:
                for alarm in critical:
                    with ui.row().classes("w-full items-center no-wrap gap-3"):
                        with ui.column().classes("gap-0 grow"):
                            tag(ui.label(alarm.message).classes("text-lg font-semibold"), f"critical-msg-{alarm.id}")
                            ui.label(f"raised {local_time(alarm.raised_at)} · "
                                     f"{'ACTIVE' if alarm.active else 'CLEARED'}").classes("bf-detail")
                        if self.may_ack:
                            tag(ui.button("ACK", on_click=_acker(self.runtime, self.client, alarm.id))
                                .classes("bf-btn bf-control"), f"critical-ack-{alarm.id}")
        wanted = bool(set(ids) - self.dismissed)
        if wanted and not self.dialog.value:
            self.dialog.open()
        elif not wanted and self.dialog.value:
            self.dialog.close()
        self.dismissed &= set(ids)


def _acker(runtime: Runtime, client: Client, alarm_id: int) -> Any:
    return lambda: ack_now(runtime, client, alarm_id)
