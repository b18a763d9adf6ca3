"""Turning a demand % into an actuator: time-proportioned on/off outputs, and numeric outputs.

**Time-proportioning** (`TimeProportioning`) drives a boolean output (an element's SSR or
contactor, a glycol solenoid) from a 0–100 % demand: within each window of `period_s` the output
is on at the window's start for demand × period. SSRs take windows of a few seconds; contactors
10–30 s to spare the contacts; solenoids and compressors minutes.

Method for short pulses and short gaps — error feedback (first-order sigma-delta on pulse width):
- the controller integrates what was asked (∫ demand dt) and what was delivered (∫ on dt) and
  carries the difference into the next window: `planned = demand × period + carry`;
- a planned pulse shorter than `min_on_s` is skipped (nothing delivered, the whole request carried),
  a planned gap shorter than `min_off_s` is filled (the window is all on, the excess carried as a
  debt), so 10 % of a 10 s window with `min_on_s` 3 s becomes one 3 s pulse every third window;
- the carry is bounded to ±one period, so a long stretch of impossible demand cannot build a
  burst later, and 0 % and 100 % are exact: a 0 % demand never gets a pulse that was owed, a
  100 % demand never gets a gap that was over-delivered (the carry is dropped at either end).
  Over several windows the average output matches the demand.
The minimum times also hold across windows and against demand changes in mid-window: an output
stays on for `min_on_s` and off for `min_off_s` whatever the demand does, except `force_off`,
which is immediate (a fault or an interlock), clears the carry (nothing owed is paid back after a
fault) and starts a minimum off time. When the power budget refuses a pulse, the caller says so
with `refused` (the output is off, the refused time is owed, see there).

**Numeric outputs** (`NumericOutput`): a 0–100 % output (a proportional valve, a VFD, an SCR
power controller) is written only when the value moved by at least `min_step_pct` since the last
write, or when it reaches 0 % or 100 % exactly (fully off and fully on always get through), so a
loop does not flood the fieldbus and the command journal with 0.1 % wiggles.

Both answer the safe output (off, 0 %) to a demand that is not a finite number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bevforge.control import SAFE_OUTPUT_PCT

_EPSILON_S = 1e-6  # sums of float tick lengths: a 2.9999999 s plan is the 3 s pulse it was meant to be


@dataclass(frozen=True)
class TimeProportioningSettings:
    """Window and minimum pulse times of one boolean output (s)."""

    period_s: float
    min_on_s: float = 0.0
    min_off_s: float = 0.0

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (self.period_s, self.min_on_s, self.min_off_s)):
            raise ValueError("period_s, min_on_s and min_off_s must be finite numbers")
        if self.period_s <= 0:
            raise ValueError("period_s must be > 0 s")
        if self.min_on_s < 0 or self.min_off_s < 0:
            raise ValueError("min_on_s and min_off_s must be ≥ 0 s")
        if self.min_on_s + self.min_off_s > self.period_s:
            raise ValueError("min_on_s + min_off_s must fit in one period_s")


class TimeProportioning:
    """One time-proportioned boolean output. Call `update(now, demand_pct)` often (≥ a few times a window)."""

    def __init__(self, settings: TimeProportioningSettings, off_since: float | None = None) -> None:
        self.settings = settings
        self._on = False
        self._changed_at = off_since  # None: off long enough
        self._before_change = off_since  # the edge before the last one, to undo a pulse refused at its start
        self._window_start: float | None = None
        self._last_now: float | None = None
        self._demand = 0.0  # held since the last update (zero-order hold)
        self._asked_s = 0.0
        self._given_s = 0.0
        self._carry_s = 0.0

    @property
    def on(self) -> bool:
        return self._on

    @property
    def carry_s(self) -> float:
        """On-time owed (+) or over-delivered (−) and carried into the coming windows, in s."""
        return self._carry_s

    def update(self, now: float, demand_pct: float) -> bool:
        """The output at `now` (s) for a demand of `demand_pct` (%, clamped to 0–100)."""
        if not (math.isfinite(now) and math.isfinite(demand_pct)):
            return self.force_off(now) if math.isfinite(now) else self._off_without_clock()
        s = self.settings
        demand = min(100.0, max(0.0, demand_pct))
        if self._last_now is None or self._window_start is None or now < self._last_now:
            self._start_window(now)  # first call, or the clock went back: a fresh window
            if self._changed_at is not None and now < self._changed_at:
                self._changed_at = now
        else:
            dt = min(now - self._last_now, s.period_s)  # a long pause owes nothing beyond one window
            self._asked_s += self._demand / 100.0 * dt
            if self._on:
                self._given_s += dt
            if now - self._window_start >= s.period_s:
                self._carry_s = max(-s.period_s, min(s.period_s, self._carry_s + self._asked_s - self._given_s))
                if demand in (0.0, 100.0):
                    self._carry_s = 0.0  # fully off is off and fully on is on: nothing owed either way
                late = now - self._window_start - s.period_s
                self._start_window(now if late >= s.period_s else self._window_start + s.period_s)
        self._last_now = now
        self._demand = demand

        planned = self._planned_on_s(demand)
        wanted = (now - self._window_start) < planned
        if wanted != self._on and self.time_until_allowed_change_s(now) == 0:
            self._on = wanted
            self._before_change = self._changed_at
            self._changed_at = now
        return self._on

    def refused(self, now: float) -> bool:
        """The power budget (or anything else that shares the supply) did not let the output be on at `now`.

        The output is off from `now`. A pulse that was to start at this very instant never
        happened, so it does not start a minimum off time; a pulse cut short is a real off edge and
        does. The time refused stays in the carry (bounded to one period): the loop gets it when the
        supply is free again, and a refusal that lasts is what the PID's integral sees.
        """
        if self._on:
            self._on = False
            self._changed_at = self._before_change if self._changed_at == now else now
        return False

    def force_off(self, now: float) -> bool:
        """Off now (a fault or an interlock): no minimum on time, nothing carried, minimum off time starts."""
        if self._on:
            self._on = False
            self._changed_at = now
        self._carry_s = 0.0
        self._asked_s = self._given_s = 0.0
        self._demand = 0.0
        return False

    def time_until_allowed_change_s(self, now: float) -> float:
        """How long the minimum on/off time still holds the output as it is."""
        if self._changed_at is None:
            return 0.0
        needed = self.settings.min_on_s if self._on else self.settings.min_off_s
        return max(0.0, needed - (now - self._changed_at))

    def _planned_on_s(self, demand: float) -> float:
        s = self.settings
        if demand <= 0.0:
            return 0.0
        if demand >= 100.0:
            return s.period_s
        planned = max(0.0, min(s.period_s, demand / 100.0 * s.period_s + self._carry_s))
        if planned < s.min_on_s - _EPSILON_S or planned <= 0.0:
            return 0.0
        if s.period_s - planned < s.min_off_s - _EPSILON_S:
            return s.period_s
        return planned

    def _start_window(self, start: float) -> None:
        self._window_start = start
        self._asked_s = 0.0
        self._given_s = 0.0

    def _off_without_clock(self) -> bool:
        self._on = False
        self._carry_s = 0.0
        return False


class NumericOutput:
    """Decides when a 0–100 % output is worth writing: `update(value)` returns the value to write or None."""

    def __init__(self, min_step_pct: float = 1.0) -> None:
        if not (math.isfinite(min_step_pct) and min_step_pct >= 0):
            raise ValueError("min_step_pct must be ≥ 0 %")
        self.min_step_pct = min_step_pct
        self._written: float | None = None

    @property
    def written(self) -> float | None:
        """The last value handed out for writing (None before the first)."""
        return self._written

    def update(self, value_pct: float) -> float | None:
        """The value to write now, or None when the change is too small to be worth a write."""
        value = min(100.0, max(0.0, value_pct)) if math.isfinite(value_pct) else SAFE_OUTPUT_PCT
        last = self._written
        at_end = value in (0.0, 100.0)
        if last is None or (at_end and value != last) or abs(value - last) >= self.min_step_pct:
            self._written = value
            return value
        return None

    def forget(self) -> None:
        """The device's value is unknown again (it restarted, a write failed): the next update writes."""
        self._written = None
