"""Alarms on screen: the header banner, the critical-alarm dialog, and the /alarms list.

Everything here is derived from the core's alarm list (`runtime.alarms`) whenever an alarm event
arrives, never kept as screen state, so an ack made on one screen or through the REST API clears the
dialog and the counts on every screen alike. Colour marks severity, and each severity also has its
shape and its word (ISA-101: colour is never the only cue).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC
from typing import Any

from nicegui import background_tasks, ui
from nicegui.client import Client

from bevforge.alarms import Alarm, AlarmNotFound
from bevforge.domain import Severity
from bevforge.runtime import Runtime
from ui.controls import actor_of, tag
from ui.theme import SEVERITY_COLOURS, SEVERITY_ORDER, SEVERITY_SHAPES

log = logging.getLogger(__name__)

STATE_WORDS = {"unacknowledged": "UNACKNOWLEDGED", "acknowledged": "ACKNOWLEDGED",
               "rtn_unacknowledged": "CLEARED, NOT ACKNOWLEDGED", "normal": "NORMAL",
               "latched": "LATCHED, NEEDS RESET", "shelved": "SHELVED", "suppressed": "SUPPRESSED BY DESIGN",
               "out_of_service": "OUT OF SERVICE"}


def unacknowledged(runtime: Runtime) -> list[Alarm]:
    return [a for a in runtime.alarms.standing() if not a.acked and a.point.annunciated]


def ack(runtime: Runtime, client: Client, alarm_id: int) -> None:
    """Acknowledge as this screen's operator; the bus carries the result to every screen."""
    try:
        runtime.alarms.ack(alarm_id, actor_of(client))
    except AlarmNotFound:
        pass  # already acknowledged and cleared elsewhere: nothing left to do


def severity_chip(severity: str) -> ui.label:
    colour = SEVERITY_COLOURS[severity]
    return ui.label(f"{SEVERITY_SHAPES[severity]} {severity.upper()}").classes("bf-badge").style(
        f"background:{colour};color:#fff;border-color:{colour}")


def _local(ts: Any) -> str:
    if ts is None:
        return ""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone().strftime("%H:%M:%S")


class AlarmBanner:
    """Header counts of unacknowledged alarms by severity; a tap opens the alarm list."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.counts: dict[str, ui.label] = {}
        with tag(ui.row().classes("bf-alarm-banner items-center gap-1 cursor-pointer"), "alarm-banner") as row:
            row.on("click", lambda: ui.navigate.to("/alarms"))
            ui.label("UNACK ALARMS")
            for severity in SEVERITY_ORDER:
                self.counts[severity] = tag(ui.label("").classes("bf-alarm-count"), f"alarm-count-{severity}")

    def resync(self) -> None:
        tally = dict.fromkeys(SEVERITY_ORDER, 0)
        for alarm in unacknowledged(self.runtime):
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

    def telemetry(self, endpoint_ids: set[int]) -> None:
        pass

    def command(self, payload: dict[str, Any]) -> None:
        pass

    def alarms(self, payloads: list[dict[str, Any]]) -> None:
        self.resync()


class CriticalAlarmDialog:
    """Opens on every screen while a critical alarm is unacknowledged; closes when all are acked."""

    def __init__(self, runtime: Runtime, client: Client) -> None:
        self.runtime = runtime
        self.client = client
        self.shown: tuple[int, ...] = ()
        with ui.dialog().props("persistent") as self.dialog, \
                tag(ui.card().classes("bf-alarm-dialog"), "critical-dialog"):
            with ui.row().classes("items-center"):
                severity_chip("critical")
                ui.label("CRITICAL ALARM").classes("text-2xl font-bold")
            self.body = ui.column().classes("w-full gap-2")

    def resync(self) -> None:
        critical = [a for a in unacknowledged(self.runtime) if a.severity is Severity.CRITICAL]
        ids = tuple(a.id for a in critical)
        if ids != self.shown:
            self.shown = ids
            self.body.clear()
            with self.body:
                for alarm in critical:
                    with ui.row().classes("w-full items-center no-wrap gap-3"):
                        with ui.column().classes("gap-0 grow"):
                            tag(ui.label(alarm.message).classes("text-lg font-semibold"), f"critical-msg-{alarm.id}")
                            ui.label(f"raised {_local(alarm.raised_at)} · "
                                     f"{'ACTIVE' if alarm.active else 'CLEARED'}").classes("bf-detail")
                        tag(ui.button("ACK", on_click=_acker(self.runtime, self.client, alarm.id))
                            .classes("bf-btn bf-control"), f"critical-ack-{alarm.id}")
        if ids and not self.dialog.value:
            self.dialog.open()
        elif not ids and self.dialog.value:
            self.dialog.close()

    def telemetry(self, endpoint_ids: set[int]) -> None:
        pass

    def command(self, payload: dict[str, Any]) -> None:
        pass

    def alarms(self, payloads: list[dict[str, Any]]) -> None:
        self.resync()


def _nothing() -> None:
    return None


def _acker(runtime: Runtime, client: Client, alarm_id: int) -> Callable[[], None]:
    return lambda: ack(runtime, client, alarm_id)


class AlarmList:
    """The /alarms page: standing alarms (active or unacknowledged) and the recent journal."""

    def __init__(self, runtime: Runtime, client: Client) -> None:
        self.runtime = runtime
        self.client = client
        self._loading = False
        self._again = False
        ui.label("Standing alarms").classes("text-xl font-bold")
        self.standing = tag(ui.column().classes("w-full gap-1"), "alarms-standing")
        ui.label("Recent alarms (newest first)").classes("text-xl font-bold mt-4")
        self.recent = tag(ui.column().classes("w-full gap-1"), "alarms-recent")

    def _row(self, alarm: Alarm, with_ack: bool) -> None:
        colour = SEVERITY_COLOURS[alarm.severity.value]
        with tag(ui.row().classes("bf-alarm-row w-full items-center no-wrap gap-3").style(
                f"border-left-color:{colour}"), f"alarm-row-{alarm.id}"):
            severity_chip(alarm.severity.value)
            with ui.column().classes("gap-0 grow"):
                ui.label(alarm.message).classes("font-semibold")
                acked = f" · acked {_local(alarm.acked_at)} by {alarm.acked_by}" if alarm.acked else ""
                ui.label(f"{STATE_WORDS[alarm.state]} · raised {_local(alarm.raised_at)}"
                         f"{' · cleared ' + _local(alarm.cleared_at) if alarm.cleared_at else ''}{acked}"
                         ).classes("bf-detail")
            if with_ack and not alarm.acked:
                tag(ui.button("ACK", on_click=_acker(self.runtime, self.client, alarm.id))
                    .classes("bf-btn bf-control"), f"ack-{alarm.id}")

    def resync(self) -> None:
        standing = self.runtime.alarms.standing()
        self.standing.clear()
        with self.standing:
            if not standing:
                ui.label("No standing alarms.").classes("bf-detail")
            for alarm in standing:
                self._row(alarm, with_ack=True)
        self._load_recent()

    def _load_recent(self) -> None:
        if self._loading:
            self._again = True
            return
        self._loading = True
        background_tasks.create(self._fill_recent(), name="alarm journal")

    async def _fill_recent(self) -> None:
        try:
            while True:
                self._again = False
                # The journal is written in order on the one writer thread: once a no-op queued
                # behind the transitions we were told about has run, the query sees them all.
                await self.runtime.db.write(_nothing)
                recent = await self.runtime.alarms.query("all", limit=100)
                if self.client.is_deleted:
                    return
                self.recent.clear()
                with self.recent:
                    for alarm in recent:
                        self._row(alarm, with_ack=False)
                if not self._again:
                    return
        except Exception:
            log.exception("alarm journal could not be read")
        finally:
            self._loading = False

    def telemetry(self, endpoint_ids: set[int]) -> None:
        pass

    def command(self, payload: dict[str, Any]) -> None:
        pass

    def alarms(self, payloads: list[dict[str, Any]]) -> None:
        self.resync()
