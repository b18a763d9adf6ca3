"""The recipe drafts' rows (issue 15): an imported recipe and the program it made, under review.

`bevforge.recipes.service` decides what is stored (the import checked whole first: nothing of a bad file
is ever written) and who may; this module is the SQL. Writes go through the writer thread (`db.write`).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlmodel import select

from bevforge.store.tables import RecipeDraftRow

if TYPE_CHECKING:
    from bevforge.store.writer import Database


def insert(db: Database, row: RecipeDraftRow) -> RecipeDraftRow:
    """Store a new draft; the row comes back with its id."""
    with db.session() as session:
        session.add(row)
        session.commit()
        session.refresh(row)
        return row


def get(db: Database, draft_id: int) -> RecipeDraftRow | None:
    with db.session() as session:
        return session.get(RecipeDraftRow, draft_id)


def list_all(db: Database) -> list[RecipeDraftRow]:
    """Every draft, newest first."""
    with db.session() as session:
        return list(session.exec(select(RecipeDraftRow).order_by(RecipeDraftRow.id.desc())).all())  # type: ignore[union-attr]


def update_program(db: Database, draft_id: int, program: dict[str, Any], by: str,
                   at: datetime) -> RecipeDraftRow | None:
    """Replace a draft's program with the reviewed one (None: no such draft)."""
    with db.session() as session:
        row = session.get(RecipeDraftRow, draft_id)
        if row is None:
            return None
        row.program, row.edited_by, row.edited_at = program, by, at
        session.add(row)
        session.commit()
        session.refresh(row)
        return row


def delete(db: Database, draft_id: int) -> bool:
    with db.session() as session:
        row = session.get(RecipeDraftRow, draft_id)
        if row is None:
            return False
        session.delete(row)
        session.commit()
        return True
