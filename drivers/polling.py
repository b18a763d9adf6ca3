"""What every polling driver shares: the poll task, the timetable, comms state and re-probe backoff.

A polled device is asked for its values on a timetable (each item due again one poll interval after
it was read), reported online on its first answer and offline when it stops answering, and — while
cut off — re-probed at growing intervals so a dead device costs its wire little. Those rules are the
same whatever the protocol, and the core relies on them (offline → values BAD, outputs to their safe
state, commands blocked), so they live here once. A driver adds only its protocol: what one cycle
of polling does (`_cycle`), how it recovers from a surprise, and what it releases on stop.
"""

from __future__ import annotations

import asyncio
import logging
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, Protocol, TypeVar

from bevforge.config import Device, Endpoint
from bevforge.devices import DeviceLink, Driver
from bevforge.tasks import stop_task

T = TypeVar("T")


class PollSettings(Protocol):
    """The device settings the shared polling rules read (both drivers' settings models have them)."""

    @property
    def poll_interval_s(self) -> float | None: ...

    @property
    def reprobe_s(self) -> float: ...

    @property
    def reprobe_max_s(self) -> float: ...

    @property
    def timeout_s(self) -> float: ...


S = TypeVar("S", bound=PollSettings)


class Backoff:
    """Re-probe delay: starts at `first`, doubles after each failed probe up to `most`, resets on an answer.

    Growing the delay keeps a dead device (or an unplugged adapter) from costing its line a timeout
    every poll; the cap bounds how long a device that is back waits to be noticed.
    """

    def __init__(self, first: float, most: float) -> None:
        self.first = first
        self.most = most
        self.delay = first

    def failed(self) -> None:
        self.delay = min(self.delay * 2, self.most)

    def reset(self) -> None:
        self.delay = self.first


@dataclass
class Due(Generic[T]):
    """One thing to poll (a Modbus block, a probe endpoint) and when it is next due on the loop clock."""

    item: T
    interval: float
    due: float = 0.0


def take_due(timetable: Sequence[Due[T]], now: float) -> Iterator[Due[T]]:
    """The entries due at `now`, each moved on one interval just before it is handed out.

    A late entry is not made to catch up (due is never set before `now`), so a slow line polls at
    its own pace instead of in bursts. The due list is taken up front: a driver may reshape the
    timetable while polling (Modbus splits a bridged block the device refuses).
    """
    for entry in [e for e in timetable if e.due <= now]:
        entry.due = max(entry.due + entry.interval, now)
        yield entry


def all_due(timetable: Sequence[Due[T]], now: float) -> None:
    """Make everything due at once (a device that answers again is read in full straight away)."""
    for entry in timetable:
        entry.due = now


def next_due(timetable: Sequence[Due[T]]) -> float:
    return min(e.due for e in timetable)


class PollingDriver(Driver, Generic[S]):
    """A Driver whose device is polled from a task of its own, with honest comms state.

    `reported` is the last comms state told to the core (None: nothing told yet), so the core hears
    each change once, not on every answer. `failures` counts unanswered requests in a row.
    """

    protocol: ClassVar[str]  # "modbus", "serial": names the poll task and log lines
    log: ClassVar[logging.Logger]

    def __init__(self, device: Device, endpoints: Sequence[Endpoint], link: DeviceLink,
                 settings: S) -> None:
        super().__init__(device, endpoints, link)
        self.settings = settings
        self.reported: bool | None = None
        self.failures = 0
        self.backoff = Backoff(self.settings.reprobe_s, self.settings.reprobe_max_s)
        self._task: asyncio.Task[None] | None = None

    def _interval(self, endpoint: Endpoint) -> float:
        """A device-wide poll interval overrides the endpoints' own (one slow bus, one pace)."""
        return self.settings.poll_interval_s or endpoint.poll_interval_s

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"{self.protocol}-{self.device.id}")

    async def stop(self) -> None:
        """End the poll task; to a device that is answering, send one last request before letting go.

        A device's comms watchdog then counts from the moment this driver stopped, not from its last
        poll up to one poll interval earlier: across a restart (the next process polls as soon as it
        has started, bench/restart.py) that interval would be part of the silence the watchdog sees.
        The request is a read bounded by the device's answer timeout; its answer is not used, and no
        answer changes nothing (the device is being let go)."""
        await stop_task(self._task)
        self._task = None
        if self.reported:
            try:
                await asyncio.wait_for(self._last_request(), self.settings.timeout_s)
            except Exception as exc:
                self.log.debug("%s %s: no answer to the last request at stop: %r", self.protocol, self.device.id, exc)
        self._release()

    async def _last_request(self) -> None:
        """One cheap read the device's watchdog counts (see `stop`); none by default (a probe without outputs)."""

    def _release(self) -> None:
        """Give back the port or connection (after the poll task has ended)."""

    async def _run(self) -> None:
        """One protocol cycle after another; nothing a device sends or does may end this task."""
        self.backoff.reset()  # a restarted driver begins again from the shortest delay
        while True:
            _end_if_cancelled()
            try:
                pause = await self._cycle()
                if pause is not None:
                    await asyncio.sleep(pause)
            except Exception:
                self.log.exception("%s %s: poll cycle failed", self.protocol, self.device.id)
                await asyncio.sleep(self._after_surprise())

    @abstractmethod
    async def _cycle(self) -> float | None:
        """Poll what is due (or re-probe while cut off); return seconds to sleep, None to go on at once."""

    @abstractmethod
    def _after_surprise(self) -> float:
        """Tidy up after an unexpected error in `_cycle`; return seconds to wait before the next."""

    # -- comms state -----------------------------------------------------------------------

    def _answered(self) -> None:
        """The device answered (even if with nonsense): it is online, the failure count starts over."""
        self.failures = 0
        if self.reported is not True:
            self.reported = True
            self.online = True
            self.last_error = None
            self.link.comms(True)

    def _offline(self, error: str) -> None:
        """Tell the core once that the device is gone; the core makes its values BAD and outputs safe."""
        self.last_error = error
        if self.reported is not False:
            self.reported = False
            self.online = False
            self.log.warning("%s %s offline: %s", self.protocol, self.device.id, error)
            self.link.comms(False, error)
            self._went_offline()

    def _went_offline(self) -> None:
        """Prepare the re-probe (e.g. drop a connection that may be half-open)."""


def _end_if_cancelled() -> None:
    """End the poll task if it was asked to stop, even when the cancellation never reached it as an error.

    A client library waiting inside a timeout may turn the cancellation into a timeout or an I/O error;
    the poll loop then takes it for a silent device and polls on, for ever. A caller that cancels once
    (asyncio's Runner.close does, at the end of a test or of the process) would wait for ever: seen in the
    full test suite, with a Modbus driver in its offline back-off after its simulator had stopped.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
