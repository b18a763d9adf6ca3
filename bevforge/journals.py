"""Reading the append-only journals (alarm journal, audit) the same way.

Both journals are tables with an `id` that grows with every insert and a UTC `time`; both are
shown newest first, cut to a time window and a row limit, filtered by whatever the caller gives,
and exported as CSV with a fixed column order. Keeping that in one place means the two screens
and their CSV downloads cannot drift apart (e.g. one treating `until` as exclusive). The SQL of the
query is the store's (`bevforge.store.journal_queries.newest_first`, re-exported here).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bevforge.csv_cells import FORMULA_STARTS, safe_cell
from bevforge.store.journal_queries import newest_first

__all__ = ["FORMULA_STARTS", "csv_text", "newest_first", "safe_cell"]  # safe_cell, newest_first: kept importable


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
