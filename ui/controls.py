"""Operator commands from a screen: confirm, submit to the core, report the outcome.

A press never changes what a tile shows by itself (no optimistic state): it submits the command to
`runtime.commands`, the tile shows it pending, and only the core's command events (readback
confirmed, failed, blocked) change the tile and raise the toast. Critical outputs (heaters) ask
first, showing "current state → target state" (REFERENCE.md §2, §3), through `confirm_critical`,
the one confirmation dialog the controller faceplate uses too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from nicegui import ui
from nicegui.client import Client

from bevforge import permissions
from bevforge.commands import Command
from bevforge.config import Endpoint
from bevforge.domain import CommandStatus, Value
from bevforge.errors import BevForgeError
from bevforge.runtime import Runtime
from ui import session, words
from ui.errors import notify_error
from ui.feedback import say

log = logging.getLogger(__name__)


def tag(element: ui.element, name: str) -> ui.element:
    """Name an element for the tests: a marker for NiceGUI's User and a data-testid for the browser."""
    return element.mark(name).props(f'data-testid="{name}"')


async def confirm_critical(name: str, change: str, warning: str, confirm_text: str) -> bool:
    """The one confirmation before a critical output may change (a heater's tile, a heater loop's mode).

    A persistent dialog: "Confirm: <name>", the change as "current → target" in large type (REFERENCE.md
    §2, §3), why it asks, and CANCEL / CONFIRM …; True only when the person confirmed. The tiles
    (`Commander`) and the controller faceplate both ask through it, so they look and behave alike.
    """
    with ui.dialog().props("persistent") as dialog, ui.card().classes("bf-confirm"):
        tag(ui.label(f"Confirm: {name}").classes("text-xl font-bold"), "confirm-title")
        tag(ui.label(change).classes("text-3xl font-bold"), "confirm-change")
        ui.label(warning).classes("bf-detail")
        with ui.row().classes("w-full justify-between"):
            tag(ui.button("CANCEL", on_click=lambda: dialog.submit(False)).classes("bf-btn bf-control"),
                "confirm-cancel")
            tag(ui.button(confirm_text, on_click=lambda: dialog.submit(True)).classes("bf-btn bf-control"),
                "confirm-ok")
    dialog.open()
    try:
        return bool(await dialog)
    finally:
        dialog.delete()


class Commander:
    """Submits one page's commands and remembers which were its own (only those raise toasts)."""

    def __init__(self, runtime: Runtime, client: Client) -> None:
        self.runtime = runtime
        self.client = client
        self.own: dict[str, str] = {}  # commandId → what the operator asked for, for the toast
        self.on_submitted: list[Callable[[Command], None]] = []

    async def press(self, endpoint: Endpoint, value: Value) -> None:
        """A control was pressed: confirm if critical — but not a command to the output's safe value
        (a heater OFF, a pump STOP): making a plant safe must never wait behind a question — then submit."""
        if endpoint.critical and not _is_safe(endpoint, value) and not await self._confirm(endpoint, value):
            return
        await self.submit(endpoint, value)

    async def _confirm(self, endpoint: Endpoint, value: Value) -> bool:
        state = self.runtime.plant.states[endpoint.id]
        return await confirm_critical(endpoint.display_name,
                                      f"{words.shown_value(endpoint, state)} → {words.value_text(endpoint, value)}",
                                      "This output is critical. Check the vessel before you confirm.",
                                      f"CONFIRM {words.verb(endpoint, value)}")

    async def submit(self, endpoint: Endpoint, value: Value) -> Command | None:
        asked = f"{endpoint.display_name}: {words.verb(endpoint, value)}"
        actor = session.allowed(self.client, "operator", asked)
        if actor is None:
            return None
        if not permissions.may_see_endpoint(actor, endpoint):
            say(f"{asked}: not one of your nodes", "negative")
            return None
        try:
            command, _created = await self.runtime.commands.submit(endpoint.id, value, actor=actor, origin="ui")
        except BevForgeError as exc:
            notify_error(asked, exc)
            return None
        self.own[command.id] = asked
        for listener in self.on_submitted:
            listener(command)
        if command.status is CommandStatus.BLOCKED:
            reasons = "; ".join(r["reason"] for r in command.reasons)
            say(f"{asked} BLOCKED: {reasons}", "warning")
        return command

    def finished(self, payload: dict[str, Any]) -> None:
        """A final command event arrived: toast it if this page asked for it."""
        asked = self.own.pop(payload["commandId"], None)
        if asked is None:
            return
        if payload["status"] == CommandStatus.SUCCEEDED.value:
            say(f"{asked} confirmed by the device", "positive")
        elif payload["status"] == CommandStatus.FAILED.value:
            say(f"{asked} FAILED: {payload.get('error') or 'no reason given'}", "negative")


def _is_safe(endpoint: Endpoint, value: Value) -> bool:
    safe = endpoint.safe_value
    if safe is None or isinstance(value, bool) != isinstance(safe, bool):
        return False
    return value == safe
