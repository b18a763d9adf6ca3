"""The protocol simulator in-process: device maps over TCP and RTU, and the comms watchdog."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient

from bevforge.config import SimulatorSettings
from drivers.modbus import LinePool, ModbusDriver
from drivers.sim import modbus_server
from drivers.sim.inprocess import SimulatedBrewhouse
from drivers.sim.maps import FAULT_COMMS_TIMEOUT, VFD_RUN
from drivers.sim.protocol import ProtocolSimulator
from tests.support.fieldbus import Recorder, endpoint, modbus_device
from tests.support.server import wait_for


@pytest.fixture
async def protocol(tmp_path: Path) -> AsyncIterator[ProtocolSimulator]:
    settings = SimulatorSettings(modbus_port=0, probe_link=str(tmp_path / "probe"), rtu_link=str(tmp_path / "rs485"),
                                 watchdog_s=0.3)
    sim = ProtocolSimulator(SimulatedBrewhouse(), settings)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


async def test_the_request_log_keeps_the_latest_requests_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A simulator polled for hours must not keep every request it ever answered (the 2-hour soak grew by it)."""
    monkeypatch.setattr(modbus_server, "REQUEST_LOG_KEPT", 50)
    settings = SimulatorSettings(modbus_port=0, probe_link=str(tmp_path / "probe"), rtu_link=str(tmp_path / "rs485"))
    sim = ProtocolSimulator(SimulatedBrewhouse(), settings)
    await sim.start()
    client = AsyncModbusTcpClient("127.0.0.1", port=sim.modbus_port, timeout=1, retries=0)
    await client.connect()
    try:
        for address in range(120):
            await client.read_holding_registers(0x1000, count=1 + address % 2, device_id=1)
        log = list(sim.tcp.request_log)
        assert len(log) == 50 and log[-1] == ("hlt_controller", 3, 0x1000, 2)  # the newest kept, the oldest gone
        assert sim.tcp.requests[("hlt_controller", 3)] == 120  # the counters still count every request
    finally:
        client.close()
        await sim.stop()


async def test_watchdog_stops_outputs_when_polling_stops(protocol: ProtocolSimulator) -> None:
    model = protocol.sim.model
    client = AsyncModbusTcpClient("127.0.0.1", port=protocol.modbus_port, timeout=1, retries=0)
    await client.connect()
    try:
        assert not (await client.write_coil(0x0814, True, device_id=1)).isError()  # HLT heater enabled
        assert not (await client.write_register(0x2000, VFD_RUN, device_id=3)).isError()  # pump 1 runs
        assert model.vessels["hlt"].heater_enabled and model.pumps["pump1"].running
    finally:
        client.close()
    await wait_for(lambda: {"hlt_controller", "pump1_vfd"} <= set(protocol.watchdog_trips))
    assert not model.vessels["hlt"].heater_enabled and not model.pumps["pump1"].running
    assert protocol.vfd_faults["pump1"] == FAULT_COMMS_TIMEOUT  # the drive shows why it stopped


async def test_same_devices_answer_on_the_rtu_line(protocol: ProtocolSimulator) -> None:
    rec = Recorder()
    device = modbus_device("hlt_controller", 1, transport="rtu", serial_port=protocol.settings.rtu_link,
                           baudrate=19200, timeout_s=0.3)
    ep = endpoint(10, "hlt_controller", {"address": 0x1000, "type": "int16", "scale": 0.1}, poll_interval_s=0.1)
    driver = ModbusDriver(device, [ep], rec, LinePool())
    await driver.start()
    try:
        await wait_for(lambda: rec.count(10) >= 2)
        assert rec.latest(10).value == pytest.approx(protocol.sim.model.vessels["hlt"].temperature_c, abs=0.05)
        assert protocol.rtu is not None and protocol.rtu.requests_for("hlt_controller", 3) >= 2
    finally:
        await driver.stop()
