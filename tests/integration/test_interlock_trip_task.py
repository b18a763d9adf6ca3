"""The interlock-trip task is kept and supervised: never collected mid-run, never dying silently."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from tests.support.server import LiveServer, wait_for, wait_for_command

HLT_HEATER = 11


async def _heater_on(server: LiveServer) -> None:
    r = await server.http.post("/api/os/command", json={"endpointId": HLT_HEATER, "value": True})
    assert (await wait_for_command(server, r.json()["commandId"]))["status"] == "succeeded"


async def test_trip_task_is_kept_while_it_runs(server: LiveServer) -> None:
    commands = server.runtime.commands
    gate = asyncio.Event()
    submit = commands.submit

    async def held(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("origin") == "interlock":
            await gate.wait()
        return await submit(*args, **kwargs)

    await _heater_on(server)
    commands.submit = held  # type: ignore[method-assign]
    server.sim.model.vessels["hlt"].volume_l = 5.0  # HLT drained below its level switch: trip the heater
    await wait_for(lambda: commands.trip_tasks)
    (task,) = commands.trip_tasks
    gc.collect()
    assert not task.done() and task in commands.trip_tasks  # held by the service, not only by the loop
    gate.set()
    await wait_for(lambda: not commands.trip_tasks)
    await wait_for(lambda: server.sim.model.vessels["hlt"].heater_enabled is False)


async def test_trip_task_that_fails_raises_a_critical_alarm(server: LiveServer) -> None:
    commands = server.runtime.commands

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("writer gone")

    await _heater_on(server)
    commands.submit = broken  # type: ignore[method-assign]
    server.sim.model.vessels["hlt"].volume_l = 5.0
    await wait_for(lambda: server.runtime.alarms.is_active(f"tripfail:{HLT_HEATER}"))
    alarm = next(a for a in server.runtime.alarms.standing() if a.rule_id == f"tripfail:{HLT_HEATER}")
    assert alarm.severity.value == "critical"


async def test_trip_task_cancelled_outside_shutdown_is_not_silent(server: LiveServer) -> None:
    commands = server.runtime.commands
    gate = asyncio.Event()

    async def held(*args: Any, **kwargs: Any) -> Any:
        await gate.wait()

    await _heater_on(server)
    commands.submit = held  # type: ignore[method-assign]
    server.sim.model.vessels["hlt"].volume_l = 5.0
    await wait_for(lambda: commands.trip_tasks)
    (task,) = commands.trip_tasks
    task.cancel()
    await wait_for(lambda: server.runtime.alarms.is_active(f"tripfail:{HLT_HEATER}"))
    assert not commands.trip_tasks


async def test_stop_cancels_trips_under_way(server: LiveServer) -> None:
    commands = server.runtime.commands
    gate = asyncio.Event()

    async def held(*args: Any, **kwargs: Any) -> Any:
        await gate.wait()

    await _heater_on(server)
    commands.submit = held  # type: ignore[method-assign]
    server.sim.model.vessels["hlt"].volume_l = 5.0
    await wait_for(lambda: commands.trip_tasks)
    (task,) = commands.trip_tasks
    await commands.stop()
    assert task.cancelled() and not commands.trip_tasks
