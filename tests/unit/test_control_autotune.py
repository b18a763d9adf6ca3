"""Relay autotune: the relay, the measurement, the Tyreus–Luyben gains, every abort, and a tune on an FOPDT vessel."""

from __future__ import annotations

import math

import pytest

from bevforge.control.autotune import AbortReason, AutotuneSettings, AutotuneState, RelayAutotune
from bevforge.control.pid import Pid, PidTuning
from bevforge.control.process_model import SimulatedVessel, VesselModel
from tests.support.control_loop import run_heating_loop

HLT = VesselModel.water(60.0, loss_w_per_c=10.0, dead_time_s=20.0)
ELEMENT_W = 5500.0


def _settings(**overrides: float) -> AutotuneSettings:
    values = {"setpoint_c": 72.0, "bias_pct": 50.0, "amplitude_pct": 50.0, "hysteresis_c": 0.05, "band_c": 3.0}
    values.update(overrides)
    return AutotuneSettings(**values)


def test_the_relay_switches_only_past_the_hysteresis() -> None:
    tune = RelayAutotune(_settings(hysteresis_c=0.2), now=0.0)
    assert tune.update(0.0, 71.9) == 100.0  # below the setpoint: high
    assert tune.update(1.0, 72.1) == 100.0  # above, but within the hysteresis
    assert tune.update(2.0, 72.3) == 0.0
    assert tune.update(3.0, 71.9) == 0.0
    assert tune.update(4.0, 71.7) == 100.0


def test_measures_a_known_oscillation_and_applies_tyreus_luyben() -> None:
    s = _settings(amplitude_pct=20.0, bias_pct=30.0, hysteresis_c=0.1, cycles=3)
    tune = RelayAutotune(s, now=0.0)
    a, period = 0.5, 120.0
    t = 0.0
    while tune.state is AutotuneState.RUNNING and t < 3000:
        tune.update(t, 72.0 + a * math.sin(2 * math.pi * t / period))
        t += 0.5
    assert tune.state is AutotuneState.SUCCEEDED and tune.result is not None
    r = tune.result
    assert r.pu_s == pytest.approx(period, rel=0.01)
    assert r.amplitude_c == pytest.approx(a, rel=0.01)
    ku = 4 * 20.0 / (math.pi * math.sqrt(a * a - 0.1 * 0.1))
    assert r.ku == pytest.approx(ku, rel=0.02)
    assert r.kp == pytest.approx(r.ku / 2.2)
    assert r.ki == pytest.approx(r.kp / (2.2 * r.pu_s))
    assert r.kd == pytest.approx(r.kp * r.pu_s / 6.3)
    assert "Tyreus" in r.rule
    assert tune.update(t, 72.0) == 0.0  # finished: the safe output


def test_an_unsteady_oscillation_is_not_accepted_early() -> None:
    tune = RelayAutotune(_settings(hysteresis_c=0.1, cycles=3, max_duration_s=10_000), now=0.0)
    t = 0.0
    while t < 1000:  # the amplitude grows 30 % a cycle: never three agreeing cycles
        tune.update(t, 72.0 + 0.2 * 1.3 ** (t / 100) * math.sin(2 * math.pi * t / 100))
        t += 0.5
    assert tune.state is AutotuneState.RUNNING
    assert tune.cycles_measured >= 8


def test_aborts_when_the_process_value_leaves_the_band() -> None:
    tune = RelayAutotune(_settings(band_c=2.0), now=0.0)
    tune.update(0.0, 71.0)
    assert tune.update(1.0, 74.5) == 0.0
    assert (tune.state, tune.reason) == (AutotuneState.ABORTED, AbortReason.LEFT_BAND)


@pytest.mark.parametrize("pv,input_ok", [(71.9, False), (math.nan, True)])
def test_aborts_on_an_input_fault(pv: float, input_ok: bool) -> None:
    tune = RelayAutotune(_settings(), now=0.0)
    tune.update(0.0, 71.0)
    assert tune.update(1.0, pv, input_ok=input_ok) == 0.0
    assert (tune.state, tune.reason) == (AutotuneState.ABORTED, AbortReason.INPUT_FAULT)


def test_aborts_after_the_maximum_duration() -> None:
    tune = RelayAutotune(_settings(max_duration_s=600.0), now=100.0)
    for t in range(100, 700, 10):
        tune.update(float(t), 72.0)  # a dead element: the PV never crosses the hysteresis
    assert tune.state is AutotuneState.RUNNING
    assert tune.update(701.0, 72.0) == 0.0
    assert (tune.state, tune.reason) == (AutotuneState.ABORTED, AbortReason.TIMED_OUT)


def test_the_caller_can_abort() -> None:
    tune = RelayAutotune(_settings(), now=0.0)
    tune.update(0.0, 71.0)
    assert tune.abort() == 0.0
    assert (tune.state, tune.reason) == (AutotuneState.ABORTED, AbortReason.ABORTED_BY_CALLER)
    assert tune.update(1.0, 71.0) == 0.0


def test_a_relay_that_would_leave_the_output_limits_is_refused() -> None:
    with pytest.raises(ValueError):
        _settings(bias_pct=60.0, amplitude_pct=50.0)


def test_tunes_an_fopdt_vessel_and_the_gains_hold_the_setpoint_with_small_overshoot() -> None:
    vessel = SimulatedVessel(HLT, initial_c=71.0)
    tune = RelayAutotune(_settings(), now=0.0)
    t = 0.0
    while tune.state is AutotuneState.RUNNING:
        output = tune.update(t, vessel.probe_c)
        vessel.step(1.0, ELEMENT_W * output / 100.0)
        t += 1.0
    assert tune.state is AutotuneState.SUCCEEDED, tune.reason
    r = tune.result
    assert r is not None and r.kp > 0 and r.ki > 0 and r.kd > 0
    # a relay test on a lag-dominated vessel oscillates at a few times its 20 s dead time
    assert 60.0 < r.pu_s < 600.0

    # the proposed gains, unchanged, on the same vessel: 65 → 72 °C
    vessel = SimulatedVessel(HLT, initial_c=65.0)
    pid = Pid(PidTuning(kp=r.kp, ki=r.ki, kd=r.kd))
    run = run_heating_loop(vessel, pid, 72.0, ELEMENT_W, duration_s=3600.0)
    reached = run.first_time_at(71.8)
    assert reached is not None
    assert run.peak_c() - 72.0 <= 0.5
    assert run.worst_deviation_after(reached + 600.0, 72.0) <= 0.2
