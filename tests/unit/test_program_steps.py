"""Every step type as a state machine on a stepped clock: what it wants, when it is done, its timer."""

from __future__ import annotations

from typing import Any

import pytest

from bevforge.clock import ManualClock
from bevforge.config import PlantConfig, ProgramStep, parse_config
from bevforge.programs.steps import Inputs, Step, StepRefused, build
from tests.unit.test_config_programs import PROGRAMS

CONFIG: PlantConfig = parse_config(PROGRAMS, "plant.yaml")
CONTROLLERS = {c.id: c for c in CONFIG.controllers}


def step(**keys: Any) -> Step:
    return build(ProgramStep(**keys), CONTROLLERS)


def at(clock: ManualClock, pv: float | None = None, sp: float | None = None, c: str = "mlt_rims",
       **values: Any) -> Inputs:
    return Inputs(now=clock.now().timestamp(), pv={c: pv}, setpoint={c: sp},
                  values={int(k.removeprefix("e")): v for k, v in values.items()})


async def test_heat_sets_the_target_in_auto_and_is_done_in_band() -> None:
    clock = ManualClock()
    heat = step(type="heat", controller="mlt_rims", target_c=72, band_c=0.5)
    wants = heat.update(at(clock, pv=40))
    assert wants.setpoints == {"mlt_rims": 72} and wants.modes == {"mlt_rims": "auto"} and not wants.done
    assert not heat.update(at(clock, pv=None)).done
    assert heat.update(at(clock, pv=71.6)).done
    with pytest.raises(StepRefused):
        heat.extend(60)


async def test_hold_counts_only_in_band_with_a_grace_before_it_stops() -> None:
    clock = ManualClock()
    hold = step(type="hold", controller="mlt_rims", target_c=66, minutes=10, grace_s=60)
    assert hold.update(at(clock, pv=66)).remaining_s == 600
    await clock.advance(120)
    assert hold.update(at(clock, pv=66.2)).remaining_s == 480
    await clock.advance(30)  # out of band for 30 s: within the grace, the timer runs on
    wants = hold.update(at(clock, pv=64))
    assert wants.remaining_s == 450 and "out of band" in wants.status
    await clock.advance(40)  # 40 s out of band: still within the grace
    assert hold.update(at(clock, pv=63)).remaining_s == 410
    await clock.advance(30)  # 70 s out: the grace is over, the timer stopped (it ran until this update saw it)
    wants = hold.update(at(clock, pv=63))
    assert wants.remaining_s == 380 and "timer stopped" in wants.status
    await clock.advance(300)
    assert hold.update(at(clock, pv=63)).remaining_s == 380
    await clock.advance(10)
    assert hold.update(at(clock, pv=66)).remaining_s == 380  # back in band: counts again from here
    await clock.advance(10)
    assert hold.update(at(clock, pv=66)).remaining_s == 370
    await clock.advance(370)
    assert hold.update(at(clock, pv=66)).done


async def test_a_paused_hold_does_not_count_the_pause_and_extend_or_shorten_moves_the_end() -> None:
    clock = ManualClock()
    hold = step(type="hold", controller="mlt_rims", target_c=66, minutes=10)
    hold.update(at(clock, pv=66))
    await clock.advance(60)
    hold.update(at(clock, pv=66))
    hold.pause()
    await clock.advance(3600)
    assert hold.update(at(clock, pv=66)).remaining_s == 540
    hold.extend(300)
    assert hold.remaining() == 840
    hold.extend(-10_000)  # never shorter than what has run: it ends now
    assert hold.remaining() == 0 and hold.update(at(clock, pv=66)).done


async def test_a_hold_restored_from_its_state_keeps_its_elapsed_time_and_schedule_catch_up_counts_time_away() -> None:
    clock = ManualClock()
    hold = step(type="hold", controller="fv1", target_c=18, days=1)
    hold.update(at(clock, pv=18, c="fv1"))
    await clock.advance(3600)
    hold.update(at(clock, pv=18, c="fv1"))
    hold.pause()
    again = build(hold.cfg, CONTROLLERS, dict(hold.state))
    assert again.remaining() == 86400 - 3600
    again.catch_up(7200)
    assert again.remaining() == 86400 - 3 * 3600


async def test_ramp_by_rate_per_day_moves_the_setpoint_on_a_line_from_the_present_setpoint() -> None:
    clock = ManualClock()
    ramp = step(type="ramp", controller="fv1", to_c=21, rate_c_per_day=1.5)
    wants = ramp.update(at(clock, pv=18.3, sp=18, c="fv1"))
    assert wants.setpoints == {"fv1": 18} and wants.remaining_s == 2 * 86400
    await clock.advance(86400)
    assert ramp.update(at(clock, pv=19, sp=18, c="fv1")).setpoints == {"fv1": 19.5}
    await clock.advance(86400)
    wants = ramp.update(at(clock, pv=21, c="fv1"))
    assert wants.setpoints == {"fv1": 21} and wants.done


async def test_ramp_over_minutes_from_a_given_start_waits_for_nothing() -> None:
    clock = ManualClock()
    ramp = step(type="ramp", controller="mlt_rims", from_c=52, to_c=66, minutes=14)
    assert ramp.update(at(clock)).setpoints == {"mlt_rims": 52}
    await clock.advance(300)
    assert ramp.update(at(clock)).setpoints == {"mlt_rims": 57}
    unknown = step(type="ramp", controller="mlt_rims", to_c=66, rate_c_per_min=1)
    assert not unknown.update(at(clock)).setpoints  # no start known yet: it asks for nothing


async def test_transfer_opens_the_valves_before_the_pump_and_stops_the_pump_before_closing_them() -> None:
    clock = ManualClock()
    transfer = step(type="transfer", pump=40, valves=[51], until={"endpoint": 41, "op": "==", "value": False})
    wants = transfer.update(at(clock, e51=False, e41=True))
    assert wants.writes == [(51, True)] and wants.prompts[0].key == "confirm" and not wants.done
    assert transfer.update(at(clock, e51=True, e41=True)).writes == [(51, True), (40, True)]
    assert transfer.update(at(clock, e51=True, e41=False)).done
    assert transfer.exit_writes() == [(40, False), (51, False)]


async def test_transfer_ends_when_the_operator_confirms() -> None:
    clock = ManualClock()
    transfer = step(type="transfer", pump=40)
    wants = transfer.update(at(clock))
    assert wants.writes == [(40, True)]
    transfer.confirm("confirm", wants.prompts)
    assert transfer.update(at(clock)).done
    with pytest.raises(StepRefused):
        transfer.confirm("nothing", [])


async def test_a_run_off_switches_the_mash_tuns_loop_off_while_it_empties_the_tun() -> None:
    clock = ManualClock()
    assert step(type="transfer", pump=40).update(at(clock)).modes == {}
    run_off = step(type="transfer", pump=40, valves=[51], controller="mlt_rims")
    assert run_off.update(at(clock, e51=False)).modes == {"mlt_rims": "off"}


async def test_boil_times_from_the_boil_and_prompts_each_addition_before_the_end() -> None:
    clock = ManualClock()
    boil = step(type="boil", controller="mlt_rims", minutes=60, boil_c=79,
                additions=[{"at_min": 60, "message": "Bittering hops"}, {"at_min": 10, "message": "Aroma hops"}])
    wants = boil.update(at(clock, pv=70))
    assert wants.setpoints == {"mlt_rims": 80} and wants.remaining_s == 3600 and not wants.prompts  # not boiling
    await clock.advance(600)
    wants = boil.update(at(clock, pv=79.5))  # the boil begins: its timer runs from here
    assert wants.remaining_s == 3600 and [p.message for p in wants.prompts] == ["Bittering hops"]
    boil.confirm("addition:0", wants.prompts)
    await clock.advance(3000)
    wants = boil.update(at(clock, pv=80))
    assert wants.remaining_s == 600 and [p.key for p in wants.prompts] == ["addition:1"]
    await clock.advance(600)
    wants = boil.update(at(clock, pv=80))
    assert wants.remaining_s == 0 and not wants.done  # the last addition is not confirmed yet
    boil.confirm("addition:1", wants.prompts)
    assert boil.update(at(clock, pv=80)).done


async def test_chill_switches_its_controller_off_and_ends_below_the_temperature() -> None:
    clock = ManualClock()
    chill = step(type="chill", endpoint=20, below_c=25, controller="mlt_rims")
    wants = chill.update(at(clock, e20=60.0))
    assert wants.modes == {"mlt_rims": "off"} and not wants.done
    assert chill.update(at(clock, e20=24.5)).done


async def test_prompt_waits_for_the_operator_and_is_overdue_after_its_time() -> None:
    clock = ManualClock()
    ask = step(type="prompt", message="Add 5.2 kg grain", overdue_min=10)
    wants = ask.update(at(clock))
    assert wants.prompts[0].message == "Add 5.2 kg grain" and not wants.prompts[0].overdue and not wants.done
    await clock.advance(600)
    wants = ask.update(at(clock))
    assert wants.prompts[0].overdue
    ask.confirm("confirm", wants.prompts)
    assert ask.update(at(clock)).done


async def test_wait_for_a_time_or_a_condition() -> None:
    clock = ManualClock()
    wait = step(type="wait", minutes=5)
    assert wait.update(at(clock)).remaining_s == 300
    await clock.advance(300)
    assert wait.update(at(clock)).done
    until = step(type="wait", until={"endpoint": 21, "op": "<", "value": 3})
    assert not until.update(at(clock, e21=10.0)).done and not until.update(at(clock)).done
    assert until.update(at(clock, e21=2.5)).done


async def test_set_writes_its_endpoint() -> None:
    wants = step(type="set", endpoint=51, value=False).update(at(ManualClock()))
    assert wants.writes == [(51, False)] and wants.done
