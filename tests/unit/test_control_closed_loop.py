"""Closed loops in simulated time: PID + time-proportioned SSR on the FOPDT model of a 60 L HLT with a
5.5 kW element (15 → 72 °C), and a fermenter's heat/cool pair on a glycol valve with a minimum cycle.

The HLT gains are what the relay autotune (Tyreus–Luyben) proposes on this vessel, rounded: kp
100 %/°C, ki 0.15 %/(°C·s) (Ti ≈ 11 min), kd 5000 %·s/°C (Td = 50 s). Simulated time: 90 minutes
of HLT and 12 hours of fermenter run in about a second.
"""

from __future__ import annotations

from itertools import pairwise

import pytest

from bevforge.control.heat_cool import HeatCool
from bevforge.control.hysteresis import Direction, Hysteresis, HysteresisSettings
from bevforge.control.pid import Pid, PidTuning
from bevforge.control.process_model import SimulatedVessel, VesselModel
from bevforge.control.time_proportioning import TimeProportioning, TimeProportioningSettings
from tests.support.control_loop import run_heating_loop

HLT = VesselModel.water(60.0, loss_w_per_c=10.0, ambient_c=20.0, dead_time_s=20.0)
ELEMENT_W = 5500.0
TUNING = PidTuning(kp=100.0, ki=0.15, kd=5000.0, derivative_filter_s=10.0)


def _full_power_time_s(start_c: float, target_c: float) -> float:
    vessel = SimulatedVessel(HLT, start_c)
    t = 0.0
    while vessel.probe_c < target_c:
        vessel.step(1.0, ELEMENT_W)
        t += 1.0
    return t


@pytest.mark.parametrize("resolution_c", [0.0, 0.0625])  # an ideal probe, and a DS18B20's 1/16 °C steps
def test_hlt_heats_15_to_72_with_small_overshoot_and_holds(resolution_c: float) -> None:
    vessel = SimulatedVessel(HLT, initial_c=15.0)
    run = run_heating_loop(vessel, Pid(TUNING), 72.0, ELEMENT_W, duration_s=90 * 60.0, ssr_period_s=2.0,
                           resolution_c=resolution_c)
    reached = run.first_time_at(72.0)
    assert reached is not None
    assert run.peak_c() - 72.0 <= 0.5
    held = [pv for t, pv, _ in run.samples if reached <= t <= reached + 30 * 60.0]
    assert run.samples[-1][0] >= reached + 30 * 60.0
    assert max(abs(pv - 72.0) for pv in held) <= 0.2  # held ±0.2 °C for 30 simulated minutes
    # and the regulation costs little time: within 15 % of heating at full power all the way
    assert reached <= 1.15 * _full_power_time_s(15.0, 72.0)


def test_a_naive_on_off_loop_overshoots_on_the_same_vessel() -> None:
    """The model is not too kind: the probe's dead time makes switching at the setpoint overshoot."""
    vessel = SimulatedVessel(HLT, initial_c=15.0)
    loop = Hysteresis(HysteresisSettings(Direction.HEAT, on_offset_c=0.0, off_offset_c=0.0))
    peak, t = 0.0, 0.0
    while t < 90 * 60.0:
        on = loop.update(t, vessel.probe_c, 72.0)
        vessel.step(1.0, ELEMENT_W if on else 0.0)
        peak = max(peak, vessel.probe_c)
        t += 1.0
    assert peak - 72.0 > 0.3


def test_fermenter_heat_cool_pair_holds_18_with_the_glycol_valves_minimum_cycle() -> None:
    """FV1: 100 L fermenting (80 W of yeast and room heat), a 800 W glycol jacket on a solenoid with a
    60 s minimum on and 120 s minimum off, a 150 W heating pad, one signed PID, a 0.4 °C dead band."""
    fermenter = SimulatedVessel(VesselModel.water(100.0, loss_w_per_c=5.0, ambient_c=22.0, dead_time_s=60.0), 20.0)
    pid = Pid(PidTuning(kp=100.0, ki=100.0 / 1800.0, out_min=-100.0, out_max=100.0))
    pair = HeatCool(dead_band_c=0.4)
    pad = TimeProportioning(TimeProportioningSettings(period_s=60.0))
    glycol = TimeProportioning(TimeProportioningSettings(period_s=300.0, min_on_s=60.0, min_off_s=120.0))
    probe: list[tuple[float, float]] = []
    glycol_edges: list[tuple[float, bool]] = []
    glycol_was = False
    for second in range(12 * 3600):
        now = float(second)
        demand = pair.update_signed(fermenter.probe_c, 18.0, pid.update(now, fermenter.probe_c, 18.0))
        heating, cooling = pad.update(now, demand.heat_pct), glycol.update(now, demand.cool_pct)
        assert not (heating and cooling)
        if cooling != glycol_was:
            glycol_edges.append((now, cooling))
            glycol_was = cooling
        fermenter.step(1.0, 80.0 + (150.0 if heating else 0.0) - (800.0 if cooling else 0.0))
        probe.append((now, fermenter.probe_c))
    reached = next(t for t, pv in probe if pv <= 18.0)
    assert max(abs(pv - 18.0) for t, pv in probe if t >= reached) <= 0.3
    for (t0, on), (t1, _) in pairwise(glycol_edges):
        assert t1 - t0 >= (60.0 if on else 120.0)  # the valve never cycles faster than its minimum cycle
    assert len(glycol_edges) > 20  # it did regulate, in pulses
