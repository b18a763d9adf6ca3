"""Registers ↔ brewery values: data types, byte order, scale/offset, bits and on/off words.

pymodbus does the byte packing (`convert_from_registers` / `convert_to_registers`) and the word
swap (its `word_order`); this module adds what a brewery config needs on top: the byte swap inside
each register that some meters and drives use (BADC, DCBA), engineering scaling, a bit inside a
status word, and a bool written as a command word (a Delta VFD runs on 0x0002 and stops on 0x0001).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pymodbus.client.mixin import ModbusClientMixin

from bevforge.domain import DataType, Value
from drivers.modbus.settings import BIT_TABLES, ByteOrder, PointAddress

_TYPES = {
    "int16": ModbusClientMixin.DATATYPE.INT16,
    "uint16": ModbusClientMixin.DATATYPE.UINT16,
    "int32": ModbusClientMixin.DATATYPE.INT32,
    "uint32": ModbusClientMixin.DATATYPE.UINT32,
    "float32": ModbusClientMixin.DATATYPE.FLOAT32,
}
# layout → (pymodbus word_order, swap the two bytes of each register?)
_LAYOUTS: dict[ByteOrder, tuple[Literal["big", "little"], bool]] = {
    "ABCD": ("big", False), "CDAB": ("little", False), "BADC": ("big", True), "DCBA": ("little", True)}
_LIMITS = {"int16": (-(2**15), 2**15 - 1), "uint16": (0, 2**16 - 1),
           "int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1)}


class EncodeError(ValueError):
    """The value cannot be represented in the point's register type."""


@dataclass(frozen=True)
class Write:
    """One write request: coil → FC05, one register → FC06, several → FC16."""

    table: str
    address: int
    coil: bool | None = None
    registers: tuple[int, ...] = ()

    @property
    def function_code(self) -> int:
        if self.coil is not None:
            return 5
        return 6 if len(self.registers) == 1 else 16


def _swap_bytes(registers: Sequence[int]) -> list[int]:
    """0xAABB → 0xBBAA in every register: pymodbus has no byte-swap option, and the swap is its own inverse."""
    return [((r & 0xFF) << 8) | ((r >> 8) & 0xFF) for r in registers]


def decode(point: PointAddress, raw: Sequence[int] | Sequence[bool], data_type: DataType) -> Value:
    """Turn the point's slice of a block (bits or registers) into the endpoint's value."""
    if point.table in BIT_TABLES:
        return bool(raw[0])
    if point.bit is not None:
        return bool((int(raw[0]) >> point.bit) & 1)
    if point.on_value is not None:
        return int(raw[0]) == point.on_value
    kind = point.register_type
    if kind == "bool":
        return int(raw[0]) != 0
    word_order, swap = _LAYOUTS[point.layout]
    registers = _swap_bytes(raw) if swap else list(raw)  # type: ignore[arg-type]
    number = ModbusClientMixin.convert_from_registers(registers, _TYPES[kind], word_order=word_order)
    assert isinstance(number, int | float)
    value = number * point.scale + point.offset if (point.scale != 1 or point.offset) else number
    if data_type is DataType.BOOL:
        return value != 0
    if data_type is DataType.INT:
        return round(value)
    if kind == "float32":
        return float(value)
    # a scaled integer register carries a fixed number of decimals: 653 × 0.1 → 65.3, not 65.30000000000001
    decimals = max(0, -math.floor(math.log10(abs(point.scale)))) + 3 if point.scale else 0
    return round(float(value), decimals)


def encode(point: PointAddress, value: Value) -> Write:
    """The write that puts `value` into the point (scale applied inversely)."""
    if point.table in BIT_TABLES:
        return Write(point.table, point.address, coil=bool(value))
    if point.on_value is not None and point.off_value is not None:
        return Write(point.table, point.address, registers=(point.on_value if value else point.off_value,))
    kind = point.register_type
    if kind == "bool":
        return Write(point.table, point.address, registers=(1 if value else 0,))
    raw: float = (float(value) - point.offset) / point.scale
    if kind == "float32":
        number: int | float = raw
    else:
        number = round(raw)
        low, high = _LIMITS[kind]
        if not low <= number <= high:
            raise EncodeError(f"{value} does not fit a {kind} register (raw {number})")
    word_order, swap = _LAYOUTS[point.layout]
    registers = ModbusClientMixin.convert_to_registers(number, _TYPES[kind], word_order=word_order)
    if swap:
        registers = _swap_bytes(registers)
    return Write(point.table, point.address, registers=tuple(registers))
