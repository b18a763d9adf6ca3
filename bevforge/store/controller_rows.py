"""The controller service's rows: each controller's mode, setpoint, manual output and tuning.

`bevforge.controllers` decides what changes and when it is saved; this module is the SQL. One
row per controller, replaced whole on every change a person makes (never per PWM edge).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlmodel import select

from bevforge.store.tables import ControllerRow

if TYPE_CHECKING:
    from bevforge.store.writer import Database


def save(db: Database, row: ControllerRow) -> None:
    """Store a controller's settings as they are now (insert or update by id; on the writer thread)."""
    with db.session() as session:
        session.merge(row)
        session.commit()


def load_all(db: Database) -> dict[str, ControllerRow]:
    """At start-up: every controller's stored settings, by controller id."""
    with db.session() as session:
        return {row.controller_id: row for row in session.exec(select(ControllerRow)).all()}
