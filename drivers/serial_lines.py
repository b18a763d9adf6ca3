"""The receiving side of a line-oriented serial port: answers split into lines, each stamped with when it began.

A probe protocol like `T1?` → `T1=18.25` carries no request number, so the only way to tell an
answer to *this* request from a late answer to an earlier one is when its bytes arrived. Every
line is stamped with the loop time of its first byte; the driver ignores any line that began
before it wrote the request (a leftover, however it got there). `discard()` throws away complete
lines already received — a line still arriving keeps its stamp, so its tail is never mistaken for
a fresh answer. A line longer than `max_line` is cut and flagged (noise on the wire, not a value).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass


class LineLost(Exception):
    """The port closed or failed while (or before) waiting for a line."""


@dataclass(frozen=True)
class Line:
    started: float  # loop time of the line's first byte
    raw: bytes  # without the terminating LF
    overlong: bool = False  # cut at max_line: noise, not an answer


class LineCollector(asyncio.Protocol):
    """An asyncio protocol that queues received lines for one reader at a time."""

    def __init__(self, max_line: int = 256) -> None:
        self.max_line = max_line
        self.lines: deque[Line] = deque()
        self.lost: str | None = None
        self._partial = bytearray()
        self._started = 0.0
        self._skipping = False  # the rest of an overlong line is dropped up to its LF
        self._arrived = asyncio.Event()

    # -- asyncio.Protocol --------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        now = asyncio.get_running_loop().time()
        for byte_run in data.split(b"\n")[:-1]:
            self._take(byte_run, now)
            self._end_line(now)
        self._take(data.rsplit(b"\n", 1)[-1], now)
        self._arrived.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = f"{exc or 'closed'}"
        self._arrived.set()

    # -- for the driver ----------------------------------------------------------------------

    def discard(self) -> None:
        """Forget every complete line received so far (a line still arriving keeps its early stamp)."""
        self.lines.clear()
        self._arrived.clear()

    async def next_line(self, deadline: float) -> Line | None:
        """The oldest unread line, waiting until `deadline` (loop time); None when none came in time."""
        while not self.lines:
            if self.lost is not None:
                raise LineLost(self.lost)
            self._arrived.clear()
            try:
                async with asyncio.timeout_at(deadline):
                    await self._arrived.wait()
            except TimeoutError:
                return None
        return self.lines.popleft()

    # -- splitting ---------------------------------------------------------------------------

    def _take(self, chunk: bytes, now: float) -> None:
        if not chunk or self._skipping:
            return
        if not self._partial:
            self._started = now
        self._partial += chunk
        if len(self._partial) > self.max_line:
            self.lines.append(Line(self._started, bytes(self._partial[:self.max_line]), overlong=True))
            self._partial.clear()
            self._skipping = True

    def _end_line(self, now: float) -> None:
        if not self._skipping:
            self.lines.append(Line(self._started if self._partial else now, bytes(self._partial)))
        self._partial.clear()
        self._skipping = False
