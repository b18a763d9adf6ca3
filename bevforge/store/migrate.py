"""Schema migrations: Alembic, run by the server itself at start-up (no alembic.ini for anyone to keep).

- An empty database is upgraded to the newest revision (the baseline creates today's tables).
- A database made before migrations existed (tables created by `create_all`, a `schema_version` row,
  no `alembic_version` table) is adopted: the baseline revision creates only the tables it lacks and
  records itself, then the later revisions run. Its rows are kept.
- A database written by a newer BevForge (a `schema_version` above `SCHEMA_VERSION`, or an Alembic
  revision this code does not ship) is refused rather than silently misread.

On PostgreSQL the upgrade holds an advisory lock, so two central instances starting together migrate
once. `python main.py db status | upgrade` (bevforge/admin_cli.py) shows and runs the same thing.
Internal to the store (see pyproject.toml's import-linter contracts).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, insert, inspect, select, text
from sqlalchemy.engine import Engine

from bevforge.domain import utcnow
from bevforge.store.tables import SCHEMA_VERSION, SchemaVersion

if TYPE_CHECKING:  # Alembic itself is imported only when a database is not at HEAD (see `upgrade`)
    from alembic.config import Config

log = logging.getLogger("bevforge.store")

MIGRATIONS = Path(__file__).with_name("migrations")
# The newest revision in migrations/versions/. Every start compares it with the database's
# alembic_version row in plain SQL and loads Alembic (~0.13 s of CPU before the screens answer: a
# restarted brewhouse's resume prompt waits on it) only when they differ; a test keeps the two equal.
HEAD = "0004_site_events"
_LOCK_KEY = 0x6265_7666  # "bevf": the PostgreSQL advisory lock the migrations run under


class SchemaTooNew(RuntimeError):
    """The database was written by a newer BevForge: this one must not read or change it."""


@dataclass(frozen=True, slots=True)
class SchemaState:
    """Where a database stands: its Alembic revision (None: not migrated yet) against this code's newest."""

    current: str | None
    head: str
    legacy: bool  # tables made by create_all before migrations existed, not yet adopted

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration in code: the migrations shipped in this package, on `connection`."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Autogenerate's filter: an index declared for one database only (`Index(...).ddl_if(dialect=...)`,
    e.g. PostgreSQL's BRIN on history time) is not expected on the others."""
    if type_ == "index" and not reflected:
        dialect = getattr(getattr(obj, "_ddl_if", None), "dialect", None)
        if dialect is not None and _dialect_in_use and dialect != _dialect_in_use[-1]:
            return False
    return True


_dialect_in_use: list[str] = []  # the dialect being migrated or compared (the hook is not told it)


def state(engine: Engine) -> SchemaState:
    with engine.connect() as conn:
        return _state(conn)


def _state(conn: Connection) -> SchemaState:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    current = MigrationContext.configure(conn).get_current_revision()
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    legacy = current is None and inspect(conn).has_table("schema_version")
    return SchemaState(current, head, legacy)


def upgrade(engine: Engine) -> SchemaState:
    """Bring the database to this code's newest revision (see the module's docstring); where it stands now."""
    if at_head(engine):
        return SchemaState(HEAD, HEAD, legacy=False)
    from alembic import command

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        before = _state(conn)
        _refuse_newer(conn, before)
        if before.up_to_date:
            _record_version(conn)
            return before
        if before.legacy:
            log.info("adopting a database made before migrations: its tables are the baseline, its rows kept")
        _dialect_in_use.append(conn.dialect.name)
        try:
            command.upgrade(alembic_config(conn), "head")
        finally:
            _dialect_in_use.pop()
        _record_version(conn)
        after = _state(conn)
    log.info("database schema upgraded from %s to %s", before.current or "nothing", after.current)
    return after


def at_head(engine: Engine) -> bool:
    """The database's one Alembic revision is HEAD and its `schema_version` is this code's: the common
    start, answered by plain queries without Alembic. Anything else takes `upgrade`'s full path."""
    with engine.connect() as conn:
        tables = inspect(conn)
        if not (tables.has_table("alembic_version") and tables.has_table("schema_version")):
            return False
        revisions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        newest = conn.execute(text("SELECT max(version) FROM schema_version")).scalar()
        return list(revisions) == [HEAD] and newest == SCHEMA_VERSION


def _record_version(conn: Connection) -> None:
    """The `schema_version` row a BevForge from before migrations checks (so it refuses a newer schema),
    written under the same lock and transaction as the upgrade: two instances never both add it."""
    table = SchemaVersion.__table__  # type: ignore[attr-defined]
    newest = conn.execute(select(func.max(table.c.version))).scalar()
    if newest is None or newest < SCHEMA_VERSION:
        conn.execute(insert(table).values(version=SCHEMA_VERSION, applied_at=utcnow()))


def _refuse_newer(conn: Connection, now: SchemaState) -> None:
    from alembic.script import ScriptDirectory

    if now.current is not None:
        known = {script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
        if now.current not in known:
            raise SchemaTooNew(f"database schema revision {now.current} is newer than this BevForge "
                               f"(newest it knows: {now.head})")
    if inspect(conn).has_table("schema_version"):
        newest = conn.execute(text("SELECT max(version) FROM schema_version")).scalar()
        if newest is not None and newest > SCHEMA_VERSION:
            raise SchemaTooNew(f"database schema version {newest} is newer than this BevForge ({SCHEMA_VERSION})")


def compare(engine: Engine) -> list[Any]:
    """What differs between the database and the models (Alembic autogenerate's diff; [] when they match)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlmodel import SQLModel

    with engine.connect() as conn:
        _dialect_in_use.append(conn.dialect.name)
        try:
            context = MigrationContext.configure(conn, opts={"include_object": include_object, "compare_type": True})
            return list(compare_metadata(context, SQLModel.metadata))
        finally:
            _dialect_in_use.pop()
