"""The Control Panel's tiles: one row per endpoint, with value, state words, quality and controls.

A row is drawn once and then changed only by explicit, compared updates (`show_state`,
`show_command`, `show_alarm`): nothing is bound, so an unchanged value costs nothing and a changed
one sends one small element update. A value that is not GOOD is shown hatched, prefixed "?" and
badged STALE or BAD, so a last-good value never reads as live.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from bevforge import permissions
from bevforge.alarms import Alarm
from bevforge.config import Endpoint, Tile
from bevforge.domain import Actor, CommandStatus, DataType, EndpointState, Value
from bevforge.runtime import Runtime
from ui import keypad, words
from ui.controls import Commander, tag
from ui.theme import SEVERITY_COLOURS, SEVERITY_SHAPES

FINAL = {"succeeded", "failed", "blocked"}


ALARM_WORDS = {"HI": "HI", "HIHI": "HIHI", "LO": "LO", "LOLO": "LOLO", "deviation": "DEV", "rate": "RATE",
               "discrete": "ALM", "comms": "COMMS", "interlock_trip": "TRIP", "interlock_block": "BLOCK"}


class EndpointRow:
    """One endpoint on a tile."""

    def __init__(self, runtime: Runtime, endpoint: Endpoint, commander: Commander, controls: bool = True) -> None:
        self.runtime = runtime
        self.endpoint = endpoint
        self.commander = commander
        self.current_command: str | None = None
        self._quality_css = ""
        self._buttons: list[ui.button] = []
        eid = endpoint.id
        with ui.column().classes("bf-row gap-1") as self.box:
            with ui.row().classes("w-full items-center no-wrap gap-3"):
                ui.label(endpoint.display_name).classes("bf-name")
                self.value = tag(ui.label("—").classes("bf-value"), f"value-{eid}")
                self.badge = tag(ui.label("").classes("bf-badge"), f"quality-{eid}")
                self.alarm = tag(ui.label("").classes("bf-badge"), f"alarm-{eid}")
                self.alarm.set_visibility(False)
            self.detail = tag(ui.label("").classes("bf-detail"), f"detail-{eid}")
            self.detail.set_visibility(False)
            if endpoint.writable and controls:  # a viewer gets no controls at all, not disabled ones
                self._controls()
            self.command = tag(ui.label("").classes("bf-detail"), f"command-{eid}")
            self.command.set_visibility(False)
            self.trip = tag(ui.label("").classes("bf-detail bf-trip"), f"trip-{eid}")
            self.trip.set_visibility(False)

    # -- drawing --------------------------------------------------------------------------

    def _controls(self) -> None:
        endpoint = self.endpoint
        eid = endpoint.id
        with ui.row().classes("items-center gap-2"):
            if endpoint.data_type is DataType.BOOL:
                _, _, make_on, make_off = words.bool_words(endpoint)
                on = ui.button(make_on, on_click=lambda: self._press(True)).classes("bf-btn bf-control")
                off = ui.button(make_off, on_click=lambda: self._press(False)).classes("bf-btn bf-btn-stop bf-control")
                self._buttons = [tag(on, f"on-{eid}"), tag(off, f"off-{eid}")]
            else:
                # Tap to open the keypad (ui/keypad.py): a kiosk has no keyboard for a number box.
                entry = ui.button("SET", icon="dialpad", on_click=self._open_keypad).classes("bf-btn bf-control")
                self._buttons = [tag(entry, f"entry-{eid}")]
                self.value.on("click", self._open_keypad).classes("bf-tappable")

    async def _press(self, value: Value) -> None:
        await self.commander.press(self.endpoint, value)

    async def _open_keypad(self) -> None:
        """The keypad asks for the value; the Commander sends it (confirmation, interlocks, audit)."""
        value = await keypad.enter_value(self.endpoint, self.runtime.plant.states[self.endpoint.id])
        if value is not None:
            await self.commander.press(self.endpoint, value)

    # -- updates --------------------------------------------------------------------------

    def show_state(self, state: EndpointState) -> None:
        view = words.quality_view(state)
        _set_text(self.value, words.shown_value(self.endpoint, state))
        _set_text(self.badge, view.word)
        if view.css != self._quality_css:
            if self._quality_css:
                self.box.classes(remove=f"bf-row-{self._quality_css}")
                self.badge.classes(remove=f"bf-badge-{self._quality_css}")
            self.box.classes(add=f"bf-row-{view.css}")
            self.badge.classes(add=f"bf-badge-{view.css}")
            self._quality_css = view.css
        _set_text(self.detail, view.detail)
        if self.detail.visible != bool(view.detail):
            self.detail.set_visibility(bool(view.detail))

    def show_alarm(self, alarm: Alarm | None) -> None:
        """An active threshold alarm on this endpoint: shape + HI/LO word + the alarm colour."""
        if alarm is None:
            if self.alarm.visible:
                self.alarm.set_visibility(False)
            return
        word = ALARM_WORDS.get(alarm.kind, "ALM")
        text = f"{SEVERITY_SHAPES[alarm.severity.value]} {word} {alarm.severity.value.upper()}"
        if self.alarm.text != text:
            colour = SEVERITY_COLOURS[alarm.severity.value]
            self.alarm.text = text
            self.alarm.style(f"background:{colour};color:#fff;border-color:{colour}")
        if not self.alarm.visible:
            self.alarm.set_visibility(True)

    def show_trip(self, alarm: Alarm | None) -> None:
        """An interlock trip of this output: why it was driven to its safe state, on its own line, until the
        trip alarm is reset (acknowledged once the safe state is confirmed) — not a bare OFF."""
        if alarm is None:
            if self.trip.visible:
                self.trip.set_visibility(False)
            return
        state = "TRIPPED" if alarm.active else "TRIPPED (safe state confirmed; ACK the alarm to reset)"
        text = f"{SEVERITY_SHAPES[alarm.severity.value]} {state} — {alarm.message}"
        if self.trip.text != text:
            self.trip.text = text
        if not self.trip.visible:
            self.trip.set_visibility(True)

    def show_command(self, payload: dict[str, Any]) -> None:
        """A command event for this endpoint (from any screen or the API)."""
        status = payload["status"]
        command_id = payload["commandId"]
        if status in FINAL and self.current_command not in (None, command_id):
            return  # a late final event of an older command must not hide the pending one
        asked = words.verb(self.endpoint, payload["requestedValue"])
        by = payload.get("user") or "?"
        if status in FINAL:
            self.current_command = None
            self._set_busy(False)
            if status == "succeeded":
                self._set_command("", "")
            elif status == "blocked":
                reasons = payload.get("reasons") or []
                lines = [f"BLOCKED — {asked} refused by interlock:"]
                lines += [f"{r['reason']}" + (f" — {'; '.join(r['failedConditions'])}" if r.get("failedConditions")
                                              else "") for r in reasons]
                self._set_command("\n".join(lines), "bf-blocked")
            else:
                self._set_command(f"✖ {asked} FAILED: {payload.get('error') or 'no reason given'}", "bf-failed")
        else:
            self.current_command = command_id
            self._set_busy(True)
            self._set_command(f"… {asked} pending — {words.STATUS_WORDS.get(CommandStatus(status), status)} "
                              f"(by {by})", "bf-pending")

    def clear_pending(self) -> None:
        """The command shown pending is no longer in flight (its end was missed while away)."""
        self.current_command = None
        self._set_busy(False)
        if "bf-pending" in self.command.classes:
            self._set_command("", "")

    def _set_busy(self, busy: bool) -> None:
        for button in self._buttons:
            if busy:
                button.props("loading")
            else:
                button.props(remove="loading")

    def _set_command(self, text: str, css: str) -> None:
        if self.command.text == text:
            return
        self.command.text = text
        self.command.classes(replace=f"bf-detail {css} whitespace-pre-line")
        self.command.set_visibility(bool(text))


def _set_text(label: ui.label, text: str) -> None:
    if label.text != text:
        label.text = text


class TileCard:
    """A configured tile: its title and its rows."""

    def __init__(self, runtime: Runtime, tile: Tile, commander: Commander, actor: Actor) -> None:
        self.tile = tile
        self.rows: list[EndpointRow] = []
        controls = permissions.has_role(actor, permissions.OPERATOR)
        with tag(ui.card().classes("bf-tile"), f"tile-{tile.id}"):
            ui.label(tile.title).classes("bf-tile-title")
            for eid in tile.endpoints:
                endpoint = runtime.plant.endpoints[eid]
                if permissions.may_see_endpoint(actor, endpoint):
                    self.rows.append(EndpointRow(runtime, endpoint, commander, controls))
