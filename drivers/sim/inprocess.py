"""The `simulator` driver: talks to the brewhouse model in this process, with fault switches.

It behaves like a field driver (polls on an interval, acks writes, goes offline when the device
stops answering) so the core cannot tell it from real hardware; `drivers/modbus/` and
`drivers/serial_probe.py` talk to the same model over real protocols.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from bevforge.clock import Clock, clock_for
from bevforge.config import Device, Endpoint
from bevforge.devices import DeviceError, DeviceLink, Driver, SettingsRefused
from bevforge.domain import Quality, Reading, Value, coerce_value, utcnow
from bevforge.tasks import stop_task
from drivers.sim.faults import Faults
from drivers.sim.model import MAX_STEP_S, Brewhouse

log = logging.getLogger(__name__)


class SimulatedBrewhouse:
    """The model plus the task that advances it on the shared clock.

    Give it the clock the rest of the process uses (`bevforge/clock.py`), or a `speedup` and it
    makes its own (`clock_for(speedup)`: the system clock at 1.0). Every `step_s` of real time —
    or every second of clock time on a clock stepped by hand — it steps the model by exactly the
    clock time that passed, so the physics runs at the clock's speed and a `ManualClock.advance`
    moves the brewhouse with it.
    """

    def __init__(self, ambient_c: float = 20.0, speedup: float = 1.0, step_s: float = 0.1,
                 clock: Clock | None = None) -> None:
        if clock is not None and speedup != 1.0:
            raise ValueError("give the simulated brewhouse a speedup or a clock, not both")
        self.model = Brewhouse.default(ambient_c)
        self.clock: Clock = clock if clock is not None else clock_for(speedup)
        self.step_s = step_s
        self.faults: dict[str, Faults] = {}
        self._task: asyncio.Task[None] | None = None
        self._users = 0
        self._stepped_to: float | None = None  # the clock time the model has been stepped to
        self.protocol: Any = None  # the ProtocolSimulator serving this model, when enabled

    @property
    def speedup(self) -> float:
        """Clock seconds per real second (the clock's speed; 0 for a clock stepped by hand)."""
        return self.clock.speed

    def faults_for(self, device_id: str) -> Faults:
        return self.faults.setdefault(device_id, Faults())

    def start(self) -> None:
        self._users += 1
        if self._task is None or self._task.done():
            self._stepped_to = self.clock.monotonic()
            self._task = asyncio.create_task(self._run(), name="simulated-brewhouse")

    async def stop(self) -> None:
        self._users -= 1
        if self._users <= 0:
            await stop_task(self._task)
            self._task = None
            self._stepped_to = None

    def catch_up(self) -> float:
        """Step the model to the clock's present; returns the seconds stepped (0 when not running)."""
        if self._stepped_to is None:
            return 0.0
        now = self.clock.monotonic()
        elapsed = now - self._stepped_to
        self._stepped_to = now
        if elapsed > 0:
            self.model.step(elapsed)  # cut into steps of ≤ 1 s by the model, so fast-forward stays stable
        return max(elapsed, 0.0)

    def _tick_s(self) -> float:
        speed = self.clock.speed
        return self.step_s * speed if speed > 0 else MAX_STEP_S

    async def _run(self) -> None:
        while True:
            await self.clock.sleep(self._tick_s())
            self.catch_up()


class SimulatorDriver(Driver):
    """Polls every endpoint of its device at the endpoint's interval; writes go to the model."""

    def __init__(self, device: Device, endpoints: Sequence[Endpoint], link: DeviceLink,
                 sim: SimulatedBrewhouse) -> None:
        super().__init__(device, endpoints, link)
        self.sim = sim
        self.faults = sim.faults_for(device.id)
        self._tasks: list[asyncio.Task[None]] = []
        self._last_answer: float | None = None
        for endpoint in self.endpoints:
            point = endpoint.address.get("point")
            if not isinstance(point, str):
                raise SettingsRefused(endpoint, "address.point", "the simulator needs the model point, "
                                      "e.g. hlt.temperature")
            try:
                sim.model.read(point)
            except KeyError:
                raise SettingsRefused(endpoint, "address.point", f"unknown simulator point {point!r}") from None

    async def start(self) -> None:
        self.sim.start()
        intervals = sorted({e.poll_interval_s for e in self.endpoints})
        for interval in intervals:
            group = [e for e in self.endpoints if e.poll_interval_s == interval]
            self._tasks.append(asyncio.create_task(self._poll(group, interval), name=f"sim-poll-{self.device.id}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.sim.stop()

    async def _poll(self, endpoints: list[Endpoint], interval: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            self._read(endpoints)
            await asyncio.sleep(max(0.0, interval - (loop.time() - started)))

    def _read(self, endpoints: Sequence[Endpoint]) -> None:
        loop = asyncio.get_running_loop()
        if self.faults.offline:
            last = self._last_answer if self._last_answer is not None else loop.time()
            self._last_answer = last
            if self.online and loop.time() - last >= self.device.comms_timeout_s:
                self._set_online(False, "no answer")
            return
        self._last_answer = loop.time()
        readings = []
        now = utcnow()
        for endpoint in endpoints:
            raw = self.sim.model.read(endpoint.address["point"])
            value = coerce_value(raw, endpoint.data_type)
            readings.append(Reading(endpoint.id, value, Quality.GOOD, source_time=now))
        if not self.online:
            self._set_online(True)
        self.link.readings(readings)

    def _set_online(self, online: bool, error: str | None = None) -> None:
        self.online = online
        self.last_error = error
        self.link.comms(online, error)

    async def write(self, endpoint: Endpoint, value: Value) -> None:
        if self.faults.write_delay_s:
            await asyncio.sleep(self.faults.write_delay_s)
        if self.faults.offline:
            await asyncio.sleep(self.device.comms_timeout_s)
            raise DeviceError("no answer", code="timeout", retryable=True)
        if self.faults.reject_writes:
            raise DeviceError(self.faults.reject_writes, code="exception")
        if not self.faults.ignore_writes:
            self.sim.model.write(endpoint.address["point"], value)

    async def refresh(self, endpoint: Endpoint) -> None:
        if not self.faults.offline:
            self._read([endpoint])
