"""On/off control: band, direction, minimum on/off times, forced safe-off."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bevforge.control.hysteresis import Direction, Hysteresis, HysteresisSettings


def test_heat_switches_on_below_and_off_above_the_band() -> None:
    loop = Hysteresis(HysteresisSettings(Direction.HEAT, on_offset_c=0.5, off_offset_c=0.2))
    assert loop.update(0.0, 65.6, 66.0) is False  # inside the band, still off
    assert loop.update(1.0, 65.4, 66.0) is True
    assert loop.update(2.0, 66.1, 66.0) is True  # inside the band, still on
    assert loop.update(3.0, 66.3, 66.0) is False


def test_cool_is_the_mirror_image() -> None:
    loop = Hysteresis(HysteresisSettings(Direction.COOL, on_offset_c=0.3, off_offset_c=0.1))
    assert loop.update(0.0, 18.2, 18.0) is False
    assert loop.update(1.0, 18.4, 18.0) is True
    assert loop.update(2.0, 17.95, 18.0) is True
    assert loop.update(3.0, 17.8, 18.0) is False


def test_minimum_on_and_off_times_hold() -> None:
    loop = Hysteresis(HysteresisSettings(Direction.COOL, on_offset_c=0.3, off_offset_c=0.1,
                                         min_on_s=120, min_off_s=300))
    assert loop.update(0.0, 19.0, 18.0) is True
    assert loop.update(60.0, 17.0, 18.0) is True  # cold already, but the compressor runs its 120 s
    assert loop.update(120.0, 17.0, 18.0) is False
    assert loop.update(200.0, 19.0, 18.0) is False  # warm again, but it rests its 300 s
    assert loop.time_until_allowed_change_s(200.0) == pytest.approx(220.0)
    assert loop.update(420.0, 19.0, 18.0) is True


def test_force_off_is_immediate_and_starts_the_minimum_off_time() -> None:
    loop = Hysteresis(HysteresisSettings(Direction.HEAT, min_on_s=600, min_off_s=60))
    assert loop.update(0.0, 10.0, 20.0) is True
    assert loop.force_off(5.0) is False
    assert loop.update(30.0, 10.0, 20.0) is False
    assert loop.update(65.0, 10.0, 20.0) is True


def test_an_input_that_is_not_a_number_forces_off() -> None:
    loop = Hysteresis(HysteresisSettings(Direction.HEAT, min_on_s=600))
    assert loop.update(0.0, 10.0, 20.0) is True
    assert loop.update(1.0, math.nan, 20.0) is False


def test_a_known_recent_stop_is_respected_after_a_restart() -> None:
    loop = Hysteresis(HysteresisSettings(Direction.COOL, min_off_s=300), off_since=100.0)
    assert loop.update(150.0, 25.0, 18.0) is False
    assert loop.update(400.0, 25.0, 18.0) is True


def test_an_inverted_band_is_refused() -> None:
    with pytest.raises(ValueError):
        HysteresisSettings(on_offset_c=-0.5, off_offset_c=0.2)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0.1, 200.0), st.floats(0.0, 40.0), st.booleans()), min_size=2, max_size=80),
       st.sampled_from(list(Direction)))
def test_minimum_times_are_never_violated_except_by_force_off(steps: list[tuple[float, float, bool]],
                                                              direction: Direction) -> None:
    loop = Hysteresis(HysteresisSettings(direction, on_offset_c=0.5, off_offset_c=0.5, min_on_s=60, min_off_s=90))
    now, state, since = 0.0, False, -math.inf  # off long enough at the start
    for dt, pv, force in steps:
        now += dt
        out = loop.force_off(now) if force else loop.update(now, pv, 20.0)
        if out != state:
            if force:
                assert out is False  # a force only ever switches off
            else:
                assert now - since >= (60 if state else 90)
            state, since = out, now
