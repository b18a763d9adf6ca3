"""The production server's start-up heap policy (main.py and bevforge/app.py's settle_heap): the cyclic
collector is off while the plant starts, what start-up built is frozen before the server exists, and a
few seconds after serving what came since is frozen too and the collector is on again — without a full
collection over the start-up heap (an event-loop stall of ~0.2 s)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

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


def _cycle() -> weakref.ref[_Node]:
    first, second = _Node(), _Node()
    first.other, second.other = second, first
    return weakref.ref(first)


def test_settle_heap_freezes_and_switches_the_collector_on_without_a_full_collection(start_up_heap: None) -> None:
    frozen_at_start = gc.get_freeze_count()
    built_after_serving = [_Node() for _ in range(100)]
    collections: list[int] = []

    def seen(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.callbacks.append(seen)
    try:
        settle_heap()
    finally:
        gc.callbacks.remove(seen)

    assert collections == []  # no collection at all: the one over the start-up heap stalled the loop
    assert gc.isenabled()
    assert gc.get_freeze_count() >= frozen_at_start + len(built_after_serving)
    gone = _cycle()  # garbage made once the collector is on is collected as usual
    gc.collect()
    assert gone() is None
