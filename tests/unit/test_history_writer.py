"""The history writer's batch: every row stored exactly, in a few statements rather than one per row.

One statement per chunk matters because the SQLite driver releases the GIL around each statement's
step and must win it back from a busy event loop (up to 5 ms each time): row-by-row `executemany`
wrote ~2,500 rows/s under load and history fell behind until rows were dropped (bench/ingest.py's
"history kept up" row shows it end to end).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, select, text

from bevforge.store import Database, HistoryWriter, create_schema
from bevforge.store.tables import EndpointCurrent


def _statements(db: Database) -> list[tuple[str, bool]]:
    seen: list[tuple[str, bool]] = []

    def before(_conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, executemany: bool) -> None:
        seen.append((statement.split("(", 1)[0].strip(), executemany))

    event.listen(db.engine, "before_cursor_execute", before)
    return seen


def test_a_batch_is_stored_exactly_in_one_statement_per_thousand_rows(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'h.db'}")
    create_schema(db.engine)
    statements = _statements(db)
    rows = [{"endpoint_id": 10 + i % 3, "value": None if i % 7 == 0 else i * 0.5,
             "quality": "bad" if i % 7 == 0 else "good", "source_ts": None if i % 2 else 1.7e9 + i,
             "server_ts": 1.8e9 + i} for i in range(2345)]
    when = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    current = [{"endpoint_id": 10, "value": 21.5, "quality": "good", "source_time": when, "server_time": when},
               {"endpoint_id": 11, "value": True, "quality": "good", "source_time": None, "server_time": when}]
    try:
        HistoryWriter(db).write_batch(rows, current)
        inserts = [s for s in statements if s[0].startswith("INSERT INTO") and "telemetry_readings" in s[0]]
        assert inserts == [('INSERT INTO telemetry_readings', False)] * 3  # 1000 + 1000 + 345 rows
        assert not any(many for _, many in statements)  # no row-by-row executemany anywhere in the batch
        with db.engine.connect() as conn:
            stored = conn.execute(text("SELECT endpoint_id, value, quality, source_ts, server_ts "
                                       "FROM telemetry_readings ORDER BY id")).all()
            table = EndpointCurrent.__table__  # type: ignore[attr-defined]
            latest = conn.execute(select(table).order_by(table.c.endpoint_id)).all()  # JSON and times decoded
        assert [tuple(r) for r in stored] == [tuple(r.values()) for r in rows]
        assert [tuple(r) for r in latest] == [(10, 21.5, "good", when, when),
                                              (11, True, "good", None, when)]
    finally:
        db.close()


async def test_the_backlog_bound_counts_each_dropped_row_once(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'h.db'}")
    create_schema(db.engine)
    history = HistoryWriter(db, max_pending_rows=1000)
    try:
        for i in range(2500):
            history.add({"endpoint_id": 1, "value": float(i), "quality": "good", "source_ts": None,
                         "server_ts": float(i)},
                        {"endpoint_id": 1, "value": float(i), "quality": "good", "source_time": None,
                         "server_time": None})
        assert history.pending == 1000 and history.rows_dropped == 1500
        assert await history.flush() == 1000
        with db.engine.connect() as conn:
            assert tuple(conn.execute(text("SELECT min(value), max(value) FROM telemetry_readings")).one()) \
                == (1500.0, 2499.0)  # the newest thousand
    finally:
        db.close()
