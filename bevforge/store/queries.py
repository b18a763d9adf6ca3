"""The read side of the store: telemetry history back as trends, raw listings and CSV export.

This is the store's public query layer: the REST routes and the screens read history through these
functions (run on a reader thread with `Database.read`) and never build SQL themselves.

A brew-day trend (12 h of a 0.5 s probe is ~86 000 rows) must draw as fast as a 15 min one, so the
database does the bucketing: one GROUP BY over the (endpoint_id, server_ts) index returns at most
`buckets` rows of min/avg/max. Only GOOD values enter an aggregate; a bucket with no good sample is
returned as a gap (None), never interpolated (REFERENCE.md §4).

Raw rows older than the retention window live on as 1-minute rollups (bevforge/retention.py); a
range reaching back there reads them too, so a long trend keeps its shape after pruning. Rollups
never overlap raw rows (a minute is moved whole), so the two sources are simply merged per bucket.
"""

from __future__ import annotations

import csv
import heapq
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from bevforge.csv_cells import safe_cell
from bevforge.domain import epoch_time, plain_value
from bevforge.messages import iso
from bevforge.store.tables import TelemetryReading, TelemetryRollup

if TYPE_CHECKING:
    from bevforge.store.writer import Database, HistoryWriter

MAX_EXPORT_ROWS = 500_000

_T = TelemetryReading.__table__  # type: ignore[attr-defined]
_R = TelemetryRollup.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Bucket:
    """One time slice of a trend: its start (UTC) and the min/avg/max of the good samples in it."""

    start: datetime
    minimum: float | None
    average: float | None
    maximum: float | None
    samples: int


def aware_utc(ts: datetime) -> datetime:
    """The column type takes aware datetimes (and stores them as UTC); a naive one is taken as UTC."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def bucket_width(since: datetime, until: datetime, buckets: int) -> float:
    """Whole seconds per bucket so that the range fits in `buckets` slices (at least 1 s)."""
    span = (until - since).total_seconds()
    return float(max(1, math.ceil(span / max(1, buckets))))


def trend(engine: Engine, endpoint_id: int, since: datetime, until: datetime, buckets: int = 600) -> list[Bucket]:
    """Min/avg/max per time bucket between `since` and `until`, gaps included as empty buckets."""
    since, until = aware_utc(since), aware_utc(until)
    width = bucket_width(since, until, buckets)
    origin = since.timestamp()
    index = func.floor((_T.c.server_ts - origin) / width).label("bucket")
    statement = (
        select(index, func.min(_T.c.value), func.avg(_T.c.value), func.max(_T.c.value), func.count())
        .where(_T.c.endpoint_id == endpoint_id, _T.c.server_ts >= origin, _T.c.server_ts <= until.timestamp(),
               _T.c.quality == "good", _T.c.value.is_not(None))
        .group_by(index)
        .order_by(index)
    )
    r_index = func.floor((_R.c.minute_ts - origin) / width).label("bucket")
    rollups = (
        select(r_index, func.min(_R.c.minimum), func.sum(_R.c.average * _R.c.samples), func.max(_R.c.maximum),
               func.sum(_R.c.samples))
        .where(_R.c.endpoint_id == endpoint_id, _R.c.minute_ts >= origin, _R.c.minute_ts <= until.timestamp())
        .group_by(r_index)
    )
    with engine.connect() as conn:
        raw = {int(r[0]): r for r in conn.execute(statement)}
        rolled = {int(r[0]): r for r in conn.execute(rollups) if r[4]}
    count = math.ceil((until - since).total_seconds() / width)
    out = []
    for i in range(max(count, 1)):
        start = since + timedelta(seconds=i * width)
        row, roll = raw.get(i), rolled.get(i)
        if row is None and roll is None:
            out.append(Bucket(start, None, None, None, 0))
        elif not all(_number(v) is not None for v in (*(row or ())[1:], *(roll or ())[1:])):
            out.append(Bucket(start, None, None, None, 0))  # a hand-edited row: a gap, never a failed trend
        elif roll is None:
            out.append(Bucket(start, float(row[1]), float(row[2]), float(row[3]), int(row[4])))
        elif row is None:
            out.append(Bucket(start, float(roll[1]), float(roll[2]) / int(roll[4]), float(roll[3]), int(roll[4])))
        else:  # the bucket straddles the retention cutoff: weight the two averages by their samples
            n = int(row[4]) + int(roll[4])
            average = (float(row[2]) * int(row[4]) + float(roll[2])) / n
            out.append(Bucket(start, min(float(row[1]), float(roll[1])), average,
                              max(float(row[3]), float(roll[3])), n))
    return out


def _number(value: object) -> float | None:
    """A finite number from an aggregate column, else None (SQLite's min() of a text cell is text)."""
    plain = plain_value(value)
    return None if plain is None or isinstance(plain, bool) else float(plain)


def rollup_points(engine: Engine, endpoint_ids: list[int] | None, since: datetime | None, until: datetime | None,
                  limit: int) -> list[dict[str, float | int]]:
    """The newest `limit` 1-minute rollups in a range (pruned history), newest first."""
    statement = select(_R.c.endpoint_id, _R.c.minute_ts, _R.c.minimum, _R.c.average, _R.c.maximum, _R.c.samples)
    if endpoint_ids is not None:
        statement = statement.where(_R.c.endpoint_id.in_(endpoint_ids))
    if since is not None:
        statement = statement.where(_R.c.minute_ts >= aware_utc(since).timestamp())
    if until is not None:
        statement = statement.where(_R.c.minute_ts <= aware_utc(until).timestamp())
    statement = statement.order_by(_R.c.minute_ts.desc(), _R.c.endpoint_id).limit(limit)
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(statement)]


def recent_readings(engine: Engine, endpoint_ids: list[int] | None, since: datetime | None, until: datetime | None,
                    limit: int) -> list[dict[str, float | int | str | None]]:
    """The newest `limit` raw samples of the given endpoints (None: all) in a range, newest first."""
    statement = select(_T.c.endpoint_id, _T.c.value, _T.c.quality, _T.c.server_ts, _T.c.source_ts)
    if endpoint_ids is not None:
        statement = statement.where(_T.c.endpoint_id.in_(endpoint_ids))
    if since is not None:
        statement = statement.where(_T.c.server_ts >= aware_utc(since).timestamp())
    if until is not None:
        statement = statement.where(_T.c.server_ts <= aware_utc(until).timestamp())
    statement = statement.order_by(_T.c.server_ts.desc(), _T.c.id.desc()).limit(limit)
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(statement)]


def readings(engine: Engine, endpoint_id: int, since: datetime, until: datetime,
             limit: int = MAX_EXPORT_ROWS) -> Iterator[tuple[datetime, float | None, str, datetime | None]]:
    """Raw samples (server time, value, quality, source time) in time order, every quality included."""
    statement = (
        select(_T.c.server_ts, _T.c.value, _T.c.quality, _T.c.source_ts)
        .where(_T.c.endpoint_id == endpoint_id, _T.c.server_ts >= aware_utc(since).timestamp(),
               _T.c.server_ts <= aware_utc(until).timestamp())
        .order_by(_T.c.server_ts, _T.c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        for row in conn.execute(statement):
            server_time = epoch_time(row[0])
            if server_time is None:  # a row no reader can place in time (written by hand): skipped
                continue
            value = plain_value(row[1])
            yield server_time, None if value is None else float(value), str(row[2]), epoch_time(row[3])


def last_per_bucket(engine: Engine, endpoint_id: int, since: datetime, until: datetime,
                    buckets: int = 600) -> dict[int, float]:
    """The last good value in each bucket of `trend`'s slicing (bucket index → value), for the buckets
    that have one: what a value recorded only when it changes holds at the bucket's end (the average
    of 65 and 64 in one bucket is 64.5, a setpoint nobody set)."""
    since, until = aware_utc(since), aware_utc(until)
    width = bucket_width(since, until, buckets)
    origin = since.timestamp()
    index = func.floor((_T.c.server_ts - origin) / width)
    ranked = (
        select(index.label("bucket"), _T.c.value,
               func.row_number().over(partition_by=index, order_by=(_T.c.server_ts.desc(), _T.c.id.desc()))
               .label("newest"))
        .where(_T.c.endpoint_id == endpoint_id, _T.c.server_ts >= origin, _T.c.server_ts <= until.timestamp(),
               _T.c.quality == "good", _T.c.value.is_not(None))
        .subquery()
    )
    with engine.connect() as conn:
        rows = conn.execute(select(ranked.c.bucket, ranked.c.value).where(ranked.c.newest == 1)).all()
    return {int(bucket): number for bucket, value in rows if (number := _number(value)) is not None}


def last_before(engine: Engine, endpoint_id: int, before: datetime) -> tuple[datetime, float | None, str] | None:
    """The newest sample of an endpoint before `before` (server time, value, quality), or None.

    A value recorded only when it changes (a software setpoint) is still in force at the start of a
    trend's range: the trend starts its line from this sample instead of leaving a gap.
    """
    statement = (select(_T.c.server_ts, _T.c.value, _T.c.quality)
                 .where(_T.c.endpoint_id == endpoint_id, _T.c.server_ts < aware_utc(before).timestamp())
                 .order_by(_T.c.server_ts.desc(), _T.c.id.desc()).limit(1))
    with engine.connect() as conn:
        row = conn.execute(statement).first()
    if row is None or (server_time := epoch_time(row[0])) is None:
        return None
    value = _number(row[1])
    return server_time, value, str(row[2])


def export_csv(engine: Engine, endpoint_id: int, name: str, unit: str, since: datetime, until: datetime) -> str:
    """The raw samples of a range as CSV text (UTC ISO timestamps), header first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["timestamp_utc", "endpoint_id", "endpoint", "value", "unit", "quality", "source_timestamp_utc"])
    for server_time, value, quality, source_time in readings(engine, endpoint_id, since, until):
        writer.writerow([iso(server_time), endpoint_id, safe_cell(name), "" if value is None else repr(value),
                         safe_cell(unit), quality,
                         iso(source_time) if source_time else ""])
    return buffer.getvalue()


PENS_CSV_FIELDS = ("timestamp_utc", "endpoint_id", "endpoint", "label", "value", "unit", "quality",
                   "source_timestamp_utc")


@dataclass(frozen=True, slots=True)
class PenColumn:
    """One pen of a multi-pen CSV: the endpoint's raw id and name, and the label and unit the chart shows."""

    endpoint_id: int
    name: str
    label: str
    unit: str


def export_pens_csv(engine: Engine, pens: list[PenColumn], since: datetime, until: datetime) -> str:
    """The raw samples of several endpoints in one range as CSV (long format: one row per sample per pen),
    in time order, every quality included (a gap on the chart is a `stale`/`bad` row here)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(PENS_CSV_FIELDS)
    def rows_of(index: int, pen: PenColumn) -> Iterator[tuple[datetime, int, PenColumn, float | None, str,
                                                               datetime | None]]:
        for server_time, value, quality, source_time in readings(engine, pen.endpoint_id, since, until):
            yield server_time, index, pen, value, quality, source_time

    per_pen = [rows_of(index, pen) for index, pen in enumerate(pens)]
    for server_time, _index, pen, value, quality, source_time in heapq.merge(*per_pen, key=lambda r: (r[0], r[1])):
        writer.writerow([iso(server_time), pen.endpoint_id, safe_cell(pen.name), safe_cell(pen.label),
                         "" if value is None else repr(value), safe_cell(pen.unit), quality,
                         iso(source_time) if source_time else ""])
    return buffer.getvalue()


class HistoryReader:
    """Telemetry history as the API and the screens ask for it: each query on a reader thread.

    Before reading it flushes the history writer's buffer, so a trend or a listing includes the
    readings that arrived just before the question (read-your-writes), as the routes did by hand.
    """

    def __init__(self, db: Database, writer: HistoryWriter | None = None) -> None:
        self.db = db
        self.writer = writer

    async def _fresh(self) -> None:
        if self.writer is not None:
            await self.writer.flush()

    async def trend(self, endpoint_id: int, since: datetime, until: datetime, buckets: int = 600) -> list[Bucket]:
        await self._fresh()
        return await self.db.read(trend, self.db.engine, endpoint_id, since, until, buckets)

    async def recent_readings(self, endpoint_ids: list[int] | None, since: datetime | None, until: datetime | None,
                              limit: int) -> list[dict[str, float | int | str | None]]:
        await self._fresh()
        return await self.db.read(recent_readings, self.db.engine, endpoint_ids, since, until, limit)

    async def rollup_points(self, endpoint_ids: list[int] | None, since: datetime | None, until: datetime | None,
                            limit: int) -> list[dict[str, float | int]]:
        return await self.db.read(rollup_points, self.db.engine, endpoint_ids, since, until, limit)

    async def export_csv(self, endpoint_id: int, name: str, unit: str, since: datetime, until: datetime) -> str:
        await self._fresh()
        return await self.db.read(export_csv, self.db.engine, endpoint_id, name, unit, since, until)

    async def last_per_bucket(self, endpoint_id: int, since: datetime, until: datetime,
                              buckets: int = 600) -> dict[int, float]:
        await self._fresh()
        return await self.db.read(last_per_bucket, self.db.engine, endpoint_id, since, until, buckets)

    async def last_before(self, endpoint_id: int, before: datetime) -> tuple[datetime, float | None, str] | None:
        await self._fresh()
        return await self.db.read(last_before, self.db.engine, endpoint_id, before)

    async def export_pens_csv(self, pens: list[PenColumn], since: datetime, until: datetime) -> str:
        await self._fresh()
        return await self.db.read(export_pens_csv, self.db.engine, pens, since, until)
