"""A heat/cool pair: one direction at a time, changing only after the PV leaves the dead band."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from bevforge.control.heat_cool import HeatCool
from bevforge.control.hysteresis import Direction


def test_heating_below_and_cooling_above() -> None:
    pair = HeatCool(dead_band_c=0.6)
    low = pair.update_signed(17.0, 18.0, 40.0)
    assert (low.heat_pct, low.cool_pct, low.direction) == (40.0, 0.0, Direction.HEAT)
    high = pair.update_signed(19.0, 18.0, -70.0)
    assert (high.heat_pct, high.cool_pct, high.direction) == (0.0, 70.0, Direction.COOL)


def test_inside_the_dead_band_the_direction_holds_and_the_other_side_stays_off() -> None:
    pair = HeatCool(dead_band_c=0.6)
    pair.update_signed(17.0, 18.0, 50.0)  # heating
    # the PV overshoots a little and the PID asks to cool: still inside the band, nothing cools
    gated = pair.update_signed(18.25, 18.0, -30.0)
    assert (gated.heat_pct, gated.cool_pct, gated.direction) == (0.0, 0.0, Direction.HEAT)
    # out of the band on the warm side: now cooling may start
    gated = pair.update_signed(18.35, 18.0, -30.0)
    assert (gated.heat_pct, gated.cool_pct, gated.direction) == (0.0, 30.0, Direction.COOL)
    # back inside the band, asked to heat: the cooling direction holds
    gated = pair.update_signed(17.8, 18.0, 20.0)
    assert (gated.heat_pct, gated.cool_pct) == (0.0, 0.0)


def test_two_separate_loops_are_gated_the_same_way() -> None:
    pair = HeatCool(dead_band_c=1.0)
    both = pair.update(16.0, 18.0, heat_pct=100.0, cool_pct=100.0)  # e.g. two hysteresis loops both on
    assert (both.heat_pct, both.cool_pct) == (100.0, 0.0)


def test_a_value_that_is_not_a_number_demands_nothing() -> None:
    pair = HeatCool(dead_band_c=0.5)
    pair.update_signed(17.0, 18.0, 40.0)
    for pv, sp, demand in [(math.nan, 18.0, 40.0), (17.0, math.inf, 40.0), (17.0, 18.0, math.nan)]:
        gated = pair.update_signed(pv, sp, demand)
        assert (gated.heat_pct, gated.cool_pct) == (0.0, 0.0)


@settings(max_examples=300, deadline=None)
@given(st.floats(0.0, 3.0),
       st.lists(st.tuples(st.floats(-5.0, 45.0) | st.just(math.nan), st.floats(0.0, 30.0),
                          st.floats(-150.0, 150.0), st.floats(-10.0, 110.0)), min_size=1, max_size=100))
def test_never_both_demanded_and_direction_changes_only_outside_the_band(
        dead_band: float, steps: list[tuple[float, float, float, float]]) -> None:
    pair = HeatCool(dead_band_c=dead_band)
    last = None
    for pv, sp, signed, other in steps:
        for gated in (pair.update_signed(pv, sp, signed), pair.update(pv, sp, signed, other)):
            assert gated.heat_pct == 0.0 or gated.cool_pct == 0.0
            assert 0.0 <= gated.heat_pct <= 100.0 and 0.0 <= gated.cool_pct <= 100.0
            if last is not None and gated.direction != last:
                if gated.direction is Direction.HEAT:
                    assert pv < sp - dead_band / 2
                else:
                    assert pv > sp + dead_band / 2
            last = pair.direction
