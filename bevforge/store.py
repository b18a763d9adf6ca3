"""SQL tables of the plant and the batched history writer.

SQLite (WAL, synchronous=NORMAL) by default; any SQLAlchemy URL works (PostgreSQL in production).
Commands and alarms are written synchronously because an answered command must survive a crash;
telemetry is written in batches because a commit per reading caps ingest at a few thousand a second.
A store that cannot be written (full, read-only, locked) is an error, never a crash: see store_faults.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import JSON, Column, Index, event, insert, text
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, create_engine, select

from bevforge.domain import CommandStatus, utcnow
from bevforge.store_faults import HeldWrites, StoreHealth, harden_sqlite, store_fault, translate_store_faults
from bevforge.tasks import stop_task

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
T = TypeVar("T")


class SchemaVersion(SQLModel, table=True):
    __tablename__ = "schema_version"
    version: int = Field(primary_key=True)
    applied_at: datetime = Field(default_factory=utcnow)


class EndpointRow(SQLModel, table=True):
    """The configured endpoints, mirrored so history stays readable after a config change."""

    __tablename__ = "endpoints"
    id: int = Field(primary_key=True)
    name: str
    node: str
    kind: str
    unit: str
    data_type: str
    writable: bool


class EndpointCurrent(SQLModel, table=True):
    __tablename__ = "endpoint_current"
    endpoint_id: int = Field(primary_key=True)
    value: Any = Field(default=None, sa_column=Column(JSON))
    quality: str
    source_time: datetime | None = None
    server_time: datetime | None = None


class TelemetryReading(SQLModel, table=True):
    """History. Times are UNIX epoch seconds (UTC): a REAL column inserts several times faster than a
    timezone-aware DATETIME (no per-row conversion) and range queries on it are plain comparisons."""

    __tablename__ = "telemetry_readings"
    __table_args__ = (Index("ix_telemetry_endpoint_time", "endpoint_id", "server_ts"),)
    id: int | None = Field(default=None, primary_key=True)
    endpoint_id: int
    value: float | None = None
    quality: str
    source_ts: float | None = None
    server_ts: float


class TelemetryRollup(SQLModel, table=True):
    """One endpoint's good samples over one minute, kept after the raw rows are pruned (retention).

    `minute_ts` is the minute's start in epoch seconds; a minute with no good sample has no row (a gap).
    """

    __tablename__ = "telemetry_rollups"
    endpoint_id: int = Field(primary_key=True)
    minute_ts: float = Field(primary_key=True)
    minimum: float
    average: float
    maximum: float
    samples: int


class CommandRow(SQLModel, table=True):
    __tablename__ = "commands"
    id: str = Field(primary_key=True, max_length=64)
    endpoint_id: int = Field(index=True)
    requested_value: Any = Field(default=None, sa_column=Column(JSON))
    actual_value: Any = Field(default=None, sa_column=Column(JSON))
    status: str = Field(index=True)
    error: str | None = None
    reasons: Any = Field(default=None, sa_column=Column(JSON))
    user: str
    station: str
    origin: str = "api"
    created_at: datetime
    queued_at: datetime | None = None
    sent_at: datetime | None = None
    acked_at: datetime | None = None
    completed_at: datetime | None = None
    updated_at: datetime


class AlarmRow(SQLModel, table=True):
    """One alarm occurrence: from raised until back to normal and acknowledged (and reset if latched)."""

    __tablename__ = "alarms"
    id: int | None = Field(default=None, primary_key=True)
    rule_id: str = Field(index=True)
    endpoint_id: int | None = None
    node: str | None = None
    kind: str
    severity: str
    message: str
    value: Any = Field(default=None, sa_column=Column(JSON))
    active: bool = True
    acked: bool = False
    latched: bool = False
    state: str = "unacknowledged"  # display state at the last transition (derived; for queries only)
    raised_at: datetime
    cleared_at: datetime | None = None
    acked_at: datetime | None = None
    acked_by: str | None = None
    ack_comment: str | None = None
    closed: bool = False


class AlarmJournalRow(SQLModel, table=True):
    """Append-only: every alarm transition with time and user. Never updated, never deleted."""

    __tablename__ = "alarm_journal"
    __table_args__ = (Index("ix_alarm_journal_time", "time"),)
    id: int | None = Field(default=None, primary_key=True)
    time: datetime
    alarm_id: int | None = Field(default=None, index=True)
    rule_id: str = Field(index=True)
    event: str
    user: str = "system"
    comment: str | None = None
    value: Any = Field(default=None, sa_column=Column(JSON))
    state: str
    priority: str
    message: str


class AlarmPointRow(SQLModel, table=True):
    """Settings of an alarm point that outlive a restart: shelf, out of service, changed limits."""

    __tablename__ = "alarm_points"
    rule_id: str = Field(primary_key=True)
    shelf: str | None = None
    shelved_until: datetime | None = None
    out_of_service: bool = False
    overrides: Any = Field(default=None, sa_column=Column(JSON))
    updated_at: datetime
    updated_by: str = "system"


class UserRow(SQLModel, table=True):
    __tablename__ = "users"
    username: str = Field(primary_key=True, max_length=64)
    password_hash: str
    role: str
    nodes: Any = Field(default=None, sa_column=Column(JSON))  # None: every node
    disabled: bool = False
    created_at: datetime
    updated_at: datetime


class TokenRow(SQLModel, table=True):
    """API token; only its SHA-256 is stored (the token itself is shown once, at creation)."""

    __tablename__ = "api_tokens"
    id: str = Field(primary_key=True, max_length=32)
    name: str
    token_hash: str = Field(index=True, unique=True)
    role: str
    nodes: Any = Field(default=None, sa_column=Column(JSON))
    created_by: str
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class SessionRow(SQLModel, table=True):
    """Server-side session behind the HttpOnly cookie (stored as a hash of the cookie value)."""

    __tablename__ = "sessions"
    id_hash: str = Field(primary_key=True)
    username: str = Field(index=True)
    station: str
    created_at: datetime
    last_seen_at: datetime
    ended_at: datetime | None = None


class AuditRow(SQLModel, table=True):
    """Append-only audit journal: who, where, when, what, old → new, result."""

    __tablename__ = "audit"
    __table_args__ = (Index("ix_audit_time", "time"),)
    id: int | None = Field(default=None, primary_key=True)
    time: datetime
    user: str = Field(index=True)
    role: str
    station: str
    action: str = Field(index=True)
    target: str | None = None
    old: Any = Field(default=None, sa_column=Column(JSON))
    new: Any = Field(default=None, sa_column=Column(JSON))
    result: str = "ok"
    command_id: str | None = None
    detail: str | None = None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def default_db_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'bevforge.db'}"


def make_engine(url: str, busy_timeout_s: float = 5.0) -> Engine:
    """Engine for `url`; SQLite gets WAL, no memory-mapped I/O, and a directory created for its file."""
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[-1]
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_timeout_s})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "connect", lambda conn, _record: harden_sqlite(conn, busy_timeout_s))
        return engine
    return create_engine(url, pool_pre_ping=True)


def create_schema(engine: Engine) -> None:
    """Create tables on first start and record the schema version.

    Later schema changes ship as Alembic migrations keyed on this version; a database written by a
    newer BevForge is refused rather than silently misread.
    """
    SQLModel.metadata.create_all(engine)
    with Session(engine) as session:
        row = session.exec(select(SchemaVersion).order_by(SchemaVersion.version.desc())).first()  # type: ignore[attr-defined]
        if row is None:
            session.add(SchemaVersion(version=SCHEMA_VERSION))
            session.commit()
        elif row.version > SCHEMA_VERSION:
            raise RuntimeError(
                f"database schema version {row.version} is newer than this BevForge ({SCHEMA_VERSION})"
            )


def sync_endpoints(engine: Engine, endpoints: Iterable[EndpointRow]) -> None:
    with Session(engine) as session:
        for row in endpoints:
            session.merge(row)
        session.commit()


def fail_interrupted_commands(engine: Engine) -> int:
    """Mark commands left in flight by a crash as failed; they are never re-sent."""
    now = utcnow()
    in_flight = [CommandStatus.QUEUED.value, CommandStatus.SENT.value, CommandStatus.ACKED.value]
    with Session(engine) as session:
        rows = session.exec(select(CommandRow).where(CommandRow.status.in_(in_flight))).all()  # type: ignore[attr-defined]
        for row in rows:
            row.status = CommandStatus.FAILED.value
            row.error = "interrupted by restart"
            row.completed_at = now
            row.updated_at = now
            session.add(row)
        session.commit()
        return len(rows)


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

        A store fault raises `StoreUnavailable` (see store_faults); a write that works marks the store healthy.
        """
        result = await asyncio.get_running_loop().run_in_executor(self._writer, self._now, fn, args)
        self.health.succeeded()
        return result

    def _now(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        if self.held.jobs:
            self.held.replay()  # earlier background writes first, while the store takes them
        return fn(*args)

    def write_later(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue a write without waiting; one the store refuses is held and written when it can."""
        future = self._writer.submit(self._later, fn, args)
        future.add_done_callback(self._log_failure)

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
        self._rows: list[dict[str, Any]] = []
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
        self._rows.append(row)
        self._current[current["endpoint_id"]] = current
        if len(self._rows) >= self.flush_rows:
            self._wake.set()
        if len(self._rows) > self.max_pending_rows:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        """Bound the backlog while the store refuses writes: the oldest history goes first, counted."""
        excess = len(self._rows) - self.max_pending_rows
        if excess > 0:
            if not self.rows_dropped:
                log.error("history backlog over %d rows while the store refuses writes: dropping the oldest",
                          self.max_pending_rows)
            del self._rows[:excess]
            self.rows_dropped += excess

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
            rows, self._rows = self._rows, []
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
        self._rows = rows + self._rows
        for endpoint_id, value in current.items():
            self._current.setdefault(endpoint_id, value)
        self._drop_oldest()

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


def integrity_ok(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
