"""The shared clock: a hand-stepped clock wakes sleepers in order; a scaled clock never goes backwards."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bevforge.clock import ManualClock, ScaledClock, SystemClock, clock_for

START = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)


class FakeReal:
    """A real-time source a test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def test_manual_clock_wakes_sleepers_in_deadline_order() -> None:
    clock = ManualClock(START)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.monotonic()))

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("c", 30.0), ("a", 10.0), ("b", 20.0), ("late", 90.0))]
    await clock.advance(60)
    assert woke == [("a", 10.0), ("b", 20.0), ("c", 30.0)]  # each saw its own instant, not the advance's end
    assert clock.monotonic() == 60.0 and clock.now() == START + timedelta(seconds=60)
    assert clock.sleepers == 1  # "late" still waits
    await clock.advance(30)
    assert woke[-1] == ("late", 90.0)
    await asyncio.gather(*tasks)


async def test_a_periodic_loop_runs_once_per_period_through_an_advance() -> None:
    clock = ManualClock(START)
    ticks: list[float] = []

    async def loop() -> None:
        while True:
            await clock.sleep(1.0)
            ticks.append(clock.monotonic())

    task = asyncio.create_task(loop())
    await clock.advance(60)
    task.cancel()
    assert ticks == [float(n) for n in range(1, 61)]


async def test_sleep_until_wakes_at_the_deadline_itself_and_returns_at_once_for_one_passed() -> None:
    clock = ManualClock(START, monotonic=100.0)
    woke: list[float] = []

    async def until(deadline: float) -> None:
        await clock.sleep_until(deadline)
        woke.append(clock.monotonic())

    tasks = [asyncio.create_task(until(d)) for d in (103.5, 101.25)]
    await clock.advance(5)
    assert woke == [101.25, 103.5]  # each at its own deadline, in order
    await clock.sleep_until(50.0)  # long passed: at once, no sleeper left behind
    await clock.sleep_until(105.0)  # exactly now: at once
    assert clock.sleepers == 0
    with pytest.raises(ValueError):
        await clock.sleep_until(float("nan"))
    await asyncio.gather(*tasks)


async def test_a_loop_on_absolute_deadlines_keeps_its_period_whatever_its_work_takes() -> None:
    """Work that takes 0.3 s of clock time each period (here: a sleep inside the loop) does not stretch
    the period, as sleeping a period after the work would: ticks stay on whole seconds."""
    clock = ManualClock(START)
    ticks: list[float] = []

    async def loop() -> None:
        deadline = clock.monotonic()
        while True:
            deadline += 1.0
            await clock.sleep_until(deadline)
            ticks.append(clock.monotonic())
            await clock.sleep(0.3)  # the tick's own work

    task = asyncio.create_task(loop())
    await clock.advance(10)
    task.cancel()
    assert ticks == [float(n) for n in range(1, 11)]


async def test_scaled_clock_sleep_until_is_in_clock_seconds() -> None:
    clock = ScaledClock(10_000.0, start=START)
    deadline = clock.monotonic() + 50  # 5 ms of real time
    await clock.sleep_until(deadline)
    assert clock.monotonic() >= deadline
    await clock.sleep_until(deadline - 100)  # passed: at once


async def test_system_clock_sleep_until_reaches_the_deadline() -> None:
    clock = SystemClock()
    deadline = clock.monotonic() + 0.01
    await clock.sleep_until(deadline)
    assert clock.monotonic() >= deadline


async def test_manual_clock_stands_still_and_drops_cancelled_sleepers() -> None:
    clock = ManualClock(START, monotonic=500.0)
    assert clock.speed == 0.0 and clock.monotonic() == 500.0 and clock.now() == START
    task = asyncio.create_task(clock.sleep(5))
    await asyncio.sleep(0)
    task.cancel()
    await clock.advance(10)  # the cancelled sleeper's future is not resolved (that would raise)
    assert task.cancelled() and clock.sleepers == 0
    await clock.sleep(0)  # zero or less returns at once
    await clock.sleep(-3)
    with pytest.raises(ValueError):
        await clock.advance(-1)
    with pytest.raises(ValueError):
        await clock.sleep(float("nan"))
    with pytest.raises(ValueError):
        ManualClock(datetime(2026, 1, 1))  # naive: refused


def test_scaled_clock_runs_speed_times_real_time() -> None:
    real = FakeReal()
    clock = ScaledClock(60, start=START, real=real)
    real.t += 60  # a real minute
    assert clock.monotonic() == pytest.approx(3600)
    assert clock.now() == START + timedelta(hours=1)


def test_changing_the_speed_keeps_time_already_passed() -> None:
    real = FakeReal()
    clock = ScaledClock(60, start=START, real=real)
    real.t += 10
    assert clock.monotonic() == pytest.approx(600)
    clock.speed = 1.0
    assert clock.monotonic() == pytest.approx(600)  # not 10: slowing down never steps time back
    real.t += 10
    assert clock.monotonic() == pytest.approx(610)
    with pytest.raises(ValueError):
        clock.speed = 0
    with pytest.raises(ValueError):
        clock.speed = float("nan")


@given(st.lists(st.tuples(st.floats(0, 1e4), st.floats(0.01, 1000)), max_size=30))
def test_scaled_clock_never_goes_backwards_and_adds_up(steps: list[tuple[float, float]]) -> None:
    real = FakeReal()
    clock = ScaledClock(1.0, start=START, real=real)
    expected, speed = 0.0, 1.0
    last_mono, last_now = clock.monotonic(), clock.now()
    for real_seconds, new_speed in steps:
        real.t += real_seconds
        expected += real_seconds * speed
        clock.speed = speed = new_speed
        assert clock.monotonic() >= last_mono and clock.now() >= last_now
        last_mono, last_now = clock.monotonic(), clock.now()
    assert clock.monotonic() == pytest.approx(expected, rel=1e-9, abs=1e-6)


async def test_scaled_clock_sleep_is_in_clock_seconds() -> None:
    clock = ScaledClock(10_000)
    before = clock.monotonic()
    await clock.sleep(50)  # 5 ms of real time
    assert clock.monotonic() - before >= 50


async def test_a_speed_change_wakes_a_sleeper_to_its_new_real_wait() -> None:
    clock = ScaledClock(1.0)
    sleeping = asyncio.create_task(clock.sleep(3600))  # an hour at real speed
    await asyncio.sleep(0.01)
    clock.speed = 1e7  # the same hour now passes in a third of a millisecond
    await asyncio.wait_for(sleeping, timeout=10)  # a guard, not a timing assertion: it would hang without the wake-up


def test_clock_for_picks_the_system_clock_at_real_speed() -> None:
    assert isinstance(clock_for(1.0), SystemClock)
    fast = clock_for(60)
    assert isinstance(fast, ScaledClock) and fast.speed == 60
    with pytest.raises(ValueError):
        clock_for(0)
    system = SystemClock()
    assert system.speed == 1.0 and system.now().tzinfo is UTC
    assert abs((system.now() - datetime.now(UTC)).total_seconds()) < 60
