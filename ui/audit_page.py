"""The /audit page (technicians and above): browse the audit journal and export it as CSV.

The journal is append-only (bevforge/audit.py): who, role, station, when (UTC), what, old → new,
result and commandId. Filters are the REST route's (`GET /api/os/audit`): user, action prefix
(e.g. `auth.`, `command.`, `alarm.`) and since.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from nicegui import ui
from nicegui.client import Client

from bevforge import audit
from bevforge.domain import utcnow
from bevforge.runtime import Runtime
from ui.controls import tag

RANGES = {"1 h": timedelta(hours=1), "24 h": timedelta(hours=24), "7 days": timedelta(days=7),
          "30 days": timedelta(days=30), "All": None}
ACTIONS = {"": "All actions", "auth.": "Sign-in / sign-out", "command.": "Commands", "alarm.": "Alarms",
           "user.": "Users", "token.": "API tokens", "config.": "Config"}
COLUMNS = [{"name": n, "label": label, "field": n, "align": "left"} for n, label in (
    ("time", "Time (UTC)"), ("user", "User"), ("role", "Role"), ("station", "Station"), ("action", "Action"),
    ("target", "Target"), ("change", "Old → new"), ("result", "Result"), ("commandId", "Command"),
    ("detail", "Detail"))]
ROW_LIMIT = 1000


def _short(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class AuditView:
    def __init__(self, runtime: Runtime, client: Client) -> None:
        self.runtime = runtime
        self.client = client
        ui.label("Audit journal").classes("text-xl font-bold")
        with ui.row().classes("items-end gap-3 w-full"):
            self.user = tag(ui.input("User").props("outlined clearable").classes("min-w-40"), "audit-user")
            self.action = tag(ui.select(ACTIONS, value="", label="Action").classes("min-w-48"), "audit-action")
            self.range = tag(ui.select(list(RANGES), value="24 h", label="Since").classes("min-w-32"), "audit-range")
            tag(ui.button("SHOW", on_click=self.load).classes("bf-btn"), "audit-show")
            tag(ui.button("EXPORT CSV", on_click=self.export).classes("bf-btn"), "audit-export")
        self.summary = tag(ui.label("").classes("bf-detail"), "audit-summary")
        self.table = tag(ui.table(columns=COLUMNS, rows=[], row_key="id", pagination=50).classes("w-full"),
                         "audit-table")

    async def entries(self, limit: int) -> list[dict[str, Any]]:
        span = RANGES[self.range.value]
        return await self.runtime.audit.query(since=utcnow() - span if span else None,
                                              user=(self.user.value or "").strip() or None,
                                              action=self.action.value or None, limit=limit)

    async def load(self) -> None:
        entries = await self.entries(ROW_LIMIT)
        if self.client.is_deleted:
            return
        self.table.rows = [{**e, "time": (e["time"] or "").replace("T", " ").replace("Z", "")[:23],
                            "target": _short(e["target"]),
                            "change": f"{_short(e['old'])} → {_short(e['new'])}" if e["old"] or e["new"] else "",
                            "detail": _short(e["detail"]), "commandId": e["commandId"] or ""} for e in entries]
        self.table.update()
        more = f" (newest {ROW_LIMIT}; export for all)" if len(entries) == ROW_LIMIT else ""
        self.summary.text = f"{len(entries)} entries{more}"

    async def export(self) -> None:
        entries = await self.entries(100_000)
        stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
        ui.download.content(audit.to_csv(entries).encode(), f"audit_{stamp}.csv", "text/csv")
