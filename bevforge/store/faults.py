"""When the store cannot be written: a typed error, a health flag the alarm follows, never a crash.

A panel PC's database fails in a few ordinary ways — the disk (or SD card) is full, the files or
their file system turned read-only, another program holds the write lock too long. None of these
may stop control: the plant keeps its state in memory, drivers keep polling, interlocks and alarms
keep acting. What needs the store is refused, whole, with `StoreUnavailable` (REST 503, code
`store_unavailable`), `StoreHealth` turns to failing (the runtime raises the store alarm from it)
and turns back on the next write that succeeds (the history writer retries on its own).

On PostgreSQL the same holds for a server that cannot be reached, is shutting down, is out of disk
or is read-only (its SQLSTATEs below): control goes on, writes are refused or held, and resume.

SQLite's part: memory-mapped I/O is switched off (`mmap_size=0`), so a write the file system
cannot take is an error code from a `write()` call, never a SIGBUS from a page fault that kills
the process with nothing logged.

Kept in one module of its own, below the engine and the writer that use it (internal to the store,
see pyproject.toml's import-linter contracts); the core's services import `StoreUnavailable` from here.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from bevforge.errors import STORE_UNAVAILABLE, Unavailable

log = logging.getLogger(__name__)

STORE_ALARM_KEY = "store:database"
STORE_ALARM_KIND = "store"

# SQLite primary result codes that mean "the store cannot take this write now", not "the query is wrong".
_STORE_FAULTS = {
    5: "the database is locked by another program",  # SQLITE_BUSY
    6: "the database is locked",  # SQLITE_LOCKED
    8: "the database files are read-only",  # SQLITE_READONLY
    10: "disk I/O error",  # SQLITE_IOERR
    13: "the disk is full",  # SQLITE_FULL
    14: "the database file cannot be opened",  # SQLITE_CANTOPEN
}


class StoreUnavailable(Unavailable):
    """The store cannot be written now; nothing of the request was done (REST 503)."""

    code = STORE_UNAVAILABLE

    def __init__(self, reason: str) -> None:
        super().__init__(f"the store (database) cannot be written: {reason}; nothing was changed — "
                         "control goes on, try again when the store alarm has cleared", reason=reason)
        self.reason = reason


def store_fault(exc: BaseException) -> str | None:
    """Why `exc` means the store cannot be written (None: it is some other error, e.g. a bug)."""
    if isinstance(exc, StoreUnavailable):
        return exc.reason
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None:
            reason = _STORE_FAULTS.get(code & 0xFF)
            return f"{reason} ({exc})" if reason else None
        text = str(exc).lower()  # older sqlite3 modules carry no code: the messages are stable
        for words in ("locked", "readonly", "read-only", "disk is full", "disk i/o", "unable to open"):
            if words in text:
                return str(exc)
        return None
    if type(exc).__module__.split(".")[0] == "psycopg":
        return _postgresql_fault(exc)
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}"
    return None


# PostgreSQL SQLSTATEs (or their two-letter classes) that mean "the store cannot take this write now".
_PG_FAULTS = {
    "08": "the database server cannot be reached",  # connection exception
    "53": "the database server is out of resources (disk full, memory, connections)",  # insufficient resources
    "57P01": "the database server is shutting down",  # admin_shutdown
    "57P02": "the database server crashed",  # crash_shutdown
    "57P03": "the database server is starting up",  # cannot_connect_now
    "25006": "the database is read-only",  # read_only_sql_transaction
    "55P03": "the database is locked",  # lock_not_available
    "58": "the database server's disk failed",  # system error (I/O)
}


def _postgresql_fault(exc: BaseException) -> str | None:
    """psycopg's errors (the driver is an optional extra: recognised by module, never imported here)."""
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate:
        reason = _PG_FAULTS.get(sqlstate) or _PG_FAULTS.get(sqlstate[:2])
        return f"{reason} ({str(exc).strip()})" if reason else None
    if type(exc).__name__ in ("OperationalError", "InterfaceError"):  # refused, closed, lost: no SQLSTATE
        return f"the database server cannot be reached ({str(exc).strip()})"
    return None


class StoreHealth:
    """Whether the last store write worked; each change is handed to a callback on the event loop.

    Set from any thread (the writer thread, request threads); the callback (raise or clear the
    store alarm) always runs on the loop it was attached on, once per change.
    """

    def __init__(self) -> None:
        self.ok = True
        self.reason: str | None = None
        self.faults = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._callback: Callable[[bool, str | None], None] | None = None

    def attach(self, loop: asyncio.AbstractEventLoop, callback: Callable[[bool, str | None], None]) -> None:
        self._loop, self._callback = loop, callback
        if not self.ok:
            loop.call_soon_threadsafe(callback, False, self.reason)

    def failed(self, reason: str) -> None:
        with self._lock:
            self.faults += 1
            changed = self.ok
            self.ok, self.reason = False, reason
        if changed:
            log.error("store cannot be written: %s", reason)
            self._tell(False, reason)

    def succeeded(self) -> None:
        with self._lock:
            changed = not self.ok
            self.ok, self.reason = True, None
        if changed:
            log.warning("store writable again")
            self._tell(True, None)

    def require_writable(self) -> None:
        """Refuse up front a change whose record is written later (alarm actions): all or nothing."""
        if not self.ok:
            raise StoreUnavailable(self.reason or "store fault")

    def _tell(self, ok: bool, reason: str | None) -> None:
        loop, callback = self._loop, self._callback
        if loop is None or callback is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(callback, ok, reason)
        except RuntimeError:  # the loop closed meanwhile (shutdown)
            pass


class HeldWrites:
    """Background writes (alarm journal, audit, session ends) the store refused, kept in order.

    Used on the writer thread only. Nothing an operator asked for waits here — those are refused
    with 503 — only records of what already happened (an alarm raised while the disk was full).
    They are written, oldest first, by the first write that works; beyond `limit` the oldest are
    dropped and counted, so a store that never comes back cannot eat the memory.
    """

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self.jobs: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self.dropped = 0

    def hold(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.jobs.append((fn, args))
        if len(self.jobs) > self.limit:
            self.jobs.popleft()
            self.dropped += 1
            if self.dropped == 1:
                log.error("over %d background writes held while the store refuses writes: dropping the oldest",
                          self.limit)

    def replay(self) -> bool:
        """Write the held jobs in order; False (the rest still held) at the first the store refuses."""
        while self.jobs:
            fn, args = self.jobs[0]
            try:
                fn(*args)
            except Exception as exc:
                if store_fault(exc) is not None:
                    return False
                log.exception("a held background write failed for good: dropped")
            self.jobs.popleft()
        return True


def harden_sqlite(dbapi_connection: Any, busy_timeout_s: float) -> None:
    """Per connection: no memory-mapped I/O (a failed write is an error, not SIGBUS), a bounded lock wait."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA mmap_size=0")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
    cursor.close()


def translate_store_faults(engine: Engine, health: StoreHealth) -> None:
    """Make every store fault raised through `engine` a StoreUnavailable, and mark the store failing.

    SQLAlchemy's `handle_error` sees errors of statements, commits and connects alike, so a write
    through a Session, a Connection or the writer thread is covered by this one hook.
    """

    @event.listens_for(engine, "handle_error")
    def _on_error(context: Any) -> None:
        reason = store_fault(context.original_exception)
        if reason is None:
            return
        health.failed(reason)
        raise StoreUnavailable(reason) from context.original_exception
