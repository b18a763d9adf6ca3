"""Time-proportioning (window, short pulses carried, minimum times) and numeric outputs (minimum step)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bevforge.control.time_proportioning import NumericOutput, TimeProportioning, TimeProportioningSettings


def _on_fraction(tp: TimeProportioning, demand: float, seconds: float, step: float = 0.1,
                 start: float = 0.0) -> float:
    on_time, now = 0.0, start
    while now < start + seconds - 1e-9:
        if tp.update(now, demand):
            on_time += step
        now += step
    return on_time / seconds


def test_the_window_is_on_for_demand_times_period() -> None:
    tp = TimeProportioning(TimeProportioningSettings(period_s=10.0))
    states = [tp.update(t / 10, 30.0) for t in range(100)]  # one window sampled every 0.1 s
    assert states[:30] == [True] * 30
    assert states[30:] == [False] * 70


@pytest.mark.parametrize("demand", [0.0, 5.0, 10.0, 33.0, 50.0, 85.0, 95.0, 100.0])
def test_the_average_matches_the_demand_even_below_min_on_and_above_min_off(demand: float) -> None:
    tp = TimeProportioning(TimeProportioningSettings(period_s=10.0, min_on_s=3.0, min_off_s=2.0))
    assert _on_fraction(tp, demand, 600.0) * 100 == pytest.approx(demand, abs=1.0)


def test_short_pulses_are_skipped_and_accumulated() -> None:
    tp = TimeProportioning(TimeProportioningSettings(period_s=10.0, min_on_s=3.0))
    pulses = []
    was_on, started = False, 0.0
    for tick in range(1200):
        now = tick * 0.1
        on = tp.update(now, 10.0)
        if on and not was_on:
            started = now
        if was_on and not on:
            pulses.append(round(now - started, 1))
        was_on = on
    assert pulses and all(p >= 3.0 for p in pulses)  # never a 1 s pulse the SSR's contactor hates
    assert sum(pulses) == pytest.approx(12.0, abs=3.0)  # 10 % of 120 s, within one pulse still owed


def test_zero_demand_pays_back_nothing_owed() -> None:
    tp = TimeProportioning(TimeProportioningSettings(period_s=10.0, min_on_s=3.0))
    for tick in range(150):  # 10 % for 15 s: one 1 s pulse skipped, on-time owed
        tp.update(tick * 0.1, 10.0)
    assert tp.carry_s > 0.5
    assert not any(tp.update(15.0 + tick * 0.1, 0.0) for tick in range(600))  # the loop says off: off


def test_zero_demand_in_mid_window_gets_no_owed_pulse() -> None:
    tp = TimeProportioning(TimeProportioningSettings(period_s=10.0))
    tp.update(0.0, 100.0)
    for tick in range(10, 100):  # 100 % for the first second, then 10 %: 0.9 s owed at the window's end
        tp.update(tick * 0.1, 10.0)
    assert tp.update(10.0, 10.0) is True
    assert tp.carry_s > 0.5
    assert tp.update(10.05, 0.0) is False  # the PID went to 0 %: no pulse for what was owed


def test_full_demand_is_full_on_whatever_was_over_delivered() -> None:
    tp = TimeProportioning(TimeProportioningSettings(period_s=10.0, min_off_s=2.0))
    for tick in range(150):  # 95 %: the 0.5 s gaps are filled, the excess is a debt
        tp.update(tick * 0.1, 95.0)
    assert tp.carry_s < -0.2
    assert all(tp.update(15.0 + tick * 0.1, 100.0) for tick in range(600))


def test_a_pulse_refused_by_the_budget_is_owed_and_a_refused_start_is_no_edge() -> None:
    tp = TimeProportioning(TimeProportioningSettings(period_s=10.0, min_off_s=2.0))
    assert tp.update(0.0, 40.0) is True
    assert tp.refused(0.0) is False  # the supply was busy at the window's start
    assert tp.time_until_allowed_change_s(0.0) == 0.0  # no pulse happened, so no minimum off time
    on_time = 0.0
    for tick in range(1, 300):  # the supply frees up at 1 s
        now = tick * 0.1
        if tp.update(now, 40.0) and now >= 1.0:
            on_time += 0.1
        elif now < 1.0:
            tp.refused(now)
    assert on_time == pytest.approx(0.4 * 30.0, abs=0.5)  # the refused second was delivered later


def test_a_pulse_cut_short_by_the_budget_is_an_off_edge() -> None:
    tp = TimeProportioning(TimeProportioningSettings(period_s=10.0, min_off_s=2.0))
    tp.update(0.0, 60.0)
    assert tp.update(3.0, 60.0) is True
    tp.refused(3.0)
    assert tp.time_until_allowed_change_s(3.0) == pytest.approx(2.0)
    assert tp.update(4.0, 60.0) is False


def test_force_off_is_immediate_and_clears_what_was_owed() -> None:
    tp = TimeProportioning(TimeProportioningSettings(period_s=10.0, min_on_s=5.0, min_off_s=4.0))
    assert tp.update(0.0, 80.0) is True
    assert tp.force_off(1.0) is False
    assert tp.carry_s == 0.0
    assert tp.update(2.0, 80.0) is False  # the minimum off time after the forced stop
    assert tp.update(20.0, 80.0) is True


def test_a_demand_that_is_not_a_number_switches_off() -> None:
    tp = TimeProportioning(TimeProportioningSettings(period_s=10.0, min_on_s=5.0))
    assert tp.update(0.0, 100.0) is True
    assert tp.update(1.0, math.nan) is False


def test_a_long_pause_owes_no_burst() -> None:
    tp = TimeProportioning(TimeProportioningSettings(period_s=10.0, min_on_s=2.0))
    tp.update(0.0, 50.0)
    tp.update(5000.0, 0.0)  # the loop paused over an hour asking 50 %
    assert abs(tp.carry_s) <= 10.0
    assert _on_fraction(tp, 0.0, 60.0, start=5000.1) <= 10.0 / 60.0 + 1e-9


def test_settings_that_do_not_fit_a_window_are_refused() -> None:
    with pytest.raises(ValueError):
        TimeProportioningSettings(period_s=10.0, min_on_s=6.0, min_off_s=5.0)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.floats(0.05, 30.0), st.floats(-20.0, 120.0)), min_size=2, max_size=120))
def test_minimum_on_and_off_times_hold_for_any_demand_and_irregular_ticks(steps: list[tuple[float, float]]) -> None:
    tp = TimeProportioning(TimeProportioningSettings(period_s=20.0, min_on_s=4.0, min_off_s=6.0))
    now, state, since = 0.0, False, -math.inf
    for dt, demand in steps:
        now += dt
        out = tp.update(now, demand)
        if out != state:
            assert now - since >= (4.0 if state else 6.0)
            state, since = out, now


def test_numeric_output_writes_only_steps_worth_writing() -> None:
    out = NumericOutput(min_step_pct=2.0)
    assert out.update(40.0) == 40.0  # the first value is always written
    assert out.update(41.5) is None
    assert out.update(42.0) == 42.0
    assert out.update(99.0) == 99.0
    assert out.update(100.0) == 100.0  # fully on always gets through
    assert out.update(1.0) == 1.0
    assert out.update(0.0) == 0.0  # and fully off
    assert out.update(0.5) is None


def test_numeric_output_safe_and_clamped() -> None:
    out = NumericOutput(min_step_pct=5.0)
    out.update(50.0)
    assert out.update(math.nan) == 0.0
    assert out.update(250.0) == 100.0
    out.forget()
    assert out.update(100.0) == 100.0  # the device's value is unknown again: written
