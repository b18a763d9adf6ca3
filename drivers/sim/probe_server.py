"""The simulated fermenter probe on a pty: answers `T1?` with `T1=18.25` (CR LF), line by line.

Faults: offline (silence), delay, corrupt lines (garbage bytes where the answer should be), a
closed port (the USB adapter unplugged: the path vanishes until the switch is cleared) and a stall
(silent for a while, then every request received meanwhile answered at once — a probe box whose
firmware hung, or an adapter that held its buffer: the line the driver must resynchronise on).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

from drivers.sim.faults import Faults
from drivers.sim.maps import PROBE_CHANNELS
from drivers.sim.model import Brewhouse
from drivers.sim.pty import PtyPort

GARBAGE = b"T\xff=6#.\x00\x9b?!"


class SimProbe:
    def __init__(self, model: Brewhouse, link: str | Path, faults: Callable[[], Faults],
                 channels: dict[str, str] | None = None, on_request: Callable[[], None] | None = None) -> None:
        self.model = model
        self.faults = faults
        self.on_request = on_request  # told of every request line that arrives (the poll-gap record)
        self.channels = channels or PROBE_CHANNELS
        self.port = PtyPort(link, self._received)
        self.requests = 0
        self._buffer = b""
        self.held: list[str] = []  # requests received while stalled, answered when the stall ends
        self.answering = 0  # answers being prepared (a delayed answer is still to come while > 0)
        self.answer_as: dict[str, str] = {}  # a miswired probe: channel → the name its answer carries
        self._watch: asyncio.Task[None] | None = None

    @property
    def path(self) -> str:
        return str(self.port.link)

    async def start(self) -> None:
        self.port.open()
        self._watch = asyncio.create_task(self._follow_port_switch(), name="sim-probe-port")

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        self.port.close()

    async def _follow_port_switch(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            closed = self.faults().port_closed
            if closed and self.port.is_open:
                self.port.close()
                self._buffer = b""
            elif not closed and not self.port.is_open:
                self.port.open()
            if self.held and not self.faults().stalled:
                held, self.held = self.held, []
                for request in held:
                    await self._answer(request)

    def _received(self, data: bytes) -> None:
        self._buffer += data
        while b"\n" in self._buffer or b"\r" in self._buffer:
            cut = min(i for i in (self._buffer.find(b"\n"), self._buffer.find(b"\r")) if i >= 0)
            line, self._buffer = self._buffer[:cut], self._buffer[cut + 1:]
            if line.strip():
                self.requests += 1
                if self.on_request is not None:
                    self.on_request()
                asyncio.get_running_loop().create_task(self._answer(line.strip().decode("ascii", "replace")))

    async def _answer(self, request: str) -> None:
        self.answering += 1
        try:
            await self._answer_now(request)
        finally:
            self.answering -= 1

    async def _answer_now(self, request: str) -> None:
        faults = self.faults()
        if faults.offline:
            return
        if faults.stalled:
            self.held.append(request)
            return
        if faults.delay_s:
            await asyncio.sleep(faults.delay_s)
        if faults.corrupt_lines:
            self.port.write(GARBAGE + b"\r\n")
            return
        channel = request.rstrip("?")
        point = self.channels.get(channel)
        if point is None or not request.endswith("?"):
            self.port.write(b"ERR\r\n")
            return
        named = self.answer_as.get(channel, channel)
        self.port.write(f"{named}={float(self.model.read(point)):.2f}\r\n".encode("ascii"))
