"""The audit journal's rows: appending one, reading them back newest first.

Append-only by construction: the only write is an insert. `bevforge.audit` decides what an entry
says and runs `append` on the DB writer thread; this module is the SQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import make_transient

from bevforge.store.journal_queries import newest_first
from bevforge.store.tables import AuditRow, SiteAuditRow

if TYPE_CHECKING:
    from sqlmodel import Session

    from bevforge.store.writer import Database


def fresh(row: AuditRow) -> AuditRow:
    """`row` as a new row: a retry after a refused commit (store fault) must not reuse the id that flush gave it."""
    make_transient(row)
    row.id = None
    return row


def add(session: Session, row: AuditRow) -> None:
    """Add `row` to a transaction another record owns (a command and its audit row commit together)."""
    session.add(fresh(row))


def append(db: Database, row: AuditRow) -> None:
    """Insert one audit row in its own transaction (writer thread)."""
    with db.session() as session:
        add(session, row)
        session.commit()


def newest(db: Database, *, since: datetime | None, until: datetime | None, user: str | None,
           action: str | None, limit: int) -> list[AuditRow]:
    """Audit rows newest first; `action` matches as a prefix (`auth.` finds every sign-in entry)."""
    prefix = [AuditRow.action.startswith(action)] if action is not None else []  # type: ignore[attr-defined]
    statement = newest_first(AuditRow, since=since, until=until, limit=limit,
                             equal=[(AuditRow.user, user)], also=prefix)
    with db.session() as session:
        return list(session.exec(statement).all())


def site_newest(db: Database, site: str, *, since: datetime | None, until: datetime | None, user: str | None,
                action: str | None, limit: int) -> list[SiteAuditRow]:
    """A site's audit journal as a central panel has it (forwarded), newest first; `action` as a prefix."""
    prefix = [SiteAuditRow.action.startswith(action)] if action is not None else []  # type: ignore[attr-defined]
    statement = newest_first(SiteAuditRow, since=since, until=until, limit=limit,
                             equal=[(SiteAuditRow.site, site), (SiteAuditRow.user, user)], also=prefix)
    with db.session() as session:
        return list(session.exec(statement).all())
