"""Pure parts of the Modbus driver: value codec, block planning, settings validation, classification."""

from __future__ import annotations

import pytest

from bevforge.config import Device, Endpoint
from bevforge.domain import DataType
from drivers.modbus.blocks import Slot, plan_blocks, split_unbridged
from drivers.modbus.codec import EncodeError, decode, encode
from drivers.modbus.errors import Kind, from_exception_code
from drivers.modbus.settings import PointAddress, device_settings, point_address


def point(**kw: object) -> PointAddress:
    return PointAddress.model_validate({"address": 0, **kw})


@pytest.mark.parametrize(("kind", "order", "value", "registers"), [
    ("int16", "big", -2, [0xFFFE]),
    ("uint16", "big", 65535, [0xFFFF]),
    ("int32", "big", -70000, [0xFFFE, 0xEE90]),
    ("int32", "little", -70000, [0xEE90, 0xFFFE]),
    ("uint32", "big", 0x12345678, [0x1234, 0x5678]),
    ("uint32", "little", 0x12345678, [0x5678, 0x1234]),
    ("float32", "big", 65.25, [0x4282, 0x8000]),
    ("float32", "little", 65.25, [0x8000, 0x4282]),
])
def test_register_layout_per_type_and_word_order(kind: str, order: str, value: float, registers: list[int]) -> None:
    p = point(type=kind, word_order=order)
    assert list(encode(p, value).registers) == registers
    data_type = DataType.FLOAT if kind == "float32" else DataType.INT
    assert decode(p, registers, data_type) == value


# bytes A B C D of the value, most significant first: int32 0x01020304 is 01 02 03 04, float 1.5 is 3F C0 00 00
@pytest.mark.parametrize(("layout", "int_registers", "float_registers"), [
    ("ABCD", [0x0102, 0x0304], [0x3FC0, 0x0000]),
    ("CDAB", [0x0304, 0x0102], [0x0000, 0x3FC0]),
    ("BADC", [0x0201, 0x0403], [0xC03F, 0x0000]),
    ("DCBA", [0x0403, 0x0201], [0x0000, 0xC03F]),
])
def test_each_32_bit_byte_order_puts_the_bytes_where_the_manual_says(
        layout: str, int_registers: list[int], float_registers: list[int]) -> None:
    for kind in ("int32", "uint32"):
        p = point(type=kind, byte_order=layout)
        assert list(encode(p, 0x01020304).registers) == int_registers
        assert decode(p, int_registers, DataType.INT) == 0x01020304
    p = point(type="float32", byte_order=layout)
    assert list(encode(p, 1.5).registers) == float_registers
    assert decode(p, float_registers, DataType.FLOAT) == 1.5


@pytest.mark.parametrize("layout", ["ABCD", "CDAB", "BADC", "DCBA"])
@pytest.mark.parametrize(("kind", "value"), [("int32", -123456789), ("uint32", 4000000000),
                                             ("float32", -0.15625), ("int32", -1)])
def test_every_byte_order_round_trips(layout: str, kind: str, value: float) -> None:
    p = point(type=kind, byte_order=layout, scale=1)
    data_type = DataType.FLOAT if kind == "float32" else DataType.INT
    assert decode(p, encode(p, value).registers, data_type) == value


def test_word_order_keeps_working_as_abcd_and_cdab() -> None:
    assert point(type="int32", word_order="big").layout == "ABCD"
    assert point(type="int32", word_order="little").layout == "CDAB"
    assert point(type="int32").layout == "ABCD"
    assert encode(point(type="int32", word_order="little"), 0x01020304).registers == \
        encode(point(type="int32", byte_order="CDAB"), 0x01020304).registers


def test_byte_order_is_refused_where_it_cannot_mean_anything() -> None:
    with pytest.raises(ValueError, match="byte_order or word_order, not both"):
        point(type="int32", byte_order="CDAB", word_order="little")
    with pytest.raises(ValueError, match="applies to 32-bit types"):
        point(type="int16", byte_order="BADC")
    with pytest.raises(ValueError, match="byte_order"):
        point(type="int32", byte_order="BACD")
    assert point(type="uint16", byte_order="ABCD").layout == "ABCD"  # the default spelt out is harmless


def test_scale_and_offset_apply_inversely_on_write() -> None:
    p = point(type="int16", scale=0.1, offset=-40)
    assert encode(p, 25.3).registers == (653,)
    assert decode(p, [653], DataType.FLOAT) == 25.3


def test_single_register_is_fc06_two_are_fc16_coil_is_fc05() -> None:
    assert encode(point(type="uint16"), 5).function_code == 6
    assert encode(point(type="float32"), 5.0).function_code == 16
    assert encode(point(table="coil"), True).function_code == 5


def test_value_outside_register_type_is_refused() -> None:
    with pytest.raises(EncodeError):
        encode(point(type="uint16"), -1)
    with pytest.raises(EncodeError):
        encode(point(type="int16", scale=0.1), 4000)


def test_bits_and_command_words() -> None:
    assert decode(point(bit=1), [0b10], DataType.BOOL) is True
    assert decode(point(bit=0), [0b10], DataType.BOOL) is False
    vfd = point(on_value=2, off_value=1)
    assert encode(vfd, True).registers == (2,) and encode(vfd, False).registers == (1,)
    assert decode(vfd, [2], DataType.BOOL) is True and decode(vfd, [1], DataType.BOOL) is False


def test_blocks_bridge_small_gaps_and_respect_max_block() -> None:
    slots = [Slot(1, "holding", 0, 1), Slot(2, "holding", 1, 2), Slot(3, "holding", 5, 1),
             Slot(4, "holding", 40, 1), Slot(5, "coil", 3, 1), Slot(6, "coil", 60, 1)]
    blocks = plan_blocks(slots, max_block=10, max_gap=2)
    assert [(b.table, b.start, b.count) for b in blocks] == [
        ("coil", 3, 1), ("coil", 60, 1), ("holding", 0, 6), ("holding", 40, 1)]
    assert [(b.start, b.count) for b in plan_blocks(slots[4:], max_block=10, max_gap=4)] == [(3, 58)]
    assert [(b.start, b.count) for b in plan_blocks(slots[:4], max_block=4, max_gap=2)] == [(0, 3), (5, 1), (40, 1)]
    bridged = plan_blocks(slots[:3], max_block=10, max_gap=2)[0]
    assert bridged.bridged
    assert [(b.start, b.count) for b in split_unbridged(bridged)] == [(0, 3), (5, 1)]


def test_settings_errors_name_the_device_and_field() -> None:
    with pytest.raises(ValueError, match=r"device d1: settings.timeout_s"):
        device_settings(Device(id="d1", driver="modbus", settings={"host": "x", "timeout_s": 0}))
    with pytest.raises(ValueError, match=r"device d1: settings.*needs serial_port"):
        device_settings(Device(id="d1", driver="modbus", settings={"transport": "rtu"}))
    with pytest.raises(ValueError, match=r"settings.baud: unknown key"):
        device_settings(Device(id="d1", driver="modbus", settings={"host": "x", "baud": 9600}))
    ep = Endpoint(id=1, name="pv", node="N", device="d1", kind="temperature", unit="°C", writable=True,
                  address={"table": "input", "address": 0})
    with pytest.raises(ValueError, match=r"endpoint pv: address.table: input is read-only"):
        point_address(ep)
    with pytest.raises(ValueError, match=r"endpoint pv: address.type"):
        point_address(ep.model_copy(update={"address": {"address": 0, "type": "int8"}}))


def test_exception_codes_are_classified() -> None:
    assert [from_exception_code(c, 3).kind for c in (1, 2, 3)] == [Kind.CONFIGURATION] * 3
    assert from_exception_code(4, 3).kind is Kind.DEVICE_FAILURE
    assert [from_exception_code(c, 3).kind for c in (5, 6)] == [Kind.BUSY] * 2
    assert not from_exception_code(2, 3).retryable and not from_exception_code(2, 3).counts_toward_offline
    assert from_exception_code(6, 3).retryable and not from_exception_code(6, 3).counts_toward_offline
    assert from_exception_code(4, 3).counts_toward_offline
