"""Stopping background tasks: a swallowed cancellation must not hang a stop (bevforge/tasks.py)."""

from __future__ import annotations

import asyncio

import pytest

from bevforge.tasks import stop_task


async def test_stop_ends_a_task_that_swallows_the_first_cancellation() -> None:
    swallowed = asyncio.Event()

    async def poll_loop() -> None:  # what a library that eats one CancelledError looks like
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed.is_set():
                    raise
                swallowed.set()

    task = asyncio.create_task(poll_loop())
    await asyncio.sleep(0)
    stopper = asyncio.create_task(stop_task(task))
    await asyncio.wait({stopper}, timeout=10)  # a hang guard, not a timing check
    stopped = stopper.done()
    stopper.cancel()  # (only needed when the stop hung: it ends the test instead of the suite)
    assert stopped and swallowed.is_set() and task.cancelled()


async def test_a_crashed_task_still_reports_its_error_when_stopped() -> None:
    async def crash() -> None:
        raise RuntimeError("sweep broke")

    task = asyncio.create_task(crash())
    await asyncio.wait({task})
    with pytest.raises(RuntimeError, match="sweep broke"):
        await stop_task(task)


async def test_cancelling_the_caller_of_stop_is_not_swallowed() -> None:
    give_up = asyncio.Event()

    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if give_up.is_set():
                    raise
                # ignores every cancel: only the caller's own cancellation can end stop_task's wait

    task = asyncio.create_task(stubborn())
    stopper = asyncio.create_task(stop_task(task))
    await asyncio.sleep(0.05)
    stopper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopper
    assert not task.done()
    give_up.set()
    await stop_task(task)


async def test_none_and_finished_tasks_are_a_no_op() -> None:
    await stop_task(None)
    task = asyncio.create_task(asyncio.sleep(0))
    await task
    await stop_task(task)
