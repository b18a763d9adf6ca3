"""The one writer: the engine plus one writer thread, and the batched telemetry (history) writer.

Commands and alarms are written through the writer thread in order because an answered command
must survive a crash; telemetry is written in batches because a commit per reading caps ingest at a
few thousand a second. Internal to the store (see pyproject.toml's import-linter contracts).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import insert
from sqlmodel import Session

from bevforge.store.engine import make_engine
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

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-writer")
        self.write_errors = 0

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on the writer thread and wait for it (durable before answering)."""
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    def write_later(self, fn: Callable[..., Any], *args: Any, then: Callable[[], None] | None = None) -> None:
        """Queue a write without waiting; failures are logged and counted, never lost silently.

        `then` runs on the event loop once the write has been committed (or has failed and been
        logged): what is pushed to a screen after a write is never ahead of what is stored, so a
        crash cannot leave the record contradicting what the operators saw.
        """
        future = self._writer.submit(fn, *args)
        future.add_done_callback(self._log_failure)
        if then is not None:
            loop = asyncio.get_running_loop()

            def hand_back(_future: Future[Any]) -> None:
                try:
                    loop.call_soon_threadsafe(then)
                except RuntimeError:  # the loop is closed: the process is stopping, nobody to tell
                    pass

            future.add_done_callback(hand_back)

    def _log_failure(self, future: Future[Any]) -> None:
        if future.exception() is not None:
            self.write_errors += 1
            log.error("database write failed: %s", future.exception())

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    async def barrier(self) -> None:
        """Wait until every write queued so far is committed (read-your-writes for journals)."""
        await self.write(lambda: None)

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self.engine.dispose()


class HistoryWriter:
    """Buffers telemetry rows and the latest current values; flushes them in one transaction.

    The flush runs in a worker thread so the event loop never waits for the disk. At most
    `flush_interval_s` of telemetry is lost in a crash (the flush window).
    """

    def __init__(self, db: Database, flush_interval_s: float = 0.5, flush_rows: int = 5000) -> None:
        self.db = db
        self.engine = db.engine
        self.flush_interval_s = flush_interval_s
        self.flush_rows = flush_rows
        self._rows: list[dict[str, Any]] = []
        self._current: dict[int, dict[str, Any]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()
        self.rows_written = 0
        self.flushes = 0
        self.last_error: str | None = None

    def add(self, row: dict[str, Any], current: dict[str, Any]) -> None:
        self._rows.append(row)
        self._current[current["endpoint_id"]] = current
        if len(self._rows) >= self.flush_rows:
            self._wake.set()

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
            rows, self._rows = self._rows, []
            current, self._current = self._current, {}
            try:
                await self.db.write(self.write_batch, rows, list(current.values()))
            except Exception as exc:  # the disk may be full or locked: keep running, say so
                self.last_error = str(exc)
                log.exception("history flush of %d rows failed", len(rows))
                return 0
            self.last_error = None
            return len(rows)

    def write_batch(self, rows: Sequence[dict[str, Any]], current: Sequence[dict[str, Any]]) -> None:
        """One transaction: history rows by Core insert, current values by upsert."""
        started = time.perf_counter()
        with self.engine.begin() as conn:
            if rows:
                conn.execute(insert(TelemetryReading), list(rows))
            if current:
                ids = [c["endpoint_id"] for c in current]
                conn.execute(
                    EndpointCurrent.__table__.delete().where(EndpointCurrent.__table__.c.endpoint_id.in_(ids))  # type: ignore[attr-defined]
                )
                conn.execute(insert(EndpointCurrent), list(current))
        self.rows_written += len(rows)
        self.flushes += 1
        log.debug("flushed %d rows in %.1f ms", len(rows), (time.perf_counter() - started) * 1000)
