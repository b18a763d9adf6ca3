"""The Batches screen (issue 15 point 5): the list of program runs, newest first, and one batch in detail —
steps planned against actual, the operator's actions, the alarms, links to its CSV and printable report —
for the units the signed-in user may see."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nicegui.testing import User

from bevforge.domain import Actor
from tests.integration.test_programs import with_programs
from tests.support.controllers import FAST_POLL_S, KETTLE, RIMS, with_controllers
from tests.ui.conftest import write_config
from tests.ui.support import online, runtime, shows, sign_in

OLGA = Actor(user="olga", role="operator", station="test")


@pytest.fixture
def programs(bevforge_env: Path) -> Path:
    """The RIMS and kettle loops, the test programs, sign-in required (list it before `user`)."""
    def adjust(doc: dict[str, Any]) -> None:
        with_controllers([dict(RIMS), dict(KETTLE)])(doc)
        with_programs(doc)
        for endpoint in doc["endpoints"]:
            if endpoint.get("poll_interval_s") == FAST_POLL_S:
                endpoint["poll_interval_s"] = 0.5  # the screen tests need no fast sampling
                endpoint.pop("stale_after_s", None)
        doc["auth"] = {"mode": "required"}
    write_config(bevforge_env / "config.yaml", adjust)
    return bevforge_env


def rows(user: User, marker: str) -> list[dict[str, Any]]:
    return list(next(iter(user.find(marker=marker).elements)).rows)


async def one_batch() -> int:
    rt = runtime()
    await rt.programs.start_program(OLGA, "brewhouse", "ask")
    await rt.programs.confirm(OLGA, "brewhouse", 0, "confirm")
    return (await rt.programs.batches.list(OLGA))[0]["id"]


async def test_the_batches_screen_lists_runs_and_shows_one_planned_against_actual(programs: Path,
                                                                                  user: User) -> None:
    sign_in(user, "vic", "viewer")
    await user.open("/batches")
    await online()
    await shows(user, "batches-summary", "No batches yet")
    batch_id = await one_batch()
    await user.open("/batches")
    await shows(user, "batches-summary", "1 batches")
    listed = rows(user, "batches-table")
    assert [(r["id"], r["program"], r["unitName"], r["startedBy"], r["outcome"]) for r in listed] == [
        (batch_id, "A question", "Brewhouse", "olga", "COMPLETED")]
    await user.should_see(marker="nav-batches")  # the brew-day tabs link the screen

    await user.open(f"/batches?batch={batch_id}")
    await shows(user, "batch-title", f"Batch {batch_id}", "A question")
    await shows(user, "batch-header", "Brewhouse", "started by olga", "COMPLETED")
    steps = rows(user, "batch-steps")
    assert [(s["n"], s["title"], s["type"], s["planned"], s["outcome"]) for s in steps] == [
        (1, "Grain", "prompt", "—", "DONE")]
    assert [a["did"] for a in rows(user, "batch-actions")] == ["started the program", "answered a prompt"]
    assert rows(user, "batch-alarms") == []
    csv_link = next(iter(user.find(marker="batch-csv").elements))
    report_link = next(iter(user.find(marker="batch-report").elements))
    assert csv_link.props["href"] == f"/api/os/batches/{batch_id}.csv"
    assert report_link.props["href"] == f"/api/os/batches/{batch_id}/report"


async def test_a_user_of_other_nodes_sees_no_batch_of_the_brewhouse(programs: Path, user: User) -> None:
    sign_in(user, "ben", "viewer", ["BK"])
    await user.open("/batches")
    await online()
    batch_id = await one_batch()
    await user.open(f"/batches?batch={batch_id}")
    await shows(user, "batches-summary", "No batches yet")
    await shows(user, "batch-missing", f"No batch {batch_id}")
    assert rows(user, "batches-table") == []
