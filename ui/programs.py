"""Programs on the screens: the Programs page, the prompt dialog on every page, the program line on the panel.

- `ProgramsPage` (`/programs`, `/programs/{unit}`): per unit the steps with the current one highlighted,
  the current step's countdown in digits readable from two metres, its status in words, the open or next
  prompt, the program's message, and START / PAUSE / RESUME / SKIP / BACK / −5 MIN / +5 MIN / ABORT for
  whom may run the unit (abort asks first through the shared `confirm_critical`).
- `PromptDialog` (drawn by the shared layout on every page): while a unit this station sees waits for an
  operator (a `prompt` step, a boil's addition, a transfer's confirmation, or the question a brewhouse
  program asks after a restart) a dialog says which unit and what, with the kiosk's tone; CONFIRM (after
  a restart: RESUME / RESTART STEP / ABORT) for whom may run the unit, CLOSE for a viewer. It is drawn
  from the pushed frames, so an answer given on one screen (or through the REST API) closes it on all.
- `TileProgramLines`: the running step and its time left on the faceplate of each unit's first
  controller on the Control Panel ("Mash rest 2 · 42:10").

Every action calls the `ProgramService` as the REST API does (role, node, audit and state checks live
there); a refusal goes to the header's message line (`ui/errors.py`). Everything is updated explicitly
from the `program` frames the page's LiveView hands over (≤ 5 a second), never bound or polled.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui
from nicegui.client import Client

from bevforge import permissions
from bevforge.domain import Actor
from bevforge.errors import BevForgeError
from bevforge.runtime import Runtime
from ui import session
from ui.controls import confirm_critical, tag
from ui.errors import notify_error
from ui.feedback import say

EXTEND_MIN = 5
ACTIVE = ("running", "paused")

# program state → (shape + word, CSS modifier): grey when normal; an abnormal state has a shape and a word
STATE_WORDS: dict[str, tuple[str, str]] = {
    "idle": ("IDLE", "normal"), "running": ("RUNNING", "normal"), "paused": ("‖ PAUSED", "held"),
    "completed": ("✔ COMPLETED", "normal"), "aborted": ("■ ABORTED", "notice"),
}


def countdown(seconds: float | None) -> str:
    """Time left as the countdown shows it: mm:ss, or h:mm:ss from an hour on (whole seconds, rounded up, so
    00:00 is shown only when the time is up); `--:--` for a step without a timer."""
    if seconds is None:
        return "--:--"
    total = max(0, math.ceil(seconds - 1e-6))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def step_word(frame: dict[str, Any]) -> tuple[str, str]:
    """The current step's status in the operator's words, and its CSS modifier (abnormal ones not grey)."""
    step = frame.get("step")
    if step is None:
        return "", "normal"
    status = step.get("status") or ""
    if frame["state"] == "paused":
        return f"‖ PAUSED · {step['name']}", "held"
    if frame["prompts"] or status.startswith("waiting for the operator"):
        return f"? WAITING FOR OPERATOR · {status}", "notice"
    if status.startswith("timer stopped"):
        return f"■ PAUSED, OUT OF BAND · {status}", "held"
    if "out of band" in status:
        return f"▲ OUT OF BAND · {status}", "notice"
    if status.startswith("heating"):
        return f"HEATING · {status}", "normal"
    if status.startswith("ramping"):
        return f"RAMPING · {status}", "normal"
    if status.startswith("holding") or status == "boiling":
        return f"IN BAND · {status}", "normal"
    return status.upper(), "normal"


def restart_question(frame: dict[str, Any]) -> bool:
    """Whether the unit's program came back paused after a restart and asks resume / restart step / abort."""
    return frame["state"] == "paused" and bool(frame.get("resumeQuestion"))


def visible_units(runtime: Runtime, actor: Actor) -> list[str]:
    """The program units this user sees (one of whose controllers' nodes is theirs)."""
    return [uid for uid, run in runtime.programs.units.items() if permissions.may_see_nodes(actor, run.nodes)]


def may_run(runtime: Runtime, actor: Actor, unit_id: str) -> bool:
    """Whether this user gets the unit's buttons: an operator with every node of the unit (the service's rule)."""
    run = runtime.programs.units[unit_id]
    return permissions.has_role(actor, permissions.OPERATOR) and \
        all(permissions.may_see_node(actor, node) for node in run.nodes)


def tile_line(frame: dict[str, Any]) -> str:
    """The running step and its time left for a panel tile: "Mash rest 2 · 42:10" (empty when none runs)."""
    step = frame.get("step")
    if frame["state"] not in ACTIVE or step is None:
        return ""
    left = countdown(step["remainingS"]) if step["remainingS"] is not None else (
        "WAITING FOR OPERATOR" if frame["prompts"] else (step.get("status") or ""))
    paused = "‖ PAUSED · " if frame["state"] == "paused" else ""
    return f"{paused}{step['name']} · {left}"


def _set_text(label: ui.label, text: str) -> None:
    if label.text != text:
        label.text = text


def _set_css(element: ui.element, prefix: str, css: str, last: str) -> str:
    if css != last:
        if last:
            element.classes(remove=f"{prefix}{last}")
        element.classes(add=f"{prefix}{css}")
    return css


class ProgramActions:
    """One screen's program actions: who asks (the session's present user), the service call, the outcome."""

    def __init__(self, runtime: Runtime, client: Client) -> None:
        self.runtime = runtime
        self.client = client

    async def act(self, what: str, call: Callable[..., Awaitable[dict[str, Any]]], *args: Any) -> bool:
        """Call a `ProgramService` action as the signed-in user; say what came of it."""
        actor = session.allowed(self.client, "operator", what)
        if actor is None:
            return False
        try:
            await call(actor, *args)
        except BevForgeError as exc:
            notify_error(what, exc)
            return False
        say(f"{what}: done", "positive")
        return True

    async def restart_step(self, unit_id: str) -> bool:
        """The restart question's RESTART STEP: the step from its beginning (BACK), then on (RESUME)."""
        run = self.runtime.programs.units[unit_id]
        return await self.act(f"{run.unit.name}: restart the step", self.runtime.programs.back, unit_id) and \
            await self.act(f"{run.unit.name}: resume", self.runtime.programs.resume, unit_id)

    async def abort(self, unit_id: str) -> bool:
        """ABORT, after the shared critical confirmation (current state → ABORTED)."""
        run = self.runtime.programs.units[unit_id]
        warning = ("The program stops for good; the brewhouse's controllers are switched off." if run.unit.kind ==
                   "brewhouse" else "The program stops for good; the fermenter keeps its present setpoint.")
        name = f"{run.unit.name}: {run.template.name if run.template else 'program'}"
        if not await confirm_critical(name, f"{run.state.value.upper()} → ABORTED", warning, "CONFIRM ABORT"):
            return False
        return await self.act(f"{run.unit.name}: abort", self.runtime.programs.abort, unit_id)


class UnitView:
    """One unit on the Programs page."""

    def __init__(self, runtime: Runtime, actions: ProgramActions, actor: Actor, unit_id: str) -> None:
        self.runtime = runtime
        self.actions = actions
        self.uid = uid = unit_id
        run = runtime.programs.units[unit_id]
        self.name = run.unit.name
        self.steps_of: tuple[Any, ...] | None = None
        self.step_rows: list[ui.label] = []
        self._state_css = self._status_css = ""
        self.buttons: dict[str, ui.button] = {}
        self.frame: dict[str, Any] | None = None
        with tag(ui.card().classes("bf-tile bf-program w-full"), f"prog-unit-{uid}"):
            with ui.row().classes("w-full items-center gap-3"):
                ui.label(self.name).classes("bf-tile-title")
                self.state = tag(ui.label("").classes("bf-fp-state"), f"prog-state-{uid}")
                self.template = tag(ui.label("").classes("bf-detail"), f"prog-template-{uid}")
            with ui.row().classes("bf-prog-body w-full no-wrap items-start gap-4"):
                self.steps = tag(ui.column().classes("bf-prog-steps gap-1"), f"prog-steps-{uid}")
                with ui.column().classes("grow gap-1"):
                    self.step = tag(ui.label("").classes("bf-prog-step"), f"prog-step-{uid}")
                    self.countdown = tag(ui.label("--:--").classes("bf-countdown"), f"prog-countdown-{uid}")
                    self.status = tag(ui.label("").classes("bf-prog-status"), f"prog-status-{uid}")
                    self.prompt = tag(ui.label("").classes("bf-prog-prompt"), f"prog-prompt-{uid}")
                    self.message = tag(ui.label("").classes("bf-detail bf-prog-message"), f"prog-message-{uid}")
            if may_run(runtime, actor, uid):  # a viewer gets no controls at all, not disabled ones
                self._controls()

    def _controls(self) -> None:
        uid, programs = self.uid, self.runtime.programs
        templates = {t.id: t.name for t in programs.templates.values() if t.unit == uid}
        act = self.actions.act
        with ui.row().classes("w-full items-center gap-2"):
            self.choice = tag(ui.select(templates, value=next(iter(templates), None), label="Program")
                              .classes("bf-prog-choice"), f"prog-choice-{uid}")

            def add(key: str, label: str, handler: Callable[[], Awaitable[Any]], css: str = "") -> None:
                self.buttons[key] = tag(ui.button(label, on_click=handler).classes(f"bf-btn bf-control {css}"),
                                        f"prog-{key}-{uid}")

            add("start", "START", lambda: act(f"{self.name}: start {self.choice.value}", programs.start_program,
                                              uid, self.choice.value))
            add("pause", "PAUSE", lambda: act(f"{self.name}: pause", programs.pause, uid))
            add("resume", "RESUME", lambda: act(f"{self.name}: resume", programs.resume, uid))
            add("back", "BACK", lambda: act(f"{self.name}: back", programs.back, uid))
            add("skip", "SKIP", lambda: act(f"{self.name}: skip", programs.skip, uid))
            add("shorten", f"−{EXTEND_MIN} MIN", lambda: act(f"{self.name}: −{EXTEND_MIN} min", programs.extend, uid,
                                                             -EXTEND_MIN))
            add("extend", f"+{EXTEND_MIN} MIN", lambda: act(f"{self.name}: +{EXTEND_MIN} min", programs.extend, uid,
                                                            EXTEND_MIN))
            add("abort", "ABORT", lambda: self.actions.abort(uid), "bf-btn-stop")

    def show(self, frame: dict[str, Any]) -> None:
        self.frame = frame
        state = frame["state"]
        word, css = STATE_WORDS.get(state, (state.upper(), "notice"))
        _set_text(self.state, word)
        self._state_css = _set_css(self.state, "bf-prog-state-", css, self._state_css)
        _set_text(self.template, frame["templateName"] or "no program")
        self._draw_steps(frame)
        step = frame["step"]
        current = step["index"] if step is not None else None
        for i, row in enumerate(self.step_rows):
            name = frame["steps"][i]["name"]
            text = f"{'▶' if i == current else ' '} {i + 1}. {name}"
            _set_text(row, text)
            if i == current and "bf-step-current" not in row.classes:
                row.classes(add="bf-step-current")
            elif i != current and "bf-step-current" in row.classes:
                row.classes(remove="bf-step-current")
            done = (current is not None and i < current) or state == "completed"
            if done != ("bf-step-done" in row.classes):
                row.classes(**{"add" if done else "remove": "bf-step-done"})
        _set_text(self.step, f"STEP {step['index'] + 1} OF {len(frame['steps'])} · {step['name']}" if step else
                  {"completed": "program completed", "aborted": "program aborted"}.get(state, "no step running"))
        _set_text(self.countdown, countdown(step["remainingS"]) if step is not None else "--:--")
        status, status_css = step_word(frame)
        _set_text(self.status, status)
        self._status_css = _set_css(self.status, "bf-prog-status-", status_css, self._status_css)
        _set_text(self.prompt, self._prompt_text(frame))
        _set_text(self.message, frame["message"] or "")
        self.message.set_visibility(bool(frame["message"]))
        self._enable(frame)

    def _prompt_text(self, frame: dict[str, Any]) -> str:
        """The open prompt(s), else the next prompt of the program (a later `prompt` step, or the current boil's
        next addition)."""
        if frame["prompts"]:
            return "PROMPT: " + " · ".join(p["message"] for p in frame["prompts"])
        run = self.runtime.programs.units[self.uid]
        template, step = run.template, frame["step"]
        if template is None or step is None or template.id != frame["templateId"]:
            return ""
        current = template.steps[step["index"]]
        if current.type == "boil" and current.additions and step["remainingS"] is not None:
            left_min = step["remainingS"] / 60.0
            coming = sorted((a for a in current.additions if a.at_min * 60.0 < step["remainingS"]),
                            key=lambda a: -a.at_min)
            if coming:
                a = coming[0]
                return f"next: {a.message} in {countdown((left_min - a.at_min) * 60.0)}"
        for later in template.steps[step["index"] + 1:]:
            if later.type == "prompt":
                return f"next: {later.title}: {later.message or ''}".rstrip(": ")
        return ""

    def _draw_steps(self, frame: dict[str, Any]) -> None:
        shape = (frame["templateId"], tuple((s["name"], s["type"]) for s in frame["steps"]))
        if shape == self.steps_of:
            return
        self.steps_of = shape
        self.steps.clear()
        self.step_rows = []
        with self.steps:
            for i, s in enumerate(frame["steps"]):
                row = tag(ui.label(f"  {i + 1}. {s['name']}").classes("bf-prog-step-row"), f"prog-step-{self.uid}-{i}")
                row.props(f'title="{s["type"]}"')
                self.step_rows.append(row)

    def _enable(self, frame: dict[str, Any]) -> None:
        if not self.buttons:
            return
        state, step = frame["state"], frame["step"]
        active = state in ACTIVE
        timed = step is not None and step["remainingS"] is not None
        wanted = {"start": not active and bool(self.choice.options), "pause": state == "running",
                  "resume": state == "paused", "back": active, "skip": active, "shorten": active and timed,
                  "extend": active and timed, "abort": active}
        for key, button in self.buttons.items():
            if button.enabled != wanted[key]:
                button.set_enabled(wanted[key])
        if self.choice.enabled == active:
            self.choice.set_enabled(not active)


class ProgramViewSink:
    """A LiveView sink that only cares about program frames: telemetry, command and alarm events pass by."""

    def telemetry(self, frames: dict[int, dict[str, Any]]) -> None:
        pass

    def command(self, payload: dict[str, Any]) -> None:
        pass

    def alarms(self, payloads: list[dict[str, Any]]) -> None:
        pass


class ProgramsPage(ProgramViewSink):
    """The Programs screen: one `UnitView` per unit shown (all this user sees, or the one asked for)."""

    def __init__(self, runtime: Runtime, client: Client, actor: Actor, unit_id: str | None = None,
                 suffix: str = "") -> None:
        self.runtime = runtime
        self.actor = actor
        units = visible_units(runtime, actor)
        if unit_id is not None:
            units = [u for u in units if u == unit_id]  # a unit of nodes not theirs looks missing
        actions = ProgramActions(runtime, client)
        self.views: dict[str, UnitView] = {}
        if not units:
            tag(ui.label(f"No program unit {unit_id!r}." if unit_id is not None else
                         "No program unit to show (programs: in the config, docs/config.md).")
                .classes("text-lg"), "prog-none")
        if unit_id is None and len(units) > 1:
            with ui.row().classes("gap-1"):
                for uid in units:
                    name = runtime.programs.units[uid].unit.name
                    tag(ui.button(name, on_click=lambda u=uid: ui.navigate.to(f"/programs/{u}{suffix}"))
                        .props("flat").classes("bf-btn"), f"prog-open-{uid}")
        with ui.column().classes("w-full gap-3"):
            for uid in units:
                self.views[uid] = UnitView(runtime, actions, actor, uid)

    def resync(self) -> None:
        for uid, view in self.views.items():
            view.show(self.runtime.programs.frame(self.runtime.programs.units[uid]))

    def programs(self, frames: dict[str, dict[str, Any]]) -> None:
        for uid, frame in frames.items():
            view = self.views.get(uid)
            if view is not None:
                view.show(frame)


class PromptDialog(ProgramViewSink):
    """The open prompts of every unit this station sees, on every page (a LiveView sink)."""

    def __init__(self, runtime: Runtime, client: Client, actor: Actor, annunciator: Any = None) -> None:
        self.runtime = runtime
        self.client = client
        self.actor = actor
        self.annunciator = annunciator
        self.units = visible_units(runtime, actor)
        self.actions = ProgramActions(runtime, client)
        self.frames: dict[str, dict[str, Any]] = {}
        self.shown: tuple[Any, ...] = ()
        self.dismissed: set[Any] = set()
        with ui.dialog().props("persistent") as self.dialog, \
                tag(ui.card().classes("bf-prompt-dialog"), "prompt-dialog"):
            ui.label("? OPERATOR PROMPT").classes("text-2xl font-bold")
            self.body = ui.column().classes("w-full gap-3")
            with ui.row().classes("w-full justify-end gap-2"):
                if annunciator is not None:  # the kiosk's tone: silence it here without answering
                    annunciator.mirror("prompt-silence")
                if not all(may_run(runtime, actor, uid) for uid in self.units):  # a prompt they cannot answer
                    tag(ui.button("CLOSE", on_click=self._dismiss).classes("bf-btn"), "prompt-close")

    def _open(self) -> list[tuple[str, str, Any]]:
        """(unit, kind, detail) of every open question: ("prompt", the prompt) or ("restart", None)."""
        out: list[tuple[str, str, Any]] = []
        for uid in self.units:
            frame = self.frames.get(uid)
            if frame is None:
                continue
            if restart_question(frame):
                out.append((uid, "restart", None))
            for prompt in frame["prompts"]:
                out.append((uid, "prompt", prompt))
        return out

    def _key(self, item: tuple[str, str, Any]) -> tuple[Any, ...]:
        uid, kind, prompt = item
        return (uid, kind, prompt["step"], prompt["key"]) if prompt else (uid, kind, self.frames[uid]["message"])

    def _dismiss(self) -> None:
        self.dismissed.update(self.shown)
        self.dialog.close()

    def resync(self) -> None:
        programs = self.runtime.programs
        self.frames = {uid: programs.frame(programs.units[uid]) for uid in self.units}
        self._draw()

    def programs(self, frames: dict[str, dict[str, Any]]) -> None:
        changed = False
        for uid, frame in frames.items():
            if uid in self.units:
                self.frames[uid] = frame
                changed = True
        if changed:
            self._draw()

    def _draw(self) -> None:
        items = self._open()
        keys = tuple(self._key(item) for item in items)
        if keys != self.shown:
            self.shown = keys
            self.body.clear()
            with self.body:
                for item in items:
                    self._item(*item)
        wanted = set(keys) - self.dismissed
        if wanted and not self.dialog.value:
            self.dialog.open()
        elif not wanted and self.dialog.value:
            self.dialog.close()
        self.dismissed &= set(keys)
        if self.annunciator is not None:
            self.annunciator.prompts(set(keys))

    def _item(self, uid: str, kind: str, prompt: dict[str, Any] | None) -> None:
        frame = self.frames[uid]
        programs = self.runtime.programs
        act, name = self.actions.act, frame["name"]
        operator = may_run(self.runtime, self.actor, uid)
        step = frame["step"]
        with tag(ui.column().classes("bf-prompt-item w-full gap-1"), f"prompt-{uid}-{kind}"):
            where = f"{name} · {frame['templateName'] or ''}" + (f" · step {step['index'] + 1}: {step['name']}"
                                                                   if step else "")
            ui.label(where).classes("bf-detail")
            if prompt is not None:
                text = ("▲ OVERDUE · " if prompt["overdue"] else "") + prompt["message"]
                tag(ui.label(text).classes("text-2xl font-bold"), f"prompt-text-{uid}-{prompt['key']}")
                if operator:
                    tag(ui.button("CONFIRM", on_click=lambda: act(f"{name}: confirm {prompt['message']!r}",
                                                                  programs.confirm, uid, prompt["step"],
                                                                  prompt["key"]))
                        .classes("bf-btn bf-control"), f"prompt-confirm-{uid}-{prompt['key']}")
                return
            tag(ui.label(frame["message"] or "").classes("text-xl font-bold"), f"prompt-text-{uid}-restart")
            if operator:
                with ui.row().classes("gap-2"):
                    tag(ui.button("RESUME", on_click=lambda: act(f"{name}: resume", programs.resume, uid))
                        .classes("bf-btn bf-control"), f"prompt-resume-{uid}")
                    tag(ui.button("RESTART STEP", on_click=lambda: self.actions.restart_step(uid))
                        .classes("bf-btn bf-control"), f"prompt-restart-{uid}")
                    tag(ui.button("ABORT", on_click=lambda: self.actions.abort(uid))
                        .classes("bf-btn bf-control bf-btn-stop"), f"prompt-abort-{uid}")


class TileProgramLines(ProgramViewSink):
    """On the Control Panel: the running step and its time left on the faceplate of each unit's first
    controller (a sink of its own beside the panel, so the tiles and faceplates stay as they are)."""

    def __init__(self, runtime: Runtime, actor: Actor, faceplates: dict[str, Any]) -> None:
        self.runtime = runtime
        self.lines: dict[str, ui.label] = {}
        for uid in visible_units(runtime, actor):
            first = runtime.programs.units[uid].unit.controllers[0]
            faceplate = faceplates.get(first)
            if faceplate is None:
                continue
            with faceplate.card:
                line = tag(ui.label("").classes("bf-row bf-tile-program"), f"tile-program-{uid}")
                line.set_visibility(False)
                self.lines[uid] = line

    def _show(self, uid: str, frame: dict[str, Any]) -> None:
        line = self.lines[uid]
        text = tile_line(frame)
        _set_text(line, text)
        if line.visible != bool(text):
            line.set_visibility(bool(text))

    def resync(self) -> None:
        programs = self.runtime.programs
        for uid in self.lines:
            self._show(uid, programs.frame(programs.units[uid]))

    def programs(self, frames: dict[str, dict[str, Any]]) -> None:
        for uid, frame in frames.items():
            if uid in self.lines:
                self._show(uid, frame)
