"""Lines: one pymodbus client per wire, shared by the devices on it, one transaction at a time.

An RS-485 line (or the serial side of an RTU-over-TCP gateway) carries one request at a time; the
devices on it take turns through the line's lock, which asyncio grants in FIFO order, so a device
polling fast cannot starve its neighbours. Plain Modbus TCP devices get a line each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType

from bevforge.config import Device
from bevforge.devices import SettingsRefused
from drivers.modbus.codec import Write
from drivers.modbus.errors import Kind, ModbusFault, from_exception_code, from_io_error
from drivers.modbus.settings import ModbusDeviceSettings

log = logging.getLogger(__name__)
# pymodbus logs every timeout as an ERROR; the driver reports comms state itself (alarm + quality).
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

SERIAL_FIELDS = ("baudrate", "parity", "stopbits", "bytesize")
CLIENT_BACKSTOP_S = 11.0  # above the largest timeout a device may configure


class Line:
    """One client and its lock. `transactions` counts requests put on the wire (for benches)."""

    def __init__(self, settings: ModbusDeviceSettings) -> None:
        self.key = settings.line_key
        self.settings = settings
        self.lock = asyncio.Lock()
        self.users: set[str] = set()
        self.transactions = 0
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None

    @property
    def client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        """Made on first use: pymodbus clients belong to the running event loop (drivers are built before it)."""
        if self._client is None:
            self._client = self._make_client()
        return self._client

    def _make_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        s = self.settings
        # retries=0 and reconnect_delay=0: retry and reconnect policy belong to the driver, which
        # knows which failures are worth a retry and when a device should count as offline.
        # The client's own timeout is only a backstop: every call runs under the device's timeout.
        common: dict[str, Any] = {"timeout": CLIENT_BACKSTOP_S, "retries": 0, "reconnect_delay": 0}
        if s.transport == "rtu":
            assert s.serial_port is not None
            return AsyncModbusSerialClient(s.serial_port, framer=FramerType.RTU, baudrate=s.baudrate,
                                           parity=s.parity, stopbits=s.stopbits, bytesize=s.bytesize, **common)
        assert s.host is not None
        framer = FramerType.RTU if s.transport == "rtu_over_tcp" else FramerType.SOCKET
        return AsyncModbusTcpClient(s.host, port=s.port, framer=framer, **common)

    def describe(self) -> str:
        s = self.settings
        return str(s.serial_port) if s.transport == "rtu" else f"{s.host}:{s.port}"

    def check_compatible(self, device: Device, settings: ModbusDeviceSettings) -> None:
        if settings.transport == "rtu":
            for name in SERIAL_FIELDS:
                if getattr(settings, name) != getattr(self.settings, name):
                    raise SettingsRefused(device, f"settings.{name}", f"differs from the other devices "
                                          f"on {settings.serial_port} (one line, one {name})")

    def reset(self) -> None:
        """Drop the connection so the next transaction opens a fresh one (after an outage)."""
        if self._client is not None:
            self._client.close()

    async def read(self, device_id: int, table: str, start: int, count: int, timeout: float) -> list[Any]:
        c = self.client
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "holding": lambda: c.read_holding_registers(start, count=count, device_id=device_id),
            "input": lambda: c.read_input_registers(start, count=count, device_id=device_id),
            "coil": lambda: c.read_coils(start, count=count, device_id=device_id),
            "discrete": lambda: c.read_discrete_inputs(start, count=count, device_id=device_id),
        }
        response = await self._transact(calls[table], timeout)
        if table in ("coil", "discrete"):
            return list(response.bits[:count])
        registers = list(response.registers)
        if len(registers) != count:
            raise ModbusFault(Kind.PROTOCOL, f"protocol: asked for {count} registers, got {len(registers)}")
        return registers

    async def write(self, device_id: int, write: Write, timeout: float) -> None:
        c = self.client
        if write.coil is not None:
            coil = write.coil
            await self._transact(lambda: c.write_coil(write.address, coil, device_id=device_id), timeout)
        elif len(write.registers) == 1:
            value = write.registers[0]
            await self._transact(lambda: c.write_register(write.address, value, device_id=device_id), timeout)
        else:
            values = list(write.registers)
            await self._transact(lambda: c.write_registers(write.address, values, device_id=device_id), timeout)

    async def _transact(self, call: Callable[[], Awaitable[Any]], timeout: float) -> Any:
        async with self.lock:
            if not self.client.connected:
                try:
                    async with asyncio.timeout(timeout):
                        connected = await self.client.connect()
                except TimeoutError:
                    connected = False
                if not connected:
                    raise ModbusFault(Kind.CONNECTION, f"connection: cannot open {self.describe()}")
            self.transactions += 1
            try:
                async with asyncio.timeout(timeout):
                    response = await call()
            except TimeoutError:
                raise ModbusFault(Kind.TIMEOUT, f"timeout: no answer within {timeout:g} s") from None
            except (ModbusException, OSError) as exc:
                raise from_io_error(exc, timeout) from None
        if response.isError():
            code = getattr(response, "exception_code", None)
            if code is None:
                raise ModbusFault(Kind.PROTOCOL, f"protocol: error response {response}")
            raise from_exception_code(int(code), response.function_code & 0x7F)
        return response


class LinePool:
    """The lines of one app, found by their key, closed when their last device stops."""

    def __init__(self) -> None:
        self.lines: dict[tuple[Any, ...], Line] = {}

    def attach(self, device: Device, settings: ModbusDeviceSettings) -> Line:
        line = self.lines.get(settings.line_key)
        if line is None:
            line = self.lines[settings.line_key] = Line(settings)
        else:
            line.check_compatible(device, settings)
        line.users.add(device.id)
        return line

    def detach(self, device_id: str, line: Line) -> None:
        line.users.discard(device_id)
        if not line.users:
            line.reset()
            self.lines.pop(line.key, None)
