"""PID maths: units, derivative on measurement, anti-windup, limits, ramp, bumpless transfer, boil, odd dt."""

from __future__ import annotations

import math

import pytest

from bevforge.control.pid import BoilHold, Pid, PidMode, PidTuning


def test_proportional_and_integral_in_engineering_units() -> None:
    pid = Pid(PidTuning(kp=10.0, ki=0.5))
    assert pid.update(0.0, 60.0, 62.0) == pytest.approx(20.0)  # 10 %/°C × 2 °C, no integral yet
    assert pid.update(1.0, 60.0, 62.0) == pytest.approx(21.0)  # + 0.5 %/(°C·s) × 2 °C × 1 s
    assert pid.tuning.ti_s == pytest.approx(20.0)


def test_setpoint_change_does_not_kick_the_derivative() -> None:
    pid = Pid(PidTuning(kp=0.0, kd=100.0))
    pid.update(0.0, 60.0, 60.0)
    assert pid.update(1.0, 60.0, 80.0) == 0.0  # derivative on measurement: only PV moves count


def test_rising_process_value_pulls_the_output_down_through_the_filter() -> None:
    pid = Pid(PidTuning(kp=0.0, kd=100.0, derivative_filter_s=4.0, out_min=-100, out_max=100))
    pid.update(0.0, 60.0, 60.0)
    out = pid.update(1.0, 61.0, 60.0)
    assert out == pytest.approx(-100.0 * 1.0 / (4.0 + 1.0))  # filtered: ΔPV/(τ+dt), not ΔPV/dt


def test_tiny_dt_with_noise_cannot_spike_the_derivative() -> None:
    pid = Pid(PidTuning(kp=0.0, kd=100.0, derivative_filter_s=5.0, out_min=-100, out_max=100))
    pid.update(0.0, 60.0, 60.0)
    out = pid.update(0.001, 60.1, 60.0)  # 0.1 °C noise 1 ms later: raw derivative would be 100 °C/s
    assert abs(out) <= 100.0 * 0.1 / 5.0 + 1e-9


def test_integral_does_not_wind_up_while_saturated() -> None:
    pid = Pid(PidTuning(kp=5.0, ki=0.1))
    for second in range(3600):  # an hour heating at 100 % far below setpoint
        assert pid.update(float(second), 15.0, 72.0) == 100.0
    assert pid.terms.i <= 100.0
    # at setpoint the output comes off at once instead of unwinding an hour of integral
    out = pid.update(3601.0, 72.5, 72.0)
    assert out < 100.0
    assert pid.terms.i == 0.0  # conditional integration kept it from ever growing


def test_manual_to_auto_far_from_the_setpoint_has_no_bump_either() -> None:
    pid = Pid(PidTuning(kp=20.0, ki=0.05), mode=PidMode.MANUAL, manual_output_pct=30.0)
    pid.update(0.0, 60.0, 66.0)
    pid.set_mode(PidMode.AUTO)
    assert pid.update(1.0, 60.0, 66.0) == pytest.approx(30.0)  # P alone would be 120 %
    assert pid.update(2.0, 60.0, 66.0) == pytest.approx(30.0 + 0.05 * 6.0)  # then the integral moves it


def test_integral_is_clamped_to_the_output_limits() -> None:
    pid = Pid(PidTuning(kp=0.0, ki=10.0))
    for second in range(100):
        pid.update(float(second), 71.0, 72.0)
    assert pid.terms.i == 100.0
    assert pid.update(100.0, 72.2, 72.0) < 100.0  # error reversed: the output leaves saturation at once


def test_output_limits_signed_pair() -> None:
    pid = Pid(PidTuning(kp=50.0, out_min=-100.0, out_max=100.0))
    assert pid.update(0.0, 25.0, 18.0) == -100.0
    assert pid.update(1.0, 10.0, 18.0) == 100.0


def test_setpoint_ramp_moves_the_working_setpoint_at_its_rate() -> None:
    pid = Pid(PidTuning(kp=1.0, ramp_c_per_min=1.0))
    pid.update(0.0, 50.0, 66.0)
    assert pid.working_setpoint_c == 50.0  # starts from the process value
    for second in range(1, 61):
        pid.update(float(second), 50.0, 66.0)
    assert pid.working_setpoint_c == pytest.approx(51.0)
    for second in range(61, 2000):
        pid.update(float(second), 50.0, 66.0)
    assert pid.working_setpoint_c == 66.0  # never past the target


def test_manual_to_auto_starts_from_the_last_manual_output() -> None:
    pid = Pid(PidTuning(kp=10.0, ki=0.05, kd=20.0), mode=PidMode.MANUAL, manual_output_pct=37.0)
    for second in range(10):
        assert pid.update(float(second), 64.0 + 0.01 * second, 65.0) == 37.0
    pid.set_mode(PidMode.AUTO)
    assert pid.update(10.0, 64.1, 65.0) == pytest.approx(37.0)
    assert abs(pid.update(11.0, 64.1, 65.0) - 37.0) < 1.0  # then it moves smoothly from there


def test_auto_to_manual_keeps_the_output_until_the_operator_changes_it() -> None:
    pid = Pid(PidTuning(kp=10.0, ki=0.05))
    pid.update(0.0, 60.0, 65.0)
    held = pid.update(1.0, 60.0, 65.0)
    pid.set_mode(PidMode.MANUAL)
    assert pid.update(2.0, 70.0, 65.0) == held  # the process value no longer matters
    pid.set_manual_output(12.0)
    assert pid.update(3.0, 70.0, 65.0) == 12.0


def test_off_mode_gives_the_safe_output_and_auto_starts_fresh_from_it() -> None:
    pid = Pid(PidTuning(kp=10.0, ki=0.05))
    pid.update(0.0, 60.0, 65.0)
    pid.set_mode(PidMode.OFF)
    assert pid.update(1.0, 60.0, 65.0) == 0.0
    pid.set_mode(PidMode.AUTO)
    assert pid.update(2.0, 64.0, 65.0) == pytest.approx(10.0 + 0.05)  # a fresh start: P at once, integral from 0


def test_boil_holds_the_operators_percentage_above_the_threshold() -> None:
    pid = Pid(PidTuning(kp=20.0, ki=0.1, boil=BoilHold(threshold_c=98.0, output_pct=65.0)))
    assert pid.update(0.0, 90.0, 100.0) == 100.0
    assert pid.update(1.0, 98.5, 100.0) == 65.0
    assert pid.terms.boiling
    pid.set_boil_output(80.0)
    assert pid.update(2.0, 98.0, 100.0) == 80.0
    # the PV slips just below the threshold: regulation resumes from the boil output, no bump to 100 %
    assert pid.update(3.0, 97.95, 100.0) == pytest.approx(80.0, abs=2.0)


def test_dt_zero_or_negative_integrates_nothing() -> None:
    pid = Pid(PidTuning(kp=1.0, ki=1.0, kd=50.0))
    pid.update(10.0, 60.0, 61.0)
    first = pid.update(11.0, 60.0, 61.0)
    assert pid.update(11.0, 60.0, 61.0) == first
    assert pid.update(5.0, 60.0, 61.0) == first  # a tick from the past changes nothing


def test_a_long_pause_does_not_produce_a_spike() -> None:
    pid = Pid(PidTuning(kp=2.0, ki=0.01, kd=500.0, max_gap_s=60.0))
    for second in range(100):
        pid.update(float(second), 60.0, 65.0)
    before_i = pid.terms.i
    out = pid.update(100.0 + 3600.0, 62.0, 65.0)  # an hour later the PV moved 2 °C
    assert pid.terms.i == before_i  # the hour is not integrated
    assert pid.terms.d == 0.0  # and the 2 °C jump is not differentiated
    assert out == pytest.approx(2.0 * 3.0 + before_i)


@pytest.mark.parametrize("pv,sp", [(math.nan, 65.0), (60.0, math.inf), (math.nan, math.nan)])
def test_a_value_that_is_not_a_number_gives_the_safe_output(pv: float, sp: float) -> None:
    pid = Pid(PidTuning(kp=10.0, ki=0.1))
    for second in range(100):
        pid.update(float(second), 64.5, 65.0)
    assert pid.terms.i > 4.0
    assert pid.update(100.0, pv, sp) == 0.0
    assert pid.update(101.0, 64.0, 65.0) == pytest.approx(10.0)  # a fresh start, not the old integral


def test_manual_output_does_not_need_the_process_value() -> None:
    pid = Pid(PidTuning(kp=10.0), mode=PidMode.MANUAL, manual_output_pct=40.0)
    assert pid.update(0.0, math.nan, 65.0) == 40.0


@pytest.mark.parametrize("kwargs", [{"kp": -1.0}, {"kp": 1.0, "derivative_filter_s": 0.0},
                                    {"kp": 1.0, "out_min": 50.0, "out_max": 50.0},
                                    {"kp": 1.0, "ramp_c_per_min": 0.0}, {"kp": math.nan}])
def test_nonsense_tuning_is_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        PidTuning(**kwargs)


def test_with_a_ramp_manual_to_auto_moves_on_at_the_ramps_pace() -> None:
    pid = Pid(PidTuning(kp=50.0, ki=0.1, ramp_c_per_min=1.0), mode=PidMode.MANUAL, manual_output_pct=30.0)
    pid.update(0.0, 20.0, 66.0)
    pid.set_mode(PidMode.AUTO)
    assert pid.update(1.0, 20.0, 66.0) == pytest.approx(30.0)
    assert pid.update(2.0, 20.0, 66.0) == pytest.approx(30.0 + 50.0 / 60.0 + 0.1 * 2 / 60.0)  # the ramp moves it on


def test_retune_is_bumpless() -> None:
    pid = Pid(PidTuning(kp=10.0, ki=0.1))
    for second in range(30):
        pid.update(float(second), 64.0, 65.0)
    before = pid.output
    pid.retune(PidTuning(kp=30.0, ki=0.05))
    assert pid.update(30.0, 64.0, 65.0) == pytest.approx(before)


def test_a_cooling_loop_runs_on_a_negative_range() -> None:
    glycol = Pid(PidTuning(kp=40.0, ki=0.02, out_min=-100.0, out_max=0.0))
    assert glycol.update(0.0, 19.0, 18.0) == pytest.approx(-40.0)  # 1 °C too warm: 40 % cooling
    assert glycol.update(1.0, 17.5, 18.0) == 0.0  # too cold: no cooling (never heating)
