"""The SQL of reading an append-only journal (the alarm journal, the audit journal) the same way.

Both journals are tables with an `id` that grows with every insert and a UTC `time`; both are
shown newest first, cut to a time window and a row limit, filtered by whatever the caller gives.
One statement builder means the two screens cannot drift apart (e.g. one treating `until` as
exclusive). The CSV side lives in `bevforge.journals`, which re-exports `newest_first`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import SQLModel, select
from sqlmodel.sql.expression import SelectOfScalar

RowT = TypeVar("RowT", bound=SQLModel)


def newest_first(table: type[RowT], *, since: datetime | None, until: datetime | None, limit: int,
                 equal: Iterable[tuple[Any, object | None]] = (),
                 also: Iterable[ColumnElement[bool]] = ()) -> SelectOfScalar[RowT]:
    """Rows of `table` with since <= time <= until (a None bound is open), newest first, at most `limit`.

    `equal` holds (column, value) pairs: a None value means "not filtered" (the query parameter
    was not given), anything else must match exactly. `also` adds conditions that are not plain
    equality, such as a prefix match.
    """
    columns: Any = table  # SQLModel's class attributes are the table's columns at runtime
    statement = select(table)
    if since is not None:
        statement = statement.where(columns.time >= since)
    if until is not None:
        statement = statement.where(columns.time <= until)
    for column, value in equal:
        if value is not None:
            statement = statement.where(column == value)
    for condition in also:
        statement = statement.where(condition)
    return statement.order_by(columns.id.desc()).limit(limit)
