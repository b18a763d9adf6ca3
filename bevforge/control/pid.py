"""PID in engineering units, with the habits a brewhouse loop needs.

Units (the output is in %, the process value and setpoint in °C):
- `kp` — proportional gain, % of output per °C of error;
- `ki` — integral gain, % of output per °C of error per second (Ti = kp / ki seconds);
- `kd` — derivative gain, % of output per °C/s of process-value rate (Td = kd / kp seconds).

Behaviour, each for a reason:
- **Derivative on measurement** (−kd·dPV/dt, not kd·dE/dt): a setpoint change does not kick the
  output; the rate goes through a first-order filter of time constant `derivative_filter_s`, so
  probe noise and a tiny dt cannot make a spike (the filtered rate moves by at most ΔPV/τ).
- **Anti-windup**, two ways: conditional integration (the integral does not grow while the output
  is saturated in the direction the error pushes), and the integral term clamped to what the
  output limits can use: `out_min..out_max`, or beyond only as far as P + D pull the other way
  (an integral the output cannot use only delays the recovery).
- **Output limits** `out_min`/`out_max`: 0..100 % for one element, −100..100 % for a heat/cool pair
  (positive heats, negative cools; `heat_cool.HeatCool.update_signed` splits it). The gains are
  never negative: a cooling-only loop (a glycol valve) uses −100..0 % and drives the valve with
  the output's magnitude, so "too warm" always means "output down".
- **Setpoint ramp** (`ramp_c_per_min`): the working setpoint moves toward the target at that rate,
  starting from the process value when the loop goes to auto.
- **Bumpless transfer**: manual → auto starts exactly from the last manual output (the integral is
  seeded with output − P − D, which the clamp above always allows) and moves on from there at the
  integral's pace; auto → manual keeps the output until the operator sets another. `retune`
  (new gains) is bumpless the same way. Off → auto is a fresh start (integral 0, P and D act at
  once): there is no output to be bumpless with.
- **Boil**: above `boil.threshold_c` the output holds the operator's fixed percentage (a rolling
  boil wants steady power, not regulation at 100 °C); the integral tracks it so falling back
  below the threshold (a cold addition) does not bump.
- **Irregular dt**: dt ≤ 0 (a repeated or reordered tick) integrates nothing and leaves the
  derivative as it was; dt > `max_gap_s` (the loop was paused) integrates nothing and restarts the
  derivative from the current process value, so a pause never produces a spike.
- **Safe output**: in auto, a process value or setpoint that is not a finite number gives 0 % (off)
  and the loop starts fresh (integral 0) when the input returns. Off mode always gives 0 %. Manual mode
  gives the operator's output whatever the input (it needs none); what an input fault does to a
  loop in manual is the controller service's decision, not this module's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum

from bevforge.control import SAFE_OUTPUT_PCT


class PidMode(StrEnum):
    """Who sets the output: the loop (`auto`), the operator (`manual`), nobody (`off`: safe output)."""

    AUTO = "auto"
    MANUAL = "manual"
    OFF = "off"


@dataclass(frozen=True)
class BoilHold:
    """Above `threshold_c` (process value) the output is held at `output_pct`."""

    threshold_c: float
    output_pct: float


@dataclass(frozen=True)
class PidTuning:
    """Gains and limits of one PID loop (units in the module docstring)."""

    kp: float
    ki: float = 0.0
    kd: float = 0.0
    derivative_filter_s: float = 5.0
    out_min: float = 0.0
    out_max: float = 100.0
    ramp_c_per_min: float | None = None
    boil: BoilHold | None = None
    max_gap_s: float = 60.0

    def __post_init__(self) -> None:
        for name in ("kp", "ki", "kd", "derivative_filter_s", "out_min", "out_max", "max_gap_s"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number")
        if min(self.kp, self.ki, self.kd) < 0:
            raise ValueError("kp, ki and kd must be ≥ 0 (a cooling loop uses a negative output range)")
        if self.derivative_filter_s <= 0:
            raise ValueError("derivative_filter_s must be > 0 s")
        if self.out_min >= self.out_max:
            raise ValueError("out_min must be below out_max")
        if self.max_gap_s <= 0:
            raise ValueError("max_gap_s must be > 0 s")
        if self.ramp_c_per_min is not None and not (math.isfinite(self.ramp_c_per_min) and self.ramp_c_per_min > 0):
            raise ValueError("ramp_c_per_min must be > 0 °C/min (or None for no ramp)")

    @property
    def ti_s(self) -> float | None:
        """Integral time Ti = kp / ki in seconds (None without integral action)."""
        return self.kp / self.ki if self.ki > 0 else None

    @property
    def td_s(self) -> float:
        """Derivative time Td = kd / kp in seconds (0 without proportional action)."""
        return self.kd / self.kp if self.kp > 0 else 0.0


@dataclass(frozen=True)
class PidTerms:
    """The last output and its parts, for the faceplate and the trend (all in %, setpoint in °C)."""

    output: float
    p: float
    i: float
    d: float
    working_setpoint_c: float | None
    boiling: bool


class Pid:
    """One PID loop. Call `update(now, pv, setpoint)` once per control period; it returns the output %."""

    def __init__(self, tuning: PidTuning, mode: PidMode = PidMode.AUTO, manual_output_pct: float = 0.0) -> None:
        self.tuning = tuning
        self._mode = mode
        self._manual = self._clamp(manual_output_pct)
        self._output = SAFE_OUTPUT_PCT if mode is PidMode.OFF else (self._manual if mode is PidMode.MANUAL else 0.0)
        self._integral = 0.0
        self._rate = 0.0  # filtered dPV/dt, °C/s
        self._last_pv: float | None = None
        self._last_now: float | None = None
        self._working_sp: float | None = None
        self._seed_from: float | None = None  # output to start from at the next auto update (bumpless)
        self._terms = PidTerms(self._output, 0.0, 0.0, 0.0, None, False)

    # ---- operator actions -------------------------------------------------------------------
    @property
    def mode(self) -> PidMode:
        return self._mode

    @property
    def output(self) -> float:
        """The output % the last update returned (or the held manual output)."""
        return self._output

    @property
    def terms(self) -> PidTerms:
        return self._terms

    @property
    def working_setpoint_c(self) -> float | None:
        """Where the ramp has got to (equals the target once reached; None before the first auto update)."""
        return self._working_sp

    def set_mode(self, mode: PidMode) -> None:
        """Change mode bumplessly: to manual the output is kept, to auto the loop starts from it."""
        if mode is self._mode:
            return
        if mode is PidMode.MANUAL:
            # from auto the operator takes over the output as it is; from off the output stays off
            self._manual = self._clamp(self._output)
            self._output = self._manual
        elif mode is PidMode.AUTO:
            # from manual: start from the operator's output; from off: a fresh start that acts at once
            self._seed_from = self._output if self._mode is PidMode.MANUAL else None
            self._integral = 0.0
            self._working_sp = None  # the ramp restarts from the process value
        else:
            self._output = SAFE_OUTPUT_PCT
        self._mode = mode

    def set_manual_output(self, output_pct: float) -> None:
        """The operator's output in manual mode (clamped to the limits; not a number → safe output)."""
        self._manual = self._clamp(output_pct if math.isfinite(output_pct) else SAFE_OUTPUT_PCT)
        if self._mode is PidMode.MANUAL:
            self._output = self._manual

    def set_boil_output(self, output_pct: float) -> None:
        """The operator changes the boil percentage (only meaningful with a `boil` option)."""
        if self.tuning.boil is None:
            raise ValueError("this loop has no boil option")
        pct = output_pct if math.isfinite(output_pct) else SAFE_OUTPUT_PCT
        self.tuning = replace(self.tuning, boil=BoilHold(self.tuning.boil.threshold_c, self._clamp(pct)))

    def retune(self, tuning: PidTuning) -> None:
        """New gains or limits without a bump: the next update starts from the current output."""
        self.tuning = tuning
        self._manual = self._clamp(self._manual)
        if self._mode is PidMode.AUTO:
            self._seed_from = self._output

    # ---- the loop ---------------------------------------------------------------------------
    def update(self, now: float, pv: float, setpoint: float) -> float:
        """One control step at time `now` (s) with process value `pv` and target `setpoint` (°C)."""
        if not math.isfinite(now):
            return self._safe()
        if not (math.isfinite(pv) and math.isfinite(setpoint)):
            return self._manual if self._mode is PidMode.MANUAL else self._safe()
        dt = None if self._last_now is None else now - self._last_now
        gap = dt is None or dt > self.tuning.max_gap_s
        fresh = dt is not None and 0 < dt <= self.tuning.max_gap_s
        if gap:
            self._rate = 0.0
        elif fresh:
            assert self._last_pv is not None and dt is not None
            tau = self.tuning.derivative_filter_s
            self._rate = (self._rate * tau + (pv - self._last_pv)) / (tau + dt)
        if dt is None or dt > 0:
            self._last_now, self._last_pv = now, pv

        if self._mode is PidMode.OFF:
            self._output = SAFE_OUTPUT_PCT
            self._terms = PidTerms(self._output, 0.0, 0.0, 0.0, None, False)
            return self._output
        if self._mode is PidMode.MANUAL:
            self._output = self._manual
            self._terms = PidTerms(self._output, 0.0, 0.0, 0.0, None, False)
            return self._output

        t = self.tuning
        wsp = self._advance_ramp(pv, setpoint, dt if fresh else 0.0)
        error = wsp - pv
        p = t.kp * error
        d = -t.kd * self._rate
        lo, hi = self._integral_limits(p + d)
        if self._seed_from is not None:
            self._integral = min(hi, max(lo, self._seed_from - p - d))
            self._seed_from = None
        elif fresh and t.ki > 0:
            assert dt is not None
            candidate = self._integral + t.ki * error * dt
            unclamped = p + candidate + d
            pushing_up = error > 0 and unclamped > t.out_max
            pushing_down = error < 0 and unclamped < t.out_min
            if not (pushing_up or pushing_down):
                self._integral = min(hi, max(lo, candidate))

        boiling = t.boil is not None and pv >= t.boil.threshold_c
        if boiling:
            assert t.boil is not None
            self._output = self._clamp(t.boil.output_pct)
            self._integral = min(hi, max(lo, self._output - p - d))  # tracking: leaving boil does not bump
        else:
            self._output = self._clamp(p + self._integral + d)
        self._terms = PidTerms(self._output, p, self._integral, d, wsp, boiling)
        return self._output

    def _advance_ramp(self, pv: float, setpoint: float, dt: float) -> float:
        ramp = self.tuning.ramp_c_per_min
        if ramp is None:
            self._working_sp = setpoint
            return setpoint
        if self._working_sp is None:
            self._working_sp = pv
        step = ramp / 60.0 * dt
        delta = setpoint - self._working_sp
        self._working_sp = setpoint if abs(delta) <= step else self._working_sp + math.copysign(step, delta)
        return self._working_sp

    def _safe(self) -> float:
        if self._mode is PidMode.MANUAL:
            return self._output
        self._output = SAFE_OUTPUT_PCT
        if self._mode is PidMode.AUTO:
            self._seed_from = None  # recover with a fresh integral, not a stale one
            self._integral = 0.0
            self._last_now = None  # nothing known of the fault's interval: integrate and differentiate none of it
        self._terms = PidTerms(self._output, 0.0, 0.0, 0.0, self._working_sp, False)
        return self._output

    def _integral_limits(self, p_plus_d: float) -> tuple[float, float]:
        """The integral the output can use: the output range, widened by what P + D take off it."""
        t = self.tuning
        return min(t.out_min, t.out_min - p_plus_d), max(t.out_max, t.out_max - p_plus_d)

    def _clamp(self, value: float) -> float:
        return min(self.tuning.out_max, max(self.tuning.out_min, value))
