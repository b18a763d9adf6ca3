"""Reading the append-only journals (alarm journal, audit) the same way.

Both journals are tables with an `id` that grows with every insert and a UTC `time`; both are
shown newest first, cut to a time window and a row limit, filtered by whatever the caller gives,
and exported as CSV with a fixed column order. Keeping that in one place means the two screens
and their CSV downloads cannot drift apart (e.g. one treating `until` as exclusive).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import SQLModel, select
from sqlmodel.sql.expression import SelectOfScalar

from bevforge.csv_cells import FORMULA_STARTS, safe_cell

__all__ = ["FORMULA_STARTS", "csv_text", "newest_first", "safe_cell"]  # safe_cell: kept importable from here

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


def csv_text(fields: Sequence[str], entries: Iterable[Mapping[str, Any]]) -> str:
    """A CSV document with a header of `fields`; keys of an entry outside `fields` are left out.

    Every text cell goes through `safe_cell`: journals hold what users typed (a failed sign-in's
    username, an acknowledgement note), and a CSV export must never turn that into a live formula.
    """
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows({k: safe_cell(v) for k, v in entry.items() if k in fields} for entry in entries)
    return out.getvalue()
