"""The /alarms page: ACTIVE (open occurrences), SHELVED (shelved, out of service, suppressed),
HISTORY (the journal) and, for technicians, DEFINITIONS (limits, service) and STATISTICS.

A button is drawn only for a user who may use it (role and node); each press is checked again by
`ui.alarm_actions`. Lists are redrawn from the alarm service on every alarm event; definition
states that change without an alarm event (a shelf on a quiet point, a limit change made on
another screen) are picked up by a short re-check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import ui
from nicegui.client import Client

from bevforge import messages
from bevforge.alarms import Alarm, Point
from bevforge.domain import Actor, EndpointState
from bevforge.runtime import Runtime
from ui import alarm_actions as act
from ui import session, words
from ui.alarm_journal import AlarmHistory, AlarmStatistics
from ui.alarms import STATE_WORDS, AlarmViewSink, local_time, severity_chip, visible
from ui.controls import tag
from ui.live import LiveView
from ui.theme import SEVERITY_COLOURS

RECHECK_S = 5.0
HIDDEN = ("shelved", "out_of_service", "suppressed")


def _button(label: str, marker: str, handler: Callable[[], Any], css: str = "") -> None:
    tag(ui.button(label, on_click=handler).classes(f"bf-btn bf-control {css}"), marker)


class AlarmPage(AlarmViewSink):
    def __init__(self, runtime: Runtime, client: Client, actor: Actor, live: LiveView | None = None) -> None:
        self.runtime = runtime
        self.client = client
        self.actor = actor
        self.live = live
        self.now_labels: dict[int, list[ui.label]] = {}  # endpoint → each active row's "now" label
        self.operator = session.may(actor, "operator")
        self.technician = session.may(actor, "technician")
        self._points_seen: tuple[Any, ...] = ()
        with ui.tabs().classes("bf-tabs") as tabs:
            active = tag(ui.tab("ACTIVE"), "tab-active")
            shelved = tag(ui.tab("SHELVED"), "tab-shelved")
            history = tag(ui.tab("HISTORY"), "tab-history")
            if self.technician:
                definitions = tag(ui.tab("DEFINITIONS"), "tab-definitions")
                statistics = tag(ui.tab("STATISTICS"), "tab-statistics")
        with ui.tab_panels(tabs, value=active).classes("w-full bf-tab-panels"):
            with ui.tab_panel(active):
                self.active = tag(ui.column().classes("w-full gap-1"), "alarms-active")
            with ui.tab_panel(shelved):
                self.shelved = tag(ui.column().classes("w-full gap-1"), "alarms-shelved")
            with ui.tab_panel(history):
                self.history = AlarmHistory(runtime, client, actor)
            self.definitions: ui.column | None = None
            self.statistics: AlarmStatistics | None = None
            if self.technician:
                with ui.tab_panel(definitions):
                    self.definitions = tag(ui.column().classes("w-full gap-1"), "alarms-definitions")
                with ui.tab_panel(statistics):
                    self.statistics = AlarmStatistics(runtime, client, actor)
        tabs.on_value_change(self._tab_changed)
        ui.timer(RECHECK_S, self._recheck)

    # -- sink -------------------------------------------------------------------------------

    def telemetry(self, frames: dict[int, dict[str, Any]]) -> None:
        """The present value beside each alarm's message (which keeps the value it annunciated with)."""
        for eid, frame in frames.items():
            for label in self.now_labels.get(eid, ()):
                _set_text(label, self._now_text(eid, messages.state_of(frame)))

    def _now_text(self, endpoint_id: int, state: EndpointState) -> str:
        return f"now {words.shown_value(self.runtime.plant.endpoints[endpoint_id], state)}"

    def resync(self) -> None:
        self.redraw()
        self.history.refresh()

    def redraw(self) -> None:
        self._points_seen = self._signature()
        self._draw_active()
        self._draw_shelved()
        if self.definitions is not None:
            self._draw_definitions()

    def _sees(self, rule_id: str) -> bool:
        visible_keys = self.runtime.alarms.key_filter(self.actor)
        return visible_keys is None or visible_keys(rule_id)

    def _recheck(self) -> None:
        if self._signature() != self._points_seen:
            self.redraw()

    def _signature(self) -> tuple[Any, ...]:
        return tuple((k, p.state, p.priority, str(self.runtime.alarms.limits_of(p)))
                     for k, p in self.runtime.alarms.points.items() if self._sees(k))

    async def _tab_changed(self, event: Any) -> None:
        if self.statistics is not None and event.value == "STATISTICS":
            await self.statistics.load()

    # -- ACTIVE ---------------------------------------------------------------------------------

    def _definition(self, rule_id: str) -> Point | None:
        point = self.runtime.alarms.points.get(rule_id)
        return point if point is not None and point.rule is not None and not point.momentary else None

    def _draw_active(self) -> None:
        summary = self.runtime.alarms.summary(self.actor)
        first_out = summary["firstOutAlarmId"] if summary["flood"] else None
        alarms = [a for a in visible(self.runtime, self.actor) if a.state not in HIDDEN]
        self.now_labels = {}
        self.active.clear()
        with self.active:
            if not alarms:
                ui.label("No active alarms.").classes("bf-detail")
            for alarm in alarms:
                self._alarm_row(alarm, alarm.id == first_out)
        if self.live is not None:  # the present values of the points in alarm come in as telemetry
            self.live.watch(self.now_labels)

    def _alarm_row(self, alarm: Alarm, first_out: bool) -> None:
        rt, client, redraw = self.runtime, self.client, self.redraw
        colour = SEVERITY_COLOURS[alarm.severity.value]
        css = "bf-alarm-row w-full items-center gap-3" + (" bf-first-out" if first_out else "")
        with tag(ui.row().classes(css).style(f"border-left-color:{colour}"), f"alarm-row-{alarm.id}"):
            severity_chip(alarm.severity.value)
            if first_out:
                tag(ui.label("FIRST OUT").classes("bf-badge bf-first-out-badge"), f"first-out-{alarm.id}")
            if alarm.chattering:
                ui.label("CHATTERING").classes("bf-badge")
            with ui.column().classes("gap-0 grow"):
                with ui.row().classes("items-baseline gap-3"):
                    ui.label(alarm.message).classes("font-semibold")  # worded with the value it annunciated at
                    eid = alarm.endpoint_id
                    if eid is not None and eid in rt.plant.endpoints and alarm.kind != "interlock_block":
                        now = tag(ui.label(self._now_text(eid, rt.plant.states[eid])).classes("bf-alarm-now"),
                                  f"alarm-now-{alarm.id}")
                        self.now_labels.setdefault(eid, []).append(now)
                acked = f" · acked {local_time(alarm.acked_at)} by {alarm.acked_by}" if alarm.acked_at else ""
                note = f" “{alarm.ack_comment}”" if alarm.ack_comment else ""
                cleared = f" · cleared {local_time(alarm.cleared_at)}" if alarm.cleared_at else ""
                tag(ui.label(f"{STATE_WORDS[alarm.state]} · raised {local_time(alarm.raised_at)}{cleared}{acked}{note}")
                    .classes("bf-detail"), f"alarm-state-{alarm.id}")
            point = self._definition(alarm.rule_id)
            with ui.row().classes("gap-2"):
                if self.operator and not alarm.acked:
                    _button("ACK", f"ack-{alarm.id}",
                            lambda a=alarm: act.ack_with_note(rt, client, a.id, a.message))
                if self.operator and alarm.point.latched and not alarm.active:
                    _button("RESET", f"reset-{alarm.id}", lambda a=alarm: act.reset(rt, client, a.id))
                if self.operator and point is not None:
                    _button("SHELVE", f"shelve-{alarm.id}",
                            lambda p=point, a=alarm: act.shelve(rt, client, p.key, a.message, redraw))
                if self.technician and point is not None:
                    _button("OUT OF SERVICE", f"oos-{alarm.id}",
                            lambda p=point: act.set_service(rt, client, p.key, False, redraw))
                    if point.tracker is not None:
                        _button("LIMITS", f"limits-{alarm.id}",
                                lambda p=point: act.change_limits(rt, client, p.key, redraw))

    # -- SHELVED ------------------------------------------------------------------------------------

    def _draw_shelved(self) -> None:
        points = [p for p in self.runtime.alarms.points.values()
                  if self._sees(p.key) and p.state.display.value in HIDDEN]
        self.shelved.clear()
        with self.shelved:
            if not points:
                ui.label("Nothing is shelved, out of service or suppressed.").classes("bf-detail")
            for point in sorted(points, key=lambda p: p.key):
                self._point_row(point, "shelved")

    def _point_row(self, point: Point, where: str) -> None:
        rt, client, redraw = self.runtime, self.client, self.redraw
        state = point.state
        words = STATE_WORDS[state.display.value]
        if state.shelf == "timed" and state.shelved_until is not None:
            words += f" until {local_time(state.shelved_until)}"
        elif state.shelf == "oneshot":
            words += " until it clears (one-shot)"
        if point.occurrence is not None:
            words += f" · alarm #{point.occurrence.id} {'ACTIVE' if state.active else 'not active'}"
        limits = rt.alarms.limits_of(point)
        prefix = "def-" if where == "definitions" else ""
        colour = SEVERITY_COLOURS[point.priority.value]
        with tag(ui.row().classes("bf-alarm-row w-full items-center gap-3").style(f"border-left-color:{colour}"),
                 f"{prefix}point-{point.key}"):
            severity_chip(point.priority.value)
            with ui.column().classes("gap-0 grow"):
                ui.label(self._title(point)).classes("font-semibold")
                detail = f"{point.key} · {point.kind} · {words}"
                if point.tracker is not None:
                    detail += (f" · limit {limits['limit']:g}, deadband {limits['deadband']:g}, "
                               f"on-delay {limits['on_delay_s']:g} s, off-delay {limits['off_delay_s']:g} s")
                tag(ui.label(detail).classes("bf-detail"), f"{prefix}point-state-{point.key}")
            with ui.row().classes("gap-2"):
                if self.operator and state.shelf is not None:
                    _button("UNSHELVE", f"{prefix}unshelve-{point.key}",
                            lambda: act.unshelve(rt, client, point.key, redraw))
                if where == "definitions" and self.operator and state.shelf is None and not state.out_of_service:
                    _button("SHELVE", f"def-shelve-{point.key}",
                            lambda: act.shelve(rt, client, point.key, point.key, redraw))
                if self.technician and state.out_of_service:
                    _button("RETURN TO SERVICE", f"{prefix}rts-{point.key}",
                            lambda: act.set_service(rt, client, point.key, True, redraw))
                if where == "definitions" and self.technician and not state.out_of_service:
                    _button("OUT OF SERVICE", f"def-oos-{point.key}",
                            lambda: act.set_service(rt, client, point.key, False, redraw))
                if where == "definitions" and self.technician and point.tracker is not None:
                    _button("CHANGE LIMITS", f"def-limits-{point.key}",
                            lambda: act.change_limits(rt, client, point.key, redraw))

    def _title(self, point: Point) -> str:
        endpoint = self.runtime.config.endpoints_by_id.get(point.endpoint_id) if point.endpoint_id else None
        if endpoint is not None:
            return f"{endpoint.display_name} · {point.kind}"
        return point.occurrence.message if point.occurrence is not None else point.key

    # -- DEFINITIONS (technicians) -------------------------------------------------------------------

    def _draw_definitions(self) -> None:
        assert self.definitions is not None
        points = [p for p in self.runtime.alarms.points.values()
                  if p.rule is not None and not p.momentary and self._sees(p.key)]
        self.definitions.clear()
        with self.definitions:
            for point in points:
                self._point_row(point, "definitions")


def _set_text(label: ui.label, text: str) -> None:
    if label.text != text:
        label.text = text
