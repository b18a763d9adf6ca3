"""Users, sessions, API tokens and the auth_changes log: their rows, read and written.

`bevforge.auth` holds the rules (who may sign in, what ends a session, hashing) and runs every
write here on the DB writer thread (`Database.write_blocking` / `write_later`). Every write to a
user or a token appends an `auth_changes` row in the same transaction, so a running server that
polls that table (`changes_after`) learns of a change made by another process (the admin CLI).
A write that must not happen (a user that exists, a first admin when users exist) is refused by
returning None before anything is added, so the caller raises the error it means.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel import Session, func, select

from bevforge.domain import utcnow
from bevforge.store.tables import AuthChangeRow, SessionRow, TokenRow, UserRow

if TYPE_CHECKING:
    from bevforge.store.writer import Database


def record_change(session: Session, kind: str, key: str, ends_sessions: bool = False,
                  at: datetime | None = None) -> None:
    """Append the auth_changes row that tells every process (the server, after the CLI) to look again."""
    session.add(AuthChangeRow(kind=kind, key=key, ends_sessions=ends_sessions, time=at or utcnow()))


# -- reads ------------------------------------------------------------------------------------------

def load(db: Database) -> tuple[list[UserRow], list[SessionRow], list[TokenRow], int]:
    """At start-up: every user, the open sessions, the active tokens, the newest auth_changes id."""
    with db.session() as session:
        users = list(session.exec(select(UserRow)).all())
        rows = list(session.exec(select(SessionRow).where(SessionRow.ended_at == None)).all())  # noqa: E711
        tokens = list(session.exec(select(TokenRow).where(TokenRow.revoked_at == None)).all())  # noqa: E711
        last_change = session.exec(select(func.max(AuthChangeRow.id))).one() or 0
    return users, rows, tokens, last_change


def changes_after(db: Database, after: int) -> tuple[list[AuthChangeRow], dict[str, UserRow | None],
                                                      dict[str, TokenRow | None]]:
    """The auth changes after id `after`, oldest first, with the users and tokens they name as they are now."""
    with db.session() as session:
        changes = list(session.exec(select(AuthChangeRow).where(AuthChangeRow.id > after)
                                    .order_by(AuthChangeRow.id)).all())  # type: ignore[union-attr]
        users = {c.key: session.get(UserRow, c.key) for c in changes if c.kind == "user"}
        tokens = {c.key: session.get(TokenRow, c.key) for c in changes if c.kind == "token"}
    return changes, users, tokens


def has_users(db: Database) -> bool:
    with db.session() as session:
        return session.exec(select(UserRow).limit(1)).first() is not None


def user(db: Database, username: str) -> UserRow | None:
    with db.session() as session:
        return session.get(UserRow, username)


def users(db: Database) -> list[UserRow]:
    with db.session() as session:
        return list(session.exec(select(UserRow)).all())


def tokens(db: Database) -> list[TokenRow]:
    with db.session() as session:
        return list(session.exec(select(TokenRow)).all())


# -- writes (on the writer thread) ------------------------------------------------------------------

def insert_user(db: Database, row: UserRow, at: datetime) -> UserRow | None:
    """Store a new user (None: one of that name exists, nothing written)."""
    with db.session() as session:
        if session.get(UserRow, row.username) is not None:
            return None
        return _add_user(session, row, at)


def insert_first_user(db: Database, row: UserRow, at: datetime) -> UserRow | None:
    """Store the first user, checked inside the writing transaction (None: users exist, nothing written)."""
    with db.session() as session:
        if session.exec(select(UserRow).limit(1)).first() is not None:
            return None
        return _add_user(session, row, at)


def _add_user(session: Session, row: UserRow, at: datetime) -> UserRow:
    """Insert the user and its auth_changes entry in one transaction (the check is the caller's)."""
    session.add(row)
    record_change(session, "user", row.username, at=at)
    session.commit()
    session.refresh(row)
    return row


def update_user(db: Database, username: str, change: Callable[[UserRow], None], ends_sessions: bool,
                at: datetime) -> UserRow | None:
    """Apply `change` to a user's row; with `ends_sessions`, end that user's open sessions in the same
    transaction. None: no such user, nothing written."""
    with db.session() as session:
        row = session.get(UserRow, username)
        if row is None:
            return None
        change(row)
        row.updated_at = at
        session.add(row)
        if ends_sessions:
            for open_row in session.exec(select(SessionRow).where(
                    SessionRow.username == username, SessionRow.ended_at == None)).all():  # noqa: E711
                open_row.ended_at = at
                session.add(open_row)
        record_change(session, "user", username, ends_sessions, at)
        session.commit()
        session.refresh(row)
    return row


def insert_token(db: Database, row: TokenRow) -> None:
    with db.session() as session:
        session.add(row)
        record_change(session, "token", row.id)
        session.commit()


def revoke_token(db: Database, token_id: str) -> str | None:
    """Mark a token revoked; its hash, or None if there is no such active token."""
    with db.session() as session:
        row = session.get(TokenRow, token_id)
        if row is None or row.revoked_at is not None:
            return None
        row.revoked_at = utcnow()
        session.add(row)
        record_change(session, "token", token_id)
        session.commit()
        return row.token_hash


def insert_session(db: Database, row: SessionRow) -> None:
    with db.session() as session:
        session.add(row)
        session.commit()


def end_session(db: Database, id_hash: str) -> None:
    """Mark a session ended (if it is still open)."""
    with db.session() as s:
        row = s.get(SessionRow, id_hash)
        if row is not None and row.ended_at is None:
            row.ended_at = utcnow()
            s.add(row)
            s.commit()
