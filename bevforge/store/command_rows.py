"""Command rows: storing a command and its transitions (with their audit rows), finding them again.

`bevforge.commands.record.CommandLog` keeps the newest commands in memory and runs the writes on
the DB writer thread; this module is the SQL. A command's audit row is added to the same
transaction as the command row it describes, so the record and the audit journal can never
disagree after a crash.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel import col, select

from bevforge.store import audit_rows
from bevforge.store.tables import AuditRow, CommandRow

if TYPE_CHECKING:
    from bevforge.store.writer import Database


def insert(db: Database, row: CommandRow, audit: AuditRow | None = None) -> None:
    """Store a new command and its audit row in one transaction (writer thread)."""
    with db.session() as session:
        session.add(row)
        if audit is not None:
            audit_rows.add(session, audit)
        session.commit()


def update(db: Database, row: CommandRow, audit: AuditRow | None = None) -> None:
    """Store a transition, with the audit row of a final one, in one transaction (writer thread)."""
    with db.session() as session:
        session.merge(row)
        if audit is not None:
            audit_rows.add(session, audit)
        session.commit()


def get(db: Database, command_id: str) -> CommandRow | None:
    with db.session() as session:
        return session.get(CommandRow, command_id)


def newest(db: Database, endpoint_id: int | None, status: str | None, limit: int) -> list[CommandRow]:
    """Commands newest first, of one endpoint and/or in one status (None: any)."""
    statement = select(CommandRow)
    if endpoint_id is not None:
        statement = statement.where(CommandRow.endpoint_id == endpoint_id)
    if status is not None:
        statement = statement.where(CommandRow.status == status)
    statement = statement.order_by(CommandRow.created_at.desc()).limit(limit)  # type: ignore[attr-defined]
    with db.session() as session:
        return list(session.exec(statement).all())


def in_range(db: Database, endpoint_ids: list[int], since: datetime, until: datetime,
             limit: int) -> list[CommandRow]:
    """Commands to these endpoints created between `since` and `until`, oldest first (the trend's markers)."""
    created = col(CommandRow.created_at)
    statement = (select(CommandRow)
                 .where(col(CommandRow.endpoint_id).in_(endpoint_ids), created >= since, created <= until)
                 .order_by(created).limit(limit))
    with db.session() as session:
        return list(session.exec(statement).all())
