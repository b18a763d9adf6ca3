"""The `modbus` driver: polls a device in planned blocks, keeps its comms state honest, writes.

Per device one task runs the poll schedule (blocks due by their endpoints' poll intervals). Reads
are retried (busy answers with backoff); configuration errors are not retried and make only the
affected endpoints BAD. After `offline_after` failed reads in a row — or no good answer for the
device's `comms_timeout_s` — the device is reported offline (values BAD, comms alarm, commands
blocked by the core) and re-probed with one cheap read at growing intervals until it answers.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from typing import ClassVar

from bevforge.config import Device, Endpoint
from bevforge.devices import DeviceError, DeviceLink, SettingsRefused
from bevforge.domain import Quality, Reading, Value, utcnow
from drivers.modbus.blocks import Block, Slot, plan_blocks, split_unbridged
from drivers.modbus.codec import EncodeError, decode, encode
from drivers.modbus.errors import Kind, ModbusFault
from drivers.modbus.lines import LinePool
from drivers.modbus.settings import ModbusDeviceSettings, PointAddress, device_settings, point_address
from drivers.polling import Due, PollingDriver, all_due, next_due, take_due

log = logging.getLogger(__name__)


class ModbusDriver(PollingDriver[ModbusDeviceSettings]):
    protocol: ClassVar[str] = "modbus"
    log: ClassVar[logging.Logger] = log

    def __init__(self, device: Device, endpoints: Sequence[Endpoint], link: DeviceLink, pool: LinePool) -> None:
        super().__init__(device, endpoints, link, device_settings(device))
        self.points: dict[int, PointAddress] = {e.id: point_address(e) for e in self.endpoints}
        self.by_id = {e.id: e for e in self.endpoints}
        self.pool = pool
        self.schedule: list[Due[Block]] = []
        for interval in sorted({self._interval(e) for e in self.endpoints}):
            slots = [Slot(e.id, self.points[e.id].table, self.points[e.id].address, self.points[e.id].width)
                     for e in self.endpoints if self._interval(e) == interval]
            try:
                blocks = plan_blocks(slots, self.settings.max_block, self.settings.max_gap)
            except ValueError as exc:
                raise SettingsRefused(device, "settings.max_block", str(exc)) from None
            self.schedule += [Due(b, interval) for b in blocks]
        self.line = pool.attach(device, self.settings)
        self.block_reads = 0
        self._last_good: float | None = None

    def _release(self) -> None:
        self.pool.detach(self.device.id, self.line)

    # -- polling ---------------------------------------------------------------------------

    async def _cycle(self) -> float | None:
        loop = asyncio.get_running_loop()
        if self.reported is False:
            # Offline: one cheap probe read at growing intervals, never a full poll cycle,
            # so a dead device costs its line one timeout per probe and no more.
            await asyncio.sleep(self.backoff.delay)
            if await self._read(self.schedule[0], retries=0):
                self.backoff.reset()
                all_due(self.schedule, loop.time())
            else:
                self.backoff.failed()
            return None
        for entry in take_due(self.schedule, loop.time()):
            await self._read(entry)
            if self.reported is False:
                return None
        return max(0.0, next_due(self.schedule) - loop.time())

    def _after_surprise(self) -> float:
        return self.settings.reprobe_s

    async def _last_request(self) -> None:
        block = self.schedule[0].item
        await self.line.read(self.settings.device_id, block.table, block.start, block.count, self.settings.timeout_s)

    # -- reading ---------------------------------------------------------------------------

    async def _read(self, entry: Due[Block], retries: int | None = None) -> bool:
        """Read one block with the retry policy; deliver readings; return True on an answer."""
        attempts = 1 + (self.settings.retries if retries is None else retries)
        fault: ModbusFault | None = None
        polls = self.polls
        for attempt in range(attempts):
            block = entry.item
            started = time.perf_counter()
            try:
                raw = await self.line.read(self.settings.device_id, block.table, block.start, block.count,
                                           self.settings.timeout_s)
            except ModbusFault as exc:
                polls.timings.observe(time.perf_counter() - started)
                polls.errors += 1
                fault = exc
                if exc.kind is Kind.CONFIGURATION:
                    self._answered()
                    self._configuration_error(entry, exc)
                    return True
                if exc.kind is Kind.BUSY:
                    await asyncio.sleep(self.settings.busy_backoff_s * 2**attempt)
                continue
            polls.timings.observe(time.perf_counter() - started)
            self.block_reads += 1
            self._answered()
            self._deliver(block, raw)
            return True
        assert fault is not None
        self._failed(fault)
        return False

    def _deliver(self, block: Block, raw: list[int] | list[bool]) -> None:
        now = utcnow()
        readings = []
        for slot in block.slots:
            endpoint = self.by_id[slot.key]
            part = raw[slot.address - block.start: slot.end - block.start]
            try:
                value: Value = decode(self.points[slot.key], part, endpoint.data_type)
            except Exception as exc:  # an undecodable answer is a bad reading, not a dead driver
                readings.append(Reading(slot.key, None, Quality.BAD, source_time=now, error=f"decode: {exc}"))
                continue
            if isinstance(value, float) and not math.isfinite(value):
                readings.append(Reading(slot.key, None, Quality.BAD, source_time=now, error="not a number"))
                continue
            readings.append(Reading(slot.key, value, Quality.GOOD, source_time=now))
        self.link.readings(readings)

    def _configuration_error(self, entry: Due[Block], fault: ModbusFault) -> None:
        block = entry.item
        if fault.code == 2 and block.bridged:
            # The device will not read the unmapped registers we bridged: read the points apart.
            parts = split_unbridged(block)
            log.warning("modbus %s: %s on bridged block %s@%d+%d, reading %d blocks instead",
                        self.device.id, fault, block.table, block.start, block.count, len(parts))
            index = self.schedule.index(entry)
            self.schedule[index:index + 1] = [Due(b, entry.interval, entry.due) for b in parts]
            for part in self.schedule[index:index + len(parts)]:
                part.due = 0.0
            return
        self.last_error = str(fault)
        self.link.readings([Reading(s.key, None, Quality.BAD, source_time=utcnow(), error=str(fault))
                            for s in block.slots])

    # -- comms state -----------------------------------------------------------------------

    def _answered(self) -> None:
        self._last_good = asyncio.get_running_loop().time()
        super()._answered()

    def _failed(self, fault: ModbusFault) -> None:
        """Offline after `offline_after` failures in a row, or no good answer for `comms_timeout_s`."""
        self.last_error = str(fault)
        if not fault.counts_toward_offline:
            return
        self.failures += 1
        now = asyncio.get_running_loop().time()
        silent_for = now - self._last_good if self._last_good is not None else 0.0
        if self.failures >= self.settings.offline_after or silent_for >= self.device.comms_timeout_s:
            self._offline(str(fault))

    def _went_offline(self) -> None:
        if self.line.key[0] == "tcp":
            self.line.reset()  # a fresh connection for the re-probe (the old one may be half-open)

    # -- commands --------------------------------------------------------------------------

    async def write(self, endpoint: Endpoint, value: Value) -> None:
        """FC05/FC06/FC16 as the point needs; never retried (a command is not a read)."""
        if self.reported is not True:
            raise DeviceError(f"device {self.device.id} is offline", code="offline", retryable=True)
        point = self.points[endpoint.id]
        try:
            request = encode(point, value)
        except EncodeError as exc:
            raise DeviceError(str(exc), code="invalid_value") from None
        try:
            await self.line.write(self.settings.device_id, request, self.settings.write_timeout_s)
        except ModbusFault as fault:
            if fault.kind is not Kind.CONFIGURATION:
                self._failed(fault)
            raise DeviceError(str(fault), code=fault.error_code, retryable=fault.kind is Kind.BUSY) from None

    async def refresh(self, endpoint: Endpoint) -> None:
        """Read the endpoint's block now (command readback), outside the schedule."""
        if self.reported is False:
            return
        for entry in self.schedule:
            if any(s.key == endpoint.id for s in entry.item.slots):
                await self._read(entry, retries=0)
                return

    def status(self) -> dict[str, object]:
        out = dict(super().status())
        out.update({"line": self.line.describe(), "blocks": len(self.schedule), "blockReads": self.block_reads})
        return out
