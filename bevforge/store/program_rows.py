"""The program service's rows: each unit's program as it stands (template, state, step, step state).

`bevforge.programs` decides what is saved and when (every transition, and periodically while it
runs); this module is the SQL. One row per unit, replaced whole on every save.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlmodel import select

from bevforge.store.tables import ProgramRow

if TYPE_CHECKING:
    from bevforge.store.writer import Database


def save(db: Database, row: ProgramRow) -> None:
    """Store a unit's program as it is now (insert or update by unit; on the writer thread)."""
    with db.session() as session:
        session.merge(row)
        session.commit()


def load_all(db: Database) -> dict[str, ProgramRow]:
    """At start-up: every unit's stored program, by unit id."""
    with db.session() as session:
        return {row.unit_id: row for row in session.exec(select(ProgramRow)).all()}
