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

from bevforge.config import Device, Endpoint
from bevforge.devices import DeviceError, DeviceLink, Driver, SettingsRefused
from bevforge.domain import Quality, Reading, Value, coerce_value, utcnow
from bevforge.tasks import stop_task
from drivers.sim.faults import Faults
from drivers.sim.model import Brewhouse

log = logging.getLogger(__name__)


class SimulatedBrewhouse:
    """The model plus the task that advances it in real time (× speedup)."""

    def __init__(self, ambient_c: float = 20.0, speedup: float = 1.0, step_s: float = 0.1) -> None:
        self.model = Brewhouse.default(ambient_c)
        self.speedup = speedup
        self.step_s = step_s
        self.faults: dict[str, Faults] = {}
        self._task: asyncio.Task[None] | None = None
        self._users = 0
        self.protocol: Any = None  # the ProtocolSimulator serving this model, when enabled

    def faults_for(self, device_id: str) -> Faults:
        return self.faults.setdefault(device_id, Faults())

    def start(self) -> None:
        self._users += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="simulated-brewhouse")

    async def stop(self) -> None:
        self._users -= 1
        if self._users <= 0:
            await stop_task(self._task)
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(self.step_s)
            now = loop.time()
            elapsed = (now - last) * self.speedup
            last = now
            while elapsed > 0:  # keep steps small so fast-forward stays stable
                dt = min(elapsed, 1.0)
                self.model.step(dt)
                elapsed -= dt


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
