"""The one clock the simulator, the plant, the controllers and the programs share.

Why one clock: a controller's period, a program step's timer and the simulated brewhouse's physics
must agree on how much time passed, or a loop tuned in a ×60 benchmark would not be the loop that
runs in the brewery. Everything that measures or waits for process time asks a `Clock`:

- `monotonic()` — seconds for measuring intervals (never goes backwards);
- `now()` — the timezone-aware UTC date and time in clock time (for timestamps);
- `await sleep(seconds)` — wait that many clock seconds;
- `await sleep_until(deadline)` — wait until `monotonic()` reaches `deadline` (a periodic task
  schedules on absolute deadlines with it, so the time its own work takes does not drift the period);
- `speed` — clock seconds per real second.

Three kinds:

- `SystemClock` — deployments: the host's clocks, speed 1.0. `now()` is the wall clock, so an NTP
  step at boot (a Raspberry Pi without a real-time clock) shows in timestamps at once.
- `ScaledClock` — tests and benchmarks on real time, accelerated (`speed=60`: a simulated hour
  takes a real minute). Its speed may change while it runs: the clock is re-anchored at the
  change, so neither `monotonic()` nor `now()` ever goes backwards, and sleepers already waiting
  recompute their real wait at the new speed.
- `ManualClock` — tests that step time by hand: it stands still (speed 0) until
  `await advance(seconds)`, which wakes sleepers one deadline at a time, in deadline order, and lets
  each run before time moves on. Nothing sleeps in real time through simulated time.

`clock_for(speed)` picks the system clock for 1.0 and a scaled clock otherwise.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class Clock(ABC):
    """What everything that measures or waits for process time asks."""

    @property
    @abstractmethod
    def speed(self) -> float:
        """Clock seconds per real second (1.0 in deployments, 0.0 for a clock stepped by hand)."""

    @abstractmethod
    def monotonic(self) -> float:
        """Seconds on this clock, for intervals; never decreases."""

    @abstractmethod
    def now(self) -> datetime:
        """The current date and time in clock time (timezone-aware UTC)."""

    @abstractmethod
    async def sleep(self, seconds: float) -> None:
        """Return after `seconds` of clock time (at once for zero or less)."""

    async def sleep_until(self, deadline: float) -> None:
        """Return once `monotonic()` has reached `deadline` (at once if it already has).

        A periodic task waits for `previous deadline + period` rather than sleeping a period after
        its work, so the work's own duration never stretches the period.
        """
        await self.sleep(deadline - self.monotonic())


class SystemClock(Clock):
    """The host's clocks at real speed: what a deployment runs on."""

    @property
    def speed(self) -> float:
        return 1.0

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


def _check_speed(speed: float) -> float:
    speed = float(speed)
    if not math.isfinite(speed) or speed <= 0:
        raise ValueError(f"clock speed must be a finite number above 0, not {speed!r}")
    return speed


class ScaledClock(Clock):
    """Real time × `speed`, re-anchored whenever the speed changes so it never goes backwards.

    `real` is the real monotonic time source (seconds); a test may hand in its own to check the
    arithmetic without waiting.
    """

    def __init__(self, speed: float = 1.0, *, start: datetime | None = None,
                 real: Callable[[], float] = time.monotonic) -> None:
        self._real = real
        self._speed = _check_speed(speed)
        self._anchor_real = real()
        self._anchor_clock = 0.0
        self._start = start if start is not None else datetime.now(UTC)
        if self._start.tzinfo is None:
            raise ValueError("the clock's start must be timezone-aware")
        # one event per speed change, on the loop of the sleepers it wakes (a clock may outlive a loop)
        self._speed_changed: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    @property
    def speed(self) -> float:
        return self._speed

    @speed.setter
    def speed(self, speed: float) -> None:
        """Change the speed from this instant on: time already passed stays passed."""
        speed = _check_speed(speed)
        real = self._real()
        self._anchor_clock = self._at(real)
        self._anchor_real = real
        self._speed = speed
        if self._speed_changed is not None:  # wake sleepers: their real wait is now different
            self._speed_changed[1].set()
            self._speed_changed = None

    def _at(self, real: float) -> float:
        # max(): a real source that steps back (it must not, but a test's might) never moves the clock back
        return self._anchor_clock + max(0.0, real - self._anchor_real) * self._speed

    def monotonic(self) -> float:
        return self._at(self._real())

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.monotonic())

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self.monotonic() + seconds)

    async def sleep_until(self, deadline: float) -> None:
        if (remaining := deadline - self.monotonic()) <= 0:
            await asyncio.sleep(0)  # still a suspension point, as asyncio.sleep(0) is
            return
        while (remaining := deadline - self.monotonic()) > 0:
            loop = asyncio.get_running_loop()
            if self._speed_changed is None or self._speed_changed[0] is not loop:
                self._speed_changed = (loop, asyncio.Event())
            changed = self._speed_changed[1]
            try:
                await asyncio.wait_for(changed.wait(), remaining / self._speed)
            except TimeoutError:
                pass


class ManualClock(Clock):
    """A clock that moves only when a test calls `await advance(seconds)`.

    `advance` moves time to each sleeper's deadline in turn (earliest first, ties in the order they
    went to sleep), wakes the sleepers due then, and yields to the event loop `settle_yields` times
    so they run — and may go to sleep again, possibly before the advance's end, which then wakes
    them again — before time moves on. A controller with a 1 s period sleeping through
    `advance(60)` therefore runs 60 times, each seeing its own instant. One task advances the
    clock at a time (a test's main task); the tasks it wakes only sleep.
    """

    def __init__(self, start: datetime | None = None, *, monotonic: float = 0.0, settle_yields: int = 10) -> None:
        self._start = start if start is not None else datetime(2026, 1, 1, tzinfo=UTC)
        if self._start.tzinfo is None:
            raise ValueError("the clock's start must be timezone-aware")
        self._origin = monotonic
        self._now = monotonic
        self.settle_yields = settle_yields
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @property
    def speed(self) -> float:
        return 0.0

    def monotonic(self) -> float:
        return self._now

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._now - self._origin)

    @property
    def sleepers(self) -> int:
        """How many tasks are waiting on this clock (a test's way to see a loop is parked)."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    async def sleep(self, seconds: float) -> None:
        if math.isnan(seconds):
            raise ValueError("a clock cannot sleep NaN seconds")
        await self.sleep_until(self._now + seconds)

    async def sleep_until(self, deadline: float) -> None:
        """Wait for exactly `deadline` (no rounding through a duration): `advance` wakes it there."""
        if math.isnan(deadline):
            raise ValueError("a clock cannot sleep until NaN")
        if deadline <= self._now:
            await asyncio.sleep(0)  # still a suspension point, as asyncio.sleep(0) is
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline, next(self._order), future))
        await future

    async def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, waking every sleeper due on the way, in order."""
        if seconds < 0 or not math.isfinite(seconds):
            raise ValueError(f"a clock advances by a finite number of seconds ≥ 0, not {seconds!r}")
        target = self._now + seconds
        await self._settle()  # tasks started just before the advance reach their first sleep
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline = self._sleepers[0][0]
            self._now = max(self._now, deadline)
            while self._sleepers and self._sleepers[0][0] <= self._now:
                _, _, future = heapq.heappop(self._sleepers)
                if not future.done():  # a cancelled sleeper is simply dropped
                    future.set_result(None)
            await self._settle()
        self._now = target
        await self._settle()

    async def _settle(self) -> None:
        for _ in range(self.settle_yields):
            await asyncio.sleep(0)


def clock_for(speed: float = 1.0) -> Clock:
    """The system clock at real speed, else a clock running `speed` times faster than real time."""
    return SystemClock() if _check_speed(speed) == 1.0 else ScaledClock(speed)
