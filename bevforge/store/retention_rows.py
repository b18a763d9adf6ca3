"""Telemetry retention's SQL: folding old raw rows into 1-minute rollups, deleting old rollups.

`bevforge.retention` decides what is due and when, and runs each batch here on the DB writer thread
(one transaction each). Every query seeks the (endpoint_id, server_ts) index, so a batch costs the
same on a year-old database as on a new one.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection

from bevforge.store.tables import EndpointRow, TelemetryReading, TelemetryRollup

if TYPE_CHECKING:
    from bevforge.store.writer import Database

_RAW = TelemetryReading.__table__  # type: ignore[attr-defined]
_ROLL = TelemetryRollup.__table__  # type: ignore[attr-defined]


def minute_floor(ts: float) -> float:
    return math.floor(ts / 60.0) * 60.0


def endpoint_ids(db: Database) -> list[int]:
    """Every endpoint ever configured (the endpoints table keeps removed ones, so does history)."""
    with db.engine.connect() as conn:
        return [row[0] for row in conn.execute(select(EndpointRow.__table__.c.id))]  # type: ignore[attr-defined]


def newest_row_time(db: Database) -> float | None:
    """The server time of the newest raw row (by id: the primary key, no scan)."""
    with db.engine.connect() as conn:
        return conn.execute(select(_RAW.c.server_ts).order_by(_RAW.c.id.desc()).limit(1)).scalar()


def roll_up_batch(db: Database, endpoint_id: int, cutoff: float, batch_rows: int) -> tuple[int, int]:
    """Fold up to ~`batch_rows` raw rows of one endpoint older than `cutoff` into rollups, delete them.

    The batch ends on a minute boundary so each minute is rolled up from all its rows at once; an
    existing rollup of the same minute is merged. Returns (raw rows deleted, rollup rows written).
    """
    ep = _RAW.c.endpoint_id == endpoint_id
    with db.engine.begin() as conn:
        oldest = conn.execute(select(func.min(_RAW.c.server_ts)).where(ep, _RAW.c.server_ts < cutoff)).scalar()
        if oldest is None:
            return 0, 0
        start = minute_floor(oldest)
        nth = conn.execute(
            select(_RAW.c.server_ts).where(ep, _RAW.c.server_ts >= start, _RAW.c.server_ts < cutoff)
            .order_by(_RAW.c.server_ts).offset(batch_rows).limit(1)
        ).scalar()
        end = cutoff if nth is None else min(max(minute_floor(nth), start + 60.0), cutoff)
        written = merge_rollups(conn, endpoint_id, start, end)
        moved = conn.execute(delete(_RAW).where(ep, _RAW.c.server_ts >= start, _RAW.c.server_ts < end)).rowcount
    return moved or 0, written


def merge_rollups(conn: Connection, endpoint_id: int, start: float, end: float) -> int:
    """Roll up the good samples of [start, end) of one endpoint, merged with rollups already there."""
    minute = (func.floor(_RAW.c.server_ts / 60.0) * 60.0).label("minute")
    fresh = conn.execute(
        select(minute, func.min(_RAW.c.value), func.avg(_RAW.c.value), func.max(_RAW.c.value), func.count())
        .where(_RAW.c.endpoint_id == endpoint_id, _RAW.c.server_ts >= start, _RAW.c.server_ts < end,
               _RAW.c.quality == "good", _RAW.c.value.is_not(None))
        .group_by(minute)
    ).all()
    if not fresh:
        return 0
    in_window = (_ROLL.c.endpoint_id == endpoint_id, _ROLL.c.minute_ts >= start, _ROLL.c.minute_ts < end)
    existing = {float(r.minute_ts): r for r in conn.execute(select(_ROLL).where(*in_window))}
    rows = []
    for minute_ts, lo, avg, hi, count in fresh:
        old = existing.get(float(minute_ts))
        if old is not None:
            total = old.samples + count
            avg = (old.average * old.samples + avg * count) / total
            lo, hi, count = min(lo, old.minimum), max(hi, old.maximum), total
        rows.append({"endpoint_id": endpoint_id, "minute_ts": float(minute_ts), "minimum": float(lo),
                     "average": float(avg), "maximum": float(hi), "samples": int(count)})
    if existing:
        conn.execute(delete(_ROLL).where(*in_window))
    conn.execute(insert(_ROLL), rows)
    return len(rows)


def delete_old_rollups(db: Database, cutoff: float) -> int:
    with db.engine.begin() as conn:
        return conn.execute(delete(_ROLL).where(_ROLL.c.minute_ts < cutoff)).rowcount or 0
