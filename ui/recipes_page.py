"""The /recipes screen: import a recipe file for a unit, review and edit the program it made, start it.

Everything goes through the recipe service (`runtime.recipes`), as the REST routes do: the same checks,
the same audit, the same errors naming the field (said on the header's message line and kept under the
table). The review table edits a working copy of the draft's program: numbers (temperatures, times) on
the keypad, texts (step names, prompts) in text boxes, a prompt step added with + PROMPT, steps removed
with REMOVE. SAVE sends the copy (the
service checks it as it checks a config.yaml template); START asks first, then starts the saved program on
its unit. A viewer sees the drafts and their programs without the controls.
"""

from __future__ import annotations

import copy
from typing import Any

from nicegui import events, ui

from bevforge.domain import Actor
from bevforge.errors import BevForgeError
from bevforge.recipes import guess_format
from bevforge.runtime import Runtime
from ui import keypad, session
from ui.controls import confirm_critical, tag
from ui.feedback import say

# the step keys edited on the keypad: (key, label, unit, low, high, whole)
NUMBERS: tuple[tuple[str, str, str, float | None, float | None, bool], ...] = (
    ("target_c", "Target", "°C", -20.0, 110.0, False),
    ("from_c", "From", "°C", -20.0, 110.0, False),
    ("to_c", "To", "°C", -20.0, 110.0, False),
    ("below_c", "Below", "°C", -20.0, 110.0, False),
    ("minutes", "Time", "min", 0.0, 100_000.0, False),
    ("days", "Time", "days", 0.0, 365.0, False),
)
TEXTS = ("name", "message")
UPLOAD_MAX_BYTES = 1_000_000


def _text_of(value: float) -> str:
    return f"{value:g}"


class RecipesPage:
    """The drafts, the upload, and the review table of the chosen draft."""

    def __init__(self, runtime: Runtime, actor: Actor) -> None:
        self.runtime = runtime
        self.actor = actor
        self.operator = session.may(actor, "operator")
        self.draft: dict[str, Any] | None = None
        self.working: dict[str, Any] | None = None
        self.drafts: list[dict[str, Any]] = []
        self.units = {r.unit.id: r.unit.name for r in runtime.programs.units.values() if self._may_see(r.unit.id)}
        with ui.column().classes("w-full gap-3 p-3"):
            ui.label("Recipes").classes("text-2xl font-bold")
            if self.operator:
                with ui.row().classes("items-center gap-3"):
                    first = next(iter(self.units), None)
                    self.unit = tag(ui.select(self.units, value=first, label="Unit").classes("bf-control min-w-48"),
                                    "recipe-unit")
                    self.upload = tag(ui.upload(label="Upload a BeerXML (.xml) or BeerJSON (.json) file",
                                                auto_upload=True, max_file_size=UPLOAD_MAX_BYTES,
                                                on_upload=self.uploaded).props('accept=".xml,.json,.beerxml"')
                                      .classes("bf-control"), "recipe-upload")
            self.error = tag(ui.label("").classes("bf-message-negative"), "recipe-error")
            self.error.set_visibility(False)
            with ui.row().classes("items-center gap-3"):
                self.choice = tag(ui.select({}, label="Draft", on_change=self._chosen).classes("bf-control min-w-72"),
                                  "recipe-draft")
                self.summary = tag(ui.label(""), "recipe-summary")
            self.table = ui.column().classes("w-full gap-1")
            if self.operator:
                with ui.row().classes("gap-3"):
                    self.save_button = tag(ui.button("SAVE", on_click=self.save).classes("bf-btn"), "recipe-save")
                    self.start_button = tag(ui.button("START", on_click=self.start).classes("bf-btn"),
                                            "recipe-start")
                    self.delete_button = tag(ui.button("DELETE", on_click=self.delete).props("outline")
                                             .classes("bf-btn"), "recipe-delete")

    def _may_see(self, unit_id: str) -> bool:
        try:
            self.runtime.programs.find(self.actor, unit_id)
        except BevForgeError:
            return False
        return True

    # -- loading -----------------------------------------------------------------------------------------

    async def load(self, chosen: int | None = None) -> None:
        self.drafts = await self.runtime.recipes.drafts(self.actor)
        self.choice.options = {d["id"]: f"#{d['id']} {d['name']} ({d['unit']})" for d in self.drafts}
        self.choice.update()
        pick = chosen if chosen is not None else (self.drafts[0]["id"] if self.drafts else None)
        self.choice.value = pick
        self._show(next((d for d in self.drafts if d["id"] == pick), None))

    def _chosen(self, e: events.ValueChangeEventArguments) -> None:
        self._show(next((d for d in self.drafts if d["id"] == e.value), None))

    def _show(self, draft: dict[str, Any] | None) -> None:
        self.draft = draft
        self.working = copy.deepcopy(draft["program"]) if draft else None
        if draft is None:
            self.summary.text = "No recipe imported yet." if not self.drafts else ""
        else:
            r = draft["recipe"] or {}
            self.summary.text = (f"{draft['name']} · {r.get('style') or 'no style'} · {draft['format']} · unit "
                                 f"{self.units.get(draft['unit'], draft['unit'])} · grain {r.get('grain_kg', 0):g} kg"
                                 + (" · RUNNING" if draft["running"] else ""))
        self._draw()

    def _fail(self, exc: BevForgeError) -> None:
        text = exc.message + (f" ({exc.field})" if exc.field else "")
        self.error.text = text
        self.error.set_visibility(True)
        say(text, "negative")

    def _ok(self, text: str) -> None:
        self.error.set_visibility(False)
        say(text, "positive")

    # -- the review table -------------------------------------------------------------------------------

    def _draw(self) -> None:
        self.table.clear()
        if self.working is None:
            return
        with self.table:
            for n, step in enumerate(self.working["steps"]):
                with tag(ui.row().classes("w-full items-center gap-2 bf-recipe-step"), f"recipe-step-{n}"):
                    ui.label(f"{n + 1}").classes("w-8 text-right")
                    ui.label(step["type"].upper()).classes("w-24 font-bold")
                    self._text(n, step, "name", "Step")
                    for key, label, unit, low, high, whole in NUMBERS:
                        if key in step:
                            value = step[key]
                            tag(ui.button(f"{label} {_text_of(value)} {unit}",
                                          on_click=lambda k=key, lb=label, u=unit, lo=low, hi=high, w=whole, i=n:
                                          self._number(i, k, lb, u, lo, hi, w))
                                .props("outline").classes("bf-btn").set_enabled(self.operator),
                                f"recipe-step-{n}-{key}")
                    if "message" in step:
                        self._text(n, step, "message", "Prompt")
                    if self.operator:
                        tag(ui.button("+ PROMPT", on_click=lambda i=n: self._add_prompt(i)).props("flat")
                            .classes("bf-btn"), f"recipe-step-{n}-add-prompt")
                        tag(ui.button("REMOVE", on_click=lambda i=n: self._remove(i)).props("flat")
                            .classes("bf-btn"), f"recipe-step-{n}-remove")
                for a, addition in enumerate(step.get("additions", [])):
                    with tag(ui.row().classes("w-full items-center gap-2 pl-32"), f"recipe-step-{n}-addition-{a}"):
                        tag(ui.button(f"at {_text_of(addition['at_min'])} min before the end",
                                      on_click=lambda i=n, j=a: self._addition_minutes(i, j))
                            .props("outline").classes("bf-btn").set_enabled(self.operator),
                            f"recipe-step-{n}-addition-{a}-at")
                        box = tag(ui.input("Addition", value=addition["message"]).classes("min-w-72"),
                                  f"recipe-step-{n}-addition-{a}-message")
                        box.on_value_change(lambda e, i=n, j=a: self._set_addition(i, j, e.value))
                        box.set_enabled(self.operator)

    def _text(self, n: int, step: dict[str, Any], key: str, label: str) -> None:
        box = tag(ui.input(label, value=step.get(key) or "").classes("min-w-48"), f"recipe-step-{n}-{key}")
        box.on_value_change(lambda e, i=n, k=key: self._set(i, k, e.value))
        box.set_enabled(self.operator)

    def _set(self, n: int, key: str, value: Any) -> None:
        assert self.working is not None
        self.working["steps"][n][key] = value

    def _set_addition(self, n: int, a: int, message: str) -> None:
        assert self.working is not None
        self.working["steps"][n]["additions"][a]["message"] = message

    async def _number(self, n: int, key: str, label: str, unit: str, low: float | None, high: float | None,
                      whole: bool) -> None:
        assert self.working is not None
        present = self.working["steps"][n][key]
        title = f"Step {n + 1} {self.working['steps'][n].get('name') or ''}: {label}"
        value = await keypad.enter_number(title, keypad.unit_rules(unit, low, high, whole),
                                          f"{_text_of(present)} {unit}", present)
        if value is None:
            return
        self.working["steps"][n][key] = float(value)
        self._draw()

    async def _addition_minutes(self, n: int, a: int) -> None:
        assert self.working is not None
        addition = self.working["steps"][n]["additions"][a]
        value = await keypad.enter_number(f"Step {n + 1}: addition {a + 1}", keypad.unit_rules("min", 0, 10_000),
                                          f"{_text_of(addition['at_min'])} min", addition["at_min"])
        if value is None:
            return
        addition["at_min"] = float(value)
        self._draw()

    def _add_prompt(self, n: int) -> None:
        """A new prompt step after step n (its text edited in the table): a check the recipe does not name."""
        assert self.working is not None
        self.working["steps"].insert(n + 1, {"type": "prompt", "name": "Check", "message": "Check and confirm"})
        self._draw()

    def _remove(self, n: int) -> None:
        assert self.working is not None
        del self.working["steps"][n]
        self._draw()

    # -- what the operator does --------------------------------------------------------------------------

    async def uploaded(self, e: events.UploadEventArguments) -> None:
        unit = self.unit.value
        try:
            text = await e.file.text()
        except UnicodeDecodeError:
            self.error.text = "the file is not text (UTF-8)"
            self.error.set_visibility(True)
            return
        try:
            draft = await self.runtime.recipes.import_recipe(self.actor, guess_format(e.file.name, text), text, unit)
        except BevForgeError as exc:
            self._fail(exc)
            return
        finally:
            self.upload.reset()
        self._ok(f"Imported {draft['name']} for {self.units.get(unit, unit)}: review the steps, then SAVE or START")
        await self.load(draft["id"])

    async def save(self) -> None:
        if self.draft is None or self.working is None:
            return
        try:
            draft = await self.runtime.recipes.edit(self.actor, self.draft["id"], self.working)
        except BevForgeError as exc:
            self._fail(exc)
            return
        self._ok(f"Saved {draft['name']}")
        await self.load(draft["id"])

    async def start(self) -> None:
        if self.draft is None:
            return
        if self.working != self.draft["program"]:
            self._fail(BevForgeError("SAVE the changes first: START runs the saved program", field="program"))
            return
        unit = self.units.get(self.draft["unit"], self.draft["unit"])
        if not await confirm_critical(self.draft["name"], f"START on {unit}",
                                      "The program takes the unit's controllers and heats.", "START"):
            return
        try:
            await self.runtime.recipes.start(self.actor, self.draft["id"])
        except BevForgeError as exc:
            self._fail(exc)
            return
        self._ok(f"{self.draft['name']} started on {unit}")
        await self.load(self.draft["id"])

    async def delete(self) -> None:
        if self.draft is None:
            return
        try:
            await self.runtime.recipes.delete(self.actor, self.draft["id"])
        except BevForgeError as exc:
            self._fail(exc)
            return
        self._ok(f"Deleted {self.draft['name']}")
        await self.load()
