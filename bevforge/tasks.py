"""Stopping and running the core's background tasks the same way everywhere.

Several services own one long-running asyncio task each (stale sweep, alarm timer, history
writer, retention, the simulator's clock). Stopping one must wait until the task has really
finished, or a stopped runtime could still touch the database or the bus; the task's
CancelledError is the expected end of that wait, not a failure. A periodic body such as the
stale sweep must never end on an exception: a dead sweep would let a stale value look live, so
a failure is logged and the next period runs anyway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, NoReturn

CANCEL_RETRY_S = 0.1  # how long one cancellation may take before it is sent again


def cancel_if_asked() -> None:
    """Raise the cancellation a finished await may have swallowed (call it after each MQTT publish).

    aiomqtt waits for a QoS 1/2 acknowledgement with `asyncio.wait_for`, which on Python 3.11 returns the
    result and drops a `cancel()` that arrives as the acknowledgement does. A sending loop stopped then
    would go back to waiting for work and never end, and the stop would wait for it for ever.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def stop_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` and wait until it has finished; None (never started) is a no-op.

    The cancellation is repeated until the task has really ended: a library awaited inside it
    (a Modbus client under an asyncio.timeout, say) can swallow one cancellation, and a stop that
    trusted a single cancel() was seen waiting forever on a poll loop that kept going. Waiting with
    asyncio.wait means a cancellation aimed at the caller of stop_task still reaches the caller.
    An exception other than the cancellation (the task had already crashed) still propagates,
    so a broken service is not silently forgotten at shutdown.
    """
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_RETRY_S)
    if not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]


async def repeat_every(period_s: float, body: Callable[[], object], log: logging.Logger, what: str) -> NoReturn:
    """Wait `period_s`, then run `body`, forever, until the task is cancelled.

    An exception from `body` is logged on the caller's `log` as "<what> failed" and the loop
    goes on: these bodies keep values and alarms honest, so one bad round must not stop them.
    """
    while True:
        await asyncio.sleep(period_s)
        try:
            body()
        except Exception:
            log.exception("%s failed", what)
