"""The power budget: elements share one supply without ever exceeding it, at any instant.

A 32 A single-phase supply gives about 7.4 kW; two 5.5 kW elements cannot both be on. Each loop
still decides its own output (through time-proportioning, a demand % becomes on/off instants);
the budget then decides, instant by instant, which of the elements that *want* to be on *may*
be on.

Guarantees:
- **Never over the limit, including at edges.** An element switched off at an instant still
  counts as drawing until a later call at least `release_s` after it (break-before-make): the
  off command and the on command of two elements sent at the same instant may land in either
  order, and a contactor takes time to open. So the worst case at any instant — every element
  that was on plus every element now on — stays within `limit_w`.
- **Priority.** `priority` 1 is served first (lower number, more important), like an alarm
  priority. Elements that want power are ranked by priority, then by how long they have waited,
  then by name (so the decision is deterministic); the budget is filled greedily in that order,
  skipping an element that does not fit and trying the smaller ones after it.
- **Time-slicing, no starvation.** A higher-priority loop that pulses leaves gaps the lower ones
  use at once. When higher loops want power continuously, a waiting element's rank improves by
  one priority step per `aging_s` of waiting, until it outranks them and gets a slice; a granted
  element keeps its grant for at least `slice_s` while it still wants it (no chattering of a
  contactor), after which it can be preempted by a better-ranked one. So every element that
  fits the supply alone is eventually served, with a share set by its priority and the aging.
- **Safe.** An element that no longer wants power loses its grant at once; an unknown element
  name is a configuration error (ValueError), and an element larger than the supply is refused
  when the budget is built.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Element:
    """One heating element (or other big load) on the supply: its name, power in W and priority (1 first)."""

    name: str
    watts: float
    priority: int = 1


class PowerBudget:
    """Decides which requesting elements may be on. Call `allocate(now, wants_on)` every control tick."""

    def __init__(self, limit_w: float, elements: Iterable[Element], slice_s: float = 10.0, aging_s: float = 60.0,
                 release_s: float = 0.0) -> None:
        self.limit_w = limit_w
        self.elements = {e.name: e for e in elements}
        self.slice_s = slice_s
        self.aging_s = aging_s
        self.release_s = release_s
        if not (math.isfinite(limit_w) and limit_w > 0):
            raise ValueError("limit_w must be > 0 W")
        if not all(math.isfinite(v) and v >= 0 for v in (slice_s, release_s)) or not (
                math.isfinite(aging_s) and aging_s > 0):
            raise ValueError("slice_s and release_s must be ≥ 0 s and aging_s > 0 s")
        for e in self.elements.values():
            if not (math.isfinite(e.watts) and e.watts > 0):
                raise ValueError(f"element {e.name}: watts must be > 0 W")
            if e.watts > limit_w:
                raise ValueError(f"element {e.name}: {e.watts:g} W can never fit a {limit_w:g} W supply")
        self._granted_at: dict[str, float] = {}  # element → when its current grant began
        self._released_at: dict[str, float] = {}  # element → when it was switched off, still counted
        self._waiting_since: dict[str, float] = {}  # element → since when it wants power and is refused
        self._last_now: float | None = None

    @property
    def granted(self) -> frozenset[str]:
        """The elements currently allowed on."""
        return frozenset(self._granted_at)

    def drawing_w(self) -> float:
        """The worst-case draw now: granted elements plus those switched off but not yet released."""
        return sum(self.elements[n].watts for n in set(self._granted_at) | set(self._released_at))

    def allocate(self, now: float, wants_on: Mapping[str, bool]) -> frozenset[str]:
        """The elements allowed on at `now` (s), given which elements their loops want on."""
        unknown = set(wants_on) - set(self.elements)
        if unknown:
            raise ValueError(f"unknown elements: {sorted(unknown)}")
        if not math.isfinite(now):
            now = self._last_now if self._last_now is not None else 0.0
        elif self._last_now is not None and now < self._last_now:
            now = self._last_now  # the clock went back: time stands still rather than running backwards
        self._last_now = now
        requesting = {n for n, want in wants_on.items() if want}

        # 1. power that is no longer wanted is given back at once (it still counts until released)
        for name in [n for n in self._granted_at if n not in requesting]:
            self._release(name, now)
        for name, at in list(self._released_at.items()):
            if at < now and now - at >= self.release_s:
                del self._released_at[name]
        for name in list(self._waiting_since):
            if name not in requesting:
                del self._waiting_since[name]
        for name in requesting - set(self._granted_at):
            self._waiting_since.setdefault(name, now)

        # 2. the set the ranking would like on now
        ranked = sorted(requesting, key=lambda n: (self._rank(n, now), n))
        wanted: list[str] = []
        total = 0.0
        for name in ranked:
            if total + self.elements[name].watts <= self.limit_w:
                wanted.append(name)
                total += self.elements[name].watts

        # 3. preempt granted elements that lost their place, once their slice is used up
        for name in [n for n in self._granted_at if n not in wanted]:
            if now - self._granted_at[name] >= self.slice_s:
                self._release(name, now)
                self._waiting_since[name] = now

        # 4. switch on what fits on top of everything that may still be drawing, in rank order; the first
        #    wanted element that cannot go on yet keeps its place: nothing ranked after it is switched on
        #    meanwhile, or small elements cycling through their slices would fill the room a large one waits
        #    for, for ever (a property test found a 6 kW element starved by three smaller ones)
        drawing = self.drawing_w()
        for name in wanted:
            if name in self._granted_at:
                continue
            watts = self.elements[name].watts
            if name in self._released_at or drawing + watts > self.limit_w:
                break
            self._granted_at[name] = now
            self._waiting_since.pop(name, None)
            drawing += watts
        return self.granted

    def _rank(self, name: str, now: float) -> float:
        base = float(self.elements[name].priority)
        if name in self._granted_at:
            return base  # a running grant is defended at its own priority
        waited = now - self._waiting_since.get(name, now)
        return base - waited / self.aging_s

    def _release(self, name: str, now: float) -> None:
        del self._granted_at[name]
        self._released_at[name] = now
