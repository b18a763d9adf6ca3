"""Each step type as a small state machine: given the instant and what the plant shows, what it wants.

Pure: no I/O, no asyncio, no clock reads. The runner (`service.py`) hands every step a `Inputs`
(the wall-clock instant in epoch seconds, the controllers' process values and setpoints, the
endpoint values, all GOOD-only) and gets back a `Wants`: setpoints and modes for its controllers,
endpoint writes in the order they must be made, the prompts an operator must answer, whether it is
done, and the time left. The runner turns those into commands; a step never writes anything.

Why wall-clock epoch seconds and not the monotonic clock: a step's state (`Step.state`, plain
JSON) is stored and comes back after a restart, where a monotonic reading means nothing. A step's
timer counts only the time it was updated while running (`last` is forgotten on a pause or a
restart, so the time away is not counted) — unless the runner says the time away counts
(`catch_up`, a fermentation profile on its wall-clock schedule).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bevforge.config import Controller, ProgramStep, SoftwareSetpoint

DEFAULT_BAND_C = 0.5
DEFAULT_GRACE_S = 60.0
OPS: dict[str, Callable[[Any, Any], bool]] = {"==": operator.eq, "!=": operator.ne, "<": operator.lt,
                                              "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@dataclass(frozen=True)
class Inputs:
    """What a step sees at one instant (values only when GOOD; missing means not known)."""

    now: float
    pv: Mapping[str, float | None] = field(default_factory=dict)
    setpoint: Mapping[str, float | None] = field(default_factory=dict)
    values: Mapping[int, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Prompt:
    """A question for the operator; `key` is local to its step ("confirm", "addition:0")."""

    key: str
    message: str
    since: float
    overdue: bool = False


@dataclass
class Wants:
    """What a step asks for now."""

    setpoints: dict[str, float] = field(default_factory=dict)
    modes: dict[str, str] = field(default_factory=dict)  # controller → "auto" | "off"
    writes: list[tuple[int, Any]] = field(default_factory=list)  # in the order they are to be made
    prompts: list[Prompt] = field(default_factory=list)
    done: bool = False
    remaining_s: float | None = None
    status: str = ""


class StepRefused(ValueError):
    """An operator action that this step cannot take (extend a heat step, confirm a prompt not shown)."""


class Step:
    """The common part: the config, the stored state, and a timer that counts only while it runs."""

    timed = False

    def __init__(self, cfg: ProgramStep, controller: Controller | None, state: dict[str, Any] | None = None) -> None:
        self.cfg = cfg
        self.controller = controller
        self.state: dict[str, Any] = dict(state or {})
        self.state.setdefault("elapsed", 0.0)
        self.state.setdefault("extra", 0.0)
        self.state.setdefault("confirmed", [])
        self.state.setdefault("last", None)

    # -- the timer -------------------------------------------------------------------------------

    def _tick(self, now: float, counting: bool) -> None:
        """Count the time since the last update if the timer was running through it (as the last update
        found it), then note whether it runs from now on."""
        last = self.state["last"]
        if self.state.get("counting") and last is not None and now > last:
            self.state["elapsed"] += now - last
        self.state["last"] = now
        self.state["counting"] = counting

    def duration(self) -> float | None:
        base = self.cfg.duration_s
        return None if base is None else base + self.state["extra"]

    def remaining(self) -> float | None:
        total = self.duration()
        return None if total is None else max(0.0, total - self.state["elapsed"])

    def pause(self) -> None:
        """Time stops counting until the next update (a pause, or the process stopping)."""
        self.state["last"] = None

    def catch_up(self, seconds: float) -> None:
        """Count `seconds` the step was not updated (a schedule that went on while the panel was off)."""
        if self.timed and seconds > 0:
            self.state["elapsed"] += seconds

    def extend(self, seconds: float) -> None:
        """More (or, negative, less) time for a timed step; never below what has already run."""
        if not self.timed or self.duration() is None:
            raise StepRefused(f"a {self.cfg.type} step has no time to extend or shorten")
        total = self.duration()
        assert total is not None
        self.state["extra"] += max(seconds, self.state["elapsed"] - total)

    # -- prompts ---------------------------------------------------------------------------------

    def _prompt(self, key: str, message: str, now: float, overdue_s: float | None = None) -> Prompt | None:
        if key in self.state["confirmed"]:
            return None
        since = self.state.setdefault(f"since:{key}", now)
        if since > now:  # stored by a clock that was ahead (a scaled clock before a restart): from now on
            since = self.state[f"since:{key}"] = now
        return Prompt(key, message, since, overdue_s is not None and now - since >= overdue_s)

    def confirm(self, key: str, shown: list[Prompt]) -> None:
        if key not in {p.key for p in shown}:
            raise StepRefused(f"no prompt {key!r} is waiting in this step")
        self.state["confirmed"].append(key)

    def exit_writes(self) -> list[tuple[int, Any]]:
        """What must be written when the step ends, is left or paused (a transfer stops its pump)."""
        return []

    def update(self, inputs: Inputs) -> Wants:  # pragma: no cover - each type overrides
        raise NotImplementedError


def _in_band(pv: float | None, target: float, band: float) -> bool:
    return pv is not None and abs(pv - target) <= band


class Heat(Step):
    def update(self, inputs: Inputs) -> Wants:
        c, target = self.cfg.controller, self.cfg.target_c
        assert c is not None and target is not None
        pv = inputs.pv.get(c)
        self._tick(inputs.now, False)
        done = _in_band(pv, target, self.cfg.band_c or DEFAULT_BAND_C)
        return Wants(setpoints={c: target}, modes={c: "auto"}, done=done,
                     status=f"heating to {target:g} °C" + (f" (now {pv:.1f} °C)" if pv is not None else ""))


class Hold(Step):
    timed = True

    def update(self, inputs: Inputs) -> Wants:
        c, target = self.cfg.controller, self.cfg.target_c
        assert c is not None and target is not None
        pv = inputs.pv.get(c)
        grace = self.cfg.grace_s if self.cfg.grace_s is not None else DEFAULT_GRACE_S
        if _in_band(pv, target, self.cfg.band_c or DEFAULT_BAND_C):
            self.state["out_since"] = None
            counting, status = True, f"holding {target:g} °C"
        else:
            out_since = self.state.get("out_since")
            if out_since is None or out_since > inputs.now:  # (one stored by a clock that was ahead: from now)
                out_since = self.state["out_since"] = inputs.now
            counting = inputs.now - out_since < grace
            status = (f"holding {target:g} °C: out of band" if counting
                      else f"timer stopped: waiting for {target:g} °C")
        self._tick(inputs.now, counting)
        remaining = self.remaining()
        return Wants(setpoints={c: target}, modes={c: "auto"}, done=remaining == 0.0, remaining_s=remaining,
                     status=status)


class Ramp(Step):
    timed = True

    def _span(self) -> tuple[float, float]:
        start, end = float(self.state["from"]), float(self.cfg.to_c or 0.0)
        return start, end

    def duration(self) -> float | None:
        if "from" not in self.state:
            return None
        start, end = self._span()
        cfg = self.cfg
        if cfg.rate_c_per_min is not None:
            base = abs(end - start) / cfg.rate_c_per_min * 60.0
        elif cfg.rate_c_per_day is not None:
            base = abs(end - start) / cfg.rate_c_per_day * 86400.0
        else:
            base = cfg.duration_s or 0.0
        return base + self.state["extra"]

    def target(self) -> float:
        start, end = self._span()
        total = self.duration() or 0.0
        fraction = 1.0 if total <= 0 else min(1.0, self.state["elapsed"] / total)
        return start + (end - start) * fraction

    def update(self, inputs: Inputs) -> Wants:
        c = self.cfg.controller
        assert c is not None
        if "from" not in self.state:  # the start: the template's, else the setpoint as it is, else the PV
            start = self.cfg.from_c
            if start is None:
                start = inputs.setpoint.get(c)
            if start is None:
                start = inputs.pv.get(c)
            if start is None:
                return Wants(status="waiting for the controller's setpoint to be known")
            self.state["from"] = start
        self._tick(inputs.now, True)
        target = round(self.target(), 2)
        remaining = self.remaining()
        return Wants(setpoints={c: target}, modes={c: "auto"}, done=remaining == 0.0, remaining_s=remaining,
                     status=f"ramping to {self.cfg.to_c:g} °C (now {target:g} °C)")


class Transfer(Step):
    """Valves first, then the pump once every valve reads open; at the end the pump stops before the valves close.

    A `controller` given is switched off while it runs: the mash tun's loop, whose element the run-off leaves
    uncovered (left in auto it would ask for heat the level interlock refuses, and trip as a runaway)."""

    def update(self, inputs: Inputs) -> Wants:
        self._tick(inputs.now, False)
        writes: list[tuple[int, Any]] = [(v, True) for v in self.cfg.valves]
        if all(inputs.values.get(v) is True for v in self.cfg.valves):
            assert self.cfg.pump is not None
            writes.append((self.cfg.pump, True))
        until = self.cfg.until
        reached = until is not None and _holds(until.endpoint, until.op, until.value, inputs.values)
        prompt = self._prompt("confirm", self.cfg.message or "Confirm when the transfer is complete", inputs.now)
        done = reached or prompt is None
        modes = {self.cfg.controller: "off"} if self.cfg.controller else {}
        return Wants(modes=modes, writes=[] if done else writes, prompts=[] if done or prompt is None else [prompt],
                     done=done, status="transferring")

    def exit_writes(self) -> list[tuple[int, Any]]:
        assert self.cfg.pump is not None
        return [(self.cfg.pump, False)] + [(v, False) for v in self.cfg.valves]


class Boil(Step):
    timed = True

    def __init__(self, cfg: ProgramStep, controller: Controller | None, state: dict[str, Any] | None = None) -> None:
        super().__init__(cfg, controller, state)
        sp = controller.setpoint if controller is not None else None
        default_target = sp.max if isinstance(sp, SoftwareSetpoint) else 100.0
        self.target = cfg.target_c if cfg.target_c is not None else default_target
        threshold = controller.tuning.boil_threshold_c if controller is not None and controller.tuning else None
        self.boil_c = cfg.boil_c if cfg.boil_c is not None else threshold if threshold is not None else self.target - 1

    def update(self, inputs: Inputs) -> Wants:
        c = self.cfg.controller
        assert c is not None
        pv = inputs.pv.get(c)
        grace = self.cfg.grace_s if self.cfg.grace_s is not None else DEFAULT_GRACE_S
        boiling = pv is not None and pv >= self.boil_c
        if boiling:
            self.state["out_since"] = None
            self.state["boiled"] = True
        elif self.state["elapsed"] > 0:
            out_since = self.state.get("out_since")
            if out_since is None or out_since > inputs.now:  # (one stored by a clock that was ahead: from now)
                out_since = self.state["out_since"] = inputs.now
            boiling = inputs.now - out_since < grace
        self._tick(inputs.now, boiling)
        remaining = self.remaining()
        assert remaining is not None
        # an addition is asked for once the boil has begun, `at_min` minutes before its end
        prompts = [p for n, a in enumerate(self.cfg.additions) if self.state.get("boiled") and
                   remaining <= a.at_min * 60.0 and (p := self._prompt(f"addition:{n}", a.message, inputs.now))]
        due = all(f"addition:{n}" in self.state["confirmed"] for n in range(len(self.cfg.additions)))
        status = "boiling" if boiling else f"heating to the boil ({self.boil_c:g} °C)"
        return Wants(setpoints={c: self.target}, modes={c: "auto"}, prompts=prompts, done=remaining == 0.0 and due,
                     remaining_s=remaining, status=status)


class Chill(Step):
    def update(self, inputs: Inputs) -> Wants:
        self._tick(inputs.now, False)
        assert self.cfg.endpoint is not None and self.cfg.below_c is not None
        value = inputs.values.get(self.cfg.endpoint)
        done = isinstance(value, int | float) and not isinstance(value, bool) and value < self.cfg.below_c
        modes = {self.cfg.controller: "off"} if self.cfg.controller else {}
        return Wants(modes=modes, done=done, status=self.cfg.message or f"chilling below {self.cfg.below_c:g} °C")


class Ask(Step):
    """A `prompt` step: done when the operator confirms; overdue after `overdue_min`."""

    def update(self, inputs: Inputs) -> Wants:
        self._tick(inputs.now, False)
        overdue_s = self.cfg.overdue_min * 60.0 if self.cfg.overdue_min is not None else None
        prompt = self._prompt("confirm", self.cfg.message or "", inputs.now, overdue_s)
        return Wants(prompts=[prompt] if prompt else [], done=prompt is None,
                     status="waiting for the operator" + (" (overdue)" if prompt and prompt.overdue else ""))


class Wait(Step):
    timed = True

    def update(self, inputs: Inputs) -> Wants:
        self._tick(inputs.now, True)
        until = self.cfg.until
        if until is not None:
            return Wants(done=_holds(until.endpoint, until.op, until.value, inputs.values), status="waiting")
        remaining = self.remaining()
        return Wants(done=remaining == 0.0, remaining_s=remaining, status="waiting")


class SetValue(Step):
    """Writes one endpoint; the runner moves on once the write is accepted."""

    def update(self, inputs: Inputs) -> Wants:
        self._tick(inputs.now, False)
        assert self.cfg.endpoint is not None
        return Wants(writes=[(self.cfg.endpoint, self.cfg.value)], done=True, status="setting")


def _holds(endpoint: int, op: str, value: Any, values: Mapping[int, Any]) -> bool:
    present = values.get(endpoint)
    if present is None:
        return False
    try:
        return bool(OPS[op](present, value))
    except TypeError:
        return False


KINDS: dict[str, type[Step]] = {"heat": Heat, "hold": Hold, "ramp": Ramp, "transfer": Transfer, "boil": Boil,
                                "chill": Chill, "prompt": Ask, "wait": Wait, "set": SetValue}


def build(cfg: ProgramStep, controllers: Mapping[str, Controller], state: dict[str, Any] | None = None) -> Step:
    """The state machine of one configured step (with its stored state, after a restart)."""
    controller = controllers.get(cfg.controller) if cfg.controller is not None else None
    return KINDS[cfg.type](cfg, controller, state)


__all__ = ["KINDS", "Inputs", "Prompt", "Step", "StepRefused", "Wants", "build"]
