"""The /batches page: the batch record (issue 15 point 5) — every program run, newest first, and one batch in
detail: its steps planned against actual, the operator's actions and the alarms during it, with links to its
CSV export and its printable report.

Read only, for every signed-in user (viewer and up); the list and the detail are the batch recorder's
(`bevforge/programs/batches.py`), so a user sees only the batches of units on their nodes, as on REST.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui
from nicegui.client import Client

from bevforge.domain import Actor
from bevforge.errors import NotFound
from bevforge.runtime import Runtime
from ui import words
from ui.audit_page import ACTION_WORDS
from ui.controls import tag

LIST_LIMIT = 200
PROGRAM_WORDS = {"program.start": "started the program", "program.pause": "paused", "program.resume": "resumed",
                 "program.skip": "skipped a step", "program.back": "went back a step",
                 "program.extend": "extended a step",
                 "program.shorten": "shortened a step", "program.abort": "aborted the program",
                 "program.confirm": "answered a prompt"}


def _col(name: str, label: str, align: str = "left") -> dict[str, str]:
    return {"name": name, "label": label, "field": name, "align": align}


LIST_COLUMNS = [_col("id", "#", "right"), _col("started", "Started (UTC)"), _col("program", "Recipe / program"),
                _col("unitName", "Unit"), _col("startedBy", "Operator"), _col("duration", "Duration", "right"),
                _col("outcome", "Outcome")]
STEP_COLUMNS = [_col("n", "#", "right"), _col("title", "Step"), _col("type", "Type"),
                _col("target", "Target", "right"), _col("planned", "Planned", "right"),
                _col("actual", "Actual", "right"), _col("mean", "Mean", "right"), _col("min", "Min", "right"),
                _col("max", "Max", "right"), _col("inBand", "In band", "right"), _col("outcome", "Outcome")]
ACTION_COLUMNS = [_col("time", "Time (UTC)"), _col("user", "User"), _col("did", "Action"), _col("target", "Target"),
                  _col("change", "Change"), _col("detail", "Detail")]
ALARM_COLUMNS = [_col("raised", "Raised (UTC)"), _col("priority", "Priority"), _col("message", "Message"),
                 _col("cleared", "Cleared (UTC)"), _col("ackedBy", "Acknowledged by")]


def _time(iso: str | None) -> str:
    return "—" if not iso else iso.replace("T", " ").replace("Z", "")[:19]


def _plain(value: Any) -> str:
    return "" if value is None else str(value)


def list_rows(batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"id": b["id"], "started": _time(b["startedAt"]), "program": b.get("recipe") or b["templateName"],
             "unitName": b["unitName"], "startedBy": b.get("startedBy") or "—",
             "duration": words.minutes_text(b.get("durationS")), "outcome": words.batch_outcome(b["outcome"])}
            for b in batches]


def step_rows(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"key": i, "n": s["index"] + 1, "title": s["title"], "type": s["type"],
             "target": words.celsius_text(s["plannedTarget"]) if s["type"] != "set" else _plain(s["plannedTarget"]),
             "planned": words.minutes_text(s["plannedDurationS"]), "actual": words.minutes_text(s["actualDurationS"]),
             "mean": words.celsius_text(s["actualMean"]), "min": words.celsius_text(s["actualMin"]),
             "max": words.celsius_text(s["actualMax"]), "inBand": words.minutes_text(s["inBandS"]),
             "outcome": words.batch_outcome(s["outcome"])} for i, s in enumerate(steps)]


class BatchesView:
    """The list of batches and, for `?batch=<id>`, that batch in detail."""

    def __init__(self, runtime: Runtime, client: Client, actor: Actor, batch_id: int | None) -> None:
        self.runtime = runtime
        self.client = client
        self.actor = actor
        self.batch_id = batch_id
        ui.label("Batches").classes("text-xl font-bold")
        self.summary = tag(ui.label("").classes("bf-detail"), "batches-summary")
        self.table = tag(ui.table(columns=LIST_COLUMNS, rows=[], row_key="id", pagination=20).classes("w-full"),
                         "batches-table")
        self.table.on("rowClick", lambda e: ui.navigate.to(f"/batches?batch={e.args[1]['id']}"))
        self.detail = ui.column().classes("w-full gap-2")

    async def load(self) -> None:
        batches = await self.runtime.programs.batches.list(self.actor, limit=LIST_LIMIT)
        if self.client.is_deleted:
            return
        self.table.rows = list_rows(batches)
        self.table.update()
        self.summary.text = f"{len(batches)} batches, newest first" if batches else \
            "No batches yet: each program run is recorded here."
        if self.batch_id is not None:
            await self.show(self.batch_id)

    async def show(self, batch_id: int) -> None:
        try:
            batch = await self.runtime.programs.batches.get(self.actor, batch_id)
        except NotFound:
            with self.detail:
                tag(ui.label(f"No batch {batch_id} among the units you may see."), "batch-missing")
            return
        if self.client.is_deleted:
            return
        with self.detail:
            tag(ui.label(f"Batch {batch['id']}: {batch.get('recipe') or batch['templateName']}")
                .classes("text-lg font-bold"), "batch-title")
            tag(ui.label(f"{batch['unitName']} · started by {batch.get('startedBy') or '—'} · "
                         f"{_time(batch['startedAt'])} → {_time(batch['endedAt'])} UTC · "
                         f"{words.batch_outcome(batch['outcome'])}").classes("bf-detail"), "batch-header")
            with ui.row().classes("gap-3"):
                tag(ui.link("EXPORT CSV", f"/api/os/batches/{batch['id']}.csv", new_tab=True)
                    .classes("bf-btn"), "batch-csv")
                tag(ui.link("PRINTABLE REPORT", f"/api/os/batches/{batch['id']}/report", new_tab=True)
                    .classes("bf-btn"), "batch-report")
            ui.label("Steps: planned and actual").classes("font-bold")
            tag(ui.table(columns=STEP_COLUMNS, rows=step_rows(batch["steps"]), row_key="key").classes("w-full"),
                "batch-steps")
            ui.label("Operator actions").classes("font-bold")
            tag(ui.table(columns=ACTION_COLUMNS, row_key="key", rows=[
                {"key": i, "time": _time(a["time"]), "user": a["user"],
                 "did": PROGRAM_WORDS.get(a["action"], ACTION_WORDS.get(a["action"], a["action"])),
                 "target": _plain(a["target"]),
                 "change": f"{_plain(a['old'])} → {_plain(a['new'])}" if a["old"] is not None or a["new"] is not None
                 else "", "detail": _plain(a["detail"])} for i, a in enumerate(batch["actions"])]).classes("w-full"),
                "batch-actions")
            ui.label("Alarms").classes("font-bold")
            tag(ui.table(columns=ALARM_COLUMNS, row_key="key", rows=[
                {"key": i, "raised": _time(a["raisedAt"]), "priority": _plain(a["priority"]).upper(),
                 "message": a["message"], "cleared": _time(a["clearedAt"]), "ackedBy": a["ackedBy"] or "—"}
                for i, a in enumerate(batch["alarms"])]).classes("w-full"), "batch-alarms")
