"""The batch record on the real simulated brewhouse: real Modbus, real SQLite, a stepped clock.

A mash program (heat to 66 °C, hold 66 °C for 3 min, a prompt with an overdue alarm) run to completion is
one batch: per step the plan against the clock and the stored history of the mash temperature, the
operator's actions on the unit (and not those on another unit) and the alarm raised during it. A skipped
step is marked skipped, an abort ends the batch aborted, and a restart in the middle keeps the batch going.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bevforge.clock import ManualClock
from bevforge.config import PlantConfig
from bevforge.domain import Actor
from bevforge.errors import NotFound
from bevforge.messages import from_iso
from bevforge.runtime import Runtime
from tests.integration.test_programs import fill_mlt, started, with_programs
from tests.support.controllers import (
    KETTLE,
    MLT_TEMPERATURE,
    RIMS,
    controller_config,
    controller_runtime,
    step,
)

OPERATOR = Actor(user="olga", role="operator", station="test")
BK_VIEWER = Actor(user="ben", role="viewer", station="test", nodes=frozenset({"BK"}))
MLT_VIEWER = Actor(user="mia", role="viewer", station="test", nodes=frozenset({"MLT"}))

MASH66 = {"id": "mash66", "name": "Single infusion 66", "unit": "brewhouse", "steps": [
    {"type": "heat", "name": "Strike", "controller": "mlt_rims", "target_c": 66, "band_c": 0.5},
    {"type": "hold", "name": "Saccharification rest", "controller": "mlt_rims", "target_c": 66, "minutes": 3,
     "band_c": 1},
    {"type": "prompt", "name": "Sparge", "message": "Start the sparge", "overdue_min": 1},
]}
HOLD_MINUTES = 3


def with_batches(doc: dict[str, Any]) -> None:
    with_programs(doc)
    doc["programs"]["templates"].append(MASH66)


def batch_config() -> PlantConfig:
    return controller_config([dict(RIMS), dict(KETTLE)], adjust=with_batches)


@pytest.fixture
async def brewhouse(tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime = await started(controller_runtime(batch_config(), tmp_path / "bevforge.db"))
    try:
        yield runtime
    finally:
        await runtime.stop()


async def run_until_step(runtime: Runtime, index: int, limit_s: int = 900) -> None:
    """Step the clock a minute at a time until the brewhouse program reaches step `index`."""
    for _ in range(limit_s // 60):
        frame = runtime.programs.frame(runtime.programs.units["brewhouse"])
        if frame["step"] is None or frame["step"]["index"] >= index:
            return
        await step(runtime, 60)
    raise AssertionError(f"the program never reached step {index}: {frame}")


async def only_batch(runtime: Runtime, actor: Actor = OPERATOR) -> dict[str, Any]:
    listed = await runtime.programs.batches.list(actor)
    assert len(listed) == 1, listed
    return await runtime.programs.batches.get(actor, listed[0]["id"])


async def test_a_mash_run_is_one_batch_with_planned_against_actual_actions_and_the_alarm(
        brewhouse: Runtime) -> None:
    runtime = brewhouse
    fill_mlt(runtime, 65.0)
    await step(runtime, 5)
    await runtime.programs.start_program(OPERATOR, "brewhouse", "mash66")
    running = await only_batch(runtime)
    assert running["outcome"] == "running" and running["startedBy"] == "olga"
    assert running["templateName"] == "Single infusion 66" and running["unitName"] == "Brewhouse"
    assert [(s["index"], s["outcome"]) for s in running["steps"]] == [(0, "running")]

    await run_until_step(runtime, 1)
    await step(runtime, 30)
    await runtime.controllers.set_setpoint(OPERATOR, "bk_element", 50.0)  # another unit's: not this batch's
    await run_until_step(runtime, 2)
    await step(runtime, 70)  # the prompt goes overdue after a minute: an alarm on the unit's node
    frame = runtime.programs.frame(runtime.programs.units["brewhouse"])
    assert frame["prompts"] and frame["prompts"][0]["overdue"] is True
    await runtime.programs.confirm(OPERATOR, "brewhouse", 2, "confirm")

    batch = await only_batch(runtime)
    assert batch["outcome"] == "completed" and batch["endedAt"] is not None
    heat, hold, prompt = batch["steps"]
    assert [s["outcome"] for s in batch["steps"]] == ["done", "done", "done"]
    assert (heat["title"], heat["plannedTarget"], heat["plannedDurationS"]) == ("Strike", 66, None)
    assert (hold["type"], hold["plannedTarget"], hold["plannedDurationS"]) == ("hold", 66, HOLD_MINUTES * 60)
    assert (hold["bandLow"], hold["bandHigh"]) == (65, 67)
    # the timer counts only in band, so the step took at least its planned time, by the process clock
    assert hold["actualDurationS"] >= HOLD_MINUTES * 60
    started_at, ended_at = from_iso(hold["startedAt"]), from_iso(hold["endedAt"])
    assert started_at is not None and ended_at is not None
    assert (ended_at - started_at).total_seconds() == pytest.approx(hold["actualDurationS"], abs=0.1)
    assert hold["samples"] > 100 and hold["actualMin"] <= hold["actualMean"] <= hold["actualMax"]
    assert 64 <= hold["actualMin"] and hold["actualMax"] <= 68.5  # the lagged probe lets the RIMS overshoot a little
    # the hold timer counts in band (and up to its 60 s grace out of it): the record shows the time really in band
    assert HOLD_MINUTES * 60 - 90 <= hold["inBandS"] <= hold["actualDurationS"]
    # the figures are the stored history's: the same readings read back through the history reader
    window = [r for r in await runtime.history_reader.recent_readings(
        [MLT_TEMPERATURE], datetime.now(UTC) - timedelta(hours=1), None, 100_000) if r["quality"] == "good"]
    assert window and hold["actualMax"] <= max(float(r["value"]) for r in window)  # type: ignore[arg-type]
    assert prompt["endpointId"] is None and prompt["actualMean"] is None and prompt["inBandS"] is None

    actions = [(a["user"], a["action"]) for a in batch["actions"]]
    assert ("olga", "program.start") in actions and ("olga", "program.confirm") in actions
    assert not any(a["action"].startswith("controller.") for a in batch["actions"])  # bk_element is not this unit's
    assert not any(a["user"].startswith("program:") for a in batch["actions"])  # the program's own writes are not
    overdue = [a for a in batch["alarms"] if a["rule"].startswith("program:brewhouse:2")]
    assert overdue and "Start the sparge" in overdue[0]["message"]


async def test_a_skipped_step_is_marked_skipped_and_an_abort_ends_the_batch_aborted(brewhouse: Runtime) -> None:
    runtime = brewhouse
    fill_mlt(runtime, 60.0)
    await step(runtime, 5)
    await runtime.programs.start_program(OPERATOR, "brewhouse", "mash66")
    await step(runtime, 20)
    await runtime.programs.skip(OPERATOR, "brewhouse")
    await step(runtime, 20)
    await runtime.programs.abort(OPERATOR, "brewhouse")
    batch = await only_batch(runtime)
    assert batch["outcome"] == "aborted"
    assert [(s["title"], s["outcome"]) for s in batch["steps"]] == [("Strike", "skipped"),
                                                                   ("Saccharification rest", "aborted")]
    strike = batch["steps"][0]
    assert strike["samples"] > 0 and strike["actualMin"] is not None and strike["actualMin"] < 65.5
    assert [a["action"] for a in batch["actions"]] == ["program.start", "program.skip", "program.abort"]
    again = await runtime.programs.start_program(OPERATOR, "brewhouse", "mash66")
    assert again["state"] == "running"
    listed = await runtime.programs.batches.list(OPERATOR)
    assert [b["outcome"] for b in listed] == ["running", "aborted"]  # newest first
    assert await runtime.programs.batches.list(OPERATOR, unit="kettle") == []


async def test_a_batch_is_seen_only_by_who_may_see_its_unit(brewhouse: Runtime) -> None:
    runtime = brewhouse
    await runtime.programs.start_program(OPERATOR, "brewhouse", "mash66")
    await step(runtime, 3)
    batch_id = (await runtime.programs.batches.list(MLT_VIEWER))[0]["id"]
    assert await runtime.programs.batches.list(BK_VIEWER) == []
    with pytest.raises(NotFound):
        await runtime.programs.batches.get(BK_VIEWER, batch_id)
    with pytest.raises(NotFound):
        await runtime.programs.batches.get(OPERATOR, batch_id + 100)
    assert (await runtime.programs.batches.get(MLT_VIEWER, batch_id))["id"] == batch_id


async def test_a_restart_in_the_middle_of_a_step_keeps_the_same_batch(tmp_path: Path) -> None:
    db = tmp_path / "bevforge.db"
    runtime = await started(controller_runtime(batch_config(), db))
    try:
        fill_mlt(runtime, 65.8)
        await step(runtime, 5)
        await runtime.programs.start_program(OPERATOR, "brewhouse", "mash66")
        await run_until_step(runtime, 1)
        await step(runtime, 30)
        clock = runtime.clock
        assert isinstance(clock, ManualClock)
        later = clock.now() + timedelta(minutes=5)
    finally:
        await runtime.stop()
    runtime = await started(controller_runtime(batch_config(), db, ManualClock(later)))
    try:
        fill_mlt(runtime, 66.0)
        await step(runtime, 60)  # the probe sees the mash again
        await runtime.programs.resume(OPERATOR, "brewhouse")
        await run_until_step(runtime, 2, limit_s=1200)
        await runtime.programs.abort(OPERATOR, "brewhouse")
        batch = await only_batch(runtime)
        assert [s["outcome"] for s in batch["steps"]] == ["done", "done", "aborted"]
        hold = batch["steps"][1]
        assert hold["actualDurationS"] >= HOLD_MINUTES * 60 + 5 * 60  # the time offline is in the step's span
        assert hold["samples"] > 0 and hold["actualMean"] is not None
    finally:
        await runtime.stop()
