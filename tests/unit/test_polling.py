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
