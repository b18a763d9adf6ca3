"""The modbus driver against real pymodbus servers on 127.0.0.1 (TCP) and on pty pairs (RTU)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bevforge.devices import DeviceError
from bevforge.domain import Quality
from drivers.modbus import LinePool, ModbusDriver
from drivers.sim.faults import Faults
from drivers.sim.pty import PtyBridge
from tests.support.fieldbus import Recorder, endpoint, memory_device, modbus_device, server_for
from tests.support.server import wait_for

TYPES = [("int16", "big", -1234), ("uint16", "big", 54321), ("int32", "big", -123456789),
         ("int32", "little", -123456789), ("uint32", "big", 4000000000), ("uint32", "little", 4000000000),
         ("float32", "big", 65.25), ("float32", "little", -0.5)]


@pytest.fixture
async def memory_server() -> AsyncIterator[tuple]:
    dev_a, store_a = memory_device("a", 1)
    dev_b, store_b = memory_device("b", 2)
    server, faults = server_for([dev_a, dev_b])
    port = await server.start_tcp("127.0.0.1", 0)
    try:
        yield server, faults, port, store_a, store_b
    finally:
        await server.stop()


async def running(driver: ModbusDriver) -> ModbusDriver:
    await driver.start()
    return driver


async def test_every_data_type_and_word_order_round_trips(memory_server: tuple) -> None:
    server, _, port, store, _ = memory_server
    device = modbus_device("a", 1, host="127.0.0.1", port=port)
    eps = [endpoint(100 + i, "a", {"address": 2 * i, "type": kind, "word_order": order},
                    data_type="float" if kind == "float32" else "int", writable=True)
           for i, (kind, order, _) in enumerate(TYPES)]
    eps.append(endpoint(120, "a", {"address": 20, "type": "int16", "scale": 0.1, "offset": -40}, writable=True))
    eps.append(endpoint(121, "a", {"table": "coil", "address": 3}, data_type="bool", writable=True))
    rec = Recorder()
    driver = await running(ModbusDriver(device, eps, rec, LinePool()))
    try:
        await wait_for(lambda: rec.online)
        values = [v for _, _, v in TYPES] + [25.3, True]
        for ep, value in zip(eps, values, strict=True):
            await driver.write(ep, value)
            await driver.refresh(ep)
            assert rec.latest(ep.id).value == value, ep.address
        # word order on the wire: big puts the high word first
        assert (store[("holding", 4)], store[("holding", 5)]) == (0xF8A4, 0x32EB)  # int32 big
        assert (store[("holding", 6)], store[("holding", 7)]) == (0x32EB, 0xF8A4)  # int32 little
        assert store[("holding", 20)] == 653 and store[("coil", 3)] is True
        assert server.requests_for("a", 5) == 1 and server.requests_for("a", 6) == 3  # 16-bit: FC06
        assert server.requests_for("a", 16) == 6
    finally:
        await driver.stop()


async def test_swapped_byte_orders_read_and_write_as_the_device_stores_them(memory_server: tuple) -> None:
    """A meter storing float 1.5 byte-swapped (BADC: C0 3F 00 00) and a counter in DCBA read right."""
    _, _, port, store, _ = memory_server
    store[("holding", 10)], store[("holding", 11)] = 0xC03F, 0x0000  # float32 1.5, BADC
    store[("holding", 12)], store[("holding", 13)] = 0x0403, 0x0201  # int32 0x01020304, DCBA
    device = modbus_device("a", 1, host="127.0.0.1", port=port)
    meter = endpoint(1, "a", {"address": 10, "type": "float32", "byte_order": "BADC"}, writable=True)
    counter = endpoint(2, "a", {"address": 12, "type": "int32", "byte_order": "DCBA"}, data_type="int",
                       writable=True)
    rec = Recorder()
    driver = await running(ModbusDriver(device, [meter, counter], rec, LinePool()))
    try:
        await wait_for(lambda: rec.count(1) >= 1 and rec.count(2) >= 1)
        assert rec.latest(1).value == 1.5 and rec.latest(2).value == 0x01020304
        await driver.write(meter, -2.0)  # 0xC0000000 → BADC puts 00 C0 00 00 on the wire
        await driver.write(counter, 0x0A0B0C0D)
        assert (store[("holding", 10)], store[("holding", 11)]) == (0x00C0, 0x0000)
        assert (store[("holding", 12)], store[("holding", 13)]) == (0x0D0C, 0x0B0A)
    finally:
        await driver.stop()


async def test_block_reads_cover_exactly_the_configured_registers(memory_server: tuple) -> None:
    server, _, port, _, _ = memory_server
    device = modbus_device("a", 1, host="127.0.0.1", port=port, max_block=16, max_gap=4)
    eps = [endpoint(1, "a", {"address": 0}), endpoint(2, "a", {"address": 1}),
           endpoint(3, "a", {"address": 2, "type": "int32"}, data_type="int"), endpoint(4, "a", {"address": 6}),
           endpoint(5, "a", {"address": 24}), endpoint(6, "a", {"table": "coil", "address": 0}, data_type="bool"),
           endpoint(7, "a", {"table": "coil", "address": 5}, data_type="bool")]
    rec = Recorder()
    driver = await running(ModbusDriver(device, eps, rec, LinePool()))
    try:
        await wait_for(lambda: all(rec.count(e.id) >= 5 for e in eps))
    finally:
        await driver.stop()
    reads = [(fc, address, count) for name, fc, address, count in server.request_log if name == "a"]
    assert set(reads) == {(3, 0, 7), (3, 24, 1), (1, 0, 6)}
    cycles = min(rec.count(e.id) for e in eps)
    assert len(reads) <= 3 * (cycles + 1)  # three transactions per cycle, not one per point
    assert all(r.quality is Quality.GOOD for r in rec.received)


async def test_silent_device_goes_offline_and_recovers_by_itself(memory_server: tuple) -> None:
    _, faults, port, _, _ = memory_server
    device = modbus_device("a", 1, host="127.0.0.1", port=port, timeout_s=0.1, offline_after=2, reprobe_s=0.05,
                           reprobe_max_s=0.2)
    ep = endpoint(1, "a", {"address": 0}, writable=True)
    rec = Recorder()
    driver = await running(ModbusDriver(device, [ep], rec, LinePool()))
    try:
        await wait_for(lambda: rec.online is True)
        faults["a"] = Faults(offline=True)
        await wait_for(lambda: rec.online is False)
        assert "timeout" in rec.comms_events[-1][1]
        with pytest.raises(DeviceError, match="offline"):
            await driver.write(ep, 1.0)
        faults["a"].offline = False
        before = rec.count(1)
        await wait_for(lambda: rec.online is True and rec.count(1) > before + 2)
        assert rec.latest(1).quality is Quality.GOOD
    finally:
        await driver.stop()


async def test_wrong_device_id_is_a_silent_device(memory_server: tuple) -> None:
    _, _, port, _, _ = memory_server
    device = modbus_device("ghost", 9, host="127.0.0.1", port=port, timeout_s=0.1, offline_after=2)
    rec = Recorder()
    driver = await running(ModbusDriver(device, [endpoint(1, "ghost", {"address": 0})], rec, LinePool()))
    try:
        await wait_for(lambda: rec.online is False)
        assert rec.count(1) == 0
    finally:
        await driver.stop()


async def test_dead_tcp_device_does_not_delay_another(memory_server: tuple) -> None:
    _, faults, port, _, _ = memory_server
    pool = LinePool()
    dead, live = Recorder(), Recorder()
    faults["a"] = Faults(offline=True)
    a = ModbusDriver(modbus_device("a", 1, host="127.0.0.1", port=port, timeout_s=0.5, retries=1, offline_after=2),
                     [endpoint(1, "a", {"address": 0})], dead, pool)
    b = ModbusDriver(modbus_device("b", 2, host="127.0.0.1", port=port, timeout_s=0.5),
                     [endpoint(2, "b", {"address": 0}, poll_interval_s=0.02)], live, pool)
    await a.start()
    await b.start()
    try:
        await wait_for(lambda: dead.online is False, timeout=10)
        # device a spent 4 timeouts (2 s) failing; b, polling every 20 ms on its own connection,
        # kept reading all along. Sharing a's connection it could have read at most ~4 times.
        assert live.count(2) >= 20
        assert a.line is not b.line
    finally:
        await a.stop()
        await b.stop()


async def test_rtu_line_with_a_dead_device_still_polls_the_others(tmp_path: Path) -> None:
    devices = [memory_device(f"u{unit}", unit)[0] for unit in (1, 2, 3)]
    server, faults = server_for(devices)
    bridge = PtyBridge(tmp_path / "ttyRS485", tmp_path / "ttyRS485.sim")
    bridge.open()
    await server.start_rtu(str(bridge.b.link))
    faults["u2"] = Faults(offline=True)
    pool = LinePool()
    recs = {unit: Recorder() for unit in (1, 2, 3)}
    line = {"transport": "rtu", "serial_port": str(bridge.a.link), "baudrate": 19200, "timeout_s": 0.15,
            "retries": 0, "offline_after": 2, "reprobe_s": 0.3, "reprobe_max_s": 0.6}
    drivers = [ModbusDriver(modbus_device(f"u{u}", u, **line), [endpoint(u, f"u{u}", {"address": 0},
                                                                        poll_interval_s=0.05)], recs[u], pool)
               for u in (1, 2, 3)]
    for d in drivers:
        await d.start()
    try:
        await wait_for(lambda: recs[2].online is False and recs[1].online and recs[3].online, timeout=10)
        assert drivers[0].line is drivers[1].line is drivers[2].line  # one line, one client, one lock
        dead_before = server.requests_for("u2")
        live_before = recs[1].count(1), recs[3].count(3)
        await wait_for(lambda: recs[1].count(1) >= live_before[0] + 30 and recs[3].count(3) >= live_before[1] + 30,
                       timeout=20)
        # while the others were read 30 times each, the dead unit only got its occasional re-probe
        assert server.requests_for("u2") - dead_before <= 6
    finally:
        for d in drivers:
            await d.stop()
        await server.stop()
        bridge.close()


async def test_exception_codes_are_classified_at_the_wire(memory_server: tuple) -> None:
    server, faults, port, _, _ = memory_server
    settings = {"host": "127.0.0.1", "port": port, "timeout_s": 0.2, "retries": 2, "offline_after": 2,
                "busy_backoff_s": 0.01}
    rec = Recorder()
    ep = endpoint(1, "a", {"address": 0}, writable=True, poll_interval_s=0.05)
    driver = await running(ModbusDriver(modbus_device("a", 1, **settings), [ep], rec, LinePool()))
    try:
        await wait_for(lambda: rec.online is True)
        # 02 illegal address: a configuration error — not retried, value BAD, device stays online
        faults["a"] = Faults(exception_code=2)
        start = server.requests_for("a", 3)
        await wait_for(lambda: sum(1 for r in rec.readings_of(1) if r.quality is Quality.BAD) >= 3)
        bad = [r for r in rec.readings_of(1) if r.quality is Quality.BAD]
        assert "exception 02" in bad[0].error and "config" in bad[0].error
        assert server.requests_for("a", 3) - start <= len(bad) + 1  # one request per poll: no retries
        assert rec.online is True
        # 06 busy: retried with backoff (1 + retries requests per poll), still online
        faults["a"] = Faults(exception_code=6)
        start = server.requests_for("a", 3)
        await wait_for(lambda: server.requests_for("a", 3) - start >= 9)
        assert rec.online is True
        # 04 device failure: counts toward offline
        faults["a"] = Faults(exception_code=4)
        await wait_for(lambda: rec.online is False)
        assert "exception 04" in rec.comms_events[-1][1]
        faults["a"] = Faults(reject_writes="refuse", write_exception_code=3)
        await wait_for(lambda: rec.online is True)
        with pytest.raises(DeviceError, match="exception 03") as refused:
            await driver.write(ep, 5.0)
        assert refused.value.code == "exception_03" and not refused.value.retryable
        assert server.requests_for("a", 6) == 1  # writes are never retried
    finally:
        await driver.stop()


async def test_device_refusing_a_bridged_block_is_read_in_parts() -> None:
    sparse, store = memory_device("s", 1, holding=(0, 3))  # 1-2 do not exist: reading them answers 02
    server, _ = server_for([sparse])
    port = await server.start_tcp("127.0.0.1", 0)
    store[("holding", 3)] = 33
    rec = Recorder()
    eps = [endpoint(1, "s", {"address": 0}), endpoint(2, "s", {"address": 3})]
    driver = await running(ModbusDriver(modbus_device("s", 1, host="127.0.0.1", port=port, max_gap=4), eps, rec,
                                        LinePool()))
    try:
        await wait_for(lambda: rec.latest(2) is not None and rec.latest(2).quality is Quality.GOOD)
        assert rec.latest(2).value == 33
        assert {(a, c) for _, fc, a, c in server.request_log if fc == 3} == {(0, 4), (0, 1), (3, 1)}
    finally:
        await driver.stop()
        await server.stop()


async def test_several_devices_on_one_serial_line_must_agree_on_its_settings(tmp_path: Path) -> None:
    pool = LinePool()
    line = {"transport": "rtu", "serial_port": str(tmp_path / "tty")}
    ModbusDriver(modbus_device("x", 1, **line), [endpoint(1, "x", {"address": 0})], Recorder(), pool)
    with pytest.raises(ValueError, match=r"device y: settings\.baudrate: differs"):
        ModbusDriver(modbus_device("y", 2, baudrate=19200, **line), [endpoint(2, "y", {"address": 0})],
                     Recorder(), pool)
    await asyncio.sleep(0)


async def test_late_answers_are_timeouts_and_a_slow_device_recovers(memory_server: tuple) -> None:
    _, faults, port, _, _ = memory_server
    rec = Recorder()
    device = modbus_device("a", 1, host="127.0.0.1", port=port, timeout_s=0.1, retries=0, offline_after=2,
                           reprobe_s=0.05, reprobe_max_s=0.1)
    driver = await running(ModbusDriver(device, [endpoint(1, "a", {"address": 0})], rec, LinePool()))
    try:
        await wait_for(lambda: rec.online is True)
        faults["a"] = Faults(delay_s=0.3)  # answers arrive after the 100 ms the device is allowed
        await wait_for(lambda: rec.online is False)
        assert "timeout" in rec.comms_events[-1][1]
        faults["a"] = Faults()
        count = rec.count(1)
        await wait_for(lambda: rec.online is True and rec.count(1) > count + 3)
        assert rec.latest(1).quality is Quality.GOOD
    finally:
        await driver.stop()


async def test_stopping_sends_an_answering_device_one_last_read(memory_server: tuple) -> None:
    """Its comms watchdog counts from the stop, not from the last poll up to an interval before
    (a restart: bench/restart.py). Polled every 30 s here, so only the stop can send that read."""
    server, _, port, _, _ = memory_server
    device = modbus_device("a", 1, host="127.0.0.1", port=port)
    rec = Recorder()
    driver = await running(ModbusDriver(device, [endpoint(100, "a", {"address": 0}, poll_interval_s=30)], rec,
                                        LinePool()))
    try:
        await wait_for(lambda: rec.online)
        polled = server.requests_for("a", 3)
    finally:
        await driver.stop()
    assert server.requests_for("a", 3) == polled + 1
    assert rec.comms_events == [(True, None)]  # the last read told the plant nothing
