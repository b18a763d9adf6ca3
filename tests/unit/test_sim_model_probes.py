"""Probe lag: what a probe reports trails the liquid by a dead time and a first-order lag.

And the consequence issue 14 needs to prove its loops on: a naive on/off loop on a lagged probe
overshoots, the same loop on a perfect probe does not.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.sim.model import Brewhouse, Probe


def test_a_step_shows_only_after_the_dead_time_then_as_a_first_order_lag() -> None:
    probe = Probe(dead_time_s=10.0, time_constant_s=20.0, reading_c=60.0)
    for _ in range(10):  # the liquid drops to 50 °C now; for 10 s the probe has not seen it
        probe.step(1.0, 50.0)
        assert probe.reading_c == 60.0
    for _ in range(20):  # one time constant after the dead time: ≈ 63 % of the way
        probe.step(1.0, 50.0)
    assert 60.0 - probe.reading_c == pytest.approx(10.0 * (1 - math.exp(-20 / 20)), abs=0.3)
    for _ in range(200):
        probe.step(1.0, 50.0)
    assert probe.reading_c == pytest.approx(50.0, abs=0.01)


def test_a_probe_without_lag_reads_the_liquid() -> None:
    probe = Probe()
    probe.step(0.5, 42.0)
    assert probe.reading_c == 42.0
    with pytest.raises(ValueError):
        Probe(dead_time_s=-1)


@given(st.lists(st.floats(-10, 110), min_size=1, max_size=60), st.floats(0, 30), st.floats(0, 60))
def test_a_reading_never_leaves_the_range_the_liquid_has_been_in(liquid: list[float], dead: float,
                                                                 tau: float) -> None:
    probe = Probe(dead_time_s=dead, time_constant_s=tau, reading_c=liquid[0])
    for value in liquid:
        probe.step(1.0, value)
        assert min(liquid) - 1e-9 <= probe.reading_c <= max(liquid) + 1e-9


def test_the_reported_vessel_temperature_trails_the_heating_liquid() -> None:
    model = Brewhouse.default()
    model.write("hlt.heater", True)
    model.step(300)
    liquid, reported = model.read("hlt.liquid_temperature"), model.read("hlt.temperature")
    assert liquid - reported == pytest.approx(1.28 / 60 * 30, abs=0.15)  # ≈ rate × (dead time + time constant)
    assert model.vessels["hlt"].temperature_c == pytest.approx(liquid, abs=0.01)


def test_a_test_placing_the_liquid_settles_its_probe() -> None:
    model = Brewhouse.default()
    model.vessels["hlt"].temperature_c = 99.5
    model.fermenters["fv1"].temperature_c = 25.25
    assert model.read("hlt.temperature") == 99.5 and model.read("fv1.temperature") == 25.25


def _naive_on_off(model: Brewhouse, setpoint: float, seconds: int) -> tuple[float, float]:
    """Element ON below setpoint, OFF at or above it, every second: the loop a first-timer writes."""
    mlt = model.vessels["mlt"]
    hottest_liquid = hottest_reported = -math.inf
    for _ in range(seconds):
        model.write("mlt.element", float(model.read("mlt.temperature")) < setpoint)
        model.step(1.0)
        hottest_liquid = max(hottest_liquid, mlt.liquid_c)
        hottest_reported = max(hottest_reported, float(model.read("mlt.temperature")))
    return hottest_liquid, hottest_reported


def test_a_naive_on_off_loop_on_the_lagged_mash_probe_overshoots() -> None:
    model = Brewhouse.default()
    model.add_liquid("mlt", 40, 60.0)
    model.vessels["mlt"].probe.settle(model.vessels["mlt"].liquid_c)
    start = model.vessels["mlt"].liquid_c
    hottest_liquid, hottest_reported = _naive_on_off(model, setpoint=start + 6, seconds=1800)
    assert hottest_liquid > start + 6 + 0.5  # the element ran on through the probe's ≈ 35 s of lag
    assert hottest_reported > start + 6 + 0.3  # and the operator sees it on the screen, later

    lagless = Brewhouse.default()
    lagless.vessels["mlt"].probe = Probe()
    lagless.add_liquid("mlt", 40, 60.0)
    lagless.vessels["mlt"].probe.settle(lagless.vessels["mlt"].liquid_c)
    hottest_liquid, _ = _naive_on_off(lagless, setpoint=start + 6, seconds=1800)
    assert hottest_liquid < start + 6 + 0.1  # the same loop on a perfect probe: one second's heating at most
