"""The one writer: the engine plus one writer thread, and the batched telemetry (history) writer.

Commands and alarms are written through the writer thread in order because an answered command
must survive a crash; telemetry is written in batches because a commit per reading caps ingest at a
few thousand a second. Internal to the store (see pyproject.toml's import-linter contracts).
A store that cannot be written (full, read-only, locked) is an error, never a crash: the writer
refuses what a person asked for (`StoreUnavailable`), holds background records and telemetry, and
resumes by itself (see faults.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import BigInteger, Connection, Float, Integer, String, Table, insert
from sqlmodel import Session

from bevforge.store.engine import make_engine
from bevforge.store.faults import HeldWrites, StoreHealth, store_fault, translate_store_faults
from bevforge.store.tables import EndpointCurrent, TelemetryReading
from bevforge.tasks import stop_task

log = logging.getLogger("bevforge.store")

T = TypeVar("T")


class Database:
    """The engine plus one writer thread.

    Every write goes through the single writer thread, in submission order, so SQLite never sees
    two writers and a command's transitions are stored in the order they happened. Reads run on
    other threads (WAL lets them proceed while a write is under way).
    """

    def __init__(self, url: str, busy_timeout_s: float = 5.0) -> None:
        self.url = url
        self.engine = make_engine(url, busy_timeout_s)
        self.health = StoreHealth()
        translate_store_faults(self.engine, self.health)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-writer")
        self.held = HeldWrites()  # background writes the store refused, written when it can
        self.write_errors = 0

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on the writer thread and wait for it (durable before answering).

        A store fault raises `StoreUnavailable` (see faults.py); a write that works marks the store healthy.
        """
        result = await asyncio.get_running_loop().run_in_executor(self._writer, self._now, fn, args)
        self.health.succeeded()
        return result

    def _now(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        if self.held.jobs:
            self.held.replay()  # earlier background writes first, while the store takes them
        return fn(*args)

    def write_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on the writer thread and wait for it, from a thread that is not the event loop.

        For synchronous callers (the admin CLI, a route's worker thread) so their writes queue behind
        the server's instead of racing them on another connection.
        """
        return self._writer.submit(fn, *args).result()

    def write_later(self, fn: Callable[..., Any], *args: Any, then: Callable[[], None] | None = None) -> None:
        """Queue a write without waiting; one the store refuses is held and written when it can.

        `then` runs on the event loop once the write has been committed (or has failed and been
        logged): what is pushed to a screen after a write is never ahead of what is stored, so a
        crash cannot leave the record contradicting what the operators saw. While the store refuses
        writes (the store alarm is up) `then` runs once the write is held: control goes on and the
        screens follow the plant, and the held record is written, in order, when the store can.
        """
        future = self._writer.submit(self._later, fn, args)
        future.add_done_callback(self._log_failure)
        if then is not None:
            loop = asyncio.get_running_loop()

            def hand_back(_future: Future[Any]) -> None:
                try:
                    loop.call_soon_threadsafe(then)
                except RuntimeError:  # the loop is closed: the process is stopping, nobody to tell
                    pass

            future.add_done_callback(hand_back)

    def _later(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> bool:
        """On the writer thread: write now, or hold behind earlier held writes (order kept). True: written."""
        if self.held.jobs and not self.held.replay():
            self.held.hold(fn, args)
            return False
        try:
            fn(*args)
        except Exception as exc:
            if store_fault(exc) is None:
                raise
            self.held.hold(fn, args)
            return False
        return True

    def _log_failure(self, future: Future[Any]) -> None:
        if future.exception() is None:
            if future.result():
                self.health.succeeded()
            return
        self.write_errors += 1
        log.error("database write failed: %s", future.exception())

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    async def barrier(self) -> None:
        """Wait until every write queued so far is committed (read-your-writes for journals)."""
        await asyncio.get_running_loop().run_in_executor(self._writer, lambda: None)  # writes nothing: no health

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        if self.held.jobs and not self.held.replay():  # one last try; what the store still refuses is lost
            log.error("%d background writes (journal, audit) could not be stored before closing",
                      len(self.held.jobs))
        self.engine.dispose()


class HistoryWriter:
    """Buffers telemetry rows and the latest current values; flushes them in one transaction.

    The flush runs in a worker thread so the event loop never waits for the disk. At most
    `flush_interval_s` of telemetry is lost in a crash (the flush window).

    A flush the store refuses (disk full, read-only, locked) keeps its rows for the next try and
    waits longer each time (`flush_interval_s` doubling up to `retry_max_s`); the buffer is bounded
    by `max_pending_rows`, beyond which the oldest rows are dropped and counted. The first flush that
    works writes the backlog and marks the store healthy again: writing resumes by itself.
    """

    def __init__(self, db: Database, flush_interval_s: float = 0.5, flush_rows: int = 5000,
                 max_pending_rows: int = 100_000, retry_max_s: float = 10.0) -> None:
        self.db = db
        self.engine = db.engine
        self.flush_interval_s = flush_interval_s
        self.flush_rows = flush_rows
        self.max_pending_rows = max_pending_rows
        self.retry_max_s = retry_max_s
        self.retry_delay = 0.0  # > 0 while the store refuses flushes
        self._rows: deque[dict[str, Any]] = deque(maxlen=max_pending_rows)  # full: the oldest row goes
        self._current: dict[int, dict[str, Any]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()
        self.rows_written = 0
        self.rows_dropped = 0
        self.flushes = 0
        self.failed_flushes = 0
        self.last_error: str | None = None

    def add(self, row: dict[str, Any], current: dict[str, Any]) -> None:
        if len(self._rows) == self.max_pending_rows:
            self._count_dropped(1)  # the deque lets the oldest row go as this one arrives
        self._rows.append(row)
        self._current[current["endpoint_id"]] = current
        if len(self._rows) >= self.flush_rows:
            self._wake.set()

    def set_current(self, current: dict[str, Any]) -> None:
        """Only the current value: an endpoint whose history arrives forwarded by its site (Device.history)."""
        self._current[current["endpoint_id"]] = current

    def _count_dropped(self, count: int) -> None:
        """The backlog is bounded (the store refuses writes, or cannot keep up): the oldest history goes, counted."""
        if not self.rows_dropped:
            log.error("history backlog over %d rows (the store refuses or cannot keep up): dropping the oldest",
                      self.max_pending_rows)
        self.rows_dropped += count

    @property
    def pending(self) -> int:
        return len(self._rows)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="history-writer")

    async def stop(self) -> None:
        await stop_task(self._task)
        await self.flush()

    async def _run(self) -> None:
        while True:
            if self.retry_delay:
                await asyncio.sleep(self.retry_delay)  # backing off: a full buffer does not hurry a retry
            else:
                try:
                    await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
                except TimeoutError:
                    pass
            self._wake.clear()
            await self.flush()

    async def flush(self) -> int:
        async with self._flush_lock:
            if not self._rows and not self._current:
                return 0
            rows, self._rows = list(self._rows), deque(maxlen=self.max_pending_rows)
            current, self._current = self._current, {}
            try:
                await self.db.write(self.write_batch, rows, list(current.values()))
            except Exception as exc:  # the disk may be full or locked: keep the rows, keep running, say so
                self._keep_for_retry(rows, current)
                self.last_error = str(exc)
                self.failed_flushes += 1
                self.retry_delay = min(max(self.retry_delay * 2, self.flush_interval_s), self.retry_max_s)
                if store_fault(exc) is None:
                    log.exception("history flush of %d rows failed", len(rows))
                else:
                    log.warning("history flush of %d rows refused (retry in %.1f s): %s", len(rows),
                                self.retry_delay, exc)
                return 0
            self.retry_delay = 0.0
            self.last_error = None
            return len(rows)

    def _keep_for_retry(self, rows: list[dict[str, Any]], current: dict[int, dict[str, Any]]) -> None:
        """Put a refused batch back in front of what arrived meanwhile (newer current values win)."""
        excess = len(rows) + len(self._rows) - self.max_pending_rows
        if excess > 0:
            self._count_dropped(excess)
        kept: deque[dict[str, Any]] = deque(rows, maxlen=self.max_pending_rows)
        kept.extend(self._rows)  # newer rows push the oldest out
        self._rows = kept
        for endpoint_id, value in current.items():
            self._current.setdefault(endpoint_id, value)

    def write_batch(self, rows: Sequence[dict[str, Any]], current: Sequence[dict[str, Any]]) -> None:
        """One transaction: history rows and the current values, each as multi-row INSERT statements
        (history rows by COPY on PostgreSQL: `insert_rows`).

        Not `executemany`: the SQLite driver releases the GIL around every row's step and must win it
        back from the event loop, which keeps it for up to `sys.getswitchinterval()` (5 ms) while busy,
        so under a burst of ingest or alarms `executemany` wrote ~2,500 rows/s and history fell behind
        until rows were dropped. One statement per chunk wins the GIL back once per chunk.
        """
        started = time.perf_counter()
        with self.engine.begin() as conn:
            if rows:
                insert_rows(conn, TelemetryReading.__table__, rows)  # type: ignore[attr-defined]
            if current:
                table = EndpointCurrent.__table__  # type: ignore[attr-defined]
                ids = [c["endpoint_id"] for c in current]
                conn.execute(table.delete().where(table.c.endpoint_id.in_(ids)))
                conn.execute(insert(table).values(list(current)))  # typed columns (JSON, times): compiled by SQLAlchemy
        self.rows_written += len(rows)
        self.flushes += 1
        log.debug("flushed %d rows in %.1f ms", len(rows), (time.perf_counter() - started) * 1000)


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert plain-typed rows (numbers, text; all with the same keys) in as few statements as the driver allows.

    On SQLite one statement holds as many rows as its bound-parameter limit allows; on PostgreSQL (psycopg)
    the rows stream in with COPY, its bulk-load path, inside the caller's transaction; other databases get
    SQLAlchemy's `executemany`, which their drivers batch themselves.
    """
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        _copy_rows(conn, table, rows)
        return
    if conn.dialect.name != "sqlite":
        conn.execute(insert(table), list(rows))
        return
    columns = tuple(rows[0])
    per_statement = max(1, min(1000, conn.dialect.insertmanyvalues_max_parameters // len(columns)))
    for start in range(0, len(rows), per_statement):
        chunk = rows[start:start + per_statement]
        params = tuple(row[column] for row in chunk for column in columns)
        conn.exec_driver_sql(_multi_row_insert(table.name, columns, len(chunk), conn.dialect.identifier_preparer.quote),
                             params)


def _copy_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """COPY … FROM STDIN through psycopg on the connection's own transaction: several times the rows/s of
    INSERT, since PostgreSQL parses no statement per row (bench/pg_writer.py measures it)."""
    columns = tuple(rows[0])
    quote = conn.dialect.identifier_preparer.quote
    types = [_copy_type(table.c[column].type) for column in columns]
    binary = all(types)  # plain numbers and text: PostgreSQL's binary format, no number parsed from text
    statement = (f"COPY {quote(table.name)} ({','.join(quote(c) for c in columns)}) FROM STDIN"
                 + (" (FORMAT BINARY)" if binary else ""))
    driver_connection = conn.connection.driver_connection
    assert driver_connection is not None
    with driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
        if binary:
            copy.set_types(types)
        for row in rows:
            copy.write_row(tuple(row[column] for column in columns))


def _copy_type(column_type: Any) -> str | None:
    """The PostgreSQL type a binary COPY sends a column as, or None (that table is copied as text)."""
    if isinstance(column_type, Integer):
        return "int8" if isinstance(column_type, BigInteger) else "int4"
    if isinstance(column_type, Float):
        return "float8"
    if isinstance(column_type, String):
        return "text"
    return None


@lru_cache(maxsize=16)  # the full-size statement and a few tails per table; never one per count
def _multi_row_insert(table: str, columns: tuple[str, ...], count: int, quote: Callable[[str], str]) -> str:
    one = "(" + ",".join("?" * len(columns)) + ")"
    return f"INSERT INTO {quote(table)} ({','.join(quote(c) for c in columns)}) VALUES {','.join([one] * count)}"
