"""When each simulated device was last polled, and the longest silence it has seen (device-side).

What a field device's comms watchdog times is the gap between two requests that reach it. The
standalone simulator (`python -m drivers.sim`) keeps these per device so that a supervising script
(bench/restart.py) can read, from the devices' side, how long a restart of the app left them
unpolled. Times are `time.monotonic()` (the event loop's clock), system-wide on Linux, so another
process on the same machine can compare them with its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class Silence:
    """The longest gap between two polls of one device since the last reset."""

    longest_s: float = 0.0
    from_t: float | None = None  # the poll before the gap
    to_t: float | None = None  # the poll that ended it
    polls: int = 0

    def as_dict(self) -> dict[str, float | int | None]:
        return {"longest_s": round(self.longest_s, 4), "from": self.from_t, "to": self.to_t, "polls": self.polls}


class PollGaps:
    def __init__(self) -> None:
        self.last: dict[str, float] = {}
        self.silences: dict[str, Silence] = {}

    def seen(self, device: str, now: float | None = None) -> None:
        """A request from the app reached `device`."""
        now = time.monotonic() if now is None else now
        silence = self.silences.setdefault(device, Silence())
        silence.polls += 1
        before = self.last.get(device)
        if before is not None and now - before > silence.longest_s:
            silence.longest_s, silence.from_t, silence.to_t = now - before, before, now
        self.last[device] = now

    def take(self) -> dict[str, dict[str, float | int | None]]:
        """The silences since the last call, per device; starts counting afresh (from each device's last poll)."""
        report = {name: s.as_dict() for name, s in sorted(self.silences.items())}
        self.silences = {}
        return report
