"""The batch record on the real simulated brewhouse: real Modbus, real SQLite, a stepped clock.

A mash program (heat to 66 °C, hold 66 °C for 3 min, a prompt with an overdue alarm) run to completion is
one batch: per step the plan against the clock and the stored history of the mash temperature, the
operator's actions on the unit (and not those on another unit) and the alarm raised during it. A skipped
step is marked skipped, an abort ends the batch aborted, and a restart in the middle keeps the batch going.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bevforge.clock import ManualClock
from bevforge.config import PlantConfig
from bevforge.domain import Actor
from bevforge.errors import NotFound
from bevforge.messages import from_iso
from bevforge.programs.batch_report import render
from bevforge.programs.batches import to_csv
from bevforge.runtime import Runtime
from bevforge.store import BatchRow, BatchStepRow, batch_rows
from tests.integration.test_programs import fill_mlt, with_programs
from tests.integration.test_programs_api import program_server
from tests.support.controllers import (
    KETTLE,
    MLT_TEMPERATURE,
    RIMS,
    controller_config,
    controller_runtime,
    started,
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


async def run_until_step(runtime: Runtime, index: int, limit_s: int = 900,
                         each: Callable[[], None] | None = None) -> None:
    """Step the clock a minute at a time until the brewhouse program reaches step `index`."""
    for _ in range(limit_s // 60):
        frame = runtime.programs.frame(runtime.programs.units["brewhouse"])
        if frame["step"] is None or frame["step"]["index"] >= index:
            return
        await step(runtime, 60, each=each)
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
    seen: list[float] = []  # the mash temperature the plant showed each second of the hold

    def watch() -> None:
        frame = runtime.programs.frame(runtime.programs.units["brewhouse"])
        value = runtime.plant.states[MLT_TEMPERATURE].value
        if frame["step"] is not None and frame["step"]["index"] == 1 and isinstance(value, float):
            seen.append(value)

    await step(runtime, 30, each=watch)
    await runtime.controllers.set_setpoint(OPERATOR, "bk_element", 50.0)  # another unit's: not this batch's
    await run_until_step(runtime, 2, each=watch)
    await step(runtime, 70)  # the prompt goes overdue after a minute: an alarm on the unit's node
    frame = runtime.programs.frame(runtime.programs.units["brewhouse"])
    assert frame["prompts"] and frame["prompts"][0]["overdue"] is True
    raised = next(a for a in runtime.alarms.current.values() if a.rule_id.startswith("program:brewhouse:2"))
    runtime.alarms.ack(raised.id, OPERATOR, "seen")
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
    # the figures are the stored history's: every sample polled (several a second), so they hold what the plant
    # showed each second of the step
    assert len(seen) > 100
    assert hold["actualMin"] <= min(seen) + 0.01 and hold["actualMax"] >= max(seen) - 0.01
    assert hold["actualMean"] == pytest.approx(sum(seen) / len(seen), abs=0.3)
    assert prompt["endpointId"] is None and prompt["actualMean"] is None and prompt["inBandS"] is None

    actions = [(a["user"], a["action"]) for a in batch["actions"]]
    assert ("olga", "program.start") in actions and ("olga", "program.confirm") in actions
    assert ("olga", "alarm.ack") in actions  # the acknowledgement of the unit's alarm is an operator action
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


# -- REST: /api/os/batches ------------------------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_batches_over_rest_list_one_csv_report_auth_and_node_scoping(tmp_path: Path) -> None:
    async with program_server(tmp_path) as (live, tokens):
        http, operator, viewer = live.http, bearer(tokens["operator"]), bearer(tokens["viewer"])
        assert (await http.get("/api/os/batches")).status_code == 401
        assert (await http.get("/api/os/batches", headers=viewer)).json() == []
        started = await http.post("/api/os/programs/brewhouse/start", json={"templateId": "ask"}, headers=operator)
        assert started.status_code == 200, started.text
        done = await http.post("/api/os/programs/brewhouse/confirm", json={"step": 0, "key": "confirm"},
                               headers=operator)
        assert done.json()["state"] == "completed"

        listed = (await http.get("/api/os/batches", headers=viewer, params={"unit": "brewhouse"})).json()
        assert [(b["templateName"], b["outcome"], b["unit"]) for b in listed] == [("A question", "completed",
                                                                                   "brewhouse")]
        assert (await http.get("/api/os/batches", headers=viewer, params={"unit": "kettle"})).json() == []
        assert (await http.get("/api/os/batches", headers=viewer,
                               params={"since": "2999-01-01T00:00:00Z"})).json() == []
        batch_id = listed[0]["id"]
        one = (await http.get(f"/api/os/batches/{batch_id}", headers=viewer)).json()
        assert [(s["title"], s["outcome"]) for s in one["steps"]] == [("Grain", "done")]
        assert [a["action"] for a in one["actions"]] == ["program.start", "program.confirm"]

        # a batch of a unit the caller may not see is missing, like one that does not exist
        bk_only = bearer(tokens["bk-operator"])
        assert (await http.get("/api/os/batches", headers=bk_only)).json() == []
        for path in (f"/api/os/batches/{batch_id}", f"/api/os/batches/{batch_id}.csv",
                     f"/api/os/batches/{batch_id}/report", "/api/os/batches/999999"):
            answer = await http.get(path, headers=bk_only if str(batch_id) in path else viewer)
            assert answer.status_code == 404 and answer.json()["error"] == "unknown_batch", (path, answer.text)
        assert (await http.get(f"/api/os/batches/{batch_id}", headers=bearer(tokens["mlt-operator"]))).status_code \
            == 200
        assert (await http.get("/api/os/batches", headers=viewer, params={"limit": 0})).status_code == 422

        for path in (f"/api/os/batches/{batch_id}.csv", f"/api/os/batches/{batch_id}/csv"):
            exported = await http.get(path, headers=viewer)
            assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
            assert f'filename="batch-{batch_id}.csv"' in exported.headers["content-disposition"]
            rows = list(csv.reader(io.StringIO(exported.text)))
            assert rows[0][:3] == ["batch", "unit", "template"] and rows[1][:3] == [str(batch_id), "Brewhouse",
                                                                                    "A question"]
            steps_at = next(i for i, r in enumerate(rows) if r and r[0] == "steps")
            assert rows[steps_at][1:4] == ["index", "title", "type"] and rows[steps_at + 1][2] == "Grain"
            assert any(r and r[0] == "actions" for r in rows) and any(r and r[0] == "alarms" for r in rows)

        report = await http.get(f"/api/os/batches/{batch_id}/report", headers=viewer)
        assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
        page = report.text
        assert "<table>" in page and "<th>Planned (min)</th>" in page and "<td>Grain</td>" in page
        assert "@media print" in page and "A question" in page and "program.confirm" in page
        assert "<script" not in page and "<link" not in page and "src=" not in page  # self-contained


def test_the_csv_export_never_hands_a_spreadsheet_a_formula() -> None:
    batch = {"id": 1, "unitName": "Brewhouse", "templateName": "=HYPERLINK(\"x\")", "recipe": None,
             "startedBy": "+cmd", "startedAt": None, "endedAt": None, "outcome": "completed",
             "steps": [{"index": 0, "title": "@SUM(A1)", "type": "prompt", "outcome": "done"}],
             "actions": [{"user": "-5", "action": "program.start", "detail": "=1+1"}], "alarms": []}
    rows = list(csv.reader(io.StringIO(to_csv(batch))))
    cells = [c for r in rows for c in r]
    assert "'=HYPERLINK(\"x\")" in cells and "'+cmd" in cells and "'@SUM(A1)" in cells and "'-5" in cells
    assert "'=1+1" in cells and not any(c.startswith(("=", "+", "@")) for c in cells)


def test_the_report_escapes_what_people_typed() -> None:
    batch = {"id": 1, "unitName": "<b>Brewhouse</b>", "templateName": "Mash", "recipe": "<script>x</script>",
             "startedBy": "olga", "startedAt": None, "endedAt": None, "durationS": None, "outcome": "aborted",
             "steps": [], "actions": [], "alarms": []}
    page = render(batch)
    assert "<script>x" not in page and "&lt;script&gt;x&lt;/script&gt;" in page and "&lt;b&gt;Brewhouse" in page


async def test_a_record_that_cannot_be_written_never_stops_the_program(brewhouse: Runtime,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*_args: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(runtime_batches(brewhouse), "_write", broken)
    frame = await brewhouse.programs.start_program(OPERATOR, "brewhouse", "mash66")
    assert frame["state"] == "running"
    frame = await brewhouse.programs.skip(OPERATOR, "brewhouse")
    assert frame["state"] == "running" and frame["step"]["index"] == 1
    assert (await brewhouse.programs.abort(OPERATOR, "brewhouse"))["state"] == "aborted"
    monkeypatch.undo()
    assert await brewhouse.programs.batches.list(OPERATOR) == []


def runtime_batches(runtime: Runtime) -> Any:
    return runtime.programs.batches


async def test_a_batch_left_running_is_closed_aborted_when_the_next_program_starts(brewhouse: Runtime) -> None:
    """A batch whose program never came back (its template was removed while the panel was off) stays open
    until the unit's next start, which closes it aborted at that moment."""
    runtime = brewhouse
    at = runtime.clock.now()
    left = BatchRow(unit_id="brewhouse", unit_name="Brewhouse", nodes=["MLT"], controllers=["mlt_rims"],
                    template_id="gone", template_name="A removed program", started_by="olga", started_at=at,
                    wall_started_at=at)
    first = BatchStepRow(batch_id=0, step_index=0, title="Old step", type="prompt", started_at=at,
                         wall_started_at=at)
    await runtime.db.write(batch_rows.open_batch, runtime.db, left, first)
    await runtime.programs.start_program(OPERATOR, "brewhouse", "mash66")
    listed = await runtime.programs.batches.list(OPERATOR)
    assert [(b["templateName"], b["outcome"]) for b in listed] == [("Single infusion 66", "running"),
                                                                   ("A removed program", "aborted")]
    old = await runtime.programs.batches.get(OPERATOR, listed[1]["id"])
    assert [s["outcome"] for s in old["steps"]] == ["aborted"] and old["endedAt"] is not None
