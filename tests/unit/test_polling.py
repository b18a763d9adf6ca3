"""The shared polling rules on their own: re-probe backoff and the poll timetable."""

from __future__ import annotations

from drivers.polling import Backoff, Due, all_due, next_due, take_due


def test_backoff_doubles_up_to_its_ceiling_and_starts_over_after_an_answer() -> None:
    backoff = Backoff(0.5, 3.0)
    delays = []
    for _ in range(5):
        delays.append(backoff.delay)
        backoff.failed()
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.delay == 0.5


def test_only_due_entries_are_handed_out_and_each_moves_on_one_interval() -> None:
    fast, slow = Due("fast", 1.0, due=10.0), Due("slow", 5.0, due=12.0)
    assert [e.item for e in take_due([fast, slow], now=10.0)] == ["fast"]
    assert (fast.due, slow.due) == (11.0, 12.0)
    assert next_due([fast, slow]) == 11.0


def test_a_late_entry_does_not_catch_up_in_a_burst() -> None:
    entry = Due("block", 1.0, due=10.0)
    assert len(list(take_due([entry], now=13.5))) == 1
    assert entry.due == 13.5  # next due from now, not the three missed slots at 11, 12 and 13


def test_all_due_makes_a_returning_device_read_in_full_at_once() -> None:
    timetable = [Due("a", 1.0, due=20.0), Due("b", 5.0, due=24.0)]
    all_due(timetable, now=15.0)
    assert [e.item for e in take_due(timetable, now=15.0)] == ["a", "b"]


async def test_a_poll_task_cancelled_once_ends_even_when_a_library_turned_the_cancel_into_an_error() -> None:
    """asyncio's Runner.close cancels each task once: a poll loop that took the cancel for a silent device
    (a client library waiting in a timeout may raise TimeoutError or OSError instead) must still end."""
    import asyncio
    import logging
    from dataclasses import dataclass

    from drivers.polling import PollingDriver
    from tests.support.fieldbus import Recorder, modbus_device

    @dataclass
    class Settings:
        poll_interval_s: float | None = None
        reprobe_s: float = 0.01
        reprobe_max_s: float = 0.01

    cycles = asyncio.Event()

    class SwallowingDriver(PollingDriver[Settings]):
        protocol = "test"
        log = logging.getLogger("test")

        async def _cycle(self) -> float | None:
            cycles.set()
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                raise OSError("connection aborted") from None  # what a client library may do with a cancel
            return None

        def _after_surprise(self) -> float:
            return 0.01

        async def write(self, endpoint: object, value: object) -> None:  # the poll loop is what is tested
            raise NotImplementedError

    driver = SwallowingDriver(modbus_device("d", 1), [], Recorder(), Settings())
    await driver.start()
    await cycles.wait()
    assert driver._task is not None
    driver._task.cancel()  # once, as Runner.close does
    done, _ = await asyncio.wait({driver._task}, timeout=5)
    assert done and driver._task.cancelled()
