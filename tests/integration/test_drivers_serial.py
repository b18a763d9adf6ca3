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


def _after(rec: Recorder, mark: int, endpoint_id: int) -> list:
    return [r for r in rec.received[mark:] if r.endpoint_id == endpoint_id]


async def _step_shows_at_once(sim: SimProbe, model: Brewhouse, rec: Recorder) -> None:
    """A step made now shows in FV1's next answers: no buffered old answer is read in its place.

    One answer may already be on its way when the step is made; a driver reading stale buffered
    lines shows the old value for as many polls as lines it is behind (or the wrong channel's).
    """
    fv1 = model.fermenters["fv1"]
    stepped = round(fv1.temperature_c + 7.25, 2)
    requests_before = sim.requests
    mark = len(rec.received)
    fv1.temperature_c = stepped
    await wait_for(lambda: any(r.value == pytest.approx(stepped) for r in _after(rec, mark, 1)))
    first_new = next(i for i, r in enumerate(_after(rec, mark, 1)) if r.value == pytest.approx(stepped))
    assert first_new <= 1, [(r.quality, r.value, r.error) for r in _after(rec, mark, 1)]
    assert sim.requests - requests_before <= 6  # a couple of polls of each channel, not a backlog's worth
    assert all(r.quality is Quality.GOOD for r in rec.received[mark:]), [r.error for r in rec.received[mark:]]


async def test_probe_that_stalls_and_catches_up_is_read_current_within_one_poll(probe: tuple) -> None:
    """The line goes silent (longer than the answer timeout), then every held request is answered at once.

    Before the fix the driver read one buffered line per request from then on: FV1 stayed BAD
    ("unexpected answer: 'T2=…'") or read GOOD but as many polls behind as answers had piled up.
    """
    sim, faults, model = probe
    async with polling(sim) as (driver, rec):
        await wait_for(lambda: rec.online is True and rec.count(1) >= 2 and rec.count(2) >= 2)
        faults.stalled = True
        await wait_for(lambda: len(sim.held) >= 8 and rec.online is False)  # timeouts: offline, requests held
        faults.stalled = False
        await wait_for(lambda: not sim.held)  # the catch-up burst has been written to the line
        mark = len(rec.received)
        await wait_for(lambda: rec.online is True and len(_after(rec, mark, 1)) >= 2 and len(_after(rec, mark, 2)) >= 2)
        assert all(r.quality is Quality.GOOD for r in rec.received[mark:]), [r.error for r in rec.received[mark:]]
        await _step_shows_at_once(sim, model, rec)
        assert not driver._task.done()


async def test_probe_answering_late_then_on_time_is_read_current(probe: tuple) -> None:
    """Answers come later than the timeout for a while (each to a request the driver gave up on), then on time."""
    sim, faults, model = probe
    async with polling(sim) as (_, rec):
        await wait_for(lambda: rec.online is True and rec.count(1) >= 2)
        faults.delay_s = 0.7
        requests = sim.requests
        await wait_for(lambda: sim.requests >= requests + 8)
        faults.delay_s = 0.0
        await wait_for(lambda: sim.answering == 0 and sim.requests >= requests + 12)  # every late answer is out
        mark = len(rec.received)
        await wait_for(lambda: len(_after(rec, mark, 1)) >= 2 and len(_after(rec, mark, 2)) >= 2)
        assert all(r.quality is Quality.GOOD for r in rec.received[mark:]), [r.error for r in rec.received[mark:]]
        await _step_shows_at_once(sim, model, rec)


async def test_an_answer_for_another_channel_is_bad_never_a_value(tmp_path: Path) -> None:
    """A probe that answers T2 when asked for T1 gives FV1 a BAD reading naming what came, not T2's number."""
    model = Brewhouse.default()
    faults = Faults()
    sim = SimProbe(model, tmp_path / "ttyUSB0", lambda: faults, channels={"T1": "fv2.temperature"})
    sim.answer_as = {"T1": "T2"}
    await sim.start()
    try:
        async with polling(sim) as (_, rec):
            await wait_for(lambda: rec.count(1) >= 2)
            assert all(r.quality is Quality.BAD and r.value is None for r in rec.readings_of(1))
            assert "T2=" in rec.latest(1).error
            assert rec.online is True  # it answers, just not to the question
    finally:
        await sim.stop()
