"""A controller's relay autotune, end to end in simulated time: the loop runs the relay instead of its PID,
hands back bumplessly when the test succeeds, and proposes Tyreus–Luyben gains (no I/O: Loop + vessel model)."""

from __future__ import annotations

from bevforge.config import parse_config
from bevforge.control.autotune import AutotuneSettings, AutotuneState
from bevforge.control.process_model import SimulatedVessel, VesselModel
from bevforge.controllers.loop import ControllerMode, ControllerState, Loop

CONFIG = """
nodes: [{id: HLT, name: Hot liquor tank}]
devices: [{id: io, driver: simulator}]
endpoints:
  - {id: 10, name: hlt_temperature, node: HLT, device: io, kind: temperature, unit: "°C"}
  - {id: 11, name: hlt_element, node: HLT, device: io, kind: heater, data_type: bool, writable: true,
     safe_value: false}
controllers:
  - {id: hlt, name: HLT, node: HLT, input: 10, output: 11, period_s: 2,
     setpoint: {id: 12, name: hlt_setpoint, min: 20, max: 90, default: 72},
     tuning: {kp: 20, ki: 0.01}, safety: {runaway_minutes: 600}}
"""
ELEMENT_W = 5500.0


def test_a_relay_autotune_succeeds_and_hands_back_to_the_pid_bumplessly() -> None:
    config = parse_config(CONFIG)
    loop = Loop.build(config.controllers[0], config.endpoints_by_id, 72.0)
    loop.set_mode(ControllerMode.AUTO, "test")
    vessel = SimulatedVessel(VesselModel.water(60.0, loss_w_per_c=10.0, dead_time_s=20.0), 72.0)
    now = 0.0
    loop.step(now, vessel.probe_c, None)
    loop.start_autotune(now, AutotuneSettings(setpoint_c=72.0, bias_pct=50.0, amplitude_pct=50.0, hysteresis_c=0.05,
                                              band_c=3.0, max_duration_s=20_000, cycles=3))
    assert loop.state is ControllerState.AUTOTUNING
    seen_states = set()
    while loop.autotuning and now < 20_000:
        demands = loop.step(now, vessel.probe_c, None)
        seen_states.add(loop.state)
        vessel.step(2.0, ELEMENT_W * demands[11] / 100.0)
        now += 2.0
    assert loop.autotune is not None and loop.autotune.state is AutotuneState.SUCCEEDED
    result = loop.autotune.result
    assert result is not None and result.kp > 0 and result.ki > 0 and result.kd > 0
    assert loop.state is ControllerState.REGULATING and loop.mode is ControllerMode.AUTO
    handed_back = loop.step(now, vessel.probe_c, None)[11]
    assert abs(handed_back - 50.0) < 15.0, "the PID starts from the relay's bias"


def test_an_input_fault_aborts_an_autotune_and_the_outputs_go_safe() -> None:
    config = parse_config(CONFIG)
    loop = Loop.build(config.controllers[0], config.endpoints_by_id, 72.0)
    loop.set_mode(ControllerMode.AUTO, "test")
    loop.step(0.0, 71.0, None)
    loop.start_autotune(0.0, AutotuneSettings(setpoint_c=72.0, bias_pct=50.0, amplitude_pct=50.0))
    assert loop.step(2.0, 71.0, None)[11] == 100.0
    assert loop.step(4.0, None, "probe open")[11] == 0.0
    assert loop.autotune is not None and loop.autotune.state is AutotuneState.ABORTED
    assert loop.autotune.reason is not None and loop.state is ControllerState.INPUT_FAULT
