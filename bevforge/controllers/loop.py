"""One controller's decisions, without I/O: mode, setpoint, the maths, the safety guards, the outputs it wants.

The service (`service.py`) reads the process value, hands it here with the clock's `now`, and
sends what `Loop.step` answers as commands. Keeping the decisions apart from the sending keeps
them testable and keeps the rules in one place:

- **modes** `auto` / `manual` / `off`, with bumpless transfer (the PID's own, `bevforge/control/pid.py`);
- **states** `regulating`, `manual`, `off`, `input_fault` (no GOOD input: outputs safe),
  `held` (an output was refused by an interlock: the service sets it), `tripped` (runaway or
  over-temperature: outputs safe until a person changes the mode — the reset);
- **outputs**: a bool output is time-proportioned (`TimeProportioning`); a numeric one is written in %
  when it moved `min_step_pct` (`NumericOutput`); a heat/cool pair splits a signed demand (`HeatCool`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from bevforge.control import SAFE_OUTPUT_PCT
from bevforge.control.autotune import AbortReason, AutotuneSettings, AutotuneState, RelayAutotune
from bevforge.control.heat_cool import HeatCool
from bevforge.control.hysteresis import Direction, Hysteresis, HysteresisSettings
from bevforge.control.pid import BoilHold, Pid, PidMode, PidTuning
from bevforge.control.time_proportioning import NumericOutput, TimeProportioning, TimeProportioningSettings
from bevforge.domain import DataType, EndpointKind

if TYPE_CHECKING:
    from bevforge.config import Controller, Endpoint, PidSettings


class ControllerMode(StrEnum):
    AUTO = "auto"
    MANUAL = "manual"
    OFF = "off"


class ControllerState(StrEnum):
    REGULATING = "regulating"
    MANUAL = "manual"
    OFF = "off"
    INPUT_FAULT = "input_fault"
    HELD = "held"
    TRIPPED = "tripped"
    AUTOTUNING = "autotuning"


# the tuning keys a technician may change at run time (the others are the config's)
TUNING_KEYS = ("kp", "ki", "kd", "derivative_filter_s", "out_min", "out_max", "ramp_c_per_min",
               "boil_threshold_c", "boil_output_pct")


def pid_tuning(settings: PidSettings | dict[str, Any]) -> PidTuning:
    """The maths' tuning from the config's (or a stored/changed) settings."""
    values = settings if isinstance(settings, dict) else settings.model_dump()
    boil = None
    if values.get("boil_threshold_c") is not None:
        boil = BoilHold(float(values["boil_threshold_c"]), float(values.get("boil_output_pct", 100.0)))
    return PidTuning(kp=float(values["kp"]), ki=float(values.get("ki", 0.0)), kd=float(values.get("kd", 0.0)),
                     derivative_filter_s=float(values.get("derivative_filter_s", 5.0)),
                     out_min=float(values.get("out_min", 0.0)), out_max=float(values.get("out_max", 100.0)),
                     ramp_c_per_min=values.get("ramp_c_per_min"), boil=boil)


@dataclass
class OutputDrive:
    """How one output endpoint is driven: time-proportioned (bool) or by value (numeric %)."""

    endpoint: Endpoint
    tp: TimeProportioning | None = None
    numeric: NumericOutput | None = None

    @property
    def is_bool(self) -> bool:
        return self.endpoint.data_type is DataType.BOOL

    def safe_value(self) -> Any:
        return self.endpoint.safe_value


@dataclass
class _Runaway:
    since: float | None = None
    pv_at_start: float = 0.0


@dataclass
class Loop:
    """The decisions of one configured controller (see the module docstring)."""

    cfg: Controller
    outputs: dict[int, OutputDrive]
    setpoint: float | None
    mode: ControllerMode = ControllerMode.OFF
    reason: str = "not switched on since the panel started"
    tripped: str | None = None
    input_fault: str | None = None
    held: str | None = None
    pv: float | None = None
    output_pct: float = SAFE_OUTPUT_PCT
    demands: dict[int, float] = field(default_factory=dict)
    tuning: dict[str, Any] = field(default_factory=dict)
    manual_output: float = SAFE_OUTPUT_PCT
    pid: Pid | None = None
    hysteresis: Hysteresis | None = None
    heat_cool: HeatCool | None = None
    autotune: RelayAutotune | None = None  # the last relay test (running, or finished and not yet replaced)
    _runaway: _Runaway = field(default_factory=_Runaway)

    @classmethod
    def build(cls, cfg: Controller, endpoints: dict[int, Endpoint], setpoint: float | None) -> Loop:
        drives: dict[int, OutputDrive] = {}
        for eid in cfg.outputs:
            endpoint = endpoints[eid]
            drive = OutputDrive(endpoint)
            if drive.is_bool:
                drive.tp = TimeProportioning(TimeProportioningSettings(cfg.period_s, cfg.min_on_s, cfg.min_off_s))
            else:
                drive.numeric = NumericOutput(cfg.min_step_pct)
            drives[eid] = drive
        loop = cls(cfg, drives, setpoint)
        if cfg.kind == "pid":
            assert cfg.tuning is not None
            loop.tuning = cfg.tuning.model_dump()
            loop.pid = Pid(pid_tuning(loop.tuning), PidMode.OFF)
        else:
            h = cfg.hysteresis
            settings = HysteresisSettings(Direction.HEAT) if h is None else HysteresisSettings(
                Direction.HEAT, h.on_offset_c, h.off_offset_c, h.min_on_s, h.min_off_s)
            loop.hysteresis = Hysteresis(settings)
        if cfg.cool_output is not None:
            loop.heat_cool = HeatCool(cfg.dead_band_c)
        return loop

    @property
    def heats(self) -> bool:
        """Whether the loop drives a heater (such loops come back off after a restart unless told)."""
        return self.outputs[self.cfg.output].endpoint.kind is EndpointKind.HEATER

    @property
    def state(self) -> ControllerState:
        if self.tripped is not None:
            return ControllerState.TRIPPED
        if self.mode is ControllerMode.OFF:
            return ControllerState.OFF
        if self.input_fault is not None:
            return ControllerState.INPUT_FAULT
        if self.held is not None:
            return ControllerState.HELD
        if self.autotuning:
            return ControllerState.AUTOTUNING
        return ControllerState.MANUAL if self.mode is ControllerMode.MANUAL else ControllerState.REGULATING

    @property
    def autotuning(self) -> bool:
        return self.autotune is not None and self.autotune.state is AutotuneState.RUNNING

    def start_autotune(self, now: float, settings: AutotuneSettings) -> None:
        """A relay test instead of the PID (which tracks it in manual, so handing back is bumpless)."""
        assert self.pid is not None
        self.autotune = RelayAutotune(settings, now)
        self.pid.set_mode(PidMode.MANUAL)

    def end_autotune(self, reason: AbortReason | None = None) -> None:
        """Hand the output back to the PID (auto, from the relay's bias); abort a running test with `reason`."""
        if self.autotune is None:
            return
        if reason is not None:
            self.autotune.abort(reason)
        if self.pid is not None and self.mode is ControllerMode.AUTO:
            self.pid.set_manual_output(self.autotune.settings.bias_pct)
            self.pid.set_mode(PidMode.AUTO)

    @property
    def out_range(self) -> tuple[float, float]:
        if self.pid is not None:
            return self.pid.tuning.out_min, self.pid.tuning.out_max
        return 0.0, 100.0

    # -- what people change ------------------------------------------------------------------------

    def set_mode(self, mode: ControllerMode, reason: str) -> None:
        """A person's mode change; any change (even to the same mode) resets a trip — the operator's reset."""
        self.tripped = None
        self.held = None
        self._runaway = _Runaway()
        if self.autotuning:
            assert self.autotune is not None
            self.autotune.abort(AbortReason.ABORTED_BY_CALLER)
        if self.pid is not None:
            self.pid.set_mode(PidMode(mode.value))
        if mode is ControllerMode.MANUAL and self.pid is not None:
            self.manual_output = self.pid.output
        elif mode is ControllerMode.MANUAL:
            self.manual_output = self.output_pct
        self.mode = mode
        self.reason = reason

    def set_manual_output(self, pct: float) -> None:
        lo, hi = self.out_range
        self.manual_output = min(hi, max(lo, pct))
        if self.pid is not None:
            self.pid.set_manual_output(self.manual_output)

    def retune(self, values: dict[str, Any]) -> None:
        assert self.pid is not None
        tuning = pid_tuning(values)  # raises ValueError on a bad combination
        self.tuning = dict(values)
        self.pid.retune(tuning)
        self.manual_output = min(tuning.out_max, max(tuning.out_min, self.manual_output))

    # -- one tick ----------------------------------------------------------------------------------

    def step(self, now: float, pv: float | None, input_fault: str | None) -> dict[int, float]:
        """Decide every output's demand (%, 0–100) at `now` for process value `pv` (None: no usable input)."""
        self.input_fault = input_fault
        self.pv = pv
        sp = self.setpoint if self.setpoint is not None else math.nan
        value = pv if pv is not None and input_fault is None else math.nan
        if self.tripped is not None or self.mode is ControllerMode.OFF:
            if self.autotuning:
                self.end_autotune(AbortReason.ABORTED_BY_CALLER)
            return self._safe(now, value, sp)
        if input_fault is not None:  # no trustworthy temperature: nothing may heat or cool on a guess
            self._runaway = _Runaway()
            if self.autotuning:
                self.end_autotune(AbortReason.INPUT_FAULT)
            return self._safe(now, value, sp)
        if self.autotuning and self.pid is not None:
            assert self.autotune is not None
            relay = self.autotune.update(now, value)
            if self.autotuning:
                self.pid.set_manual_output(relay)  # the PID tracks the relay: bumpless when it hands back
            else:
                self.end_autotune()
        if self.pid is not None:
            signed = self.pid.update(now, value, sp)
        else:
            assert self.hysteresis is not None
            if self.mode is ControllerMode.MANUAL:
                signed = self.manual_output
            else:
                signed = 100.0 if self.hysteresis.update(now, value, sp) else 0.0
        self.output_pct = signed
        trip = self._guard(now, value, sp, signed)
        if trip is not None:
            if self.autotuning:
                self.end_autotune(AbortReason.ABORTED_BY_CALLER)
            self.tripped = trip
            self.reason = trip
            return self._safe(now, value, sp)
        if self.heat_cool is not None:
            split = self.heat_cool.update_signed(value, sp, signed)
            assert self.cfg.cool_output is not None
            self.demands = {self.cfg.output: split.heat_pct, self.cfg.cool_output: split.cool_pct}
        else:
            self.demands = {self.cfg.output: max(0.0, min(100.0, abs(signed)))}
        return self.demands

    def _safe(self, now: float, pv: float, sp: float) -> dict[int, float]:
        if self.pid is not None and self.mode is not ControllerMode.OFF:
            self.pid.update(now, math.nan, sp)  # auto: a fresh start when the input returns
        if self.hysteresis is not None:
            self.hysteresis.force_off(now)
        self.output_pct = SAFE_OUTPUT_PCT
        self.demands = dict.fromkeys(self.outputs, SAFE_OUTPUT_PCT)
        return self.demands

    def _guard(self, now: float, pv: float, sp: float, signed: float) -> str | None:
        """Runaway (full output, the PV not following) and over-temperature: the reason to trip, or None."""
        s = self.cfg.safety
        if s.over_temperature_c is not None and math.isfinite(sp) and pv > sp + s.over_temperature_c:
            return (f"over-temperature: {pv:.1f} °C is more than {s.over_temperature_c:g} °C above the "
                    f"setpoint {sp:g} °C")
        pushing = abs(signed) >= s.runaway_output_pct
        if not pushing:
            self._runaway = _Runaway()
            return None
        if self._runaway.since is None:
            self._runaway = _Runaway(now, pv)
            return None
        moved = (pv - self._runaway.pv_at_start) * (1.0 if signed > 0 else -1.0)
        if moved >= s.runaway_min_change_c:
            self._runaway = _Runaway(now, pv)  # it follows: measure the next stretch from here
            return None
        if now - self._runaway.since >= s.runaway_minutes * 60.0:
            way = "risen" if signed > 0 else "fallen"
            return (f"runaway: output {abs(signed):.0f} % for {s.runaway_minutes:g} min and the temperature has "
                    f"{way} only {max(0.0, moved):.2f} °C (needs {s.runaway_min_change_c:g} °C)")
        return None
