"""The simulator's new control points over real Modbus TCP: SSR element coils, heating pads, lagged probes.

The model runs on a `ManualClock`, so a test moves simulated minutes in an instant while a real
pymodbus client (and the project's Modbus driver) talks to the simulated devices on loopback.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient

from bevforge.clock import ManualClock
from bevforge.config import SimulatorSettings
from drivers.modbus import LinePool, ModbusDriver
from drivers.sim.inprocess import SimulatedBrewhouse
from drivers.sim.protocol import ProtocolSimulator
from tests.support.fieldbus import Recorder, endpoint, modbus_device
from tests.support.server import wait_for

BREWHOUSE_IO, CELLAR_IO = 5, 6
MLT_ELEMENT, BK_ELEMENT = 2, 3  # brewhouse I/O coils
FV1_PAD, FV2_PAD = 2, 3  # cellar I/O coils


@pytest.fixture
async def protocol(tmp_path: Path) -> AsyncIterator[ProtocolSimulator]:
    settings = SimulatorSettings(modbus_port=0, probe_link=str(tmp_path / "probe"), watchdog_s=0.3)
    sim = ProtocolSimulator(SimulatedBrewhouse(clock=ManualClock()), settings)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
async def client(protocol: ProtocolSimulator) -> AsyncIterator[AsyncModbusTcpClient]:
    client = AsyncModbusTcpClient("127.0.0.1", port=protocol.modbus_port, timeout=1, retries=0)
    await client.connect()
    try:
        yield client
    finally:
        client.close()


def _clock(protocol: ProtocolSimulator) -> ManualClock:
    clock = protocol.clock
    assert isinstance(clock, ManualClock)
    return clock


async def _mash_probe(client: AsyncModbusTcpClient) -> float:
    words = (await client.read_input_registers(16, count=2, device_id=BREWHOUSE_IO)).registers
    return struct.unpack(">f", struct.pack(">HH", *words))[0]


async def test_rims_element_coil_heats_the_mash_and_the_probe_trails_it(protocol: ProtocolSimulator,
                                                                        client: AsyncModbusTcpClient) -> None:
    model, clock = protocol.sim.model, _clock(protocol)
    mlt = model.vessels["mlt"]
    model.add_liquid("mlt", 40, 60.0)
    mlt.temperature_c = mlt.liquid_c
    start = mlt.liquid_c
    assert not (await client.write_coil(MLT_ELEMENT, True, device_id=BREWHOUSE_IO)).isError()
    assert mlt.element_on is True
    assert (await client.read_coils(0, count=4, device_id=BREWHOUSE_IO)).bits[:4] == [False, False, True, False]
    await clock.advance(120)
    assert mlt.liquid_c - start == pytest.approx(11000 * 120 / mlt.heat_capacity_j_per_k, rel=0.05)
    reported = await _mash_probe(client)
    assert start < reported < mlt.liquid_c - 0.5  # the probe on the wire lags the liquid
    assert not (await client.write_coil(MLT_ELEMENT, False, device_id=BREWHOUSE_IO)).isError()
    assert mlt.element_on is False


async def test_kettle_element_coil_fires_the_kettle_without_its_controller(protocol: ProtocolSimulator,
                                                                           client: AsyncModbusTcpClient) -> None:
    model, clock = protocol.sim.model, _clock(protocol)
    bk = model.vessels["bk"]
    model.add_liquid("bk", 50, 20.0)
    assert not (await client.write_coil(BK_ELEMENT, True, device_id=BREWHOUSE_IO)).isError()
    assert bk.element_on and bk.element_firing and not bk.heater_enabled
    await clock.advance(60)
    assert bk.liquid_c > 21.0


async def test_heating_pads_and_cellar_probes_over_modbus(protocol: ProtocolSimulator,
                                                          client: AsyncModbusTcpClient) -> None:
    model, clock = protocol.sim.model, _clock(protocol)
    fv1, fv2 = model.fermenters["fv1"], model.fermenters["fv2"]
    assert not (await client.write_coil(FV1_PAD, True, device_id=CELLAR_IO)).isError()
    assert fv1.heating_pad_on is True and fv2.heating_pad_on is False
    assert (await client.read_coils(0, count=4, device_id=CELLAR_IO)).bits[:4] == [False, False, True, False]
    before = fv1.liquid_c
    await clock.advance(1800)
    assert fv1.liquid_c > before + 0.4  # 100 W + fermentation into 50 L for half an hour

    rec = Recorder()
    device = modbus_device("cellar_io", CELLAR_IO, host="127.0.0.1", port=protocol.modbus_port, timeout_s=0.5)
    eps = [endpoint(n + 1, "cellar_io", {"table": "input", "address": n, "type": "int16", "scale": 0.01},
                    poll_interval_s=0.05) for n in range(3)]
    driver = ModbusDriver(device, eps, rec, LinePool())
    await driver.start()
    try:
        await wait_for(lambda: all(rec.count(n) >= 1 for n in (1, 2, 3)))
        assert rec.latest(1).value == pytest.approx(fv1.probe.reading_c, abs=0.011)
        assert rec.latest(1).value < fv1.liquid_c  # the FV1 probe trails the warming beer
        assert rec.latest(2).value == pytest.approx(fv2.probe.reading_c, abs=0.011)
        assert rec.latest(3).value == pytest.approx(-2.0)  # the glycol supply, a negative int16
    finally:
        await driver.stop()


async def test_watchdogs_turn_the_new_outputs_off_when_polling_stops(protocol: ProtocolSimulator,
                                                                     client: AsyncModbusTcpClient) -> None:
    model = protocol.sim.model
    for coil in (MLT_ELEMENT, BK_ELEMENT):
        assert not (await client.write_coil(coil, True, device_id=BREWHOUSE_IO)).isError()
    for coil in (0, FV1_PAD, FV2_PAD):
        assert not (await client.write_coil(coil, True, device_id=CELLAR_IO)).isError()
    assert model.vessels["mlt"].element_on and model.fermenters["fv2"].heating_pad_on
    client.close()
    await wait_for(lambda: {"brewhouse_io", "cellar_io"} <= set(protocol.watchdog_trips))
    assert not model.vessels["mlt"].element_on and not model.vessels["bk"].element_on
    assert not any(f.heating_pad_on or f.glycol_open for f in model.fermenters.values())
