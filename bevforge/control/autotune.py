"""Relay (Åström–Hägglund) autotune: make the loop oscillate, measure it, propose PID gains.

The output is a relay around a bias: `bias_pct + amplitude_pct` while the process value is below
the setpoint, `bias_pct − amplitude_pct` while above, switching only once the process value has
crossed the setpoint by more than `hysteresis_c` (so probe noise cannot chatter the relay). A
process with lag and dead time then settles into a limit cycle; its peak-to-peak half amplitude
`a` (°C) and period `Pu` (s) give the ultimate gain by the describing function of a relay with
hysteresis ε:

    Ku = 4·d / (π·√(a² − ε²))   (%/°C; Ku = 4d/(πa) when ε = 0), d = amplitude_pct.

Cycles are counted from one low→high relay switch to the next; the first cycle is the transient
and is discarded. When the last `cycles` cycles agree (periods and amplitudes within `tolerance`
of their mean) the tune succeeds.

Tuning rule — **Tyreus–Luyben PID**: Kp = Ku / 2.2, Ti = 2.2·Pu, Td = Pu / 6.3, returned in this
package's units (kp %/°C, ki = kp/Ti %/(°C·s), kd = kp·Td %·s/°C). Why not Ziegler–Nichols
(Kp = 0.6·Ku, Ti = Pu/2, Td = Pu/8): Z–N aims at a quarter-amplitude decay, which on a vessel
means overshooting a mash rest by a degree or more; a brewhouse vessel is a slow, lag-dominated
thermal process where overshoot costs (denatured enzymes, a scorched pad, energy) and a slower
approach costs little. Tyreus–Luyben's lower gain and much longer integral time give a
well-damped response with small overshoot on exactly that kind of process; the rule is named in
the result so the screen can show it.

States: `running` → `succeeded` (with a result) or `aborted` (with a reason). It aborts when the
process value leaves `setpoint ± band_c`, on an input fault (`input_ok=False` or a value that is
not a number), after `max_duration_s` without a stable oscillation (including a process value
that never crosses the hysteresis band), or when the caller calls `abort` (a technician, an
interlock). A measured cycle always has a > ε (the relay only switches once the process value is
past ±ε), so the square root is always defined.
Once finished the relay answers the safe output (0 %): the caller hands the loop back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from bevforge.control import SAFE_OUTPUT_PCT

TYREUS_LUYBEN = "Tyreus–Luyben PID (Kp = Ku/2.2, Ti = 2.2·Pu, Td = Pu/6.3)"


class AutotuneState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    ABORTED = "aborted"


class AbortReason(StrEnum):
    """Why a tune stopped without a result (stable codes for the journal and the screen)."""

    LEFT_BAND = "process value left the band"
    INPUT_FAULT = "input fault"
    TIMED_OUT = "no stable oscillation within the maximum duration"
    ABORTED_BY_CALLER = "aborted"


@dataclass(frozen=True)
class AutotuneSettings:
    """One relay test around `setpoint_c` (°C); output values in %, times in s."""

    setpoint_c: float
    bias_pct: float
    amplitude_pct: float
    hysteresis_c: float = 0.1
    band_c: float = 5.0
    max_duration_s: float = 7200.0
    cycles: int = 3
    tolerance: float = 0.1
    out_min: float = 0.0
    out_max: float = 100.0

    def __post_init__(self) -> None:
        numbers = (self.setpoint_c, self.bias_pct, self.amplitude_pct, self.hysteresis_c, self.band_c,
                   self.max_duration_s, self.tolerance, self.out_min, self.out_max)
        if not all(math.isfinite(v) for v in numbers):
            raise ValueError("autotune settings must be finite numbers")
        if self.amplitude_pct <= 0:
            raise ValueError("amplitude_pct must be > 0 %")
        if self.bias_pct - self.amplitude_pct < self.out_min or self.bias_pct + self.amplitude_pct > self.out_max:
            raise ValueError("bias_pct ± amplitude_pct must stay within out_min..out_max")
        if self.hysteresis_c < 0 or self.band_c <= self.hysteresis_c:
            raise ValueError("hysteresis_c must be ≥ 0 °C and band_c larger than it")
        if self.max_duration_s <= 0 or self.cycles < 2 or not 0 < self.tolerance < 1:
            raise ValueError("max_duration_s > 0 s, cycles ≥ 2 and 0 < tolerance < 1 are required")


@dataclass(frozen=True)
class AutotuneResult:
    """What the relay test measured and the gains it proposes (package units)."""

    ku: float  # %/°C
    pu_s: float
    amplitude_c: float
    kp: float
    ki: float
    kd: float
    rule: str = TYREUS_LUYBEN


@dataclass(frozen=True)
class _Cycle:
    period_s: float
    amplitude_c: float


class RelayAutotune:
    """A relay test in progress. Call `update(now, pv)` every control period; it returns the output %."""

    def __init__(self, settings: AutotuneSettings, now: float) -> None:
        self.settings = settings
        self.started_at = now
        self.state = AutotuneState.RUNNING
        self.reason: AbortReason | None = None
        self.result: AutotuneResult | None = None
        self._high: bool | None = None  # relay position; None until the first process value
        self._last_rise_at: float | None = None
        self._pv_max = -math.inf
        self._pv_min = math.inf
        self._cycles: list[_Cycle] = []

    @property
    def cycles_measured(self) -> int:
        """Full cycles measured so far (the discarded transient not counted)."""
        return len(self._cycles)

    def update(self, now: float, pv: float, input_ok: bool = True) -> float:
        """Advance the test at `now` (s) with process value `pv` (°C); returns the relay output (%)."""
        if self.state is not AutotuneState.RUNNING:
            return SAFE_OUTPUT_PCT
        s = self.settings
        if not input_ok or not (math.isfinite(pv) and math.isfinite(now)):
            return self._abort(AbortReason.INPUT_FAULT)
        if abs(pv - s.setpoint_c) > s.band_c:
            return self._abort(AbortReason.LEFT_BAND)
        if now - self.started_at > s.max_duration_s:
            return self._abort(AbortReason.TIMED_OUT)

        self._pv_max = max(self._pv_max, pv)
        self._pv_min = min(self._pv_min, pv)
        if self._high is None:
            self._high = pv < s.setpoint_c
        elif self._high and pv > s.setpoint_c + s.hysteresis_c:
            self._high = False
        elif not self._high and pv < s.setpoint_c - s.hysteresis_c:
            self._high = True
            self._close_cycle(now)
            if self.state is not AutotuneState.RUNNING:
                return SAFE_OUTPUT_PCT
        return s.bias_pct + (s.amplitude_pct if self._high else -s.amplitude_pct)

    def abort(self, reason: AbortReason = AbortReason.ABORTED_BY_CALLER) -> float:
        """Stop the test (a technician, an interlock, a fault seen by the caller); returns the safe output."""
        if self.state is AutotuneState.RUNNING:
            return self._abort(reason)
        return SAFE_OUTPUT_PCT

    def _close_cycle(self, now: float) -> None:
        if self._last_rise_at is not None:
            self._cycles.append(_Cycle(now - self._last_rise_at, (self._pv_max - self._pv_min) / 2.0))
        # the first rise ends the start-up transient; every later rise ends one full cycle
        self._last_rise_at = now
        self._pv_max, self._pv_min = -math.inf, math.inf
        self._check_stable()

    def _check_stable(self) -> None:
        s = self.settings
        # the cycle closed at the first rise after start-up is discarded: it began mid-transient
        recent = self._cycles[1:][-s.cycles:]
        if len(recent) < s.cycles:
            return
        periods = [c.period_s for c in recent]
        amplitudes = [c.amplitude_c for c in recent]
        if not (_agree(periods, s.tolerance) and _agree(amplitudes, s.tolerance)):
            return
        a = sum(amplitudes) / len(amplitudes)
        pu = sum(periods) / len(periods)
        ku = 4.0 * s.amplitude_pct / (math.pi * math.sqrt(a * a - s.hysteresis_c ** 2))
        kp = ku / 2.2
        ti = 2.2 * pu
        td = pu / 6.3
        self.result = AutotuneResult(ku=ku, pu_s=pu, amplitude_c=a, kp=kp, ki=kp / ti, kd=kp * td)
        self.state = AutotuneState.SUCCEEDED

    def _abort(self, reason: AbortReason) -> float:
        self.state = AutotuneState.ABORTED
        self.reason = reason
        return SAFE_OUTPUT_PCT


def _agree(values: list[float], tolerance: float) -> bool:
    mean = sum(values) / len(values)
    return mean > 0 and all(abs(v - mean) <= tolerance * mean for v in values)
