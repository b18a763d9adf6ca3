"""Store faults in the small: which errors mean "cannot write now", the history backlog's bound, held writes' order."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from bevforge.store import Database, HistoryWriter, create_schema
from bevforge.store.faults import HeldWrites, StoreUnavailable, store_fault


def _sqlite_error(code: int, message: str) -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError(message)
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    return exc


@pytest.mark.parametrize(("exc", "is_fault"), [
    (_sqlite_error(13, "database or disk is full"), True),
    (_sqlite_error(5, "database is locked"), True),
    (_sqlite_error(8, "attempt to write a readonly database"), True),
    (_sqlite_error(10 | (13 << 8), "disk I/O error"), True),  # an extended I/O code
    (_sqlite_error(1, "no such table: x"), False),  # a bug, not a store fault: stays a 500 with a traceback
    (OSError(28, "No space left on device"), True),
    (ValueError("x"), False),
])
def test_store_fault_tells_a_store_that_cannot_write_from_a_bug(exc: BaseException, is_fault: bool) -> None:
    assert (store_fault(exc) is not None) is is_fault


def _read_only_switch(db: Database) -> dict[str, bool]:
    switch = {"on": False}

    def each_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        dbapi_connection.execute(f"PRAGMA query_only={'ON' if switch['on'] else 'OFF'}")

    event.listen(db.engine, "checkout", each_checkout)
    return switch


def _row(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    return ({"endpoint_id": 1, "value": float(i), "quality": "good", "source_ts": None, "server_ts": float(i)},
            {"endpoint_id": 1, "value": float(i), "quality": "good", "source_time": None, "server_time": None})


async def test_history_refused_is_kept_bounded_and_written_when_the_store_is_back(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'h.db'}")
    create_schema(db.engine)
    read_only = _read_only_switch(db)
    history = HistoryWriter(db, flush_interval_s=0.01, max_pending_rows=1000)
    try:
        read_only["on"] = True
        for i in range(600):
            history.add(*_row(i))
        assert await history.flush() == 0
        assert not db.health.ok and history.retry_delay > 0
        for i in range(600, 1500):
            history.add(*_row(i))
        assert await history.flush() == 0
        assert history.pending == 1000 and history.rows_dropped == 500  # the oldest went first
        read_only["on"] = False
        assert await history.flush() == 1000
        assert db.health.ok and history.retry_delay == 0
        with db.engine.connect() as conn:
            stored = conn.execute(text("SELECT min(value), max(value), count(*) FROM telemetry_readings")).one()
        assert tuple(stored) == (500.0, 1499.0, 1000)
    finally:
        db.close()


async def test_background_writes_refused_are_held_in_order_and_written_by_the_next_write(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'w.db'}")
    create_schema(db.engine)
    with db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE notes (n INTEGER)"))
    read_only = _read_only_switch(db)

    def note(n: int) -> None:
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO notes VALUES (:n)"), {"n": n})

    try:
        read_only["on"] = True
        for n in range(5):
            db.write_later(note, n)
        await db.barrier()
        assert len(db.held.jobs) == 5
        with pytest.raises(StoreUnavailable):
            await db.write(note, 99)  # a write someone waits for is refused, not held
        read_only["on"] = False
        await db.write(note, 5)
        with db.engine.connect() as conn:
            assert [r[0] for r in conn.execute(text("SELECT n FROM notes ORDER BY rowid"))] == [0, 1, 2, 3, 4, 5]
        assert not db.held.jobs
    finally:
        db.close()


def test_held_writes_are_bounded() -> None:
    held = HeldWrites(limit=3)
    for n in range(5):
        held.hold(print, (n,))
    assert [args for _, args in held.jobs] == [(2,), (3,), (4,)] and held.dropped == 2
