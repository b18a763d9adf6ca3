"""A central panel's journals (issue 17): the alarm journal and the audit journal screens pick a forwarding site
as their Source and list what that site forwarded (docs/mqtt.md "Store-and-forward"); the CSV export says which
site each entry is from. No broker runs here: the site device only needs to be configured, and the entries are
stored as the site driver stores a forwarded batch (bevforge/store/forward_rows.take_forwarded_events)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from nicegui.testing import User

from bevforge.store.forward_rows import take_forwarded_events
from tests.support.server import free_port
from tests.ui.conftest import write_config
from tests.ui.support import runtime, shows, until

WHEN = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


@pytest.fixture
def central(bevforge_env: Path) -> Path:
    """The fixture brewhouse plus one forwarding site, `cellar` (its broker is not running: offline, as a site
    that is away)."""
    def adjust(doc: dict[str, Any]) -> None:
        doc["devices"].append({"id": "site_cellar", "name": "Cellar", "driver": "site", "history": "forwarded",
                               "settings": {"site": "cellar"}})
        doc["mqtt"] = {"host": "127.0.0.1", "port": free_port(), "site": "central", "username": "central",
                       "reconnect_min_s": 1, "reconnect_max_s": 5}

    write_config(bevforge_env / "config.yaml", adjust)
    return bevforge_env


async def forwarded() -> None:
    rt = runtime()
    await rt.db.write(take_forwarded_events, rt.db.engine, "cellar", "s1", "alarm_journal", 0, 1, [
        {"site_id": 1, "time": WHEN, "alarm_id": 4, "rule_id": "fv1_temperature_hi", "event": "acked",
         "user": "cellarman", "comment": "glycol back on", "value": None, "state": "acknowledged",
         "priority": "high", "message": "FV1 temperature high", "node": None}])
    await rt.db.write(take_forwarded_events, rt.db.engine, "cellar", "s1", "audit", 0, 1, [
        {"site_id": 1, "time": WHEN, "user": "cellarman", "role": "operator", "station": "10.1.0.4",
         "action": "command.request", "target": "fv1_setpoint", "old": 18, "new": 12, "result": "ok",
         "command_id": "c-9", "detail": None}])


def rows(user: User, marker: str) -> list[dict[str, Any]]:
    return list(next(iter(user.find(marker=marker).elements)).rows)


def pick(user: User, marker: str, value: str) -> None:
    select = next(iter(user.find(marker=marker).elements))
    select.value = value


async def test_the_alarm_journal_shows_a_site_s_own_journal_when_picked(central: Path, user: User) -> None:
    await user.open("/alarms")
    await forwarded()
    user.find(marker="tab-history").click()
    await user.should_see(marker="hist-source")
    assert all(r["user"] != "cellarman" for r in rows(user, "hist-table"))  # this panel's journal first
    pick(user, "hist-source", "cellar")
    row = await until(lambda: next((r for r in rows(user, "hist-table") if r["user"] == "cellarman"), None))
    assert row["event"] == "ACKED" and row["message"] == "FV1 temperature high" and row["comment"] == "glycol back on"
    user.find(marker="hist-export").click()
    exported = list(csv.DictReader(io.StringIO((await user.download.next(timeout=5)).text)))
    assert [(r["site"], r["id"], r["ruleId"]) for r in exported] == [("cellar", "1", "fv1_temperature_hi")]


async def test_the_audit_journal_shows_a_site_s_own_audit_when_picked(central: Path, user: User) -> None:
    await user.open("/audit")
    await forwarded()
    await shows(user, "audit-summary", "entries")
    pick(user, "audit-source", "cellar")
    user.find(marker="audit-show").click()
    await shows(user, "audit-summary", "1 entries")
    [row] = rows(user, "audit-table")
    assert row["user"] == "cellarman" and row["did"] == "pressed" and row["what"] == "fv1_setpoint: 18 → 12"


async def test_a_panel_without_forwarding_sites_has_no_source_picker(user: User) -> None:
    await user.open("/audit")
    await shows(user, "audit-summary", "entries")
    await user.should_not_see(marker="audit-source")
