"""The alarm service's rows: the alarm journal, occurrences, point settings, and reading them back.

`bevforge.alarms` decides what changes (the engine), runs every write on the DB writer thread
(the recorder) and shapes what is read (queries, history); this module is the SQL. The journal is
append-only: its only write is an insert.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func
from sqlalchemy.orm import make_transient
from sqlmodel import select

from bevforge.store.journal_queries import newest_first
from bevforge.store.tables import AlarmJournalRow, AlarmPointRow, AlarmRow, SiteJournalRow

if TYPE_CHECKING:
    from bevforge.store.writer import Database


# -- writes (on the writer thread) ------------------------------------------------------------------

def append_journal(db: Database, rows: list[AlarmJournalRow]) -> None:
    """Insert journal rows in one transaction."""
    for row in rows:  # a retry after a refused commit: a new row, not the id the failed flush gave it
        make_transient(row)
        row.id = None
    with db.session() as session:
        session.add_all(rows)
        session.commit()


def save(db: Database, row: AlarmRow | AlarmPointRow) -> None:
    """Store an occurrence or a point's settings as they are now (insert or update by key)."""
    with db.session() as session:
        session.merge(row)
        session.commit()


# -- reads ------------------------------------------------------------------------------------------

def load_open(db: Database) -> tuple[int, list[AlarmRow], list[AlarmPointRow]]:
    """At start-up: the next occurrence id, the occurrences left open, every point's stored settings."""
    with db.session() as session:
        next_id = (session.exec(select(func.max(AlarmRow.id))).one() or 0) + 1
        rows = list(session.exec(select(AlarmRow).where(AlarmRow.closed == False)).all())  # noqa: E712
        settings = list(session.exec(select(AlarmPointRow)).all())
    return next_id, rows, settings


def get(db: Database, alarm_id: int) -> AlarmRow | None:
    with db.session() as session:
        return session.get(AlarmRow, alarm_id)


def newest(db: Database, limit: int) -> list[AlarmRow]:
    """The newest occurrences, open or closed."""
    with db.session() as session:
        return list(session.exec(select(AlarmRow).order_by(AlarmRow.id.desc()).limit(limit)).all())  # type: ignore[union-attr]


def journal(db: Database, *, since: datetime | None, until: datetime | None, rule_id: str | None,
            event: str | None, alarm_id: int | None, limit: int) -> list[AlarmJournalRow]:
    """Journal rows newest first, filtered by whatever is given (None: not filtered)."""
    statement = newest_first(AlarmJournalRow, since=since, until=until, limit=limit,
                             equal=[(AlarmJournalRow.rule_id, rule_id), (AlarmJournalRow.event, event),
                                    (AlarmJournalRow.alarm_id, alarm_id)])
    with db.session() as session:
        return list(session.exec(statement).all())


def load_since(db: Database, since: datetime, hidden_states: Sequence[str]) -> tuple[list[Any], list[AlarmRow]]:
    """For the statistics, in one read: (time, rule id) of every raise since `since` in a state
    not in `hidden_states`, and the occurrences active and open since before `since`."""
    with db.session() as session:
        raised = list(session.exec(select(AlarmJournalRow.time, AlarmJournalRow.rule_id)
                                   .where(AlarmJournalRow.event == "raised", AlarmJournalRow.time >= since,
                                          AlarmJournalRow.state.not_in(hidden_states))).all())  # type: ignore[attr-defined]
        stale = list(session.exec(select(AlarmRow).where(AlarmRow.active == True, AlarmRow.closed == False,  # noqa: E712
                                                         AlarmRow.raised_at <= since)).all())
    return raised, stale


def site_journal(db: Database, site: str, *, since: datetime | None, until: datetime | None, rule_id: str | None,
                 event: str | None, alarm_id: int | None, limit: int) -> list[SiteJournalRow]:
    """A site's alarm journal as a central panel has it (forwarded), newest first (the site's own order),
    filtered like the local one."""
    statement = newest_first(SiteJournalRow, since=since, until=until, limit=limit,
                             equal=[(SiteJournalRow.site, site), (SiteJournalRow.rule_id, rule_id),
                                    (SiteJournalRow.event, event), (SiteJournalRow.alarm_id, alarm_id)])
    with db.session() as session:
        return list(session.exec(statement).all())
