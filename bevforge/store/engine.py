"""The engine: SQLite (WAL, synchronous=NORMAL) by default, PostgreSQL through psycopg (docs/deployment.md
§8); creating the schema, mirroring endpoints, and the start-up clean-up of a crash.
A store that cannot be written (full, read-only, locked) is an error, never a crash: see faults.py.

Internal to the store (see pyproject.toml's import-linter contracts).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, SQLModel, create_engine, select

from bevforge.domain import CommandStatus, utcnow
from bevforge.store.faults import harden_sqlite
from bevforge.store.migrate import upgrade
from bevforge.store.tables import CommandRow, EndpointRow


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def shown_db(url: str) -> str:
    """A database URL fit to print on a console: no password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can read: the engine will say so when it opens it
        return url


def default_db_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'bevforge.db'}"


def make_engine(url: str, busy_timeout_s: float = 5.0) -> Engine:
    """Engine for `url`; SQLite gets WAL, no memory-mapped I/O, and a directory created for its file;
    PostgreSQL (psycopg) gets `busy_timeout_s` as its lock and connect timeouts."""
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[-1]
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_timeout_s})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "connect", lambda conn, _record: harden_sqlite(conn, busy_timeout_s))
        return engine
    if url.startswith("postgresql+psycopg"):
        # The same bound as SQLite's busy timeout: a write waits at most this long for another session's
        # lock or for the server to answer a connect, then it is a store fault (503, store alarm), never
        # a request hanging for the TCP timeout while the plant goes on.
        seconds = max(1, math.ceil(busy_timeout_s))
        return create_engine(url, pool_pre_ping=True, connect_args={
            "connect_timeout": seconds, "options": f"-c lock_timeout={int(busy_timeout_s * 1000)}"})
    return create_engine(url, pool_pre_ping=True)


def create_schema(engine: Engine) -> None:
    """Bring the schema up to date at start-up (Alembic, bevforge/store/migrate.py) and record its version.

    An empty database gets today's tables; one made before migrations existed is adopted with its rows;
    one written by a newer BevForge is refused (`SchemaTooNew`) rather than silently misread. The
    `schema_version` row is what a BevForge from before migrations checks, so it refuses a newer schema too.
    """
    upgrade(engine)  # the schema_version row is written there, in the upgrade's transaction


def sync_endpoints(engine: Engine, endpoints: Iterable[EndpointRow]) -> None:
    """Mirror the configured endpoints: new ones added, changed ones updated (a row the config no longer has
    stays, for its history). One read of the table rather than one per endpoint (start-up, a reload); an
    unchanged endpoint is not written, so a restart with the same config writes nothing here."""
    with Session(engine) as session:
        stored = {row.id: row for row in session.exec(select(EndpointRow)).all()}
        for row in endpoints:
            have = stored.get(row.id)
            if have is None:
                session.add(row)
                stored[row.id] = row
                continue
            for field in EndpointRow.model_fields:
                value = getattr(row, field)
                if getattr(have, field) != value:
                    setattr(have, field, value)
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


def integrity_ok(engine: Engine) -> bool:
    """SQLite: its own integrity check of the file. Other databases have none to ask (PostgreSQL checks its
    pages as it reads them): every table of the schema is read through instead, which fails on a broken one."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            return conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
        try:
            for table in SQLModel.metadata.sorted_tables:
                conn.execute(select(func.count()).select_from(table)).scalar()
        except DBAPIError:
            return False
        return True
