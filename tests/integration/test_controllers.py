"""The controller service on the real simulated brewhouse: real Modbus, real SQLite, a stepped clock.

Each test starts the runtime (drivers over Modbus TCP on a free port, the store in a temporary
SQLite file), fills a vessel in the simulator, and steps the shared ManualClock a second at a
time (`tests/support/controllers.step`), so simulated minutes pass without sleeping through them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bevforge.domain import Actor, CommandStatus, Quality, Reading
from bevforge.errors import Conflict, Forbidden, Invalid, NotFound
from bevforge.runtime import Runtime
from tests.support.controllers import (
    BK_ELEMENT,
    BK_TEMPERATURE,
    FAST_POLL_S,
    FAST_POLL_STALE_S,
    KETTLE,
    MLT_ELEMENT,
    MLT_LEVEL,
    MLT_TEMPERATURE,
    RIMS,
    controller_config,
    controller_runtime,
    started,
    step,
)

OPERATOR = Actor(user="olga", role="operator", station="test")
TECHNICIAN = Actor(user="tom", role="technician", station="test")
VIEWER = Actor(user="vic", role="viewer", station="test")


@pytest.fixture
async def rims(tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime = await started(controller_runtime(controller_config(), tmp_path / "bevforge.db"))
    try:
        yield runtime
    finally:
        await runtime.stop()


def mlt(runtime: Runtime) -> Any:
    return runtime.attachments["simulator"].model.vessels["mlt"]


async def controller_commands(runtime: Runtime, endpoint_id: int) -> list[Any]:
    return [c for c in await runtime.commands.query(endpoint_id, None, 10_000) if c.origin == "controller"]


async def test_a_pid_loop_brings_the_mash_to_its_setpoint_and_holds_it(rims: Runtime) -> None:
    runtime = rims
    runtime.attachments["simulator"].model.add_liquid("mlt", 30.0, 58.0)
    await step(runtime, 5)
    frame = await runtime.controllers.set_mode(OPERATOR, "mlt_rims", "auto")
    assert frame["mode"] == "auto" and frame["sp"] == 65.0
    peak, late = 0.0, []
    seconds = 0

    def watch() -> None:
        nonlocal peak, seconds
        seconds += 1
        peak = max(peak, mlt(runtime).temperature_c)
        if seconds > 900:
            late.append(mlt(runtime).temperature_c)

    await step(runtime, 1080, each=watch)
    assert peak < 66.5, f"overshoot to {peak:.2f} °C"
    assert late and max(abs(t - 65.0) for t in late) < 0.6, (min(late), max(late))
    status = runtime.controllers.frame(runtime.controllers.loops["mlt_rims"])
    assert status["state"] == "regulating"
    sent = await controller_commands(runtime, MLT_ELEMENT)
    assert sent and {c.user for c in sent} == {"controller:mlt_rims"}
    assert any(c.status is CommandStatus.SUCCEEDED and c.requested_value is True for c in sent)


async def test_a_loop_that_is_off_sends_nothing_and_raises_nothing_at_start_up(rims: Runtime) -> None:
    """Its first ticks come before the devices answer: an output not read yet is not 'switched off'
    with a command the offline device would block (no blocked command, no held alarm at every start)."""
    await step(rims, 5)
    assert await controller_commands(rims, MLT_ELEMENT) == []
    assert not rims.alarms.is_active("controller:mlt_rims:held")
    assert rims.controllers.frame(rims.controllers.loops["mlt_rims"])["state"] == "off"


async def test_an_output_that_does_not_read_as_sent_is_sent_again(rims: Runtime) -> None:
    """The element's SSR dropped out by itself (a device reset): the loop sees the reading differ from
    what it sent and sends its output again instead of believing its own record."""
    runtime = rims
    runtime.attachments["simulator"].model.add_liquid("mlt", 30.0, 40.0)
    await runtime.controllers.set_mode(OPERATOR, "mlt_rims", "auto")
    await step(runtime, 5)
    assert runtime.plant.states[MLT_ELEMENT].value is True  # 25 °C below: full power, on all the time
    before = len(await controller_commands(runtime, MLT_ELEMENT))
    mlt(runtime).element_on = False
    await runtime.plant.next_sample(MLT_ELEMENT, 2.0)
    await runtime.plant.next_sample(MLT_ELEMENT, 2.0)
    assert runtime.plant.states[MLT_ELEMENT].value is False
    await step(runtime, 3)
    assert runtime.plant.states[MLT_ELEMENT].value is True
    assert len(await controller_commands(runtime, MLT_ELEMENT)) > before


async def test_an_input_fault_puts_the_output_safe_and_raises_an_alarm(rims: Runtime) -> None:
    runtime = rims
    runtime.attachments["simulator"].model.add_liquid("mlt", 30.0, 40.0)
    await runtime.controllers.set_mode(OPERATOR, "mlt_rims", "auto")
    await step(runtime, 10)
    assert runtime.plant.states[MLT_ELEMENT].value is True  # 25 °C below: full power
    runtime.plant.ingest([Reading(MLT_TEMPERATURE, None, Quality.BAD, error="probe open circuit")])
    loop = runtime.controllers.loops["mlt_rims"]
    await runtime.controllers.tick(loop)  # the next tick, at most one period after the fault
    assert loop.state.value == "input_fault"
    assert runtime.controllers._sent[MLT_ELEMENT] is False
    assert runtime.alarms.is_active("controller:mlt_rims:input_fault")
    frame = runtime.controllers.frame(loop)
    assert frame["state"] == "input_fault" and "open circuit" in frame["reason"]


async def test_a_runaway_trips_the_loop_until_an_operator_resets_it(rims: Runtime) -> None:
    runtime = rims
    model = runtime.attachments["simulator"].model
    model.add_liquid("mlt", 30.0, 40.0)
    await runtime.controllers.set_mode(OPERATOR, "mlt_rims", "auto")
    await step(runtime, 5)
    mlt(runtime).element_w = 0.0  # the element burnt out: full output, the mash does not warm
    await step(runtime, 480)
    loop = runtime.controllers.loops["mlt_rims"]
    assert loop.state.value == "tripped" and "runaway" in (loop.tripped or "")
    assert runtime.controllers._sent[MLT_ELEMENT] is False
    assert runtime.plant.states[MLT_ELEMENT].value is False
    assert runtime.alarms.is_active("controller:mlt_rims:tripped")
    await step(runtime, 30)
    assert loop.state.value == "tripped", "a trip stays until a person resets it"
    with pytest.raises(Forbidden):
        await runtime.controllers.reset(VIEWER, "mlt_rims")
    frame = await runtime.controllers.reset(OPERATOR, "mlt_rims")
    assert frame["state"] == "off" and frame["mode"] == "off"
    await step(runtime, 2)
    assert not runtime.alarms.is_active("controller:mlt_rims:tripped")


async def test_a_blocked_output_is_held_with_an_alarm_and_not_retried_every_tick(tmp_path: Path) -> None:
    runtime = await started(controller_runtime(controller_config(), tmp_path / "bevforge.db"))
    try:
        model = runtime.attachments["simulator"].model
        model.add_liquid("mlt", 10.0, 40.0)  # below the level switch: the interlock refuses the element
        await step(runtime, 3)
        assert runtime.plant.states[MLT_LEVEL].value is False
        await runtime.controllers.set_mode(OPERATOR, "mlt_rims", "auto")
        await step(runtime, 20)
        loop = runtime.controllers.loops["mlt_rims"]
        assert loop.state.value == "held" and "level" in (loop.held or "")
        assert runtime.alarms.is_active("controller:mlt_rims:held")
        blocked = [c for c in await controller_commands(runtime, MLT_ELEMENT) if c.status is CommandStatus.BLOCKED]
        assert 1 <= len(blocked) <= 20 // RIMS["period_s"] + 1  # once a period, not every tick
        assert runtime.plant.states[MLT_ELEMENT].value is False
        await runtime.controllers.set_setpoint(OPERATOR, "mlt_rims", 30)  # below the mash: nothing wanted
        await step(runtime, 2 * RIMS["period_s"])
        assert loop.state.value == "regulating" and not runtime.alarms.is_active("controller:mlt_rims:held")
        await runtime.controllers.set_setpoint(OPERATOR, "mlt_rims", 65)
        await step(runtime, 2 * RIMS["period_s"])
        assert loop.state.value == "held"
        model.add_liquid("mlt", 20.0, 40.0)  # covered now
        await step(runtime, 3 * RIMS["period_s"])
        assert loop.state.value == "regulating"
        assert not runtime.alarms.is_active("controller:mlt_rims:held")
        assert runtime.plant.states[MLT_ELEMENT].value is True
    finally:
        await runtime.stop()


async def test_manual_to_auto_and_back_is_bumpless(rims: Runtime) -> None:
    runtime = rims
    runtime.attachments["simulator"].model.add_liquid("mlt", 30.0, 64.0)
    await step(runtime, 5)
    service = runtime.controllers
    await service.set_mode(OPERATOR, "mlt_rims", "manual")
    with pytest.raises(Invalid) as refused:
        await service.set_output(OPERATOR, "mlt_rims", 140)
    assert refused.value.field == "value"
    await service.set_output(OPERATOR, "mlt_rims", 37.0)
    await step(runtime, 8)
    loop = service.loops["mlt_rims"]
    assert loop.state.value == "manual" and loop.output_pct == 37.0
    await service.set_mode(OPERATOR, "mlt_rims", "auto")
    await step(runtime, 1)
    assert loop.pid is not None
    assert abs(loop.output_pct - 37.0) < 3.0, "auto starts from the operator's output"
    await step(runtime, 20)
    held = loop.output_pct
    await service.set_mode(OPERATOR, "mlt_rims", "manual")
    await step(runtime, 1)
    assert loop.output_pct == pytest.approx(held), "manual keeps the output as auto left it"


async def test_people_s_changes_are_stored_audited_and_resumed_after_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "bevforge.db"
    fermenter = {  # a loop on a valve (not a heater), told to resume
        "id": "fv1_temperature", "name": "FV1", "node": "FV1", "kind": "hysteresis", "input": 50, "output": 51,
        "setpoint": {"id": 150, "name": "fv1_setpoint", "min": 0, "max": 30, "default": 18},
        "period_s": 60, "safety": {"over_temperature_c": None, "runaway_minutes": 120}, "resume": "auto",
    }
    config = controller_config([dict(RIMS), fermenter])
    runtime = await started(controller_runtime(config, db))
    try:
        service = runtime.controllers
        await service.set_mode(OPERATOR, "mlt_rims", "auto")
        await service.set_setpoint(OPERATOR, "mlt_rims", 67.5)
        await service.set_mode(OPERATOR, "fv1_temperature", "auto")
        await service.set_setpoint(OPERATOR, "fv1_temperature", 12)
        with pytest.raises(Forbidden):
            await service.set_tuning(OPERATOR, "mlt_rims", {"kp": 50})
        await service.set_tuning(TECHNICIAN, "mlt_rims", {"kp": 50})
        with pytest.raises(Invalid) as bad:
            await service.set_tuning(TECHNICIAN, "mlt_rims", {"kq": 1})
        assert bad.value.field == "tuning.kq"
        with pytest.raises(Invalid) as outside:
            await service.set_setpoint(OPERATOR, "mlt_rims", 95)
        assert outside.value.field == "value"
        with pytest.raises(NotFound):
            await service.set_mode(Actor(user="x", role="operator", nodes=frozenset({"HLT"})), "mlt_rims", "off")
        entries = await runtime.audit.query(user="olga")
        actions = {e["action"] for e in entries}
        assert {"controller.mode", "command.request"} <= actions  # the setpoint goes through the command pipeline
        assert any(e["action"] == "command.request" and e["target"] == "mlt_setpoint" and e["new"] == 67.5
                   for e in entries)
        assert any(e["action"] == "controller.tuning" for e in await runtime.audit.query(user="tom"))
        assert not [e for e in await runtime.audit.query(user="controller:mlt_rims")], "no audit row per PWM edge"
    finally:
        await runtime.stop()
    runtime = await started(controller_runtime(config, db))
    try:
        service = runtime.controllers
        rims_loop, fv = service.loops["mlt_rims"], service.loops["fv1_temperature"]
        assert rims_loop.mode.value == "off" and "resume: off" in rims_loop.reason  # a heater loop comes back off
        assert rims_loop.setpoint == 67.5 and rims_loop.tuning["kp"] == 50
        assert fv.mode.value == "auto" and "resume: auto" in fv.reason and fv.setpoint == 12
        frame = service.frame(rims_loop)
        assert frame["state"] == "off" and "resume: off" in frame["reason"]
    finally:
        await runtime.stop()


async def test_the_power_budget_is_never_exceeded_by_the_commands_sent(tmp_path: Path) -> None:
    watts = {MLT_ELEMENT: 11000, BK_ELEMENT: 5500}  # the 11 kW mash element and the 5.5 kW kettle's
    power = {"limit_w": 11040, "elements": [{"output": eid, "watts": w} for eid, w in watts.items()],
             "slice_s": 8, "aging_s": 20, "release_s": 1}
    config = controller_config([dict(RIMS), dict(KETTLE)], power=power)
    runtime = await started(controller_runtime(config, tmp_path / "bevforge.db"))
    try:
        model = runtime.attachments["simulator"].model
        model.add_liquid("mlt", 30.0, 40.0)
        model.add_liquid("bk", 40.0, 40.0)  # both far below their setpoints: both want full power
        await runtime.controllers.set_mode(OPERATOR, "mlt_rims", "auto")
        await runtime.controllers.set_mode(OPERATOR, "bk_element", "auto")
        both_on = []

        def watch() -> None:
            states = runtime.plant.states
            both_on.append(states[MLT_ELEMENT].value is True and states[BK_ELEMENT].value is True)

        await step(runtime, 240, inputs=(MLT_TEMPERATURE, BK_TEMPERATURE), each=watch)
        sent = sorted(await controller_commands(runtime, MLT_ELEMENT) + await controller_commands(runtime, BK_ELEMENT),
                      key=lambda c: c.created_at)
        on: set[int] = set()
        for command in sent:  # replay in the order they were sent: never both asked on at once
            if command.status is CommandStatus.BLOCKED:
                continue
            (on.add if command.requested_value else on.discard)(command.endpoint_id)
            assert sum(watts[eid] for eid in on) <= 11040, f"over budget after {command.id}"
        assert not any(both_on)
        assert {c.endpoint_id for c in sent if c.requested_value is True} == {MLT_ELEMENT, BK_ELEMENT}, \
            "the lower-priority kettle is served too (no starvation)"
    finally:
        await runtime.stop()


async def test_a_fermenter_heat_cool_pair_never_heats_and_cools_at_once(tmp_path: Path) -> None:
    """FV1's heating pad and glycol valve on one signed PID: cooling toward a lower setpoint opens only
    the valve; a higher setpoint then heats with the pad only, the valve closed first."""
    fermenter = {
        "id": "fv1_temperature", "name": "FV1", "node": "FV1", "kind": "pid", "input": 54, "output": 53,
        "cool_output": 51, "dead_band_c": 0.4,
        "setpoint": {"id": 150, "name": "fv1_setpoint", "min": 0, "max": 30, "default": 16},
        "period_s": 20, "min_on_s": 2, "min_off_s": 2,
        "tuning": {"kp": 40, "ki": 0.02, "out_min": -100, "out_max": 100},
        "safety": {"over_temperature_c": None, "runaway_minutes": 120}, "resume": "auto",
    }

    def cellar(doc: dict[str, Any]) -> None:
        doc["endpoints"] += [
            {"id": 53, "name": "fv1_heating_pad", "node": "FV1", "device": "cellar_io", "kind": "heater",
             "data_type": "bool", "writable": True, "safe_value": False, "poll_interval_s": FAST_POLL_S,
             "stale_after_s": FAST_POLL_STALE_S, "address": {"table": "coil", "address": 2}},
            {"id": 54, "name": "fv1_probe", "node": "FV1", "device": "cellar_io", "kind": "temperature",
             "unit": "°C", "poll_interval_s": FAST_POLL_S, "stale_after_s": FAST_POLL_STALE_S,
             "address": {"table": "input", "address": 0, "type": "int16", "scale": 0.01}},
        ]
        for endpoint in doc["endpoints"]:
            if endpoint["id"] == 51:
                endpoint["poll_interval_s"] = FAST_POLL_S
                endpoint["stale_after_s"] = FAST_POLL_STALE_S

    runtime = await started(controller_runtime(controller_config([fermenter], adjust=cellar),
                                               tmp_path / "bevforge.db"))
    try:
        states = runtime.plant.states
        both: list[bool] = []
        valve_on: list[bool] = []
        pad_on: list[bool] = []

        def watch() -> None:
            both.append(states[51].value is True and states[53].value is True)
            valve_on.append(states[51].value is True)
            pad_on.append(states[53].value is True)

        await runtime.controllers.set_mode(OPERATOR, "fv1_temperature", "auto")  # 18 °C, setpoint 16: cool
        await step(runtime, 120, inputs=(54,), each=watch)
        assert any(valve_on) and not any(pad_on)
        valve_on.clear()
        await runtime.controllers.set_setpoint(OPERATOR, "fv1_temperature", 25)  # now heat
        await step(runtime, 120, inputs=(54,), each=watch)
        assert any(pad_on) and not any(valve_on[-60:])
        assert not any(both), "heating pad and glycol valve were on at the same time"
        sent = await controller_commands(runtime, 51) + await controller_commands(runtime, 53)
        on: set[int] = set()
        for command in sorted(sent, key=lambda c: c.created_at):
            (on.add if command.requested_value else on.discard)(command.endpoint_id)
            assert len(on) <= 1, "a command asked for heating and cooling at once"
        # a heat/cool pair is no loop for a relay test: the refusal says why, before and at START
        why = runtime.controllers.autotune_refusal(TECHNICIAN, "fv1_temperature")
        assert why is not None and "this loop heats and cools" in why
        with pytest.raises(Conflict, match="heats and cools"):
            await runtime.controllers.start_autotune(TECHNICIAN, "fv1_temperature", {})
    finally:
        await runtime.stop()


MLT_OUTPUT_RECORD = 141


async def test_the_output_is_kept_in_history_rate_limited_and_goes_stale_if_not_refreshed(tmp_path: Path) -> None:
    """`output_record` makes the loop's output % a reading: history keeps it (a change at most once a
    period, a drop to 0 at once), and a record that stops being refreshed goes stale like a probe —
    while the software setpoint, which the panel holds, never does."""
    config = controller_config([{**RIMS, "output_record": {"id": MLT_OUTPUT_RECORD, "name": "mlt_output"}}])
    runtime = await started(controller_runtime(config, tmp_path / "bevforge.db"))
    try:
        runtime.attachments["simulator"].model.add_liquid("mlt", 30.0, 58.0)
        await step(runtime, 3)
        await runtime.controllers.set_mode(OPERATOR, "mlt_rims", "auto")
        await step(runtime, 60)
        assert runtime.plant.states[MLT_OUTPUT_RECORD].quality is Quality.GOOD
        await runtime.controllers.set_mode(OPERATOR, "mlt_rims", "off")
        assert runtime.plant.states[MLT_OUTPUT_RECORD].value == 0.0  # off: recorded at once
        await runtime.history_writer.flush()
        rows = await runtime.history_reader.recent_readings([MLT_OUTPUT_RECORD], None, None, 1000)
        values = [r["value"] for r in sorted(rows, key=lambda r: r["server_ts"])]
        assert values[-1] == 0.0 and any(v > 0 for v in values), values
        # 60 s of a period-4 loop: at most one change per period (plus the heartbeat), not one per tick
        assert len(values) <= 60 / 4 + 3, len(values)
        assert runtime.config.endpoint(MLT_OUTPUT_RECORD).writable is False
        later = runtime.plant.states[MLT_OUTPUT_RECORD].server_time + timedelta(minutes=5)
        runtime.plant.sweep_stale(later)
        assert runtime.plant.states[MLT_OUTPUT_RECORD].quality is not Quality.GOOD
        assert runtime.plant.states[RIMS["setpoint"]["id"]].quality is Quality.GOOD
    finally:
        await runtime.stop()


async def test_a_shutdown_leaves_every_controlled_output_in_its_safe_state(tmp_path: Path) -> None:
    """A device with no watchdog keeps its last command: stopping the panel switches the element off
    first, through the pipeline (a command record from the controller), before the drivers stop."""
    runtime = await started(controller_runtime(controller_config(), tmp_path / "bevforge.db"))
    stopped = False
    try:
        model = runtime.attachments["simulator"].model
        model.add_liquid("mlt", 30.0, 40.0)
        await runtime.controllers.set_mode(OPERATOR, "mlt_rims", "auto")
        await step(runtime, 5)
        assert mlt(runtime).element_on is True  # 25 °C below: full power
        await runtime.stop()
        stopped = True
        assert mlt(runtime).element_on is False
    finally:
        if not stopped:
            await runtime.stop()
    reopened = controller_runtime(controller_config(), tmp_path / "bevforge.db")
    last = next(c for c in await reopened.commands.query(MLT_ELEMENT, None, 100) if c.origin == "controller")
    assert last.requested_value is False and last.status is CommandStatus.SUCCEEDED
    reopened.db.close()
