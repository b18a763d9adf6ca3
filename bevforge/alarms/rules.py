"""Evaluation of process alarm definitions with deadband, on-delay and off-delay (anti-chatter).

A `ConditionTracker` turns a stream of (value, time) into at most one CONDITION_TRUE or
CONDITION_FALSE at a time:
- it becomes true only after the value stayed beyond the limit for `on_delay_s`;
- it becomes false only after the value stayed inside `limit ∓ deadband` for `off_delay_s`.
Noise that crosses the limit but never leaves the deadband therefore raises one alarm, not many.
No clock is read here: callers pass `now` (seconds), so tests drive time directly.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bevforge.alarms.states import AlarmEvent

if TYPE_CHECKING:
    from bevforge.config import AlarmRule


@dataclass
class ConditionTracker:
    rule: AlarmRule
    limit: float | None = None
    deadband: float = 0.0
    active: bool = False
    beyond_since: float | None = None
    inside_since: float | None = None
    last_measure: float | None = None
    _samples: deque[tuple[float, float]] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.limit = self.rule.limit if self.limit is None else self.limit
        self.deadband = self.rule.deadband

    def measure(self, value: float | bool, now: float, reference: float | None = None) -> float | None:
        """The quantity compared with the limit: the value, its deviation, or its rate per minute."""
        kind = self.rule.kind
        if kind == "deviation":
            return None if reference is None else abs(float(value) - reference)
        if kind == "rate":
            samples = self._samples
            samples.append((now, float(value)))
            while len(samples) > 2 and now - samples[1][0] >= self.rule.rate_window_s:
                samples.popleft()
            oldest_t, oldest_v = samples[0]
            span = now - oldest_t
            if span < min(5.0, self.rule.rate_window_s / 2):
                return None  # not enough history for an honest rate
            return abs(float(value) - oldest_v) / span * 60.0
        if kind == "discrete":
            return 1.0 if value == self.rule.value else 0.0
        return float(value)

    def _beyond(self, m: float) -> bool:
        kind, limit = self.rule.kind, self.limit
        if kind == "discrete":
            return m >= 1.0
        assert limit is not None
        if kind in ("LO", "LOLO"):
            return m < limit
        return m > limit

    def _inside(self, m: float) -> bool:
        kind, limit = self.rule.kind, self.limit
        if kind == "discrete":
            return m < 1.0
        assert limit is not None
        if kind in ("LO", "LOLO"):
            return m > limit + self.deadband
        return m < limit - self.deadband

    def reset(self) -> None:
        """Forget the condition and its delays (suppression by design began: nothing is evaluated)."""
        self.active = False
        self.beyond_since = None
        self.inside_since = None
        self.last_measure = None
        self._samples.clear()

    def update(self, value: float | bool, now: float, reference: float | None = None) -> AlarmEvent | None:
        m = self.measure(value, now, reference)
        if m is None:
            return None
        self.last_measure = m
        return self.tick(now)

    def tick(self, now: float) -> AlarmEvent | None:
        """Re-check the delays with the last measure (called on readings and by a timer)."""
        m = self.last_measure
        if m is None:
            return None
        if not self.active:
            self.inside_since = None
            if not self._beyond(m):
                self.beyond_since = None
                return None
            if self.beyond_since is None:
                self.beyond_since = now
            if now - self.beyond_since >= self.rule.on_delay_s:
                self.active = True
                self.beyond_since = None
                return AlarmEvent.CONDITION_TRUE
            return None
        self.beyond_since = None
        if not self._inside(m):
            self.inside_since = None
            return None
        if self.inside_since is None:
            self.inside_since = now
        if now - self.inside_since >= self.rule.off_delay_s:
            self.active = False
            self.inside_since = None
            return AlarmEvent.CONDITION_FALSE
        return None

    @property
    def pending(self) -> bool:
        """A delay is running: the service's timer must tick this tracker."""
        return self.beyond_since is not None or self.inside_since is not None

    def format_message(self, label: str, unit: str) -> str:
        value = self.last_measure if self.last_measure is not None else float("nan")
        try:
            return self.rule.message.format(value=value, limit=self.limit if self.limit is not None else 0.0,
                                            unit=unit, label=label, kind=self.rule.kind)
        except (KeyError, IndexError, ValueError):
            return f"{label} {self.rule.kind}: {value:g}{unit}"
