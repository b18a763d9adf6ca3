"""The technician's RELOAD CONFIG: apply the edited config file without a restart, from the /audit page.

It calls the same core as `POST /api/os/config/reload` (bevforge/reload.py) and shows its answer on
the page itself, not in a toast that fades: what changed and which removed outputs were put safe, or
every problem as `file:line: field: message` with "nothing was changed". The answer stays until the
next press; every screen redraws by itself once a reload is applied (ui/live.py, the `config` frame).
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from bevforge.domain import Actor
from bevforge.errors import BevForgeError
from bevforge.runtime import Runtime
from ui.controls import tag


def change_lines(answer: dict[str, Any]) -> list[str]:
    """An applied reload's answer in lines a technician reads ("endpoints removed: 22")."""
    lines = [f"{section} {kind}: {', '.join(map(str, ids))}"
             for section, kinds in answer.get("changes", {}).items() for kind, ids in kinds.items()]
    for command in answer.get("commands", []):
        lines.append(f"{command['name']} → safe value: {command['status']}"
                     + (f" ({command['reason']})" if command.get("reason") else ""))
    return lines or ["no change: the file is the one running"]


class ReloadPanel:
    """RELOAD CONFIG and the last answer, for technicians and above (the page checks the role)."""

    def __init__(self, runtime: Runtime, actor: Actor) -> None:
        self.runtime = runtime
        self.actor = actor
        with ui.card().classes("w-full"):
            with ui.row().classes("items-center gap-3"):
                ui.label(f"Config file: {runtime.config_path or '(none: started without a file)'}").classes(
                    "text-base")
                self.button = tag(ui.button("RELOAD CONFIG", on_click=self.reload).props("outline"),
                                  "config-reload")
            self.status = tag(ui.label(""), "config-reload-status")
            self.details = ui.column().classes("gap-0")
        self.render(runtime.reloader.last)

    async def reload(self) -> None:
        self.button.disable()
        try:
            await self.runtime.reloader.reload(self.actor, origin="screen")
        except BevForgeError:
            pass  # the refusal is the reloader's `last`, shown below like an answer
        finally:
            self.button.enable()
        self.render(self.runtime.reloader.last)

    def render(self, last: dict[str, Any] | None) -> None:
        """The last reload's outcome (from this screen, the API or SIGHUP): it outlives the redraw an
        applied reload causes, so the technician still reads what changed."""
        self.details.clear()
        if last is None:
            self.status.set_text("")
            return
        refused = last["status"] == "refused"
        if refused:
            headline = "Not applied, the plant runs on as before — " + last["message"].split("; nothing")[0]
            lines = last.get("problems") or []
        else:
            headline = "Applied" if last["status"] == "applied" else "Unchanged"
            headline += f" (sha256 {last['configHash'][:12]})"
            lines = change_lines(last)
        self.status.set_text(f"Last reload: {headline}")
        self.status.classes(replace="text-negative font-bold" if refused else "font-bold")
        with self.details:
            for line in lines:
                tag(ui.label(line).classes("font-mono text-sm"), "config-reload-line")
