"""The alarm journal on screen (every transition with time and user, filters, CSV export) and the
technician's alarm statistics (alarms per 10 minutes, top 10, chattering, stale > 24 h).

Both ask the alarm service, which reads the database after a barrier, so a transition the screen was
just told about is already in what it reads. A node-limited user sees only their nodes' rows. On a central
panel the journal's Source picks a forwarding site instead: its own alarm journal as it forwarded it
(docs/mqtt.md "Store-and-forward"), the entries on this panel's nodes the user sees.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from nicegui import background_tasks, ui
from nicegui.client import Client

from bevforge.alarms import history as alarm_history
from bevforge.domain import Actor, utcnow
from bevforge.runtime import Runtime
from ui.controls import tag
from ui.theme import SEVERITY_SHAPES

log = logging.getLogger(__name__)

RANGES = {"1 h": timedelta(hours=1), "24 h": timedelta(hours=24), "7 days": timedelta(days=7), "All": None}
EVENTS = ("all", "raised", "cleared", "acked", "reset", "shelved", "unshelved", "shelf_expired", "reannunciated",
          "suppressed", "unsuppressed", "out_of_service", "in_service", "limits_changed", "chattering")
COLUMNS = [
    {"name": "time", "label": "Time", "field": "time", "align": "left"},
    {"name": "priority", "label": "Priority", "field": "priority", "align": "left"},
    {"name": "event", "label": "Event", "field": "event", "align": "left"},
    {"name": "message", "label": "Alarm", "field": "message", "align": "left"},
    {"name": "user", "label": "User", "field": "user", "align": "left"},
    {"name": "comment", "label": "Note", "field": "comment", "align": "left"},
    {"name": "alarmId", "label": "#", "field": "alarmId", "align": "right"},
]
ROW_LIMIT = 1000


def visible_rules(runtime: Runtime, actor: Actor) -> Callable[[str], bool] | None:
    """Which rule ids this user may see (None: all), as REST's journal and statistics answer it."""
    return runtime.alarms.key_filter(actor)


def _when(text: str | None) -> str:
    return (text or "").replace("T", " ").replace("Z", " UTC")[:23]


class AlarmHistory:
    """The HISTORY tab: the journal, filtered, newest first; reloaded when alarms change."""

    def __init__(self, runtime: Runtime, client: Client, actor: Actor) -> None:
        self.runtime = runtime
        self.client = client
        self.actor = actor
        self._loading = False
        self._again = False
        allowed = visible_rules(runtime, actor)
        rules = sorted(k for k, p in runtime.alarms.points.items()
                       if p.rule is not None and (allowed is None or allowed(k)))
        sites = {site: f"Site {device.name or site}" for site, device in runtime.config.forwarded_sites().items()}
        with ui.row().classes("items-end gap-3 w-full"):
            # a central panel: this panel's journal, or a forwarding site's own (no source picker elsewhere)
            self.source = tag(ui.select({"": "This panel", **sites}, value="", label="Source",
                                        on_change=self._source_changed).classes("min-w-44"), "hist-source")
            self.source.set_visibility(bool(sites))
            self.range = tag(ui.select(list(RANGES), value="24 h", label="Range", on_change=self.refresh)
                             .classes("min-w-32"), "hist-range")
            self.rule = tag(ui.select(["all", *rules], value="all", label="Alarm", on_change=self.refresh)
                            .classes("min-w-56"), "hist-rule")
            self.event = tag(ui.select(list(EVENTS), value="all", label="Event", on_change=self.refresh)
                             .classes("min-w-40"), "hist-event")
            tag(ui.button("EXPORT CSV", on_click=self.export).classes("bf-btn"), "hist-export")
        self.table = tag(ui.table(columns=COLUMNS, rows=[], row_key="id", pagination=25).classes("w-full"),
                         "hist-table")

    def _filters(self) -> dict[str, Any]:
        span = RANGES[self.range.value]
        return {"since": utcnow() - span if span else None,
                "rule_id": None if self.rule.value == "all" else self.rule.value,
                "event": None if self.event.value == "all" else self.event.value}

    def _source_changed(self) -> None:
        # the alarm picker lists this panel's alarms: a site's journal is filtered by event and range only
        self.rule.value = "all"
        self.rule.set_enabled(not self.source.value)
        self.refresh()

    async def entries(self, limit: int) -> list[dict[str, Any]]:
        if self.source.value:
            return await self.runtime.alarms.site_journal(self.actor, self.source.value, limit=limit,
                                                          **self._filters())
        return await self.runtime.alarms.journal(self.actor, limit=limit, **self._filters())

    def refresh(self) -> None:
        """Reload in the background; alarm bursts fold into one more load, never a queue of them."""
        if self._loading:
            self._again = True
            return
        self._loading = True
        background_tasks.create(self._fill(), name="alarm journal")

    async def _fill(self) -> None:
        try:
            while True:
                self._again = False
                entries = await self.entries(ROW_LIMIT)
                if self.client.is_deleted:
                    return
                self.table.rows = [self._row(e) for e in entries]
                self.table.update()
                if not self._again:
                    return
        except Exception:
            log.exception("alarm journal could not be read")
        finally:
            self._loading = False

    @staticmethod
    def _row(entry: dict[str, Any]) -> dict[str, Any]:
        priority = entry.get("priority") or ""
        return {"id": entry["id"], "time": _when(entry["time"]), "alarmId": entry["alarmId"],
                "priority": f"{SEVERITY_SHAPES.get(priority, '')} {priority.upper()}".strip(),
                "event": entry["event"].replace("_", " ").upper(), "message": entry["message"] or entry["ruleId"],
                "user": entry["user"], "comment": entry["comment"] or ""}

    async def export(self) -> None:
        entries = await self.entries(100_000)
        stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
        site = self.source.value
        ui.download.content(alarm_history.to_csv(entries, site=bool(site)).encode(),
                            f"alarm-journal{'-' + site if site else ''}_{stamp}.csv", "text/csv")


class AlarmStatistics:
    """The STATISTICS tab (technicians): is the alarm system usable? (EEMUA 191 / ISA-18.2 load)."""

    def __init__(self, runtime: Runtime, client: Client, actor: Actor) -> None:
        self.runtime = runtime
        self.client = client
        self.actor = actor
        with ui.row().classes("items-center gap-3"):
            tag(ui.button("REFRESH", on_click=self.load).classes("bf-btn"), "stats-refresh")
            self.headline = tag(ui.label("").classes("font-semibold"), "stats-headline")
        with ui.row().classes("w-full items-start gap-6"):
            with ui.column().classes("gap-1"):
                ui.label("Alarms per 10 minutes (last 24 h)").classes("font-bold")
                self.per10 = tag(ui.table(columns=[
                    {"name": "start", "label": "From (UTC)", "field": "start", "align": "left"},
                    {"name": "count", "label": "Raised", "field": "count", "align": "right"}],
                    rows=[], row_key="start", pagination=12), "stats-per10")
            with ui.column().classes("gap-1"):
                ui.label("Top 10 most frequent").classes("font-bold")
                self.top = tag(ui.table(columns=[
                    {"name": "ruleId", "label": "Alarm", "field": "ruleId", "align": "left"},
                    {"name": "count", "label": "Raised", "field": "count", "align": "right"}],
                    rows=[], row_key="ruleId"), "stats-top10")
            with ui.column().classes("gap-1"):
                ui.label("Chattering (≥ 3 cycles a minute)").classes("font-bold")
                self.chattering = tag(ui.label(""), "stats-chattering")
                ui.label("Stale (active > 24 h)").classes("font-bold mt-4")
                self.stale = tag(ui.label(""), "stats-stale")

    async def load(self) -> None:
        runtime = self.runtime
        stats = await runtime.alarms.statistics(self.actor)
        if self.client.is_deleted:
            return
        self.headline.text = (f"{stats['raisedLast24h']} alarms in 24 h · average {stats['averagePer10Minutes']} "
                              f"per 10 min · peak {stats['peakPer10Minutes']} (flood above "
                              f"{stats['floodThreshold']})")
        self.per10.rows = [{"start": _when(r["start"]), "count": r["count"]} for r in stats["per10Minutes"]]
        self.top.rows = stats["top10"]
        self.per10.update()
        self.top.update()
        self.chattering.text = ", ".join(stats["chattering"]) or "none"
        self.stale.text = "; ".join(f"#{s['alarmId']} {s['message']} since {_when(s['raisedAt'])}"
                                    for s in stats["staleAlarms"]) or "none"
