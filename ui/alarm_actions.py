"""Alarm actions from a screen: ACK with an optional note, RESET, SHELVE / UNSHELVE, OUT OF SERVICE /
RETURN TO SERVICE and CHANGE LIMITS.

Each action asks `session.allowed` for the actor at the moment of the press (the same roles as the
REST routes: operator for ack, reset, timed shelves and unshelve; technician for one-shot shelves,
service and limits) and calls the alarm service, which journals the transition with that user and
writes the audit record. The screens change when the service's alarm event comes back, not before.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from nicegui import ui
from nicegui.client import Client

from bevforge import permissions
from bevforge.alarms import AlarmNotFound, TransitionRefused
from bevforge.domain import Actor
from bevforge.errors import BevForgeError, Forbidden, Invalid, Unavailable
from bevforge.runtime import Runtime
from ui import keypad, session
from ui.controls import tag
from ui.errors import notify_error
from ui.feedback import say
from ui.theme import SEVERITY_ORDER, SEVERITY_SHAPES

ONE_SHOT = 0
Redraw = Callable[[], None] | None


async def ask(title: str, text: str, choices: list[tuple[str, Any, str]], *, note: bool = True) -> tuple[Any, str]:
    """A dialog with an optional note and one button per choice; returns (choice or None, note)."""
    with _stable(), ui.dialog().props("persistent") as dialog, ui.card().classes("bf-confirm"):
        tag(ui.label(title).classes("text-xl font-bold"), "ask-title")
        ui.label(text).classes("bf-detail")
        comment = tag(ui.input("Note (optional)").props("outlined maxlength=500").classes("w-full"),
                      "ask-note") if note else None
        with ui.row().classes("w-full justify-between gap-2"):
            tag(ui.button("CANCEL", on_click=lambda: dialog.submit(None)).classes("bf-btn"), "ask-cancel")
            for label, value, marker in choices:
                tag(ui.button(label, on_click=lambda v=value: dialog.submit(v)).classes("bf-btn bf-control"), marker)
    dialog.open()
    try:
        choice = await dialog
        return choice, (str(comment.value or "").strip() if comment is not None else "")
    finally:
        dialog.delete()


def _stable() -> ui.element:
    """Dialogs hang on the page's layout, not on the pressed button: a list redrawn by an alarm event
    while the dialog is open must not delete the dialog with its row."""
    return ui.context.client.layout


def _refused(what: str, exc: BevForgeError) -> None:
    notify_error(what, exc)


def ack_now(runtime: Runtime, client: Client, alarm_id: int, comment: str | None = None) -> bool:
    actor = session.allowed(client, "operator", "ACK")
    if actor is None:
        return False
    try:
        runtime.alarms.ack(alarm_id, actor, comment or None)
    except AlarmNotFound:
        pass  # already acknowledged and closed elsewhere: nothing left to do
    except (TransitionRefused, Unavailable) as exc:  # Unavailable: the store cannot record it now
        _refused("ACK", exc)
        return False
    return True


async def ack_with_note(runtime: Runtime, client: Client, alarm_id: int, message: str) -> None:
    choice, comment = await ask("Acknowledge", message, [("ACK", True, "ack-confirm")])
    if choice:
        ack_now(runtime, client, alarm_id, comment)


def _attempt(client: Client, role: str, what: str, action: Callable[[Actor], object],
             refusal: str | None = None) -> bool:
    """Run one alarm transition as the actor allowed now; False when nobody may press it.

    A transition the service refuses (already gone, not allowed in this state) is only a warning:
    the attempt still happened, so the screen redraws to show the state that refused it.
    """
    actor = session.allowed(client, role, what)
    if actor is None:
        return False
    try:
        action(actor)
    except (AlarmNotFound, TransitionRefused, Invalid, Forbidden, Unavailable) as exc:  # Unavailable: store fault
        _refused(refusal or what, exc)
    return True


def reset(runtime: Runtime, client: Client, alarm_id: int) -> None:
    _attempt(client, "operator", "RESET", lambda actor: runtime.alarms.reset(alarm_id, actor))


async def shelve(runtime: Runtime, client: Client, rule_id: str, label: str, redraw: Redraw = None) -> None:
    """Timed shelves of the durations configured for the role (`auth.shelve_durations_s`: 15 min, 1 h,
    8 h by default); a one-shot shelf (until it clears) for technicians."""
    actor = session.seated(client)
    durations = permissions.shelve_durations(actor, runtime.config.auth.shelve_durations_s) if actor else ()
    choices = [(shelf_words(seconds), seconds, f"shelve-{seconds:g}") for seconds in durations]
    if session.may(session.seated(client), "technician"):
        choices.append(("ONE-SHOT", ONE_SHOT, "shelve-oneshot"))
    choice, comment = await ask(f"Shelve: {label}",
                                "A shelved alarm is hidden and silent. A timed shelf ends by itself and the alarm "
                                "comes back (needing a new ACK if still active); a one-shot shelf ends when the "
                                "alarm clears.", choices)
    if choice is None:
        return
    if _attempt(client, "technician" if choice == ONE_SHOT else "operator", "SHELVE",
                lambda actor: runtime.alarms.shelve(rule_id, actor, float(choice) or None, comment or None)):
        _done(redraw)


def shelf_words(seconds: float) -> str:
    """A shelf duration as the button says it: 15 MIN, 1 H, 8 H, 90 S."""
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g} H"
    if seconds % 60 == 0:
        return f"{seconds / 60:g} MIN"
    return f"{seconds:g} S"


def unshelve(runtime: Runtime, client: Client, rule_id: str, redraw: Redraw = None) -> None:
    if _attempt(client, "operator", "UNSHELVE", lambda actor: runtime.alarms.unshelve(rule_id, actor)):
        _done(redraw)


async def set_service(runtime: Runtime, client: Client, rule_id: str, in_service: bool, redraw: Redraw = None) -> None:
    if not in_service:
        choice, comment = await ask(f"Out of service: {rule_id}",
                                    "This alarm will not be raised at all until it is returned to service. "
                                    "Say why (e.g. probe being replaced).", [("OUT OF SERVICE", True, "oos-confirm")])
        if not choice:
            return
    else:
        comment = ""
    if _attempt(client, "technician", "RETURN TO SERVICE" if in_service else "OUT OF SERVICE",
                lambda actor: runtime.alarms.set_in_service(rule_id, in_service, actor, comment or None),
                refusal="SERVICE"):
        _done(redraw)


LIMIT_FIELDS = (("limit", "Limit"), ("deadband", "Deadband"), ("on_delay_s", "On-delay"),
                ("off_delay_s", "Off-delay"))


async def change_limits(runtime: Runtime, client: Client, rule_id: str, redraw: Redraw = None) -> None:
    """Limit, deadband, delays and priority of one definition; persisted, journalled and audited.

    Each number is entered on the keypad (ui/keypad.py): a kiosk has no keyboard, and the keypad
    refuses a negative deadband or delay with its reason instead of clamping it.
    """
    point = runtime.alarms.points.get(rule_id)
    if point is None or point.tracker is None:
        say(f"{rule_id} has no limits to change", "warning")
        return
    current = runtime.alarms.limits_of(point)
    endpoint = runtime.plant.endpoints.get(point.endpoint_id) if point.endpoint_id is not None else None
    unit = endpoint.unit if endpoint is not None else ""
    rules = {"limit": keypad.unit_rules(unit), "deadband": keypad.unit_rules(unit, low=0),
             "on_delay_s": keypad.unit_rules("s", low=0), "off_delay_s": keypad.unit_rules("s", low=0)}
    entered: dict[str, Any] = {key: current[key] for key, _ in LIMIT_FIELDS}
    buttons: dict[str, ui.button] = {}

    def shown(key: str) -> str:
        return f"{entered[key]:g} {rules[key].unit}".strip()

    async def pick(key: str, label: str) -> None:
        value = await keypad.enter_number(f"{rule_id}: {label}", rules[key], shown(key), float(entered[key]))
        if value is not None:
            entered[key] = value
            buttons[key].text = shown(key)

    with _stable(), ui.dialog().props("persistent") as dialog, tag(ui.card().classes("bf-confirm"), "limits-dialog"):
        ui.label(f"Change limits: {rule_id}").classes("text-xl font-bold")
        for key, label in LIMIT_FIELDS:
            with ui.row().classes("w-full items-center justify-between no-wrap gap-3"):
                ui.label(label).classes("bf-name")
                buttons[key] = tag(ui.button(shown(key), icon="dialpad",
                                             on_click=lambda k=key, text=label: pick(k, text))
                                   .classes("bf-btn").props("no-caps outline"), f"limits-{key}")
        priority = tag(ui.select({p: f"{SEVERITY_SHAPES[p]} {p.upper()}" for p in SEVERITY_ORDER},
                                 value=current["priority"], label="Priority").classes("w-full"), "limits-priority")
        with ui.row().classes("w-full justify-between"):
            tag(ui.button("CANCEL", on_click=lambda: dialog.submit(None)).classes("bf-btn"), "limits-cancel")
            tag(ui.button("SAVE", on_click=lambda: dialog.submit(True)).classes("bf-btn bf-control"), "limits-save")
    dialog.open()
    try:
        if not await dialog:
            return
        values: dict[str, Any] = dict(entered)
        values["priority"] = priority.value
    finally:
        dialog.delete()
    changes = {}
    for key, value in values.items():
        if value is None or value == current.get(key):
            continue
        if key != "priority" and (not math.isfinite(float(value)) or (key != "limit" and float(value) < 0)):
            say(f"{key}: must be a number ≥ 0", "negative")
            return
        changes[key] = value if key == "priority" else float(value)
    if not changes:
        say("Nothing changed", "info")
        return
    actor = session.allowed(client, "technician", "CHANGE LIMITS")
    if actor is None:
        return
    try:
        old, point = runtime.alarms.change_limits(rule_id, changes, actor)
    except (AlarmNotFound, TransitionRefused) as exc:
        _refused("CHANGE LIMITS", exc)
        return
    new = runtime.alarms.limits_of(point)
    changed = ", ".join(f"{k} {old.get(k)} → {new.get(k)}" for k in changes)
    say(f"{rule_id}: {changed}", "positive")
    _done(redraw)


def _done(redraw: Redraw) -> None:
    if redraw is not None:
        redraw()
