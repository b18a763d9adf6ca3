"""The program runner on the real simulated brewhouse: real Modbus, real SQLite, a stepped clock.

A short mash program drives the `mlt_rims` loop (heat → hold 5 min → prompt) to completion; an
operator who types another setpoint pauses it; a restart (a new runtime over the same SQLite file,
its clock later by the time offline) brings a brewhouse program back paused with its time left and a
fermentation ramp back running on its wall-clock schedule.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bevforge.clock import ManualClock
from bevforge.config import PlantConfig
from bevforge.domain import Actor
from bevforge.errors import Conflict, Forbidden, Invalid, NotFound
from bevforge.runtime import Runtime
from tests.support.controllers import (
    BK_TEMPERATURE,
    KETTLE,
    MLT_TEMPERATURE,
    RIMS,
    controller_config,
    controller_runtime,
    started,
    step,
)

OPERATOR = Actor(user="olga", role="operator", station="test")
VIEWER = Actor(user="vic", role="viewer", station="test")
BK_OPERATOR = Actor(user="bea", role="operator", station="test", nodes=frozenset({"BK"}))

MASH = {"id": "short_mash", "name": "Short mash", "unit": "brewhouse", "steps": [
    {"type": "heat", "name": "Strike", "controller": "mlt_rims", "target_c": 65.5, "band_c": 0.5},
    {"type": "hold", "name": "Mash rest", "controller": "mlt_rims", "target_c": 65.5, "minutes": 5, "band_c": 1},
    {"type": "prompt", "name": "Sparge", "message": "Start the sparge"},
]}
RAMP = {"id": "warm_up", "name": "Warm-up ramp", "unit": "kettle", "steps": [
    {"type": "ramp", "name": "Ramp", "controller": "bk_element", "from_c": 40, "to_c": 60, "minutes": 60},
]}

FILL = {"id": "fill_mlt", "name": "Fill the mash tun", "unit": "brewhouse", "steps": [
    {"type": "transfer", "name": "HLT to MLT", "pump": 23, "valves": [22], "message": "Confirm when full"},
    {"type": "prompt", "name": "Check", "message": "Check the tun"},
]}
DEAD_HEAD = {"id": "dead_head", "name": "Pump against a closed valve", "unit": "brewhouse", "steps": [
    {"type": "transfer", "name": "No valve", "pump": 23},
]}
ASK = {"id": "ask", "name": "A question", "unit": "brewhouse", "steps": [
    {"type": "prompt", "name": "Grain", "message": "Add 5.2 kg grain", "overdue_min": 1},
]}
BOIL = {"id": "boil", "name": "Short boil", "unit": "kettle", "steps": [
    {"type": "boil", "name": "Boil", "controller": "bk_element", "minutes": 2, "boil_c": 99,
     "additions": [{"at_min": 2, "message": "Add 20 g Magnum"}, {"at_min": 1, "message": "Add 30 g Cascade"}]},
    {"type": "chill", "name": "Chill", "endpoint": 30, "below_c": 95, "controller": "bk_element"},
]}
PUMP_1, VALVE_1 = 23, 22


def with_programs(doc: dict[str, Any]) -> None:
    doc["programs"] = {"units": [{"id": "brewhouse", "name": "Brewhouse", "controllers": ["mlt_rims"]},
                                 {"id": "kettle", "name": "Kettle (as a fermenter)", "kind": "fermenter",
                                  "controllers": ["bk_element"]}],
                       "templates": [MASH, RAMP, FILL, DEAD_HEAD, ASK, BOIL], "save_every_s": 10}


def program_config(rims_resume: str | None = None) -> PlantConfig:
    rims = dict(RIMS) if rims_resume is None else {**RIMS, "resume": rims_resume}
    return controller_config([rims, dict(KETTLE)], adjust=with_programs)


@pytest.fixture
async def brewhouse(tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime = await started(controller_runtime(program_config(), tmp_path / "bevforge.db"))
    try:
        yield runtime
    finally:
        await runtime.stop()


def fill_mlt(runtime: Runtime, temperature_c: float) -> None:
    runtime.attachments["simulator"].model.add_liquid("mlt", 30.0, temperature_c)



async def test_a_short_mash_heats_holds_five_minutes_prompts_and_completes(brewhouse: Runtime) -> None:
    runtime = brewhouse
    fill_mlt(runtime, 63.0)
    await step(runtime, 5)
    frame = await runtime.programs.start_program(OPERATOR, "brewhouse", "short_mash")
    assert frame["state"] == "running" and frame["step"]["name"] == "Strike" and frame["startedBy"] == "olga"
    assert runtime.controllers.loops["mlt_rims"].mode.value == "auto"
    seen: list[tuple[int, float | None]] = []

    def watch() -> None:
        f = runtime.programs.frame(runtime.programs.units["brewhouse"])
        if f["step"] is not None:
            seen.append((f["step"]["index"], f["step"]["remainingS"]))

    for _ in range(15):  # heat: the RIMS brings 63 °C to 65.5 ± 0.5
        await step(runtime, 60, each=watch)
        if seen and seen[-1][0] >= 1:
            break
    assert seen[-1][0] == 1, "the heat step never reached its band"
    sp = runtime.plant.states[RIMS["setpoint"]["id"]].value
    assert sp == 65.5
    # the hold counts only time in its band: a heat-up that overshoots it (how far depends on where the
    # stepped clock meets the real polls) holds longer than five minutes, so step until it moves on
    for _ in range(40):
        await step(runtime, 30, each=watch)
        frame = runtime.programs.frame(runtime.programs.units["brewhouse"])
        if frame["step"] is None or frame["step"]["index"] != 1:
            break
    assert frame["step"]["name"] == "Sparge" and frame["prompts"][0]["message"] == "Start the sparge"
    holds = [r for i, r in seen if i == 1 and r is not None]
    assert holds[0] == 300 and min(holds) <= 1  # the hold counted its five minutes down (at 0 it moves on)
    done = await runtime.programs.confirm(OPERATOR, "brewhouse", 2, "confirm")
    assert done["state"] == "completed" and done["step"] is None
    audit = await runtime.audit.query(action="program.start")
    assert audit and audit[0]["user"] == "olga"
    assert [e["action"] for e in await runtime.audit.query(action="program.confirm")] == ["program.confirm"]
    setpoint_commands = [c for c in await runtime.commands.query(RIMS["setpoint"]["id"], None, 100)
                         if c.origin == "program"]
    assert setpoint_commands and setpoint_commands[0].user == "program:brewhouse"


async def test_an_operator_who_changes_the_setpoint_pauses_the_program(brewhouse: Runtime) -> None:
    runtime = brewhouse
    fill_mlt(runtime, 64.8)
    await step(runtime, 5)
    await runtime.programs.start_program(OPERATOR, "brewhouse", "short_mash")
    await step(runtime, 5)
    await runtime.controllers.set_setpoint(OPERATOR, "mlt_rims", 70.0)
    await step(runtime, 2)
    frame = runtime.programs.frame(runtime.programs.units["brewhouse"])
    assert frame["state"] == "paused"
    assert "setpoint changed by hand to 70 °C" in frame["message"] and "program paused" in frame["message"]
    await step(runtime, 5)
    assert runtime.plant.states[RIMS["setpoint"]["id"]].value == 70.0  # the program does not fight the operator
    resumed = await runtime.programs.resume(OPERATOR, "brewhouse")
    assert resumed["state"] == "running"
    await step(runtime, 2)
    assert runtime.plant.states[RIMS["setpoint"]["id"]].value == 65.5  # resume takes it back


async def test_the_runner_refuses_what_it_cannot_do(brewhouse: Runtime) -> None:
    runtime = brewhouse
    programs = runtime.programs
    with pytest.raises(Forbidden):
        await programs.start_program(VIEWER, "brewhouse", "short_mash")
    with pytest.raises(NotFound):
        await programs.start_program(BK_OPERATOR, "brewhouse", "short_mash")  # the MLT is not theirs
    with pytest.raises(Invalid) as bad:
        await programs.start_program(OPERATOR, "brewhouse", "warm_up")  # the kettle unit's template
    assert bad.value.field == "templateId"
    with pytest.raises(Conflict):
        await programs.pause(OPERATOR, "brewhouse")  # idle
    await programs.start_program(OPERATOR, "brewhouse", "short_mash")
    with pytest.raises(Conflict):
        await programs.start_program(OPERATOR, "brewhouse", "short_mash")
    with pytest.raises(Conflict):
        await programs.extend(OPERATOR, "brewhouse", 5)  # a heat step has no timer
    with pytest.raises(Invalid):
        await programs.extend(OPERATOR, "brewhouse", "five")
    skipped = await programs.skip(OPERATOR, "brewhouse")
    assert skipped["step"]["name"] == "Mash rest"
    longer = await programs.extend(OPERATOR, "brewhouse", 10)
    assert longer["step"]["remainingS"] == 900
    shorter = await programs.extend(OPERATOR, "brewhouse", -12)
    assert shorter["step"]["remainingS"] == 180
    back = await programs.back(OPERATOR, "brewhouse")  # the hold had not run: back to the heat step
    assert back["step"]["name"] == "Strike"
    aborted = await programs.abort(OPERATOR, "brewhouse")
    assert aborted["state"] == "aborted" and runtime.controllers.loops["mlt_rims"].mode.value == "off"
    actions = [e["action"] for e in await runtime.audit.query(user="olga")]
    for action in ("program.start", "program.skip", "program.extend", "program.shorten", "program.back",
                   "program.abort"):
        assert action in actions


async def test_a_brewhouse_program_comes_back_paused_at_its_step_with_its_time_left(tmp_path: Path) -> None:
    """Even a loop configured to resume in auto is switched off: a paused brewhouse program's outputs are safe."""
    db = tmp_path / "bevforge.db"
    clock = ManualClock()
    runtime = await started(controller_runtime(program_config("auto"), db, clock))
    try:
        fill_mlt(runtime, 65.5)
        await step(runtime, 60)  # the probe sees the mash (its dead time and lag)
        await runtime.programs.start_program(OPERATOR, "brewhouse", "short_mash")
        await runtime.programs.skip(OPERATOR, "brewhouse")  # into the five-minute hold
        await step(runtime, 120)
        left = runtime.programs.units["brewhouse"].step.remaining()
        assert left is not None and 0 < left <= 240, left  # counted in band (a dip beyond the grace stops it)
    finally:
        await runtime.stop()
    later = ManualClock(clock.now() + timedelta(minutes=12))
    again = await started(controller_runtime(program_config("auto"), db, later))
    try:
        await step(again, 3)
        frame = again.programs.frame(again.programs.units["brewhouse"])
        assert frame["state"] == "paused" and frame["step"]["name"] == "Mash rest"
        assert frame["resumeQuestion"] is True  # every screen asks resume / restart the step / abort
        assert frame["step"]["remainingS"] == pytest.approx(left, abs=1.0)  # the time away is not counted
        assert "offline 12 min" in frame["message"] and f"{left / 60:.0f} of 5 min left" in frame["message"]
        assert "Mash temperature" in frame["message"] and "fell" in frame["message"]  # the mash cooled while off
        assert again.controllers.loops["mlt_rims"].mode.value == "off"  # outputs safe until an operator resumes
        await step(again, 30)
        assert again.programs.frame(again.programs.units["brewhouse"])["step"]["remainingS"] == \
            pytest.approx(left, abs=1.0)
        resumed = await again.programs.resume(OPERATOR, "brewhouse")
        assert resumed["state"] == "running" and again.controllers.loops["mlt_rims"].mode.value == "auto"
        assert resumed["resumeQuestion"] is False  # answered
    finally:
        await again.stop()


async def test_a_fermentation_ramp_resumes_by_itself_on_its_wall_clock_schedule(tmp_path: Path) -> None:
    db = tmp_path / "bevforge.db"
    clock = ManualClock()
    runtime = await started(controller_runtime(program_config(), db, clock))
    bk_setpoint = KETTLE["setpoint"]["id"]
    try:
        await runtime.programs.start_program(OPERATOR, "kettle", "warm_up")
        await step(runtime, 600)  # 10 of 60 min: 40 → 43.3 °C
        assert runtime.plant.states[bk_setpoint].value == pytest.approx(43.33, abs=0.1)
    finally:
        await runtime.stop()
    later = ManualClock(clock.now() + timedelta(minutes=20))
    again = await started(controller_runtime(program_config(), db, later))
    try:
        await step(again, 3)
        frame = again.programs.frame(again.programs.units["kettle"])
        assert frame["state"] == "running" and "resumed on its schedule" in frame["message"], frame
        # 30 of 60 min: 50 °C
        assert again.plant.states[bk_setpoint].value == pytest.approx(50.0, abs=0.1), (frame, again.plant.states[
            bk_setpoint])
        assert again.controllers.loops["bk_element"].mode.value == "auto"
    finally:
        await again.stop()


async def test_a_running_program_is_stored_periodically_not_only_at_transitions(brewhouse: Runtime) -> None:
    """What a crash (no orderly stop) would find: the stored hold timer is at most save_every_s (10 s) behind."""
    from bevforge.store import program_rows

    runtime = brewhouse
    fill_mlt(runtime, 65.5)
    await step(runtime, 60)
    await runtime.programs.start_program(OPERATOR, "brewhouse", "short_mash")
    await runtime.programs.skip(OPERATOR, "brewhouse")
    await step(runtime, 60)
    await runtime.db.barrier()
    row = program_rows.load_all(runtime.db)["brewhouse"]
    counted = runtime.programs.units["brewhouse"].step.state["elapsed"]
    assert row.state == "running" and row.step_index == 1
    assert counted - 11 <= row.step_state["elapsed"] <= counted and row.step_state["elapsed"] > 0


async def test_a_transfer_opens_the_valve_before_the_pump_and_stops_the_pump_before_closing_it(
        brewhouse: Runtime) -> None:
    runtime = brewhouse
    await runtime.programs.start_program(OPERATOR, "brewhouse", "fill_mlt")

    async def step_and_settle() -> None:
        # the valve and pump are polled every 0.5 s of real time, while a stepped second otherwise waits
        # only for a poll of the fast points (0.02 s): each second waits for a fresh sample of both too
        await step(runtime, 1, inputs=(MLT_TEMPERATURE, VALVE_1, PUMP_1))

    for _ in range(20):
        await step_and_settle()
        if runtime.plant.states[PUMP_1].value is True:
            break
    assert runtime.plant.states[VALVE_1].value is True and runtime.plant.states[PUMP_1].value is True
    frame = await runtime.programs.confirm(OPERATOR, "brewhouse", 0, "confirm")
    assert frame["step"]["name"] == "Check"
    for _ in range(20):
        await step_and_settle()
        if runtime.plant.states[VALVE_1].value is False and runtime.plant.states[PUMP_1].value is False:
            break
    assert runtime.plant.states[PUMP_1].value is False and runtime.plant.states[VALVE_1].value is False
    commands = [c for eid in (VALVE_1, PUMP_1) for c in await runtime.commands.query(eid, None, 100)
                if c.origin == "program"]
    ordered = sorted(commands, key=lambda c: c.created_at)
    assert [(c.endpoint_id, c.requested_value) for c in ordered] == [
        (VALVE_1, True), (PUMP_1, True), (PUMP_1, False), (VALVE_1, False)], ordered
    assert all(c.user == "program:brewhouse" and c.status.value == "succeeded" for c in commands), commands
    pump_off, valve_closed = ordered[2], ordered[3]
    assert pump_off.completed_at is not None and pump_off.completed_at <= valve_closed.created_at  # pump stopped first


async def test_a_write_an_interlock_blocks_pauses_the_program_with_the_reason(brewhouse: Runtime) -> None:
    runtime = brewhouse
    frame = await runtime.programs.start_program(OPERATOR, "brewhouse", "dead_head")
    assert frame["state"] == "paused", frame
    assert "blocked" in frame["message"] and "dead-heading" in frame["message"]
    assert runtime.plant.states[PUMP_1].value is not True


async def test_an_unanswered_prompt_raises_an_alarm_after_its_time_and_the_answer_clears_it(
        brewhouse: Runtime) -> None:
    runtime = brewhouse
    await runtime.programs.start_program(OPERATOR, "brewhouse", "ask")
    key = "program:brewhouse:0:confirm"
    await step(runtime, 30)
    assert not runtime.alarms.is_active(key)
    await step(runtime, 35)
    assert runtime.alarms.is_active(key)
    frame = runtime.programs.frame(runtime.programs.units["brewhouse"])
    assert frame["prompts"][0]["overdue"] is True
    done = await runtime.programs.confirm(OPERATOR, "brewhouse", 0, "confirm")
    assert done["state"] == "completed" and not runtime.alarms.is_active(key)


async def test_a_boil_times_from_the_boil_asks_for_each_addition_then_chills_with_the_element_off(
        brewhouse: Runtime) -> None:
    runtime = brewhouse
    runtime.attachments["simulator"].model.add_liquid("bk", 20.0, 99.5)
    await step(runtime, 30, inputs=(BK_TEMPERATURE,))
    await runtime.programs.start_program(OPERATOR, "kettle", "boil")
    assert runtime.plant.states[KETTLE["setpoint"]["id"]].value == 100.0  # the setpoint's maximum
    units = runtime.programs.units
    answered: list[str] = []
    for _ in range(400):
        await step(runtime, 1, inputs=(BK_TEMPERATURE,))
        frame = runtime.programs.frame(units["kettle"])
        for prompt in frame["prompts"]:
            answered.append(prompt["message"])
            await runtime.programs.confirm(OPERATOR, "kettle", prompt["step"], prompt["key"])
        if frame["step"] is not None and frame["step"]["name"] == "Chill":
            break
    assert answered == ["Add 20 g Magnum", "Add 30 g Cascade"]
    assert runtime.programs.frame(units["kettle"])["step"]["name"] == "Chill"
    await step(runtime, 2, inputs=(BK_TEMPERATURE,))
    assert runtime.controllers.loops["bk_element"].mode.value == "off"  # chilling: the element's loop is off
