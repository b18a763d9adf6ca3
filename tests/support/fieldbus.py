"""Helpers for driver tests: a recording DeviceLink and memory-backed simulated Modbus devices."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bevforge.config import Device, Endpoint
from bevforge.domain import Reading
from drivers.sim.faults import Faults
from drivers.sim.maps import Register, SimDeviceMap
from drivers.sim.modbus_server import SimModbusServer
from drivers.sim.model import Brewhouse


class Recorder:
    """A DeviceLink that remembers everything a driver reported."""

    def __init__(self) -> None:
        self.received: list[Reading] = []
        self.comms_events: list[tuple[bool, str | None]] = []

    def readings_of(self, endpoint_id: int) -> list[Reading]:
        return [r for r in self.received if r.endpoint_id == endpoint_id]

    def latest(self, endpoint_id: int) -> Reading | None:
        found = self.readings_of(endpoint_id)
        return found[-1] if found else None

    def count(self, endpoint_id: int) -> int:
        return len(self.readings_of(endpoint_id))

    @property
    def online(self) -> bool | None:
        return self.comms_events[-1][0] if self.comms_events else None

    def readings(self, readings: Sequence[Reading]) -> None:
        self.received.extend(readings)

    def comms(self, online: bool, error: str | None = None) -> None:
        self.comms_events.append((online, error))


def memory_device(name: str, unit_id: int, holding: Sequence[int] = range(32), coils: Sequence[int] = range(8),
                  inputs: Sequence[int] = (), discretes: Sequence[int] = ()) -> tuple[SimDeviceMap, dict[Any, Any]]:
    """A device whose registers are plain memory (`store[(table, address)]`); unlisted ones are invalid."""
    store: dict[tuple[str, int], int | bool] = {}

    def reg(table: str, address: int, writable: bool) -> Register:
        store[(table, address)] = False if table in ("coil", "discrete") else 0
        return Register(table, address, lambda m: store[(table, address)],
                        (lambda m, v: store.__setitem__((table, address), v)) if writable else None)

    registers = ([reg("holding", a, True) for a in holding] + [reg("coil", a, True) for a in coils]
                 + [reg("input", a, False) for a in inputs] + [reg("discrete", a, False) for a in discretes])
    return SimDeviceMap(name, unit_id, registers), store


def server_for(devices: list[SimDeviceMap]) -> tuple[SimModbusServer, dict[str, Faults]]:
    faults: dict[str, Faults] = {}
    return SimModbusServer(Brewhouse.default(), devices, lambda n: faults.setdefault(n, Faults())), faults


def modbus_device(device_id: str, unit_id: int, comms_timeout_s: float = 30.0, **settings: Any) -> Device:
    return Device(id=device_id, driver="modbus", comms_timeout_s=comms_timeout_s,
                  settings={"device_id": unit_id, **settings})


def endpoint(eid: int, device: str, address: dict[str, Any], data_type: str = "float", writable: bool = False,
             poll_interval_s: float = 0.05) -> Endpoint:
    return Endpoint(id=eid, name=f"p{eid}", node="N", device=device, kind="status", data_type=data_type,
                    writable=writable, poll_interval_s=poll_interval_s, address=address)
