"""The production server's start-up heap policy (main.py and bevforge/app.py's settle_heap): the cyclic
collector is off while the plant starts, what start-up built is frozen before the server exists, and a
few seconds after serving the heap is settled: garbage collected, survivors frozen, the collector on."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from bevforge.app import settle_heap


class _Node:
    """An object that can sit in a reference cycle (garbage only the cyclic collector frees)."""

    other: _Node | None = None


@pytest.fixture
def start_up_heap() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()


def test_settle_heap_frees_garbage_frozen_at_start_up_and_switches_the_collector_on(start_up_heap: None) -> None:
    first, second = _Node(), _Node()
    first.other, second.other = second, first
    gone = weakref.ref(first)
    del first, second  # a cycle: only the collector can free it, and it is off
    gc.freeze()  # main.py: before the server exists
    assert gone() is not None and gc.get_freeze_count() > 0

    settle_heap()

    assert gone() is None  # unfrozen and collected, not frozen for the life of the process
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0  # the survivors are in the permanent generation again
