"""The header's message line: what this screen's person needs to hear now, in the page's own flow.

Toasts (Quasar notifications) float over the page; at 1024×600 they covered the very buttons the
operator needed next. So the screens' feedback — a command confirmed, failed or refused, a refusal
of the core — goes to one line in the header instead (`say`), and so do the alerts every screen is
told about (a command an interlock refused, priority `alert`: ui/alarms.py). The line never covers a
control: it is part of the header, one line high, the newest message replacing the last, and it
empties itself after a while. What must stay (a failure's reason, an interlock's refusal) also
stays on the output's own line on its tile.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from nicegui import context, ui
from nicegui.client import Client

from bevforge import permissions
from bevforge.domain import Actor, Severity

SHOWN_S = {"positive": 4.0, "info": 6.0, "warning": 10.0, "negative": 10.0, "alert": 10.0}
SHAPES = {"positive": "✔", "info": "●", "warning": "▲", "negative": "✖", "alert": "○"}

_lines: dict[str, MessageLine] = {}  # client id → the message line of its page


class MessageLine:
    """One line in the header; also a LiveView sink for the alerts this screen's user may see."""

    def __init__(self, client: Client, actor: Actor) -> None:
        self.client = client
        self.actor = actor
        self.until = 0.0
        self.kind = ""
        self.label = ui.label("").classes("bf-message-line").mark("message-line").props('data-testid="message-line"')
        self.label.set_visibility(False)
        _lines[client.id] = self
        client.on_delete(lambda: _lines.pop(client.id, None))
        ui.timer(1.0, self._expire)

    def say(self, text: str, kind: str = "info") -> None:
        shape = SHAPES.get(kind, "●")
        if kind != self.kind:
            if self.kind:
                self.label.classes(remove=f"bf-message-{self.kind}")
            self.label.classes(add=f"bf-message-{kind}")
            self.kind = kind
        self.label.text = f"{shape} {text}"
        self.label.props(f'title="{_attribute(self.label.text)}"')  # the whole text, if the line cuts it
        self.label.set_visibility(True)
        self.until = time.monotonic() + SHOWN_S.get(kind, 6.0)

    # -- LiveView sink: alerts ------------------------------------------------------------------

    def telemetry(self, frames: dict[int, dict[str, Any]]) -> None:
        pass

    def command(self, payload: dict[str, Any]) -> None:
        pass

    def resync(self) -> None:
        pass  # an alert is an event, not a standing condition: nothing to redraw from the present

    def alarms(self, payloads: list[dict[str, Any]]) -> None:
        for payload in reversed(payloads):  # the newest alert this screen's user may see
            if payload.get("severity") == Severity.ALERT.value and payload.get("event") == "raised" \
                    and permissions.may_see_node(self.actor, payload.get("node")):
                self.say(f"ALERT {_local(payload.get('raisedAt'))} {payload['message']}", "alert")
                return

    def _expire(self) -> None:
        if self.label.visible and time.monotonic() >= self.until:
            self.label.set_visibility(False)


def say(text: str, kind: str = "info") -> None:
    """Tell the person at the current screen: on its header line (a page without one: a toast)."""
    client = context.client
    line = _lines.get(client.id)
    if line is None:
        ui.notify(text, type=kind if kind != "alert" else "info", position="top-right")
        return
    line.say(text, kind)


def _local(raised: Any) -> str:
    if not isinstance(raised, str):
        return ""
    return datetime.fromisoformat(raised.replace("Z", "+00:00")).astimezone().strftime("%H:%M:%S")


def _attribute(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;")
