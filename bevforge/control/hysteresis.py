"""On/off (hysteresis) control with minimum on and off times.

The simplest loop a brewer trusts: a heating pad on below the setpoint, off above it; a glycol
solenoid or a compressor the other way round. Two offsets make the band (so the output does not
chatter on probe noise) and two minimum times protect the hardware (a compressor must rest, a
contactor must not buzz).

Thresholds, with `sp` the setpoint (°C) and both offsets in °C:
- heat: switch ON when PV < sp − `on_offset_c`, switch OFF when PV > sp + `off_offset_c`;
- cool: switch ON when PV > sp + `on_offset_c`, switch OFF when PV < sp − `off_offset_c`.
A negative `off_offset_c` switches off before the setpoint (anticipating the overshoot a slow
pad or jacket gives); the band must not be inverted (`on_offset_c + off_offset_c ≥ 0`).

Minimum times are never violated by the regulation: once on, the output stays on for at least
`min_on_s`; once off, it stays off for at least `min_off_s`. The only exception is `force_off`
(a fault, an interlock, the operator's off), which is always immediate — and then starts a new
minimum off time, because the compressor that was just stopped needs its rest all the same.
A process value that is not a finite number forces the output off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class Direction(StrEnum):
    """Which way the output moves the process value."""

    HEAT = "heat"
    COOL = "cool"


@dataclass(frozen=True)
class HysteresisSettings:
    """Band and minimum times of one on/off loop (°C and s)."""

    direction: Direction = Direction.HEAT
    on_offset_c: float = 0.5
    off_offset_c: float = 0.0
    min_on_s: float = 0.0
    min_off_s: float = 0.0

    def __post_init__(self) -> None:
        values = (self.on_offset_c, self.off_offset_c, self.min_on_s, self.min_off_s)
        if not all(math.isfinite(v) for v in values):
            raise ValueError("offsets and minimum times must be finite numbers")
        if self.on_offset_c + self.off_offset_c < 0:
            raise ValueError("on_offset_c + off_offset_c must be ≥ 0 (the band would be inverted)")
        if self.min_on_s < 0 or self.min_off_s < 0:
            raise ValueError("min_on_s and min_off_s must be ≥ 0 s")


class Hysteresis:
    """One on/off loop. `update(now, pv, setpoint)` returns whether the output should be on.

    `off_since` is when the output was last switched off, if known: a panel restarting a
    compressor that stopped 10 s ago passes that time so the minimum off time still holds. None
    means the output has been off long enough.
    """

    def __init__(self, settings: HysteresisSettings, off_since: float | None = None) -> None:
        self.settings = settings
        self._on = False
        self._changed_at = off_since

    @property
    def on(self) -> bool:
        return self._on

    def update(self, now: float, pv: float, setpoint: float) -> bool:
        """Decide the output at time `now` (s) for process value `pv` and `setpoint` (°C)."""
        if not (math.isfinite(now) and math.isfinite(pv) and math.isfinite(setpoint)):
            return self.force_off(now) if math.isfinite(now) else self._off_without_clock()
        if self._changed_at is not None and now < self._changed_at:
            self._changed_at = now  # the clock went back: restart the running minimum time
        wanted = self._wanted(pv, setpoint)
        if wanted != self._on and self.time_until_allowed_change_s(now) == 0:
            self._on = wanted
            self._changed_at = now
        return self._on

    def force_off(self, now: float) -> bool:
        """Switch off now whatever the minimum on time (a safe-off); the minimum off time starts."""
        if self._on:
            self._on = False
            self._changed_at = now
        return False

    def time_until_allowed_change_s(self, now: float) -> float:
        """How long the minimum time still holds the output as it is (0 when it may change now)."""
        needed = self.settings.min_on_s if self._on else self.settings.min_off_s
        return max(0.0, needed - self._held_for(now))

    def _wanted(self, pv: float, setpoint: float) -> bool:
        s = self.settings
        if s.direction is Direction.HEAT:
            if pv < setpoint - s.on_offset_c:
                return True
            if pv > setpoint + s.off_offset_c:
                return False
        else:
            if pv > setpoint + s.on_offset_c:
                return True
            if pv < setpoint - s.off_offset_c:
                return False
        return self._on  # inside the band: keep what it is

    def _held_for(self, now: float) -> float:
        return math.inf if self._changed_at is None else now - self._changed_at

    def _off_without_clock(self) -> bool:
        # no usable time to start the minimum off time from: off all the same (safety first)
        self._on = False
        return False
