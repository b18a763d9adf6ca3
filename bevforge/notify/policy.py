"""Who is told what, and when: quiet hours, the rate window and the escalation chase (pure, no I/O).

Everything here is handed the time (`now_s`, monotonic seconds of the runtime's clock; `local`, the
site's wall-clock time) so the service can run it on a ManualClock in tests and on the system clock
in the brewery, and so the rules can be read without the plumbing around them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import time

from bevforge.config import NotifyRateLimit, NotifyRoute, QuietHours


def _clock_time(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def in_quiet_hours(quiet: QuietHours | None, local: time) -> bool:
    """True from `start` (included) to `end` (excluded); a night that crosses midnight (22:00–06:00)
    is quiet after start or before end. start == end means no quiet hours at all."""
    if quiet is None:
        return False
    start, end = _clock_time(quiet.start), _clock_time(quiet.end)
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def quiet_for(quiet: QuietHours | None, local: time, priority: str) -> bool:
    """Whether a message of `priority` is held back from a recipient now (their night, not an allowed priority)."""
    return in_quiet_hours(quiet, local) and priority not in (quiet.allow if quiet else ())


class RateWindow:
    """At most `messages` in any `per_min` minutes (a sliding window of the times messages went out)."""

    def __init__(self, limit: NotifyRateLimit) -> None:
        self.messages = limit.messages
        self.window_s = limit.per_min * 60.0
        self._sent: deque[float] = deque()

    def _forget(self, now_s: float) -> None:
        while self._sent and now_s - self._sent[0] >= self.window_s:
            self._sent.popleft()

    def allows(self, now_s: float) -> bool:
        self._forget(now_s)
        return len(self._sent) < self.messages

    def take(self, now_s: float) -> None:
        self._forget(now_s)
        self._sent.append(now_s)

    def next_free(self, now_s: float) -> float:
        """When the window next has room: the oldest message's time plus the window (now if it has room)."""
        self._forget(now_s)
        if len(self._sent) < self.messages:
            return now_s
        return self._sent[0] + self.window_s


@dataclass
class Chase:
    """One alarm occurrence being told along its route: who has been told, who is next and when.

    `due` is None once nobody is left to escalate to, or the alarm was acknowledged or cleared.
    """

    alarm_id: int
    priority: str
    route: NotifyRoute
    told: list[str] = field(default_factory=list)
    next_index: int = 0
    due: float | None = None

    def first(self, now_s: float) -> str:
        """The first recipient, told at once; the escalation clock starts."""
        self.next_index = 1
        self._schedule(now_s)
        return self.route.recipients[0]

    def escalate(self, now_s: float) -> str | None:
        """The next recipient if the escalation is due at `now_s`, else None."""
        if self.due is None or now_s < self.due or self.next_index >= len(self.route.recipients):
            return None
        name = self.route.recipients[self.next_index]
        self.next_index += 1
        self._schedule(now_s)
        return name

    def stop(self) -> None:
        self.due = None

    def _schedule(self, now_s: float) -> None:
        more = self.next_index < len(self.route.recipients)
        minutes = self.route.escalate_after_min
        self.due = now_s + minutes * 60.0 if more and minutes is not None else None
