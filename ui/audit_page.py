"""The /audit page (technicians and above): browse the audit journal and export it as CSV.

The journal is append-only (bevforge/audit.py): who, role, station, when (UTC), what, old → new,
result and commandId. On screen each entry is said in the operator's words (the endpoint's label and
its values as the tiles show them: `V1 HLT → MLT: CLOSED → OPEN`); the CSV export keeps the raw
names, ids and values. Filters are the REST route's (`GET /api/os/audit`): user, action prefix
(e.g. `auth.`, `command.`, `alarm.`) and since. On a central panel a technician without a node limit
may pick a forwarding site as the Source: its own audit journal as it forwarded it, said in its raw
names (the site's endpoints are not this panel's).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from nicegui import ui
from nicegui.client import Client

from bevforge import audit, permissions
from bevforge.domain import Actor, utcnow
from bevforge.runtime import Runtime
from ui import words
from ui.controls import tag

RANGES = {"1 h": timedelta(hours=1), "24 h": timedelta(hours=24), "7 days": timedelta(days=7),
          "30 days": timedelta(days=30), "All": None}
ACTIONS = {"": "All actions", "auth.": "Sign-in / sign-out", "command.": "Commands", "alarm.": "Alarms",
           "user.": "Users", "token.": "API tokens", "config.": "Config"}
COLUMNS = [{"name": n, "label": label, "field": n, "align": "left"} for n, label in (
    ("time", "Time (UTC)"), ("user", "User"), ("role", "Role"), ("station", "Station"), ("did", "Action"),
    ("what", "What"), ("result", "Result"), ("commandId", "Command"), ("detail", "Detail"))]
# What each action is in the operator's words (the raw action stays in the CSV and the API).
ACTION_WORDS = {
    "command.request": "pressed", "command.result": "device answered", "alarm.ack": "acknowledged alarm",
    "alarm.reset": "reset alarm", "alarm.shelve": "shelved alarm", "alarm.unshelve": "unshelved alarm",
    "alarm.remove_from_service": "took alarm out of service", "alarm.return_to_service": "returned alarm to service",
    "alarm.limits": "changed alarm limits", "alarm.silence": "silenced the alarm tone",
    "controller.mode": "controller mode", "controller.output": "controller manual output",
    "controller.tuning": "controller tuning", "controller.autotune.start": "started autotune",
    "controller.autotune.abort": "aborted autotune", "controller.autotune.accept": "accepted autotune gains",
    "controller.autotune.discard": "discarded autotune gains", "auth.login": "signed in", "auth.logout": "signed out",
    "user.create": "added user", "user.update": "changed user",
    "user.disable": "disabled user", "user.enable": "enabled user", "user.setup.refused": "first-run code refused",
    "token.create": "created API token", "token.revoke": "revoked API token",
}
ROW_LIMIT = 1000


def _did(entry: dict[str, Any]) -> str:
    """The action in words; a sign-in that did not succeed says so (`sign-in failed`, `sign-in throttled`)."""
    if entry["action"] == "auth.login" and entry.get("result") not in (None, "ok"):
        return f"sign-in {entry['result']}"
    return ACTION_WORDS.get(entry["action"], entry["action"])


def _short(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class AuditView:
    def __init__(self, runtime: Runtime, client: Client, actor: Actor) -> None:
        self.runtime = runtime
        self.client = client
        self.endpoints = {e.name: e for e in runtime.config.endpoints}
        self.controllers = {c.id: c.name for c in runtime.config.controllers}
        # a site's audit journal is the whole site's: only for a technician without a node limit
        sites = ({site: f"Site {device.name or site}" for site, device in runtime.config.forwarded_sites().items()}
                 if permissions.sees_all_nodes(actor) else {})
        ui.label("Audit journal").classes("text-xl font-bold")
        with ui.row().classes("items-end gap-3 w-full"):
            self.source = tag(ui.select({"": "This panel", **sites}, value="", label="Source").classes("min-w-44"),
                              "audit-source")
            self.source.set_visibility(bool(sites))
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
        filters: dict[str, Any] = {"since": utcnow() - span if span else None,
                                   "user": (self.user.value or "").strip() or None,
                                   "action": self.action.value or None, "limit": limit}
        if self.source.value:
            return await self.runtime.audit.site_query(self.source.value, **filters)
        return await self.runtime.audit.query(**filters)

    async def load(self) -> None:
        entries = await self.entries(ROW_LIMIT)
        if self.client.is_deleted:
            return
        self.table.rows = [{**e, "time": (e["time"] or "").replace("T", " ").replace("Z", "")[:23],
                            "did": _did(e), "what": self.what(e),
                            "detail": _short(e["detail"]), "commandId": e["commandId"] or ""} for e in entries]
        self.table.update()
        more = f" (newest {ROW_LIMIT}; export for all)" if len(entries) == ROW_LIMIT else ""
        self.summary.text = f"{len(entries)} entries{more}"

    def what(self, entry: dict[str, Any]) -> str:
        """The target and change as the screens say them: `V1 HLT → MLT: CLOSED → OPEN`, `HLT temperature
        HIHI`, `Mash temperature (RIMS): off → auto`; raw names and values when nothing better is known."""
        target, old, new = entry["target"], entry["old"], entry["new"]
        local = "site" not in entry  # a site's entry names the site's endpoints, not this panel's
        endpoint = self.endpoints.get(target) if isinstance(target, str) and local else None
        if endpoint is not None:
            def shown(value: Any) -> str:
                return words.value_text(endpoint, value) if isinstance(value, bool | int | float) else _short(value)
            name = endpoint.display_name
        else:
            def shown(value: Any) -> str:
                return _short(value)
            name = self._name(entry["action"], target) if local else _short(target)
        change = f"{shown(old)} → {shown(new)}" if old is not None or new is not None else ""
        return f"{name}: {change}" if name and change else name or change

    def _name(self, action: str, target: Any) -> str:
        if not isinstance(target, str):
            return _short(target)
        if action.startswith("controller."):
            return self.controllers.get(target, target)
        if action.startswith("alarm."):
            point = self.runtime.alarms.points.get(target)
            if point is not None and point.endpoint_id in self.runtime.plant.endpoints:
                return f"{self.runtime.plant.endpoints[point.endpoint_id].display_name} {point.kind}"
        return target

    async def export(self) -> None:
        entries = await self.entries(100_000)
        stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
        site = self.source.value
        ui.download.content(audit.to_csv(entries, site=bool(site)).encode(),
                            f"audit{'-' + site if site else ''}_{stamp}.csv", "text/csv")
