"""Safe resume across more than one step: a fermentation profile's schedule goes on through the steps the
panel was off for (real Modbus, real SQLite, a stepped clock; the restart is a new runtime over the same
file whose clock is later by the time offline)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bevforge.clock import ManualClock
from bevforge.config import ProgramStep
from bevforge.programs.steps import Inputs, build
from tests.integration.test_programs import OPERATOR, with_programs
from tests.support.controllers import KETTLE, RIMS, controller_config, controller_runtime, started, step

PROFILE = {"id": "two_steps", "name": "Ramp then hold", "unit": "kettle", "steps": [
    {"type": "ramp", "name": "Ramp", "controller": "bk_element", "from_c": 40, "to_c": 50, "minutes": 10},
    {"type": "hold", "name": "Hold", "controller": "bk_element", "target_c": 50, "minutes": 60, "band_c": 1},
    {"type": "ramp", "name": "Cool", "controller": "bk_element", "from_c": 50, "to_c": 30, "minutes": 60},
]}


def profile_config() -> Any:
    def adjust(doc: dict[str, Any]) -> None:
        with_programs(doc)
        doc["programs"]["templates"].append(PROFILE)

    return controller_config([dict(RIMS), dict(KETTLE)], adjust=adjust)


async def test_a_fermentation_profile_off_longer_than_its_step_resumes_in_the_step_its_schedule_is_at(
        tmp_path: Path) -> None:
    db = tmp_path / "bevforge.db"
    clock = ManualClock()
    runtime = await started(controller_runtime(profile_config(), db, clock))
    try:
        await runtime.programs.start_program(OPERATOR, "kettle", "two_steps")
        await step(runtime, 300)  # 5 of the ramp's 10 min
        assert runtime.programs.frame(runtime.programs.units["kettle"])["step"]["name"] == "Ramp"
    finally:
        await runtime.stop()
    # off 75 min: the schedule is 80 min in — the ramp's 10, the hold's 60, and 10 min into the cooling ramp
    later = ManualClock(clock.now() + timedelta(minutes=75))
    again = await started(controller_runtime(profile_config(), db, later))
    try:
        await step(again, 5)  # a step a tick: the ramp ends, the hold ends, the cooling ramp starts
        frame = again.programs.frame(again.programs.units["kettle"])
        assert frame["state"] == "running" and frame["step"]["name"] == "Cool", frame
        assert frame["step"]["remainingS"] == pytest.approx(50 * 60, abs=5), frame
        # 10 of 60 min from 50 to 30 °C: 46.7 °C
        assert again.plant.states[KETTLE["setpoint"]["id"]].value == pytest.approx(46.67, abs=0.1)
    finally:
        await again.stop()


class SteppedWallClock(ManualClock):
    """A stepped clock whose date can jump (NTP setting the wall clock of a board without a real-time clock)
    while its monotonic time goes on evenly."""

    def __init__(self) -> None:
        super().__init__()
        self.wall_step = timedelta(0)

    def now(self) -> Any:
        return super().now() + self.wall_step


async def test_a_wall_clock_step_while_a_hold_runs_is_not_counted_as_time_in_band(tmp_path: Path) -> None:
    clock = SteppedWallClock()
    runtime = await started(controller_runtime(profile_config(), tmp_path / "bevforge.db", clock))
    try:
        runtime.attachments["simulator"].model.add_liquid("mlt", 30.0, 65.5)
        await step(runtime, 60)  # the probe sees the mash
        await runtime.programs.start_program(OPERATOR, "brewhouse", "short_mash")
        await runtime.programs.skip(OPERATOR, "brewhouse")  # into the five-minute hold, in band
        await step(runtime, 30)
        clock.wall_step = timedelta(hours=1)  # the date jumps an hour ahead
        await step(runtime, 30)
        frame = runtime.programs.frame(runtime.programs.units["brewhouse"])
        assert frame["state"] == "running" and frame["step"]["name"] == "Mash rest", frame
        assert frame["step"]["remainingS"] == pytest.approx(300 - 60, abs=3), frame
    finally:
        await runtime.stop()


def test_times_stored_by_a_clock_that_was_ahead_count_from_now() -> None:
    """A scaled clock starts again at the time of day on every start, behind the one that stored the step:
    an out-of-band start or a prompt's time stored then lies in the future, and must not stretch the grace or
    hold back the overdue alarm."""
    hold = build(ProgramStep(type="hold", controller="mlt_rims", target_c=66, minutes=60, grace_s=60), {},
                 {"elapsed": 600.0, "out_since": 10_000.0})
    hold.update(Inputs(now=1000.0, pv={"mlt_rims": 60.0}))  # out of band at the first look after the restart
    wants = hold.update(Inputs(now=1100.0, pv={"mlt_rims": 60.0}))
    assert wants.status.startswith("timer stopped"), wants.status
    ask = build(ProgramStep(type="prompt", message="Add 5.2 kg grain", overdue_min=1), {},
                {"since:confirm": 10_000.0})
    ask.update(Inputs(now=1000.0))
    assert ask.update(Inputs(now=1070.0)).prompts[0].overdue
