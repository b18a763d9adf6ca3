"""The batch record's rows (issue 15): each program run and its steps, and the reads the record is made of.

`bevforge.programs.batches` decides when a batch or a step opens and closes; this module is the SQL. A
step's actual figures (mean, minimum, maximum, time in band of its process value) are computed here from
the stored telemetry history when the step closes, on the writer thread — after every history batch queued
before it — so they are the history's, whatever the process did in between (a restart included).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlmodel import col, or_
from sqlmodel import select as sql_select

from bevforge.domain import plain_value
from bevforge.store.queries import aware_utc
from bevforge.store.tables import AlarmRow, AuditRow, BatchRow, BatchStepRow, TelemetryReading, TelemetryRollup

if TYPE_CHECKING:
    from sqlmodel import Session

    from bevforge.store.writer import Database

_T = TelemetryReading.__table__  # type: ignore[attr-defined]
_R = TelemetryRollup.__table__  # type: ignore[attr-defined]
MAX_GAP_S = 30.0  # a sample counts in band until the next one, but never longer than this (a gap is not in band)


def _open_batch(session: Session, unit_id: str) -> BatchRow | None:
    statement = (sql_select(BatchRow).where(BatchRow.unit_id == unit_id, BatchRow.outcome == "running")
                 .order_by(col(BatchRow.id).desc()))
    return session.exec(statement).first()


def _open_step(session: Session, batch_id: int) -> BatchStepRow | None:
    statement = (sql_select(BatchStepRow).where(BatchStepRow.batch_id == batch_id, BatchStepRow.outcome == "running")
                 .order_by(col(BatchStepRow.id).desc()))
    return session.exec(statement).first()


def open_batch(db: Database, batch: BatchRow, first: BatchStepRow) -> int:
    """Start a batch and its first step (writer thread). A batch of the unit still open (the panel stopped and
    its program was never resumed) is closed as aborted, at its last known time."""
    with db.session() as session:
        left = _open_batch(session, batch.unit_id)
        if left is not None:
            step = _open_step(session, left.id or 0)
            if step is not None:
                step.outcome = "aborted"
                session.add(step)
            left.outcome, left.ended_at, left.wall_ended_at = "aborted", batch.started_at, batch.wall_started_at
            session.add(left)
        session.add(batch)
        session.flush()
        first.batch_id = batch.id or 0
        session.add(first)
        session.commit()
        return batch.id or 0


def open_step(db: Database, unit_id: str, step: BatchStepRow) -> None:
    """Record that the unit's running batch entered a step (writer thread); nothing without a running batch."""
    with db.session() as session:
        batch = _open_batch(session, unit_id)
        if batch is None:
            return
        step.batch_id = batch.id or 0
        session.add(step)
        session.commit()


def close_step(db: Database, unit_id: str, outcome: str, ended_at: datetime, wall_ended_at: datetime) -> None:
    """End the running batch's current step with `outcome` and its actual figures from history (writer thread)."""
    with db.session() as session:
        batch = _open_batch(session, unit_id)
        step = _open_step(session, batch.id or 0) if batch is not None else None
        if step is not None:
            _finish(session, step, outcome, ended_at, wall_ended_at)
            session.commit()


def close_batch(db: Database, unit_id: str, outcome: str, ended_at: datetime, wall_ended_at: datetime) -> None:
    """End the unit's running batch (and a step still open in it, with the same outcome) (writer thread)."""
    with db.session() as session:
        batch = _open_batch(session, unit_id)
        if batch is None:
            return
        step = _open_step(session, batch.id or 0)
        if step is not None:
            _finish(session, step, outcome, ended_at, wall_ended_at)
        batch.outcome, batch.ended_at, batch.wall_ended_at = outcome, ended_at, wall_ended_at
        session.add(batch)
        session.commit()


def _finish(session: Session, step: BatchStepRow, outcome: str, ended_at: datetime, wall_ended_at: datetime) -> None:
    step.outcome, step.ended_at, step.wall_ended_at = outcome, ended_at, wall_ended_at
    step.actual_duration_s = max(0.0, (aware_utc(ended_at) - aware_utc(step.started_at)).total_seconds())
    if step.endpoint_id is not None:
        since, until = aware_utc(step.wall_started_at).timestamp(), aware_utc(wall_ended_at).timestamp()
        figures = step_figures(session, step.endpoint_id, since, until, step.band_low, step.band_high)
        step.actual_mean, step.actual_min, step.actual_max, step.samples, in_band = figures
        # the share of the window in band, of the step's process-clock duration (in a deployment the two
        # clocks are one and this is the in-band seconds themselves; on a test's stepped clock, its share)
        span = until - since
        step.in_band_s = None if in_band is None else \
            step.actual_duration_s * min(1.0, in_band / span) if span > 0 else 0.0
    session.add(step)


def _number(value: object) -> float | None:
    plain = plain_value(value)
    if plain is None or isinstance(plain, bool) or not isinstance(plain, int | float) or not math.isfinite(plain):
        return None
    return float(plain)


def step_figures(session: Session, endpoint_id: int, since: float, until: float, low: float | None,
                 high: float | None) -> tuple[float | None, float | None, float | None, int, float | None]:
    """Mean, minimum, maximum and number of the good samples of `endpoint_id` between two epoch times (raw
    history, and the 1-minute rollups of any part already pruned), and the seconds the value was in the band
    `low..high` (raw samples; each counts until the next, at most MAX_GAP_S; None without a band)."""
    raw = session.execute(
        select(_T.c.server_ts, _T.c.value)
        .where(_T.c.endpoint_id == endpoint_id, _T.c.server_ts >= since, _T.c.server_ts <= until,
               _T.c.quality == "good", _T.c.value.is_not(None))
        .order_by(_T.c.server_ts, _T.c.id)).all()
    rolled = session.execute(
        select(func.min(_R.c.minimum), func.sum(_R.c.average * _R.c.samples), func.max(_R.c.maximum),
               func.sum(_R.c.samples))
        .where(_R.c.endpoint_id == endpoint_id, _R.c.minute_ts >= since, _R.c.minute_ts <= until)).first()
    samples = [(float(ts), v) for ts, value in raw if (v := _number(value)) is not None]
    values = [v for _, v in samples]
    count, total = len(values), math.fsum(values)
    low_seen = min(values) if values else None
    high_seen = max(values) if values else None
    if rolled is not None and rolled[3]:
        r_min, r_sum, r_max, r_n = _number(rolled[0]), _number(rolled[1]), _number(rolled[2]), int(rolled[3])
        if r_min is not None and r_sum is not None and r_max is not None:
            count, total = count + r_n, total + r_sum
            low_seen = r_min if low_seen is None else min(low_seen, r_min)
            high_seen = r_max if high_seen is None else max(high_seen, r_max)
    mean = total / count if count else None
    in_band: float | None = None
    if low is not None or high is not None:
        in_band = 0.0
        for i, (ts, value) in enumerate(samples):
            upto = samples[i + 1][0] if i + 1 < len(samples) else until
            if (low is None or value >= low) and (high is None or value <= high):
                in_band += min(max(0.0, upto - ts), MAX_GAP_S)
    return mean, low_seen, high_seen, count, in_band


# -- the read side (reader threads) -----------------------------------------------------------------------


def batches(db: Database, *, unit_id: str | None, since: datetime | None, until: datetime | None,
            limit: int) -> list[BatchRow]:
    """Batches newest first (by start), those started in since..until, of one unit or all."""
    statement = sql_select(BatchRow)
    if unit_id is not None:
        statement = statement.where(BatchRow.unit_id == unit_id)
    if since is not None:
        statement = statement.where(BatchRow.started_at >= since)
    if until is not None:
        statement = statement.where(BatchRow.started_at <= until)
    statement = statement.order_by(col(BatchRow.started_at).desc(), col(BatchRow.id).desc()).limit(limit)
    with db.session() as session:
        return list(session.exec(statement).all())


def batch(db: Database, batch_id: int) -> tuple[BatchRow, list[BatchStepRow]] | None:
    """One batch and its steps in the order they ran, or None."""
    with db.session() as session:
        row = session.get(BatchRow, batch_id)
        if row is None:
            return None
        steps = session.exec(sql_select(BatchStepRow).where(BatchStepRow.batch_id == batch_id)
                             .order_by(col(BatchStepRow.id))).all()
        return row, list(steps)


def audit_between(db: Database, since: datetime, until: datetime, *, actions: tuple[str, ...],
                  not_users: tuple[str, ...], limit: int) -> list[AuditRow]:
    """The audit rows of a time window whose action starts with one of `actions` and whose user starts with
    none of `not_users`, oldest first (the batch keeps those that concern its unit)."""
    statement = (sql_select(AuditRow).where(AuditRow.time >= since, AuditRow.time <= until,
                                            or_(*(col(AuditRow.action).startswith(a) for a in actions)),
                                            *(col(AuditRow.user).not_like(f"{u}%") for u in not_users))
                 .order_by(col(AuditRow.id)).limit(limit))
    with db.session() as session:
        return list(session.exec(statement).all())


def alarms_raised_between(db: Database, since: datetime, until: datetime, limit: int) -> list[AlarmRow]:
    """Alarm occurrences raised in a time window, oldest first (the batch keeps those of its nodes)."""
    statement = (sql_select(AlarmRow).where(AlarmRow.raised_at >= since, AlarmRow.raised_at <= until)
                 .order_by(col(AlarmRow.id)).limit(limit))
    with db.session() as session:
        return list(session.exec(statement).all())
