"""Text cells that a spreadsheet would run as formulas are exported as the text they are.

Every CSV export (the audit and alarm journals in bevforge/journals.py, telemetry history in
bevforge/store/queries.py) writes its cells through `safe_cell`. It lives in a module of its own, at
the bottom of the core's layers, because the store must not import the journals (they sit above it in
pyproject.toml's import-linter contracts) and both need it.
"""

from __future__ import annotations

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (`=HYPERLINK(…)`, `+cmd|…`, `@SUM(…)`, or one of
    those behind a tab or carriage return) is prefixed with `'`, so it opens as the text it is.

    Numbers are left alone (a negative temperature is a number, not a formula); text that merely
    looks like a negative number, such as a username "-5", is quoted too: it came from someone.
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
