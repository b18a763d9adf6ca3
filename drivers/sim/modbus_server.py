"""The simulated field devices answering real Modbus (pymodbus server: TCP, or RTU on a pty).

Every request goes through `_action`, which first copies the brewhouse model into the requested
table (so reads are live) and applies writes to the model — unless the device's fault switches say
otherwise: no answer at all (offline), late answers, a given exception code, writes refused,
ignored or slow. `requests` counts what arrived on the wire, per device and function code.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import Callable
from functools import partial
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simcore import SimCore

from drivers.sim.faults import Faults
from drivers.sim.lean_imports import without_aiohttp
from drivers.sim.maps import Register, SimDeviceMap
from drivers.sim.model import Brewhouse

with without_aiohttp():  # pymodbus's HTTP simulator, never used here, would load aiohttp (0.3 s of start-up)
    from pymodbus.server import ModbusSerialServer, ModbusTcpServer

TABLE_OF_FC = {1: "coil", 5: "coil", 15: "coil", 2: "discrete", 3: "holding", 6: "holding", 16: "holding",
               23: "holding", 4: "input"}
WRITE_FCS = (5, 6, 15, 16, 23)
REQUEST_LOG_KEPT = 5000  # the latest requests the simulator remembers (minutes of polling at normal rates)
_UNUSED = 0xFFF0  # pymodbus needs every table defined; devices without a table get one unused entry


class _FaultyCore(SimCore):
    """SimCore that stays silent for offline or unknown unit ids, as a dead RS-485 slave does."""

    def __init__(self, devices: list[SimDevice], offline: Callable[[int], bool]) -> None:
        super().__init__(devices)
        self._offline = offline

    def _check(self, device_id: int) -> None:
        if device_id not in self.devices or self._offline(device_id):
            raise NoSuchIdException(f"no answer from unit {device_id}")

    async def async_getValues(self, device_id: int, func_code: int, address: int, count: int = 1) -> Any:  # noqa: N802
        self._check(device_id)
        return await super().async_getValues(device_id, func_code, address, count)

    async def async_setValues(self, device_id: int, func_code: int, address: int, values: Any) -> Any:  # noqa: N802
        self._check(device_id)
        return await super().async_setValues(device_id, func_code, address, values)


class SimModbusServer:
    """One pymodbus server (TCP listener or RTU serial line) for a set of simulated devices."""

    def __init__(self, model: Brewhouse, devices: list[SimDeviceMap], faults: Callable[[str], Faults],
                 seen: Callable[[str], None] | None = None) -> None:
        self.model = model
        self.devices = {d.unit_id: d for d in devices}
        self.faults = faults
        self.seen = seen or (lambda name: None)
        self.requests: Counter[tuple[str, int]] = Counter()
        # (device, fc, address, count) of the latest requests, for tests and diagnosis; bounded, because the
        # simulator polled at its normal rates for two hours would otherwise keep ~1.4 MB every 12 minutes
        self.request_log: deque[tuple[str, int, int, int]] = deque(maxlen=REQUEST_LOG_KEPT)
        self.server: ModbusTcpServer | ModbusSerialServer | None = None
        self.port: int | None = None

    # -- building --------------------------------------------------------------------------

    def _simdevice(self, device: SimDeviceMap) -> SimDevice:
        tables: list[list[SimData]] = []
        for table in ("coil", "discrete", "holding", "input"):
            entries: list[SimData] = []
            for reg in device.table(table):
                if table in ("coil", "discrete"):
                    entries.append(SimData(reg.address, values=[False], datatype=DataType.BITS))
                else:
                    entries.append(SimData(reg.address, values=0, datatype=DataType.REGISTERS,
                                           readonly=reg.write is None))
            for first, last in device.spare.get(table, []):
                entries.append(SimData(first, count=last - first + 1, values=0, datatype=DataType.REGISTERS,
                                       readonly=True))
            if not entries:
                kind = DataType.BITS if table in ("coil", "discrete") else DataType.REGISTERS
                entries.append(SimData(_UNUSED, values=[False] if kind is DataType.BITS else 0, datatype=kind))
            tables.append(entries)
        return SimDevice(device.unit_id, simdata=(tables[0], tables[1], tables[2], tables[3]),
                         action=partial(self._action, device))

    def _simdevices(self) -> list[SimDevice]:
        return [self._simdevice(d) for d in self.devices.values()]

    def _offline(self, unit_id: int) -> bool:
        device = self.devices.get(unit_id)
        return device is None or self.faults(device.name).offline

    def _trace(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            device = self.devices.get(pdu.dev_id)
            name = device.name if device else f"unit{pdu.dev_id}"
            self.requests[(name, pdu.function_code)] += 1
            self.request_log.append((name, pdu.function_code, getattr(pdu, "address", 0), getattr(pdu, "count", 0)))
        return pdu

    async def start_tcp(self, host: str, port: int) -> int:
        self.server = ModbusTcpServer(self._simdevices(), address=(host, port), ignore_missing_devices=True,
                                      trace_pdu=self._trace)
        self.server.context = _FaultyCore(self._simdevices(), self._offline)
        await self.server.serve_forever(background=True)
        sockets = self.server.transport.sockets  # type: ignore[union-attr]
        self.port = sockets[0].getsockname()[1]
        return self.port

    async def start_rtu(self, path: str, baudrate: int = 19200) -> None:
        self.server = ModbusSerialServer(self._simdevices(), framer=FramerType.RTU, port=path, baudrate=baudrate,
                                         ignore_missing_devices=True, trace_pdu=self._trace, reconnect_delay=0.2)
        self.server.context = _FaultyCore(self._simdevices(), self._offline)
        await self.server.serve_forever(background=True)

    async def stop(self) -> None:
        if self.server is not None:
            with contextlib.suppress(Exception):
                await self.server.shutdown()
            self.server = None

    def requests_for(self, device: str, *function_codes: int) -> int:
        return sum(n for (name, fc), n in self.requests.items()
                   if name == device and (not function_codes or fc in function_codes))

    # -- answering -------------------------------------------------------------------------

    async def _action(self, device: SimDeviceMap, func_code: int, start_address: int, address: int, count: int,
                      registers: list[int], set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        faults = self.faults(device.name)
        if faults.delay_s:
            await asyncio.sleep(faults.delay_s)
        if faults.exception_code is not None:
            return ExcCodes(faults.exception_code)
        self.seen(device.name)
        table = TABLE_OF_FC.get(func_code, "holding")
        if set_values is not None and func_code in WRITE_FCS:
            if faults.write_delay_s:
                await asyncio.sleep(faults.write_delay_s)
            if faults.reject_writes:
                return ExcCodes(faults.write_exception_code)
            if not faults.ignore_writes:
                self._apply(device, table, address, set_values)
        self._refresh(device, table, start_address, registers)
        return None

    def _apply(self, device: SimDeviceMap, table: str, address: int, values: list[int] | list[bool]) -> None:
        by_address: dict[int, Register] = {r.address: r for r in device.table(table)}
        for i, value in enumerate(values):
            reg = by_address.get(address + i)
            if reg is not None and reg.write is not None:
                reg.write(self.model, value)

    def _refresh(self, device: SimDeviceMap, table: str, start_address: int, registers: list[int]) -> None:
        """Copy the model into the table's registers (packed 16 bits per word on bit tables)."""
        for reg in device.table(table):
            value = reg.read(self.model)
            if table in ("coil", "discrete"):
                index, bit = reg.address // 16 - start_address, reg.address % 16
                if 0 <= index < len(registers):
                    registers[index] = (registers[index] | (1 << bit)) if value else (registers[index] & ~(1 << bit))
            else:
                index = reg.address - start_address
                if 0 <= index < len(registers):
                    registers[index] = int(value) & 0xFFFF
