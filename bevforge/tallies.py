"""Cheap running tallies the hot paths keep, read by the Prometheus exporter (bevforge/metrics) at scrape time.

Why not prometheus-client's own Histogram in the poll loop: its `observe` takes a lock and walks the
buckets, and its metrics live in a process-wide registry that two runtimes in one process (the tests,
a live reload) would share. A `Timings` is one `bisect` and three additions, owned by the part that
times something (a driver, the command runner, the history writer); nothing is allocated per call.
The exporter turns it into a Prometheus histogram only when a scraper asks.

Written from the event loop (drivers, commands) or the store's writer thread (history flushes); read
on the event loop. A scrape that lands between the increments of one `observe` may see a count one
ahead of its bucket: harmless for a monitoring figure, and no lock is taken on the hot path for it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

# Upper bounds in seconds (Prometheus' `le`, inclusive), chosen for what each one times.
POLL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)  # one device request
COMMAND_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)  # request → final status
FLUSH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)  # one history transaction


class Timings:
    """A fixed-bucket histogram of durations in seconds: counts per bucket, how many, and their sum."""

    __slots__ = ("bounds", "buckets", "count", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.buckets = [0] * (len(self.bounds) + 1)  # the last one: above every bound (+Inf only)
        self.count = 0
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.buckets[bisect_left(self.bounds, seconds)] += 1
        self.count += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or below it) for every bound and +Inf, as Prometheus counts buckets."""
        out: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip((*self.bounds, float("inf")), self.buckets, strict=True):
            running += n
            out.append((bound, running))
        return out


class PollTally:
    """One device's requests: how long each took (answered or not) and how many went unanswered or failed."""

    __slots__ = ("errors", "timings")

    def __init__(self) -> None:
        self.timings = Timings(POLL_BUCKETS)
        self.errors = 0
