"""A brewhouse with controllers on a stepped clock, for the controller service's tests.

The fixture brewhouse (tests/fixtures/plant.yaml) plus the simulator's RIMS element, kettle element
and MLT level switch as endpoints and a `mlt_rims` PID loop (and, for the power budget, a `bk_element`
loop), all served by the real simulator over Modbus on a free port. The process clock is a
`ManualClock` shared by the simulator's physics and the controllers; `step()` moves it a second at
a time and lets the real Modbus polling catch up (a fresh sample of the loop's input, no command of
the loop's in flight) before time moves on, so an hour of control runs without sleeping through it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bevforge.auth import ROLES
from bevforge.clock import ManualClock
from bevforge.config import PlantConfig
from bevforge.control.autotune import AutotuneSettings, AutotuneState, RelayAutotune
from bevforge.control.process_model import SimulatedVessel, VesselModel
from bevforge.runtime import Runtime
from drivers import driver_factories
from tests.support.live import required
from tests.support.postgres import test_db_url
from tests.support.server import LiveServer, brewhouse_config, free_port

MLT_TEMPERATURE, MLT_VOLUME, MLT_LEVEL, MLT_ELEMENT, BK_TEMPERATURE, BK_LEVEL, BK_ELEMENT = 20, 21, 27, 40, 30, 32, 38
MLT_SETPOINT = 140
# The loop's points are polled every FAST_POLL_S of real time: `step()` waits for a fresh sample of the
# input each simulated second, so this interval is what a simulated second costs (an hour of mash
# control is 3600 polls).
FAST_POLL_S = 0.02
# Staleness is judged on the wall clock (a sample's server time), while these tests step a ManualClock.
# At a fast poll the default (3 × poll interval) is a fraction of a real second: a busy machine (two
# test workers, a CPU shared with other jobs) delays one poll that long and the loop sees an input
# fault (an autotune aborted, a hold that stops counting) that the test did not cause. Staleness
# itself is tested by ageing values explicitly (plant.sweep_stale 30 s ahead) or with bad quality.
FAST_POLL_STALE_S = 2.0

RIMS: dict[str, Any] = {
    "id": "mlt_rims", "name": "Mash temperature", "node": "MLT", "kind": "pid",
    "input": MLT_TEMPERATURE, "output": MLT_ELEMENT,
    "setpoint": {"id": MLT_SETPOINT, "name": "mlt_setpoint", "min": 20, "max": 80, "unit": "°C", "default": 65},
    "period_s": 4, "min_on_s": 0, "min_off_s": 0,
    "tuning": {"kp": 60, "ki": 0.08, "kd": 1500, "derivative_filter_s": 10},
    "safety": {"runaway_output_pct": 90, "runaway_minutes": 5, "runaway_min_change_c": 1.0,
               "over_temperature_c": 8},
}
KETTLE: dict[str, Any] = {
    "id": "bk_element", "name": "Kettle", "node": "BK", "kind": "pid",
    "input": BK_TEMPERATURE, "output": BK_ELEMENT,
    "setpoint": {"id": 130, "name": "bk_setpoint", "min": 20, "max": 100, "unit": "°C", "default": 95},
    "period_s": 4, "tuning": {"kp": 60, "ki": 0.05},
    "safety": {"over_temperature_c": None, "runaway_minutes": 60},
    "priority": 2,
}


def with_controllers(controllers: list[dict[str, Any]] | None = None, *, power: dict[str, Any] | None = None,
                     adjust: Callable[[dict[str, Any]], None] | None = None) -> Callable[[dict[str, Any]], None]:
    """A config-document adjustment: the new simulator points, an MLT level interlock and `controllers`
    (for a test that writes a config file, as the screen tests do)."""
    def add(doc: dict[str, Any]) -> None:
        for endpoint in doc["endpoints"]:
            if endpoint["id"] in (MLT_TEMPERATURE, BK_TEMPERATURE, MLT_VOLUME):
                endpoint["poll_interval_s"] = FAST_POLL_S  # fresh samples quickly: the test waits for one each step
                endpoint["stale_after_s"] = FAST_POLL_STALE_S
        doc["endpoints"] += [
            {"id": MLT_LEVEL, "name": "mlt_level_high", "node": "MLT", "device": "brewhouse_io", "kind": "level",
             "data_type": "bool", "poll_interval_s": FAST_POLL_S, "stale_after_s": FAST_POLL_STALE_S,
             "address": {"table": "discrete", "address": 2}},
            {"id": MLT_ELEMENT, "name": "mlt_element", "node": "MLT", "device": "brewhouse_io", "kind": "heater",
             "data_type": "bool", "writable": True, "safe_value": False, "poll_interval_s": FAST_POLL_S,
             "stale_after_s": FAST_POLL_STALE_S, "address": {"table": "coil", "address": 2}},
            {"id": BK_ELEMENT, "name": "bk_element", "node": "BK", "device": "brewhouse_io", "kind": "heater",
             "data_type": "bool", "writable": True, "safe_value": False, "poll_interval_s": FAST_POLL_S,
             "stale_after_s": FAST_POLL_STALE_S, "address": {"table": "coil", "address": 3}},
        ]
        doc["interlocks"].append({"id": "mlt_element_needs_level", "target": MLT_ELEMENT,
                                  "requires": [{"endpoint": MLT_LEVEL, "op": "==", "value": True}],
                                  "reason": "MLT element may be ON only while the MLT level is HIGH"})
        doc["controllers"] = controllers if controllers is not None else [dict(RIMS)]
        if power is not None:
            doc["power"] = power
        if adjust is not None:
            adjust(doc)
    return add


def controller_config(controllers: list[dict[str, Any]] | None = None, *, power: dict[str, Any] | None = None,
                      adjust: Callable[[dict[str, Any]], None] | None = None) -> PlantConfig:
    """The fixture brewhouse with the new simulator points, an MLT level interlock and `controllers`."""
    return brewhouse_config(with_controllers(controllers, power=power, adjust=adjust))


def controller_runtime(config: PlantConfig, db_path: Path, clock: ManualClock | None = None) -> Runtime:
    """A runtime whose simulator physics and controllers share one ManualClock (`runtime.clock`)."""
    clock = clock or ManualClock()
    factories, sim = driver_factories(config, clock=clock)
    runtime = Runtime(config, test_db_url(db_path), factories, clock=clock)
    runtime.attachments["simulator"] = sim
    return runtime


async def step(runtime: Runtime, seconds: float, inputs: tuple[int, ...] = (MLT_TEMPERATURE,),
               each: Callable[[], None] | None = None) -> None:
    """Advance the process clock `seconds`, one second at a time, letting the real comms catch up each second."""
    clock = runtime.clock
    assert isinstance(clock, ManualClock)
    outputs = [eid for c in runtime.config.controllers for eid in c.outputs]
    for _ in range(round(seconds)):
        await clock.advance(1.0)
        for eid in inputs:
            await runtime.plant.next_sample(eid, 2.0)
        for _ in range(200):  # the loop's commands finish (each takes a Modbus write and a readback)
            if all(runtime.commands.in_flight(eid) is None for eid in outputs):
                break
            await asyncio.sleep(0.005)
        programs = getattr(runtime, "programs", None)
        for _ in range(400):  # a program's tick finishes (its saves and batch record wait on the DB writer)
            if programs is None or not programs.busy():
                break
            await asyncio.sleep(0.005)
        if each is not None:
            each()


async def wait_online(runtime: Runtime, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not all(runtime.plant.device_online.values()):
        if loop.time() > deadline:
            raise AssertionError(f"devices not online: {runtime.plant.device_online}")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def controller_server(tmp_path: Path, node_operators: dict[str, str]) -> AsyncIterator[
        tuple[LiveServer, dict[str, str]]]:
    """The RIMS and kettle loops behind real HTTP with sign-in required, and a token per role plus one
    node-limited operator token per `node_operators` entry (name → node)."""
    config = controller_config([dict(RIMS), dict(KETTLE)], adjust=required())
    live = LiveServer(controller_runtime(config, tmp_path / "bevforge.db"), free_port())
    await live.start()
    try:
        await wait_online(live.runtime)
        auth = live.runtime.auth
        tokens = {role: auth.create_token(f"{role}-token", role, None, "test")[1] for role in ROLES}
        for name, node in node_operators.items():
            tokens[name] = auth.create_token(name, "operator", [node], "test")[1]
        yield live, tokens
    finally:
        await live.stop()


def finished_tune() -> RelayAutotune:
    """A relay test run to success on a vessel model (the simulated mash would need an hour for one)."""
    vessel = SimulatedVessel(VesselModel.water(60.0, loss_w_per_c=10.0, dead_time_s=20.0), 65.0)
    tune, now = RelayAutotune(AutotuneSettings(setpoint_c=65.0, bias_pct=50.0, amplitude_pct=50.0,
                                               hysteresis_c=0.05, band_c=3.0, max_duration_s=20_000), 0.0), 0.0
    while tune.state is AutotuneState.RUNNING:
        vessel.step(2.0, 5500.0 * tune.update(now, vessel.probe_c) / 100.0)
        now += 2.0
    assert tune.result is not None
    return tune


async def started(runtime: Runtime) -> Runtime:
    """Start the runtime and wait until its devices are online (the tests' plant is then being polled)."""
    await runtime.start()
    await wait_online(runtime)
    return runtime
