"""The audit journal in the operator's words (issue 16.8): labels and displayed values on screen, raw
names and values kept in the CSV export."""

from __future__ import annotations

from typing import Any

from nicegui.testing import User

from bevforge import audit
from bevforge.domain import Actor
from tests.ui.support import online, runtime, shows, until

OLGA = Actor(user="olga", role="operator", station="10.0.0.7")


def rows(user: User) -> list[dict[str, Any]]:
    return list(next(iter(user.find(marker="audit-table").elements)).rows)


async def test_the_journal_says_what_was_pressed_in_the_words_on_the_tiles(user: User) -> None:
    await user.open("/")
    await online()
    rt = runtime()
    await rt.commands.submit(22, True, actor=OLGA, origin="ui")  # V1 open
    await until(lambda: rt.plant.states[22].value is True)
    await user.open("/audit")
    await shows(user, "audit-summary", "entries")
    row = await until(lambda: next((r for r in rows(user) if r["user"] == "olga" and r["did"] == "pressed"), None))
    assert row["what"] == "V1 HLT → MLT: CLOSED → OPEN"
    entries = await rt.audit.query(user="olga", action="command.request")
    exported = audit.to_csv(entries)
    assert "hlt_out_valve" in exported and "V1 HLT" not in exported  # the CSV keeps the raw names
