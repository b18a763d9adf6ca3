"""Store-and-forward's rows (docs/mqtt.md "Store-and-forward"): a site's position, a centre's watermark.

A site forwards three streams, each in the id order of its own append-only table: its history
(`telemetry`), its alarm journal (`alarm_journal`) and its audit journal (`audit`, its commands' requests
and results among them). The server's writes go through its one writer thread (and SQLite takes one writer at a
time, the admin CLI's too), so ids are committed in order and a reader never sees a later id before an
earlier one. A centre keeps the events in tables of
their own (`site_alarm_journal`, `site_audit`) and the history under its own endpoint ids.

A site forwards its rows in id order; a centre stores them under its own endpoint ids and
raises its watermark for (site, store, stream) in the same transaction, so a row that comes twice is
skipped and a batch that does not join on to the watermark (a lost message) is refused as a gap and
asked for again. The site moves its position only on a centre's acknowledgement, which comes only
after that commit: a centre killed at any instant has either stored a batch and raised its
watermark, or neither, and the site sends again from the last acknowledged row.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from bevforge.domain import utcnow
from bevforge.store.tables import (
    AlarmJournalRow,
    AlarmRow,
    AuditRow,
    EndpointRow,
    ForwardMark,
    SiteAuditRow,
    SiteJournalRow,
    SiteWatermark,
    TelemetryReading,
)
from bevforge.store.writer import insert_rows

# the streams a site forwards, each in the id order of its own table (docs/mqtt.md "Store-and-forward")
TELEMETRY = "telemetry"
ALARM_JOURNAL = "alarm_journal"
AUDIT = "audit"
STREAMS = (TELEMETRY, ALARM_JOURNAL, AUDIT)

_MARK = ForwardMark.__table__  # type: ignore[attr-defined]
_WATER = SiteWatermark.__table__  # type: ignore[attr-defined]
_RAW = TelemetryReading.__table__  # type: ignore[attr-defined]
_ENDPOINTS = EndpointRow.__table__  # type: ignore[attr-defined]
_JOURNAL = AlarmJournalRow.__table__  # type: ignore[attr-defined]
_ALARMS = AlarmRow.__table__  # type: ignore[attr-defined]
_AUDIT = AuditRow.__table__  # type: ignore[attr-defined]
_SITE_JOURNAL = SiteJournalRow.__table__  # type: ignore[attr-defined]
_SITE_AUDIT = SiteAuditRow.__table__  # type: ignore[attr-defined]
_SITE_TABLES = {ALARM_JOURNAL: _SITE_JOURNAL, AUDIT: _SITE_AUDIT}

# one forwarded history row: (row id at the site, node, endpoint name, value, quality, source_ts, server_ts)
SiteRow = tuple[int, str, str, float | None, str, float | None, float]


# -- the site ---------------------------------------------------------------------------------------

def forward_mark(engine: Engine, stream: str = TELEMETRY) -> tuple[str, int]:
    """This database's store name and the last row id of `stream` a centre acknowledged (made at the first
    call; a stream forwarded for the first time takes the store name the database already has)."""
    with engine.begin() as conn:
        row = conn.execute(select(_MARK.c.store, _MARK.c.acked_id).where(_MARK.c.stream == stream)).first()
        if row is not None:
            return str(row[0]), int(row[1])
        store = conn.execute(select(_MARK.c.store).order_by(_MARK.c.stream).limit(1)).scalar() or uuid.uuid4().hex
        conn.execute(_MARK.insert().values(stream=stream, store=store, acked_id=0))
        return store, 0


def save_ack(engine: Engine, acked_id: int, stream: str = TELEMETRY) -> None:
    """A centre has committed every row up to `acked_id`: never moved back."""
    with engine.begin() as conn:
        conn.execute(update(_MARK).where(_MARK.c.stream == stream, _MARK.c.acked_id < acked_id)
                     .values(acked_id=acked_id, acked_at=utcnow()))


def history_after(engine: Engine, after: int, limit: int) -> list[SiteRow]:
    """Up to `limit` history rows with ids above `after`, oldest first, named by node and endpoint (the
    centre knows the site's endpoints by name; the endpoints table names removed ones too)."""
    query = (select(_RAW.c.id, _ENDPOINTS.c.node, _ENDPOINTS.c.name, _RAW.c.value, _RAW.c.quality, _RAW.c.source_ts,
                    _RAW.c.server_ts)
             .join(_ENDPOINTS, _ENDPOINTS.c.id == _RAW.c.endpoint_id)
             .where(_RAW.c.id > after).order_by(_RAW.c.id).limit(limit))
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]  # type: ignore[misc]


def newest_history_id(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.max(_RAW.c.id))).scalar() or 0)


def journal_after(engine: Engine, after: int, limit: int) -> list[tuple[AlarmJournalRow, str | None]]:
    """Up to `limit` alarm-journal entries with ids above `after`, oldest first, each with its alarm's node
    (the journal row does not keep it; None for an alarm of no node)."""
    query = (select(_JOURNAL, _ALARMS.c.node).outerjoin(_ALARMS, _ALARMS.c.id == _JOURNAL.c.alarm_id)
             .where(_JOURNAL.c.id > after).order_by(_JOURNAL.c.id).limit(limit))
    with engine.connect() as conn:
        return [(AlarmJournalRow(**{k: v for k, v in row._mapping.items() if k != "node"}), row.node)
                for row in conn.execute(query)]


def audit_after(engine: Engine, after: int, limit: int) -> list[AuditRow]:
    """Up to `limit` audit entries with ids above `after`, oldest first."""
    query = select(_AUDIT).where(_AUDIT.c.id > after).order_by(_AUDIT.c.id).limit(limit)
    with engine.connect() as conn:
        return [AuditRow(**row._mapping) for row in conn.execute(query)]


def newest_journal_id(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.max(_JOURNAL.c.id))).scalar() or 0)


def newest_audit_id(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.max(_AUDIT.c.id))).scalar() or 0)


# -- the centre -------------------------------------------------------------------------------------

def watermark(engine: Engine, site: str, store: str, stream: str = TELEMETRY) -> int:
    with engine.connect() as conn:
        value = conn.execute(select(_WATER.c.last_id).where(
            _WATER.c.site == site, _WATER.c.store == store, _WATER.c.stream == stream)).scalar()
        return int(value or 0)


def take_forwarded(engine: Engine, site: str, store: str, after: int, up_to: int,
                   rows: Sequence[tuple[int, int | None, float | None, str, float | None, float]],
                   stream: str = TELEMETRY) -> tuple[int, bool]:
    """Store one forwarded history batch of `site` (rows: site row id, this panel's endpoint id or None for an
    endpoint it does not show, value, quality, source_ts, server_ts), covering the site's ids (after, up_to].

    Returns (the watermark now, gap): gap is True when the batch starts beyond the watermark (a message
    was lost): nothing is stored and the site is asked to send again from the watermark. The watermark
    row is locked for the transaction (PostgreSQL), so two central instances storing the same batch at
    once store it once.
    """
    def fresh(conn: Connection, last: int) -> int:
        new: list[dict[str, Any]] = [
            {"endpoint_id": endpoint_id, "value": value, "quality": quality, "source_ts": source_ts,
             "server_ts": server_ts}
            for row_id, endpoint_id, value, quality, source_ts, server_ts in rows
            if row_id > last and endpoint_id is not None]
        if new:
            insert_rows(conn, _RAW, new)
        return len(new)

    with engine.begin() as conn:
        return _take(conn, {"site": site, "store": store, "stream": stream}, after, up_to, fresh)


def take_forwarded_events(engine: Engine, site: str, store: str, stream: str, after: int, up_to: int,
                          rows: Sequence[dict[str, Any]]) -> tuple[int, bool]:
    """Store one forwarded batch of a site's alarm journal or audit journal (`stream`): each row a dict of the
    site table's columns with `site_id` its id there (node already mapped to this panel's), covering the
    site's ids (after, up_to]. Once, gap-checked and locked exactly as `take_forwarded`."""
    table = _SITE_TABLES[stream]

    def fresh(conn: Connection, last: int) -> int:
        new = [row | {"site": site, "store": store} for row in rows if row["site_id"] > last]
        if new:
            conn.execute(table.insert(), new)
        return len(new)

    with engine.begin() as conn:
        return _take(conn, {"site": site, "store": store, "stream": stream}, after, up_to, fresh)


def _take(conn: Connection, key: dict[str, str], after: int, up_to: int,
          store_fresh: Callable[[Connection, int], int]
          ) -> tuple[int, bool]:
    """The watermark's part of taking a batch, in the caller's transaction: lock it (made at 0 the first
    time), refuse a batch beyond it as a gap, store the rows above it (`store_fresh(conn, last)` → rows stored),
    raise it to `up_to`."""
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(insert(_WATER).values(**key, last_id=0, rows=0, updated_at=utcnow()).on_conflict_do_nothing())
    where = [_WATER.c[k] == v for k, v in key.items()]
    locked = select(_WATER.c.last_id).where(*where)
    if conn.dialect.name == "postgresql":
        locked = locked.with_for_update()
    last = int(conn.execute(locked).scalar_one())
    if after > last:
        return last, True
    stored = store_fresh(conn, last)
    if up_to > last:
        conn.execute(update(_WATER).where(*where).values(last_id=up_to, rows=_WATER.c.rows + stored,
                                                         updated_at=utcnow()))
        last = up_to
    return last, False
