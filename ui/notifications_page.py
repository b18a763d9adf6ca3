"""The /notifications page (technicians and above): who is told of alarms, and what became of each message.

The recipients with their Apprise URLs as Apprise's privacy mode prints them (passwords and tokens
elided: bevforge/notify/secrets.py), their quiet hours and how many messages wait for their digest;
a SEND TEST button (audited as `notifications.test`); and the recent deliveries, newest first, with
their state (queued, sending, retrying, sent, failed, quiet, dropped), tries and last error. The
deliveries live in the notification service's memory (the newest 500), so the table is re-read every
REFRESH_S seconds while the page is open — cheap, nothing is asked of the store.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from bevforge.domain import Actor
from bevforge.errors import BevForgeError
from bevforge.runtime import Runtime
from ui.controls import tag
from ui.errors import notify_error

REFRESH_S = 2.0
COLUMNS = [{"name": n, "label": label, "field": n, "align": "left"} for n, label in (
    ("time", "Time (UTC)"), ("recipient", "Recipient"), ("kind", "Kind"), ("priority", "Priority"),
    ("title", "Message"), ("state", "State"), ("attempts", "Tries"), ("lastError", "Last error"))]
COLUMNS[-1]["style"] = "white-space: normal; min-width: 16rem; max-width: 24rem"  # a long reason wraps
RECIPIENT_COLUMNS = [{"name": n, "label": label, "field": n, "align": "left"} for n, label in (
    ("name", "Recipient"), ("urls", "Sent to (privacy form)"), ("quiet", "Quiet hours"), ("held", "Held for digest"),
    ("problems", "Problems"))]


def _time(text: str | None) -> str:
    return (text or "").replace("T", " ").replace("Z", "")[:19]


class NotificationsView:
    def __init__(self, runtime: Runtime, actor: Actor) -> None:
        self.runtime = runtime
        self.actor = actor
        ui.label("Notifications").classes("text-xl font-bold")
        service = runtime.notifications
        if service is None:
            tag(ui.label("Notifications are not configured: add a notifications: section to config.yaml "
                         "(docs/integrations.md)."), "notifications-off").classes("text-lg")
            return
        self.recipients = tag(ui.table(columns=RECIPIENT_COLUMNS, rows=[], row_key="name").classes("w-full"),
                              "notifications-recipients")
        with ui.row().classes("items-end gap-3"):
            names = list(service.recipients)
            self.recipient = tag(ui.select(names, value=names[0], label="Recipient").classes("min-w-48"),
                                 "notifications-recipient")
            tag(ui.button("SEND TEST", on_click=self.send_test).classes("bf-btn"), "notifications-test")
        self.summary = tag(ui.label("").classes("bf-detail"), "notifications-summary")
        self.table = tag(ui.table(columns=COLUMNS, rows=[], row_key="id", pagination=50).classes("w-full"),
                         "notifications-deliveries")
        self.load()
        ui.timer(REFRESH_S, self.load)

    def load(self) -> None:
        service = self.runtime.notifications
        assert service is not None
        status = service.status()
        self.recipients.rows = [self._recipient_row(r) for r in status["recipients"]]
        self.recipients.update()
        self.table.rows = [{**d, "time": _time(d["createdAt"]), "priority": d["priority"] or "",
                            "lastError": d["lastError"] or ""} for d in service.recent(200, self.actor)]
        self.table.update()
        self.summary.text = (f"{status['queued']} waiting to go · {status['escalating']} alarms escalating · "
                             f"{status['dropped']} dropped (queue full)")

    @staticmethod
    def _recipient_row(recipient: dict[str, Any]) -> dict[str, Any]:
        quiet = recipient["quietHours"]
        urls = [url.split("?", 1)[0] for url in recipient["urls"]]  # Apprise's default options left out on screen
        return {"name": recipient["name"], "urls": "\n".join(urls), "held": recipient["held"],
                "quiet": f"{quiet['start']}–{quiet['end']} (still: {', '.join(quiet['allow'])})" if quiet else "—",
                "problems": "; ".join(recipient["problems"])}

    def send_test(self) -> None:
        service = self.runtime.notifications
        assert service is not None
        try:
            service.send_test(self.actor, self.recipient.value)
        except BevForgeError as exc:
            notify_error("Test message", exc)
            return
        ui.notify(f"Test message to {self.recipient.value} queued", type="positive")
        self.load()
