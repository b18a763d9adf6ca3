"""The batch record (issue 15 point 5): each program run is a batch, kept for the brewer's paperwork.

The program service calls the recorder at its transitions — a program started (`started`), a step left
(`leaving`, with where the program goes next: the recorder tells done, skipped and restarted apart), a step
entered or the program completed (`moved`), a program aborted (`ended`). Each call is one write on the DB
writer thread (`store/batch_rows.py`), so a batch survives a restart as the program does: the open batch and
its open step are found again in the store.

Per step the record keeps the plan (title, type, target, band, duration from the template) against what
happened: the process-clock start, end and duration, and the mean, minimum, maximum and time in band of the
step's process value (its controller's input; a chill's endpoint) computed from the stored telemetry history
when the step ends. The operator's actions (audit rows about the unit, its controllers and its nodes'
endpoints) and the alarms raised on its nodes are read from the journals over the batch's window whenever
the batch is shown, so they are the journals' own.

Reading a batch goes through `permissions`: a batch of a unit whose nodes the caller may not see answers as
a missing one. The CSV export and the printable report are built here and in `batch_report.py`.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
from collections.abc import Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bevforge import permissions
from bevforge.csv_cells import safe_cell
from bevforge.domain import Actor, utcnow
from bevforge.errors import UNKNOWN_BATCH, BevForgeError, Invalid, NotFound
from bevforge.messages import iso
from bevforge.store import AlarmRow, AuditRow, BatchRow, BatchStepRow, batch_rows

if TYPE_CHECKING:
    from bevforge.config import ProgramStep
    from bevforge.programs.service import ProgramService, UnitRun
    from bevforge.programs.steps import Step

log = logging.getLogger(__name__)

DEFAULT_BAND_C = 0.5  # the steps' own default (steps.DEFAULT_BAND_C)
MAX_JOURNAL_ROWS = 5000  # audit rows or alarms read for one batch at most
MAX_LIST = 500
AUTOMATIC = ("program:", "controller:")  # actors that are the panel itself, not an operator
# what a person does to a unit (a command's `command.result` is the device's answer, not an action)
ACTIONS = ("program.", "controller.", "command.request", "alarm.")


class BatchRecorder:
    """Writes each unit's batch as its program runs, and reads batches back for the API and the screens."""

    def __init__(self, service: ProgramService) -> None:
        self.service = service
        self.db = service.db

    # -- the program service's hooks -------------------------------------------------------------------

    async def started(self, run: UnitRun) -> None:
        """A program started on `run`'s unit: a new batch, its first step open."""
        await self._guarded(self._started(run))

    async def leaving(self, run: UnitRun, index: int, actor: Actor | None) -> None:
        """The current step is left for step `index`: done (the runner moved on), skipped (a person moved on)
        or restarted (a person went back)."""
        if run.step is not None:
            outcome = "restarted" if index <= run.index else "done" if actor is None else "skipped"
            await self._guarded(self._close_step(run, outcome))

    async def moved(self, run: UnitRun) -> None:
        """After a move: the new current step opens, or the program completed and its batch ends."""
        await self._guarded(self._moved(run))

    async def ended(self, run: UnitRun, outcome: str) -> None:
        """The program ended other than by completing (aborted): its open step and its batch end so."""
        await self._guarded(self._close_batch(run, outcome))

    async def _guarded(self, work: Coroutine[Any, Any, None]) -> None:
        """The record never stops a program: whatever goes wrong writing it is logged, the program goes on."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("batch record not written")

    async def _started(self, run: UnitRun) -> None:
        template = run.template
        if template is None or run.step is None:
            return
        now = self.service.clock.now()
        recipe = getattr(template, "recipe_name", None) or (template.name if template.id.startswith("recipe:")
                                                            else None)
        batch = BatchRow(unit_id=run.unit.id, unit_name=run.unit.name, nodes=sorted(run.nodes),
                         controllers=list(run.unit.controllers), template_id=template.id,
                         template_name=template.name, recipe_name=recipe, started_by=run.started_by,
                         started_at=run.started_at or now, wall_started_at=utcnow())
        await self._write(batch_rows.open_batch, self.db, batch, self._step_row(run))

    async def _moved(self, run: UnitRun) -> None:
        if run.state.value == "completed":
            await self._close_batch(run, "completed")
        elif run.step is not None:
            await self._write(batch_rows.open_step, self.db, run.unit.id, self._step_row(run))

    async def _close_step(self, run: UnitRun, outcome: str) -> None:
        await self._flush_history()
        await self._write(batch_rows.close_step, self.db, run.unit.id, outcome, self.service.clock.now(), utcnow())

    async def _close_batch(self, run: UnitRun, outcome: str) -> None:
        await self._flush_history()
        await self._write(batch_rows.close_batch, self.db, run.unit.id, outcome, self.service.clock.now(), utcnow())

    async def _flush_history(self) -> None:
        """The readings of the step's last moments reach the table before its figures are computed."""
        history = getattr(self.service.plant, "history", None)
        if history is not None:
            try:
                await history.flush()
            except BevForgeError as exc:
                log.error("batch record: history not flushed: %s", exc.message)

    async def _write(self, fn: Any, *args: Any) -> None:
        """A record write that fails is logged: the program goes on (the store alarm says why)."""
        try:
            await self.db.write(fn, *args)
        except BevForgeError as exc:
            log.error("batch record not written: %s", exc.message)

    def _step_row(self, run: UnitRun) -> BatchStepRow:
        assert run.template is not None and run.step is not None
        cfg = run.template.steps[run.index]
        target, low, high = plan_of(cfg, run.step)
        controller = cfg.controller if cfg.type != "chill" else None
        endpoint = cfg.endpoint if cfg.type == "chill" else None
        if controller is not None:
            endpoint = self.service._controller_cfg[controller].input if cfg.type != "set" else None
        return BatchStepRow(batch_id=0, step_index=run.index, title=cfg.title, type=cfg.type,
                            controller=cfg.controller, endpoint_id=endpoint, planned_target=target,
                            band_low=low, band_high=high, planned_duration_s=run.step.duration(),
                            started_at=run.step_started_at or self.service.clock.now(), wall_started_at=utcnow())

    # -- reading batches ----------------------------------------------------------------------------------

    async def list(self, actor: Actor | None, *, unit: str | None = None, since: datetime | None = None,
                   until: datetime | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The batches `actor` may see, newest first."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
            raise Invalid(f"limit must be 1..{MAX_LIST}", field="limit")
        await self.db.barrier()
        rows = await self.db.read(lambda: batch_rows.batches(self.db, unit_id=unit, since=since, until=until,
                                                             limit=MAX_LIST * 4))
        visible = [r for r in rows if permissions.may_see_nodes(actor, r.nodes or [])]
        return [batch_view(r) for r in visible[:limit]]

    async def get(self, actor: Actor | None, batch_id: Any) -> dict[str, Any]:
        """One batch with its steps, the operator actions and the alarms of its window."""
        missing = NotFound(f"no batch {batch_id!r}", code=UNKNOWN_BATCH, field="id")
        if isinstance(batch_id, bool) or not isinstance(batch_id, int):
            raise missing
        await self.db.barrier()
        found = await self.db.read(batch_rows.batch, self.db, batch_id)
        if found is None or not permissions.may_see_nodes(actor, found[0].nodes or []):
            raise missing
        row, steps = found
        since = row.wall_started_at
        until = row.wall_ended_at or utcnow()
        audit = await self.db.read(lambda: batch_rows.audit_between(
            self.db, since, until, actions=ACTIONS, not_users=AUTOMATIC, limit=MAX_JOURNAL_ROWS))
        alarms = await self.db.read(batch_rows.alarms_raised_between, self.db, since, until, MAX_JOURNAL_ROWS)
        view = batch_view(row)
        view["steps"] = [step_view(s) for s in steps]
        view["actions"] = [action_view(a) for a in audit if self._concerns(row, a)]
        view["alarms"] = [alarm_view(a) for a in alarms if self._on_nodes(row, a)]
        return view

    def _concerns(self, row: BatchRow, entry: AuditRow) -> bool:
        """An operator's action on the batch's unit: on its program, its controllers, an endpoint of its nodes,
        or an alarm of its nodes."""
        if entry.user.startswith(AUTOMATIC):
            return False
        action, target = entry.action, entry.target
        if action.startswith("program."):
            return target == row.unit_id
        if action.startswith("controller."):
            return target in (row.controllers or [])
        nodes = set(row.nodes or [])
        if action.startswith("command."):
            return any(e.name == target and e.node in nodes for e in self.service.config.endpoints)
        if action.startswith("alarm.") and isinstance(target, str):
            point = self.service.alarms.points.get(target)
            owners = permissions.alarm_nodes(self.service.config, target, point.node if point else None,
                                             point.endpoint_id if point else None)
            return bool(_node_set(owners) & nodes)
        return False

    def _on_nodes(self, row: BatchRow, alarm: AlarmRow) -> bool:
        return bool(_node_set(permissions.alarm_owners(self.service.config, alarm)) & set(row.nodes or []))

    async def csv(self, actor: Actor | None, batch_id: Any) -> tuple[str, str]:
        """The batch as CSV text (file name, text): a header block, then the steps, actions and alarms."""
        batch = await self.get(actor, batch_id)
        return f"batch-{batch['id']}.csv", to_csv(batch)

    async def report(self, actor: Actor | None, batch_id: Any) -> str:
        """The printable HTML report of one batch."""
        from bevforge.programs.batch_report import render

        return render(await self.get(actor, batch_id))


def _node_set(owners: Any) -> set[str]:
    """The nodes `permissions.alarm_nodes` answers (one node, several, or none) as a set."""
    return {owners} if isinstance(owners, str) else {n for n in owners or () if n is not None}


def plan_of(cfg: ProgramStep, step: Step) -> tuple[float | None, float | None, float | None]:
    """A step's planned target and the band its time in band is counted in (low, high; None: open)."""
    if cfg.type in ("heat", "hold") and cfg.target_c is not None:
        band = cfg.band_c or DEFAULT_BAND_C
        return cfg.target_c, cfg.target_c - band, cfg.target_c + band
    if cfg.type == "boil":
        return getattr(step, "target", cfg.target_c), getattr(step, "boil_c", None), None
    if cfg.type == "ramp":
        return cfg.to_c, None, None
    if cfg.type == "chill":
        return cfg.below_c, None, cfg.below_c
    if cfg.type == "set" and isinstance(cfg.value, int | float) and not isinstance(cfg.value, bool):
        return float(cfg.value), None, None
    return None, None, None


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def batch_view(row: BatchRow) -> dict[str, Any]:
    started, ended = row.started_at, row.ended_at
    duration = (ended - started).total_seconds() if ended is not None else None
    return {"id": row.id, "unit": row.unit_id, "unitName": row.unit_name, "templateId": row.template_id,
            "templateName": row.template_name, "recipe": row.recipe_name, "startedBy": row.started_by,
            "startedAt": iso(started), "endedAt": iso(ended), "durationS": _round(duration, 1),
            "outcome": row.outcome}


def step_view(row: BatchStepRow) -> dict[str, Any]:
    return {"index": row.step_index, "title": row.title, "type": row.type, "controller": row.controller,
            "endpointId": row.endpoint_id, "plannedTarget": row.planned_target,
            "bandLow": row.band_low, "bandHigh": row.band_high, "plannedDurationS": _round(row.planned_duration_s, 1),
            "startedAt": iso(row.started_at), "endedAt": iso(row.ended_at),
            "actualDurationS": _round(row.actual_duration_s, 1), "actualMean": _round(row.actual_mean),
            "actualMin": _round(row.actual_min), "actualMax": _round(row.actual_max), "samples": row.samples,
            "inBandS": _round(row.in_band_s, 1), "outcome": row.outcome}


def action_view(row: AuditRow) -> dict[str, Any]:
    return {"time": iso(row.time), "user": row.user, "role": row.role, "station": row.station,
            "action": row.action, "target": row.target, "old": row.old, "new": row.new, "result": row.result,
            "detail": row.detail}


def alarm_view(row: AlarmRow) -> dict[str, Any]:
    return {"id": row.id, "rule": row.rule_id, "kind": row.kind, "priority": row.severity, "message": row.message,
            "node": row.node, "raisedAt": iso(row.raised_at), "clearedAt": iso(row.cleared_at),
            "ackedAt": iso(row.acked_at), "ackedBy": row.acked_by}


STEP_CSV = ("index", "title", "type", "plannedTarget", "plannedDurationS", "startedAt", "endedAt", "actualDurationS",
            "actualMean", "actualMin", "actualMax", "inBandS", "outcome")
ACTION_CSV = ("time", "user", "role", "action", "target", "old", "new", "result", "detail")
ALARM_CSV = ("raisedAt", "priority", "rule", "message", "clearedAt", "ackedBy")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        value = str(value)
    return safe_cell(value)


def to_csv(batch: dict[str, Any]) -> str:
    """One batch as CSV: the batch's own fields, then a blank line and each section with its header row.
    Every text cell goes through `safe_cell` (a spreadsheet never runs one as a formula)."""
    buffer = io.StringIO()
    out = csv.writer(buffer)
    out.writerow(["batch", "unit", "template", "recipe", "startedBy", "startedAt", "endedAt", "outcome"])
    out.writerow([_cell(batch[k]) for k in ("id", "unitName", "templateName", "recipe", "startedBy", "startedAt",
                                            "endedAt", "outcome")])
    for title, fields, rows in (("steps", STEP_CSV, batch["steps"]), ("actions", ACTION_CSV, batch["actions"]),
                                ("alarms", ALARM_CSV, batch["alarms"])):
        out.writerow([])
        out.writerow([title, *fields])
        for row in rows:
            out.writerow(["", *(_cell(row.get(k)) for k in fields)])
    return buffer.getvalue()


__all__ = ["BatchRecorder", "batch_view", "plan_of", "step_view", "to_csv"]
