"""The simulated brewhouse steps its model from the shared clock, whatever kind of clock it is."""

from __future__ import annotations

import pytest

from bevforge.clock import ManualClock, ScaledClock, SystemClock
from drivers import driver_factories
from drivers.sim.inprocess import SimulatedBrewhouse
from tests.support.server import brewhouse_config


async def test_a_manual_clock_advance_moves_the_brewhouse_with_it() -> None:
    clock = ManualClock()
    sim = SimulatedBrewhouse(clock=clock)
    model = sim.model
    model.write("hlt.heater", True)
    before = model.vessels["hlt"].liquid_c
    sim.start()
    try:
        await clock.advance(600)  # ten simulated minutes, no real sleeping
        assert model.elapsed_s == pytest.approx(600)
        assert model.vessels["hlt"].liquid_c - before == pytest.approx(12.8, abs=0.3)
        await clock.advance(0.5)  # less than a tick: the model waits for its next second
        assert model.elapsed_s == pytest.approx(600)
        await clock.advance(0.5)
        assert model.elapsed_s == pytest.approx(601)
    finally:
        await sim.stop()
    await clock.advance(60)  # stopped: the clock moves on, the model does not
    assert model.elapsed_s == pytest.approx(601)


async def test_catch_up_steps_exactly_the_clock_time_that_passed() -> None:
    real = [0.0]
    clock = ScaledClock(60, real=lambda: real[0])
    sim = SimulatedBrewhouse(clock=clock)
    assert sim.catch_up() == 0.0  # not started: nothing to catch up
    sim.start()
    try:
        real[0] += 10.0  # ten real seconds at ×60
        assert sim.catch_up() == pytest.approx(600)
        clock.speed = 1.0
        real[0] += 10.0
        assert sim.catch_up() == pytest.approx(10)
        assert sim.model.elapsed_s == pytest.approx(610)
    finally:
        await sim.stop()


def test_speedup_still_builds_its_own_clock() -> None:
    assert isinstance(SimulatedBrewhouse().clock, SystemClock)
    fast = SimulatedBrewhouse(speedup=60)
    assert isinstance(fast.clock, ScaledClock) and fast.speedup == 60
    assert SimulatedBrewhouse(clock=ManualClock()).speedup == 0.0
    with pytest.raises(ValueError):
        SimulatedBrewhouse(speedup=60, clock=ManualClock())


def test_the_app_can_hand_the_simulator_its_process_clock() -> None:
    config = brewhouse_config(lambda doc: doc["simulator"].update(speedup=60))
    clock = ManualClock()
    _, sim = driver_factories(config, clock=clock)
    assert sim.clock is clock
    _, own = driver_factories(config)
    assert isinstance(own.clock, ScaledClock) and own.speedup == 60  # without one: built from simulator.speedup
