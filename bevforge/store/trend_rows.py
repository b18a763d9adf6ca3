"""Saved trend views: the SQL behind `bevforge.trends.TrendViews`.

The trends service decides who may save, see and delete which view (and audits shared ones); this
module only stores and finds the rows. A view is keyed by (owner, name): saving the same name again
replaces it, so a user never ends up with two "MLT mash" views.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlmodel import col, or_, select

from bevforge.store.tables import TrendViewRow

if TYPE_CHECKING:
    from bevforge.store.writer import Database


def visible(db: Database, user: str) -> list[TrendViewRow]:
    """The shared views and `user`'s own, shared first, each group by name."""
    statement = (select(TrendViewRow)
                 .where(or_(col(TrendViewRow.owner).is_(None), TrendViewRow.owner == user))
                 .order_by(col(TrendViewRow.owner).is_not(None), TrendViewRow.name))
    with db.session() as session:
        return list(session.exec(statement).all())


def get(db: Database, view_id: int) -> TrendViewRow | None:
    with db.session() as session:
        return session.get(TrendViewRow, view_id)


def save(db: Database, row: TrendViewRow, limit: int) -> TrendViewRow | None:
    """Insert the view, or replace the one with the same owner and name (writer thread); the stored row,
    or None when it would be a new one beyond `limit` views of that owner (shared: of everybody)."""
    owner = col(TrendViewRow.owner).is_(None) if row.owner is None else TrendViewRow.owner == row.owner
    with db.session() as session:
        existing = session.exec(select(TrendViewRow).where(owner, TrendViewRow.name == row.name)).first()
        if existing is None and len(session.exec(select(TrendViewRow.id).where(owner)).all()) >= limit:
            return None
        if existing is not None:
            existing.pens, existing.span_s = row.pens, row.span_s
            existing.updated_at, existing.updated_by = row.updated_at, row.updated_by
            row = existing
        session.add(row)
        session.commit()
        session.refresh(row)
        return row


def delete(db: Database, view_id: int) -> None:
    with db.session() as session:
        row = session.get(TrendViewRow, view_id)
        if row is not None:
            session.delete(row)
            session.commit()
