"""The serial probe driver against the simulated probe on a real pty pair."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bevforge.config import Device, Endpoint
from bevforge.domain import Quality
from drivers.serial_probe import SerialProbeDriver
from drivers.sim.faults import Faults
from drivers.sim.model import Brewhouse
from drivers.sim.probe_server import SimProbe
from tests.support.fieldbus import Recorder
from tests.support.server import wait_for

PATTERN = r"^T{n}=(?P<value>-?\d+(?:\.\d+)?)$"


@pytest.fixture
async def probe(tmp_path: Path) -> AsyncIterator[tuple[SimProbe, Faults, Brewhouse]]:
    model = Brewhouse.default()
    faults = Faults()
    sim = SimProbe(model, tmp_path / "ttyUSB0", lambda: faults)
    await sim.start()
    try:
        yield sim, faults, model
    finally:
        await sim.stop()


@asynccontextmanager
async def polling(sim: SimProbe, **settings: object) -> AsyncIterator[tuple[SerialProbeDriver, Recorder]]:
    """A driver polling probes T1 and T2 of `sim`, and the Recorder that hears it; stopped however the test ends."""
    device = Device(id="probe", driver="serial", settings={"port": sim.path, "timeout_s": 0.2, "reprobe_s": 0.05,
                                                           "reprobe_max_s": 0.2, **settings})
    eps = [Endpoint(id=n, name=f"fv{n}_temperature", node="FV", device="probe", kind="temperature", unit="°C",
                    poll_interval_s=0.05, address={"request": f"T{n}?", "pattern": PATTERN.format(n=n)})
           for n in (1, 2)]
    rec = Recorder()
    driver = SerialProbeDriver(device, eps, rec)
    await driver.start()
    try:
        yield driver, rec
    finally:
        await driver.stop()


async def test_probe_values_arrive_good(probe: tuple) -> None:
    sim, _, model = probe
    async with polling(sim) as (_, rec):
        await wait_for(lambda: rec.count(1) >= 2 and rec.count(2) >= 2)
        assert rec.online is True
        assert rec.latest(1).value == pytest.approx(model.fermenters["fv1"].temperature_c, abs=0.01)
        assert rec.latest(2).quality is Quality.GOOD


async def test_garbage_lines_are_bad_readings_and_polling_goes_on(probe: tuple) -> None:
    sim, faults, _ = probe
    async with polling(sim) as (driver, rec):
        await wait_for(lambda: rec.count(1) >= 1)
        faults.corrupt_lines = True
        await wait_for(lambda: sum(1 for r in rec.readings_of(1) if r.quality is Quality.BAD) >= 3)
        bad = next(r for r in rec.readings_of(1) if r.quality is Quality.BAD)
        assert bad.value is None and "garbled" in bad.error
        assert rec.online is True  # it answers, just not sense
        faults.corrupt_lines = False
        good_before = sum(1 for r in rec.readings_of(1) if r.quality is Quality.GOOD)
        await wait_for(lambda: sum(1 for r in rec.readings_of(1) if r.quality is Quality.GOOD) > good_before + 2)
        assert not driver._task.done()


async def test_silent_probe_goes_offline_and_comes_back(probe: tuple) -> None:
    sim, faults, _ = probe
    async with polling(sim, offline_after=2) as (_, rec):
        await wait_for(lambda: rec.online is True)
        faults.offline = True
        await wait_for(lambda: rec.online is False)
        assert "timeout" in rec.comms_events[-1][1]
        faults.offline = False
        await wait_for(lambda: rec.online is True)


async def test_port_vanishing_and_reappearing_is_survived(probe: tuple) -> None:
    sim, faults, _ = probe
    async with polling(sim) as (driver, rec):
        await wait_for(lambda: rec.online is True)
        faults.port_closed = True  # the USB adapter is unplugged: the path disappears
        await wait_for(lambda: rec.online is False)
        assert os.path.basename(sim.path) not in os.listdir(os.path.dirname(sim.path))
        assert "lost" in rec.comms_events[-1][1] or "cannot open" in rec.comms_events[-1][1]
        faults.port_closed = False  # plugged back in: a new pty behind the same path
        count = rec.count(1)
        await wait_for(lambda: rec.online is True and rec.count(1) > count + 2)
        assert driver.reopens >= 2
        assert rec.latest(1).quality is Quality.GOOD
