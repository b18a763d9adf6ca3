"""PID + time-proportioned SSR on the FOPDT model of a 60 L HLT with a 5.5 kW element: 15 → 72 °C.

The gains are what the relay autotune (Tyreus–Luyben) proposes on this vessel, rounded: kp 100 %/°C,
ki 0.15 %/(°C·s) (Ti ≈ 11 min), kd 5000 %·s/°C (Td = 50 s). Simulated time: 90 minutes run in
well under a second.
"""

from __future__ import annotations

import pytest

from bevforge.control.hysteresis import Direction, Hysteresis, HysteresisSettings
from bevforge.control.pid import Pid, PidTuning
from bevforge.control.process_model import SimulatedVessel, VesselModel
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
