"""Register maps of the simulated field devices, modelled on the real ones a brewhouse uses.

- Delta DT-style temperature controller (HLT unit 1, BK unit 2): PV 0x1000, SV 0x1001 (0.1 °C,
  FC03 read / FC06 write), RUN/STOP coil 0x0814 (heater output enabled), output-1 state as
  discrete input 0x0000. Its PV is its own probe, with the probe's lag (`drivers/sim/model.py`).
- Delta-style VFD (one per pump): command word 0x2000 (0x0002 run, 0x0001 stop), frequency
  command 0x2001 (0.01 Hz; 50 Hz = 100 % pump speed), fault code 0x2100, output frequency 0x2103,
  output current 0x2104 (0.01 A), status word 0x2119 (bits 0-1: 11 running, 00 stopped).
- Brewhouse I/O module (unit 5): relays as coils — 0 V1, 1 V2, 2 the mash tun's RIMS/HERMS
  element SSR, 3 the kettle element SSR (on = full power; no controller of their own: the panel
  time-proportions them); level switches as discrete inputs 0 HLT, 1 BK, 2 MLT; vessel volumes as
  input registers 0–2 (0.1 L, uint16) and the mash temperature probe (lagged; float32, big word
  order) as input registers 16–17.
- Cellar I/O module (unit 6): coils 0 FV1 glycol valve, 1 FV2 glycol valve, 2 FV1 heating pad,
  3 FV2 heating pad; input registers 0 FV1 probe, 1 FV2 probe, 2 glycol supply temperature
  (int16, 0.01 °C: 18.25 °C reads 1825, −2 °C reads 0xFF38).
- Fermenter probe on a serial line: `T1?` → `T1=18.25` (the same lagged probes as the cellar
  module's input registers).

Each device lists the outputs (`Brewhouse.outputs_to_safe_state` points) its comms watchdog puts
in their safe state (off) when nobody has polled it for `simulator.watchdog_s`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from drivers.sim.model import Brewhouse

Reader = Callable[[Brewhouse], int | bool]
Writer = Callable[[Brewhouse, int | bool], None]

VFD_RUN, VFD_STOP = 0x0002, 0x0001
HZ_PER_PERCENT = 0.5  # 100 % speed = 50.00 Hz
FAULT_COMMS_TIMEOUT = 54  # Delta "CE10": Modbus transmission time-out, what 09-03 trips with


@dataclass(frozen=True)
class Register:
    """One 16-bit register (or one bit, on coil/discrete tables) and how it maps to the model."""

    table: str
    address: int
    read: Reader
    write: Writer | None = None


@dataclass
class SimDeviceMap:
    name: str  # the device id the default config.yaml uses for it
    unit_id: int
    registers: list[Register]
    things: set[str] = field(default_factory=set)  # what its watchdog sends to the safe state
    spare: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # readable unused ranges

    def table(self, name: str) -> list[Register]:
        return [r for r in self.registers if r.table == name]


def _int16(value: float) -> int:
    return round(value) & 0xFFFF


def _tenths(point: str) -> Reader:
    return lambda m: _int16(float(m.read(point)) * 10)


def _hundredths(point: str) -> Reader:
    return lambda m: _int16(float(m.read(point)) * 100)


def _coil(address: int, point: str) -> Register:
    """A coil read from and written to one boolean point of the model (a relay or SSR output)."""
    return Register("coil", address, lambda m: bool(m.read(point)), lambda m, v: m.write(point, bool(v)))


def _float32_words(point: str) -> tuple[Reader, Reader]:
    def word(index: int) -> Reader:
        return lambda m: struct.unpack(">HH", struct.pack(">f", float(m.read(point))))[index]
    return word(0), word(1)


def temperature_controller(name: str, unit_id: int, vessel: str) -> SimDeviceMap:
    def set_sv(m: Brewhouse, raw: int | bool) -> None:
        m.write(f"{vessel}.setpoint", (int(raw) - 0x10000 if int(raw) >= 0x8000 else int(raw)) / 10)

    return SimDeviceMap(name, unit_id, [
        Register("holding", 0x1000, _tenths(f"{vessel}.temperature")),
        Register("holding", 0x1001, _tenths(f"{vessel}.setpoint"), set_sv),
        Register("coil", 0x0814, lambda m: bool(m.read(f"{vessel}.heater")),
                 lambda m, v: m.write(f"{vessel}.heater", bool(v))),
        Register("discrete", 0x0000, lambda m: bool(m.read(f"{vessel}.heater_firing"))),
    ], things={f"{vessel}.heater"}, spare={"holding": [(0x1002, 0x100F)]})


def vfd(name: str, unit_id: int, pump: str, faults: dict[str, int]) -> SimDeviceMap:
    def command(m: Brewhouse, raw: int | bool) -> None:
        action = int(raw) & 0x3
        if action in (0x2, 0x3):
            faults[pump] = 0  # a run command clears a comms-timeout trip, as a reset would
            m.write(f"{pump}.running", True)
        elif action == 0x1:
            m.write(f"{pump}.running", False)

    def running(m: Brewhouse) -> bool:
        return bool(m.read(f"{pump}.running"))

    def speed_raw(m: Brewhouse) -> int:
        return round(float(m.read(f"{pump}.speed")) * HZ_PER_PERCENT * 100)

    return SimDeviceMap(name, unit_id, [
        Register("holding", 0x2000, lambda m: VFD_RUN if running(m) else VFD_STOP, command),
        Register("holding", 0x2001, speed_raw, lambda m, v: m.write(f"{pump}.speed", int(v) / 100 / HZ_PER_PERCENT)),
        Register("holding", 0x2100, lambda m: faults.get(pump, 0)),
        Register("holding", 0x2103, lambda m: speed_raw(m) if running(m) else 0),
        Register("holding", 0x2104, lambda m: round(float(m.read(f"{pump}.speed")) * 3.2) if running(m) else 0),
        Register("holding", 0x2119, lambda m: 0b11 if running(m) else 0b00),
    ], things={f"{pump}.running"}, spare={"holding": [(0x2002, 0x2002), (0x2101, 0x2102), (0x2105, 0x2118)]})


def brewhouse_io(name: str, unit_id: int) -> SimDeviceMap:
    mash_hi, mash_lo = _float32_words("mlt.temperature")
    return SimDeviceMap(name, unit_id, [
        _coil(0, "v1.open"),
        _coil(1, "v2.open"),
        _coil(2, "mlt.element"),  # RIMS/HERMS element SSR
        _coil(3, "bk.element"),  # kettle element SSR
        Register("discrete", 0, lambda m: bool(m.read("hlt.level_high"))),
        Register("discrete", 1, lambda m: bool(m.read("bk.level_high"))),
        Register("discrete", 2, lambda m: bool(m.read("mlt.level_high"))),
        Register("input", 0, lambda m: round(float(m.read("hlt.volume")) * 10)),
        Register("input", 1, lambda m: round(float(m.read("mlt.volume")) * 10)),
        Register("input", 2, lambda m: round(float(m.read("bk.volume")) * 10)),
        Register("input", 16, mash_hi),
        Register("input", 17, mash_lo),
    ], things={"v1.open", "v2.open", "mlt.element", "bk.element"}, spare={"input": [(3, 15)]})


def cellar_io(name: str, unit_id: int) -> SimDeviceMap:
    return SimDeviceMap(name, unit_id, [
        _coil(0, "fv1.glycol"),
        _coil(1, "fv2.glycol"),
        _coil(2, "fv1.heating_pad"),
        _coil(3, "fv2.heating_pad"),
        Register("input", 0, _hundredths("fv1.temperature")),
        Register("input", 1, _hundredths("fv2.temperature")),
        Register("input", 2, _hundredths("glycol.temperature")),
    ], things={"fv1.glycol", "fv2.glycol", "fv1.heating_pad", "fv2.heating_pad"})


def default_modbus_devices(vfd_faults: dict[str, int]) -> list[SimDeviceMap]:
    """The Modbus devices of the default brewhouse (names = device ids in config.yaml)."""
    return [
        temperature_controller("hlt_controller", 1, "hlt"),
        temperature_controller("bk_controller", 2, "bk"),
        vfd("pump1_vfd", 3, "pump1", vfd_faults),
        vfd("pump2_vfd", 4, "pump2", vfd_faults),
        brewhouse_io("brewhouse_io", 5),
        cellar_io("cellar_io", 6),
    ]


PROBE_CHANNELS = {"T1": "fv1.temperature", "T2": "fv2.temperature"}
"""The fermenter probe's channels: `T1?` answers `T1=<°C with 2 decimals>`."""
PROBE_DEVICE = "cellar_probe"
